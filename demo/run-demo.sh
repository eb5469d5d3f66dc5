#!/usr/bin/env bash
# The warden demo, end to end, from a fresh clone. Run as root:
#
#   demo/run-demo.sh [DEST]        DEST defaults to /srv/warden-demo/image-edit
#
# It builds the workspace, copies examples/image-edit to DEST with the demo binary in bin/,
# validates and hardens it, seals and scans the weights, audits it, starts the service as its
# account in the sandbox, sends one edit request, shows the redacted log, attacks it as the
# service would (probe), and stops it.
#
# DEST is replaced on each run when it holds a previous copy (a warden.toml and bin/); any
# other existing directory is refused.
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
for tool in cargo curl od; do
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
WARDEN_UP=
cleanup() {
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
step "4. warden harden --dry-run (the plan; nothing changes)"
"$WARDEN" harden --dry-run -c "$POLICY"

step "5. warden harden (create the account, apply owners and modes)"
"$WARDEN" harden -c "$POLICY"
step "5b. warden harden again (a second run changes nothing)"
"$WARDEN" harden -c "$POLICY"
note "owners and modes now:"
ls -ld "$DEST" "$DEST"/* "$DEST/bin/image-edit-demo" \
    "$DEST/models/Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors" | sed 's/^/    /'

# ---------------------------------------------------------------------------------------------
step "6. warden seal and warden scan (the weights' manifest; no code hidden in them)"
"$WARDEN" seal -c "$POLICY"
"$WARDEN" scan -c "$POLICY"

# ---------------------------------------------------------------------------------------------
step "7. warden check (the production-readiness audit)"
"$WARDEN" check -c "$POLICY" || die "warden check found holes in the hardened demo"

# ---------------------------------------------------------------------------------------------
if curl -fsS -o /dev/null --max-time 2 "$URL/healthz" 2>/dev/null; then
    die "something already answers on $URL; stop it first"
fi
step "8. warden up (verify, scan, start as aiuser in the sandbox, wait until ready)"
WARDEN_UP=1
"$WARDEN" up -c "$POLICY"
"$WARDEN" status -c "$POLICY"

# ---------------------------------------------------------------------------------------------
step "9. An edit request: POST /api/edit?prompt=... with a generated PNG"
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
step "10. warden logs (what reached the disk: prompts, secrets and personal data redacted)"
sleep 0.3
"$WARDEN" logs -c "$POLICY" -n 12 | sed 's/^/    /'
LOG="$DEST/logs/image-edit.log"
if grep -qF "$PROMPT" "$DEST"/logs/* 2>/dev/null || grep -qF "$ENCODED" "$DEST"/logs/* 2>/dev/null; then
    die "the prompt reached the log on disk"
fi
note "(the app logged the prompt twice; neither copy reached $LOG)"

# ---------------------------------------------------------------------------------------------
step "11. warden probe (real attacks as the service: same account, same sandbox)"
"$WARDEN" probe -c "$POLICY" || die "an attack succeeded or a control failed"

# ---------------------------------------------------------------------------------------------
step "12. warden stop"
"$WARDEN" stop -c "$POLICY"
WARDEN_UP=
curl -fsS -o /dev/null --max-time 1 "$URL/healthz" 2>/dev/null && die "the service still answers"

step "Done"
note "deployment: $DEST"
cp "$WORK/input.png" "$(dirname "$DEST")/image-edit-input.png"
cp "$WORK/result.png" "$(dirname "$DEST")/image-edit-result.png"
note "images:     $(dirname "$DEST")/image-edit-input.png and image-edit-result.png"
note "run again to start from a fresh copy"
