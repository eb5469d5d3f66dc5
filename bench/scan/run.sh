#!/usr/bin/env bash
# Scan throughput of warden against picklescan and modelscan (from pip) on the same files, in
# one run: a dense 10 MB pickle, a 1 GiB torch.save-style zip, and a directory of mixed files.
# Wall time and peak RSS come from /usr/bin/time -v; each command runs once to warm the page
# cache, then RUNS times (the best time is kept). Inputs are generated under /tmp.
#
#   bench/scan/run.sh                     # GB_ZIP=1 RUNS=3
#   WARDEN=target/release/warden bench/scan/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
VENV=${VENV:-/opt/warden-bench/venv}
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
if ! "$VENV/bin/python" -c 'import picklescan, modelscan, numpy' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check picklescan==1.0.5 modelscan==0.8.8 numpy
fi
if [ -z "${WARDEN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --bin warden)
    WARDEN="$repo/target/release/warden"
fi
WARDEN=$(realpath "$WARDEN")
work=$(mktemp -d /tmp/warden-bench-scan.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" "$here/make_inputs.py" "$work" >&2

# measure NAME CMD...: prints "seconds max_rss_kib exit"
measure() {
    local best="" rss="" code=0
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>&1 || true
        local s r c
        s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); t=0; for(i=1;i<=n;i++) t=t*60+a[i]; print t}' "$work/time")
        r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
        c=$(awk -F': ' '/Exit status/ {print $2}' "$work/time")
        if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$s; rss=$r; code=$c; fi
    done
    echo "$best $rss $code"
}

row() { # INPUT_LABEL BYTES TOOL CMD...
    local label=$1 bytes=$2 tool=$3; shift 3
    read -r s r c < <(measure "$@")
    local mbs
    mbs=$(awk -v b="$bytes" -v s="$s" 'BEGIN{ if (s>0) printf "%.1f", b/1e6/s; else print "inf" }')
    printf '| %s | %s | %.2f s | %s MB/s | %.0f MiB | %s |\n' "$label" "$tool" "$s" "$mbs" "$(awk -v r="$r" 'BEGIN{print r/1024}')" "$c"
    echo "${label%% *} $tool $s" >>"$work/results"
}

size() { du -sb "$1" | cut -f1; }
echo "| input | tool | wall | throughput | peak RSS | exit |"
echo "|---|---|---|---|---|---|"
for input in dense.pkl model.pt mixed; do
    p="$work/$input"
    b=$(size "$p")
    row "$input ($(numfmt --to=iec "$b"))" "$b" warden "$WARDEN" scan "$p"
    if [ -d "$p" ]; then
        row "$input ($(numfmt --to=iec "$b"))" "$b" picklescan "$VENV/bin/picklescan" --path "$p"
    else
        row "$input ($(numfmt --to=iec "$b"))" "$b" picklescan "$VENV/bin/picklescan" --path "$p"
    fi
    row "$input ($(numfmt --to=iec "$b"))" "$b" modelscan "$VENV/bin/modelscan" -p "$p"
done
echo
echo "speedup of warden (wall time):"
awk '{t[$1" "$2]=$3; k[$1]=1} END {for (i in k) printf "  %s: %.0fx picklescan, %.0fx modelscan\n", i, t[i" picklescan"]/t[i" warden"], t[i" modelscan"]/t[i" warden"]}' "$work/results"
