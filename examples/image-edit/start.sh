#!/bin/bash
# The usual hand-made start script, kept here as an example of what warden replaces.
# DO NOT USE IT. Each line below has a hole; warden.toml describes the same service safely.
#
#   ./start.sh            (as root)

cd "$(dirname "$0")"

# Hole: runs as root when started as root; every upload is parsed by a root process.
# (The "hardened" variant, `sudo -u aiuser -E`, passes the caller's whole environment,
# tokens and proxy passwords included, and HOME=/root.)

# Hole: `kill -0 $(cat app.pid)` races two starts, and a reused PID makes it report (or later
# kill) the wrong process. warden holds a lock for the service's lifetime instead.
if [ -f app.pid ] && kill -0 "$(cat app.pid)" 2>/dev/null; then
    echo "already running"
    exit 0
fi

# Hole: temp files go to the shared /tmp (uploads readable by other accounts), caches to
# /root/.cache. warden points TMPDIR, GRADIO_TEMP_DIR and the cache variables into a private
# directory.

# Hole: --share opens a public tunnel to the service: anyone with the link can use it.
# Removing it by hand does not last: the next edit of this file brings it back. warden refuses
# to start a service with --share or GRADIO_SHARE=True unless the policy allows it.

# Hole: the log holds every prompt (INFO lines, access-log query strings, tracebacks), is
# world-readable, and logrotate's `create` without a reopen signal loses what the app writes
# after a rotation. warden captures the output, redacts prompts and rotates between lines.
# (Copies found in the wild often add --server-name 0.0.0.0 as well.)
nohup bin/image-edit-demo --server-name 127.0.0.1 --server-port 7860 --share \
    >> gradio.log 2>&1 &
echo $! > app.pid

# Hole: nothing checks that the models are the ones that were deployed: they are writable by
# their owner, and a swapped adapter_model.bin is a pickle that runs code when loaded.
echo "started (pid $(cat app.pid))"
