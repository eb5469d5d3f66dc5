#!/usr/bin/env bash
# warden's peak resident memory while a service streams N MiB of log lines through it:
# capture, level filter, redaction, timestamps, rotation every 64 MiB with gzip.
#
# Usage: sudo bench/logs/memory.sh [MiB ...]        (default: 50 500)
# Needs root (warden drops to the service account, `nobody`) and GNU time.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
warden=${WARDEN:-$root/target/release/warden}
if [ "$(id -u)" != 0 ]; then
    echo "memory.sh: run as root: warden starts the service as the account 'nobody'" >&2
    exit 1
fi
[ -x /usr/bin/time ] || { echo "memory.sh: needs GNU time (/usr/bin/time)" >&2; exit 1; }
[ -x "$warden" ] || (cd "$root" && cargo build --release --quiet --bin warden)

work=$(mktemp -d /tmp/warden-logmem.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
group=$(id -gn nobody)
cat > "$work/warden.toml" <<TOML
[service]
name    = "logmem"
command = ["/bin/cat", "in.log"]
workdir = "."
user    = "nobody"
group   = "$group"
restart = { policy = "never" }

[integrity]                   # no model tree here: nothing to verify or scan
verify = "off"
scan   = false

[logs]
dir    = "logs"
level  = "info"
redact = ["prompts", "secrets", "pii"]
rotate = { size = "64MiB", keep = 20, compress = true }
TOML

printf '%-10s %12s %8s  %s\n' "streamed" "peak RSS" "wall" "lines in the log files"
for n in ${@:-50 500}; do
    head -c "${n}M" > "$work/in.log" \
        < <(yes "INFO:app:edit request prompt='a red fox' user 13800138000 token=Zk3q9XbT2LmNp4")
    chmod 644 "$work/in.log"
    rm -rf "$work/logs"
    if ! /usr/bin/time -o "$work/time" -f '%M %e' \
        "$warden" -c "$work/warden.toml" run --no-echo >/dev/null 2>"$work/err"; then
        echo "memory.sh: warden run failed:" >&2
        cat "$work/err" >&2
        exit 1
    fi
    read -r kib secs < "$work/time"
    sent=$(awk 'END { print NR }' "$work/in.log")
    kept=$(zcat -f "$work/logs"/logmem.log* | wc -l)
    printf '%-10s %8.1f MiB %6s s  %s of %s\n' "$n MiB" "$(echo "$kib / 1024" | bc -l)" "$secs" \
        "$kept" "$sent"
done
