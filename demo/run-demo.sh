#!/usr/bin/env bash
# The warden demo, end to end, from a fresh clone. Run as root:
#
#   demo/run-demo.sh [DEST]        DEST defaults to /srv/warden-demo/image-edit
#
# It builds the workspace, copies examples/image-edit to DEST with the demo binary in bin/,
# validates and hardens it with warden, starts the service as its account, sends one edit
# request, shows the result and the log lines, and stops the service.
#
# DEST is replaced on each run when it holds a previous copy (a warden.toml and bin/); any
# other existing directory is refused. With WARDEN_DEMO_DIRECT=1 the service is started with
# setpriv instead of `warden up` (what the script does where `warden up` does not exist).
set -euo pipefail

DEST=${1:-/srv/warden-demo/image-edit}
PORT=7860
URL="http://127.0.0.1:$PORT"
PROMPT="make it warm and slightly blurry"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    step() { printf '\n==> %s\n' "$*"; }
fi
note() { printf '    %s\n' "$*"; }
die() {
    printf '\nrun-demo: FAILED: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
step "0. Checks"
[ "$(id -u)" -eq 0 ] || die "run as root (warden harden creates the service account and chowns the tree)"
for tool in cargo curl setpriv od; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
case "$DEST" in
    /*) ;;
    *) DEST="$PWD/$DEST" ;;
esac
DEST=$(realpath -m "$DEST")
# Two path components at least (/srv/x): the destination is replaced on the next run.
[ "$(tr -cd / <<<"$DEST" | wc -c)" -ge 2 ] || die "$DEST is too broad a destination"
note "repository:  $REPO"
note "deployment:  $DEST"

WORK=$(mktemp -d)
SERVICE_PID=
WARDEN_UP=
cleanup() {
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    if [ -n "$WARDEN_UP" ]; then
        "$WARDEN" stop -c "$POLICY" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
step "1. Build the workspace (cargo build --release --workspace)"
cd "$REPO"
cargo build --release --workspace
TARGET=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$TARGET" ] || TARGET="$REPO/target"
WARDEN="$TARGET/release/warden"
DEMO_BIN="$TARGET/release/image-edit-demo"
[ -x "$WARDEN" ] && [ -x "$DEMO_BIN" ] || die "the build produced no $WARDEN or $DEMO_BIN"
note "warden:          $WARDEN"
note "image-edit-demo: $DEMO_BIN"

# ---------------------------------------------------------------------------------------------
step "2. Copy examples/image-edit to $DEST"
POLICY="$DEST/warden.toml"
if [ -e "$DEST" ]; then
    if [ -f "$DEST/warden.toml" ] && [ -d "$DEST/bin" ]; then
        note "replacing the previous copy (stopping its service first, if it runs)"
        "$WARDEN" stop -c "$POLICY" >/dev/null 2>&1 || true
        rm -rf -- "$DEST"
    else
        die "$DEST exists and is not a previous copy of the demo; pass another directory"
    fi
fi
mkdir -p -- "$(dirname "$DEST")"
cp -r -- "$REPO/examples/image-edit" "$DEST"
cp -- "$DEMO_BIN" "$DEST/bin/image-edit-demo"
chmod 0755 "$DEST/bin/image-edit-demo"
rm -f -- "$DEST/bin/.gitkeep"
(cd "$DEST" && find . -type f | sort | sed 's/^/    /')

# ---------------------------------------------------------------------------------------------
step "3. warden validate"
"$WARDEN" validate -c "$POLICY"

# ---------------------------------------------------------------------------------------------
# harden may not be built yet in this tree: that is reported and a stand-in prepares the
# minimum (account, private directories) so the rest of the demo still runs.
HARDENED=1
harden() {
    local out rc=0
    out=$("$WARDEN" harden "$@" -c "$POLICY" 2>&1) || rc=$?
    printf '%s\n' "$out"
    if [ "$rc" -ne 0 ]; then
        if grep -q "not built yet" <<<"$out"; then
            note "(warden harden is not built yet in this tree: skipped)"
            HARDENED=0
            return 0
        fi
        die "warden harden $* exited with $rc"
    fi
}

step "4. warden harden --dry-run (the plan; nothing changes)"
harden --dry-run

step "5. warden harden (create the account, apply owners and modes)"
harden
if [ "$HARDENED" -eq 1 ]; then
    step "5b. warden harden again (a second run changes nothing)"
    harden
else
    note "stand-in until harden exists: create aiusers/aiuser and the private directories"
    getent group aiusers >/dev/null || groupadd --system aiusers
    getent passwd aiuser >/dev/null ||
        useradd --system --gid aiusers --no-create-home --home-dir "$DEST/state" \
            --shell /usr/sbin/nologin aiuser
    install -d -o aiuser -g aiusers -m 0700 "$DEST/tmp" "$DEST/state"
    install -d -o aiuser -g aiusers -m 0750 "$DEST/logs"
fi
note "owners and modes now:"
ls -ld "$DEST" "$DEST"/* "$DEST/bin/image-edit-demo" \
    "$DEST/models/Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors" | sed 's/^/    /'

# ---------------------------------------------------------------------------------------------
if curl -fsS -o /dev/null --max-time 2 "$URL/healthz" 2>/dev/null; then
    die "something already answers on $URL; stop it first"
fi

LOG=
if [ -z "${WARDEN_DEMO_DIRECT:-}" ] && "$WARDEN" up --help >/dev/null 2>&1; then
    step "6. warden up (start as aiuser in the background, wait until ready)"
    WARDEN_UP=1
    "$WARDEN" up -c "$POLICY"
    "$WARDEN" status -c "$POLICY" || true
    LOG="$DEST/logs/image-edit.log"
else
    step "6. Start the service as aiuser (setpriv stands in for warden up)"
    LOG="$WORK/service.log"
    note "setpriv --reuid=aiuser --regid=aiusers --init-groups --reset-env, in $DEST, TMPDIR=$DEST/tmp"
    (
        cd "$DEST"
        exec setpriv --reuid=aiuser --regid=aiusers --init-groups --reset-env --no-new-privs \
            -- env TMPDIR="$DEST/tmp" HF_HUB_OFFLINE=1 \
            bin/image-edit-demo --server-name 127.0.0.1 --server-port "$PORT"
    ) >"$LOG" 2>&1 &
    SERVICE_PID=$!
    for _ in $(seq 1 60); do
        curl -fsS -o /dev/null --max-time 1 "$URL/healthz" 2>/dev/null && break
        kill -0 "$SERVICE_PID" 2>/dev/null || {
            cat "$LOG" >&2
            die "the service exited during start"
        }
        sleep 0.5
    done
    curl -fsS -o /dev/null --max-time 1 "$URL/healthz" || die "the service did not become ready"
    note "ready: $URL/healthz answers 200 (pid $SERVICE_PID, user $(ps -o user= -p "$SERVICE_PID"))"
fi

# ---------------------------------------------------------------------------------------------
step "7. An edit request: POST /api/edit?prompt=... with a generated PNG"
"$DEMO_BIN" sample-image "$WORK/input.png" --size 320x240
ENCODED=$(printf '%s' "$PROMPT" | sed 's/ /+/g')
curl -fsS --max-time 60 -D "$WORK/headers" -o "$WORK/result.png" \
    -H 'Content-Type: image/png' --data-binary @"$WORK/input.png" \
    "$URL/api/edit?prompt=$ENCODED&strength=1"
png_size() { # width x height from a PNG's IHDR
    od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $1*2^24+$2*2^16+$3*2^8+$4, $5*2^24+$6*2^16+$7*2^8+$8 }'
}
note "prompt:  $PROMPT"
note "input:   $(png_size "$WORK/input.png") PNG, $(stat -c %s "$WORK/input.png") bytes"
note "result:  $(png_size "$WORK/result.png") PNG, $(stat -c %s "$WORK/result.png") bytes"
note "applied: $(sed -n 's/^[Xx]-[Ee]dit-[Pp]lan: *//p' "$WORK/headers" | tr -d '\r')"
[ "$(png_size "$WORK/input.png")" = "$(png_size "$WORK/result.png")" ] ||
    die "the result's size differs from the input's"
note "the upload and the result, in the service's private temp directory:"
find "$DEST/tmp" -type f -printf '    %u:%g %m %p\n' 2>/dev/null | sort

# ---------------------------------------------------------------------------------------------
step "8. What the service logged ($LOG)"
sleep 0.3
if [ -f "$LOG" ]; then
    sed 's/^/    /' "$LOG"
    if grep -qF "$PROMPT" "$LOG" || grep -qF "$ENCODED" "$LOG"; then
        note "(the prompt is in this log: the app logs every prompt at INFO and in the access line)"
    else
        note "(the prompt is not in this log: warden redacted it)"
    fi
else
    note "no log file at $LOG"
fi

# ---------------------------------------------------------------------------------------------
step "9. Stop"
if [ -n "$WARDEN_UP" ]; then
    "$WARDEN" stop -c "$POLICY"
    WARDEN_UP=
else
    started=$(date +%s%N)
    kill -TERM "$SERVICE_PID"
    wait "$SERVICE_PID" || die "the service exited with status $? after SIGTERM"
    note "stopped after SIGTERM in $((($(date +%s%N) - started) / 1000000)) ms"
    tail -n 2 "$LOG" | sed 's/^/    /'
    SERVICE_PID=
fi
curl -fsS -o /dev/null --max-time 1 "$URL/healthz" 2>/dev/null && die "the service still answers"

step "Done"
note "deployment: $DEST"
cp "$WORK/input.png" "$(dirname "$DEST")/image-edit-input.png"
cp "$WORK/result.png" "$(dirname "$DEST")/image-edit-result.png"
note "images:     $(dirname "$DEST")/image-edit-input.png and image-edit-result.png"
note "run again to start from a fresh copy"
if [ "$HARDENED" -eq 0 ]; then
    note "not done: warden harden is not built yet in this tree (a stand-in created the account)"
fi
