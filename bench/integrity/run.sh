#!/usr/bin/env bash
# Seal/verify throughput of warden against sha256sum and the model-signing package (pip) on the
# same model: SIZE_MB (default 1200) of random weights in several files. Then a quick verify of
# an unchanged 10k-file tree. Page cache warm (each command runs once first); best of RUNS.
# Inputs are generated under /tmp.
#
#   bench/integrity/run.sh
#   SIZE_MB=4096 RUNS=3 bench/integrity/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-1200}
VENV=${VENV:-/opt/warden-bench/venv}
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
if ! "$VENV/bin/python" -c 'import model_signing.hashing' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check model-signing==1.1.1 pyopenssl
fi
if [ -z "${WARDEN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --bin warden)
    WARDEN="$repo/target/release/warden"
fi
WARDEN=$(realpath "$WARDEN")
work=$(mktemp -d /tmp/warden-bench-integrity.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The model: 4 large shards, 8 medium files, small configs.
"$VENV/bin/python" - "$work/model" "$SIZE_MB" <<'PY'
import os, sys
root, mb = sys.argv[1], int(sys.argv[2])
d = os.path.join(root, "models/base")
os.makedirs(d)
big = mb * 1000 * 1000 * 85 // 100 // 4
mid = mb * 1000 * 1000 * 15 // 100 // 8
block = os.urandom(1 << 20)
def fill(p, n):
    with open(p, "wb") as f:
        while n > 0:
            k = min(n, len(block))
            f.write(block[:k]); n -= k
            f.write(os.urandom(16)); n -= 16
for i in range(4):
    fill(os.path.join(d, f"model-{i+1:05}-of-00004.safetensors"), big)
for i in range(8):
    fill(os.path.join(d, f"extra-{i}.bin"), mid)
for n in ("config.json", "tokenizer.json", "generation_config.json"):
    with open(os.path.join(d, n), "w") as f:
        f.write('{"x": 1}\n' * 100)
with open(os.path.join(root, "warden.toml"), "w") as f:
    f.write('[service]\nname = "bench"\ncommand = ["true"]\nuser = "nobody"\n\n[[tier]]\npath = "models"\n')
PY
# The 10k-file tree.
"$VENV/bin/python" - "$work/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    p = os.path.join(root, "models", f"d{d:03}")
    os.makedirs(p)
    for i in range(100):
        with open(os.path.join(p, f"f{i:03}.bin"), "wb") as f:
            f.write(os.urandom(64))
with open(os.path.join(root, "warden.toml"), "w") as f:
    f.write('[service]\nname = "bench"\ncommand = ["true"]\nuser = "nobody"\n\n[[tier]]\npath = "models"\n')
PY

measure() { # CMD... -> "seconds rss_kib"
    local best="" rss=""
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -v -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; }
        local s r
        s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); t=0; for(i=1;i<=n;i++) t=t*60+a[i]; print t}' "$work/time")
        r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
        if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$s; rss=$r; fi
    done
    echo "$best $rss"
}
bytes=$(du -sb "$work/model/models" | cut -f1)
files=$(find "$work/model/models" -type f | wc -l)
row() { # LABEL CMD...
    local label=$1; shift
    read -r s r < <(measure "$@")
    printf '| %s | %.2f s | %s MB/s | %.0f MiB |\n' "$label" "$s" \
        "$(awk -v b="$bytes" -v s="$s" 'BEGIN{printf "%.0f", b/1e6/s}')" "$(awk -v r="$r" 'BEGIN{print r/1024}')"
}
cd "$work/model"
find models -type f | sort >"$work/list"
cat > "$work/ms.py" <<'PY'
import sys, pathlib
from model_signing import hashing
mode, algo, path = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
cfg = hashing.Config()
cfg = cfg.use_shard_serialization(hashing_algorithm=algo) if mode == "shard" else cfg.use_file_serialization(hashing_algorithm=algo)
m = cfg.hash(path)
print(len(list(m.resource_descriptors())))
PY
echo "model: $(numfmt --to=si "$bytes")B in $files files; $(nproc) cores"
echo
echo "| command | wall | throughput | peak RSS |"
echo "|---|---|---|---|"
row "warden seal (sha256)" "$WARDEN" -c warden.toml seal
row "warden verify --full (sha256)" "$WARDEN" -c warden.toml verify --full
row "sha256sum (all files)" xargs -a "$work/list" sha256sum
sha256sum $(cat "$work/list") >"$work/sums"
row "sha256sum -c" sha256sum --quiet -c "$work/sums"
row "model-signing hash (files, sha256)" "$VENV/bin/python" "$work/ms.py" file sha256 models
row "model-signing hash (shards, sha256)" "$VENV/bin/python" "$work/ms.py" shard sha256 models
row "warden seal --digest blake3" "$WARDEN" -c warden.toml seal --digest blake3
row "warden verify --full (blake3)" "$WARDEN" -c warden.toml verify --full
row "model-signing hash (files, blake3)" "$VENV/bin/python" "$work/ms.py" file blake3 models
echo
cd "$work/tree"
"$WARDEN" -c warden.toml seal >/dev/null
"$WARDEN" -c warden.toml verify --quick >/dev/null
python3 - "$WARDEN" <<'PY'
import subprocess, sys, time
ts = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run([sys.argv[1], "-c", "warden.toml", "verify", "--quick"], check=True, stdout=subprocess.DEVNULL)
    ts.append(time.perf_counter() - t)
ts.sort()
print(f"quick verify of an unchanged 10,000-file tree (whole process, 20 runs): median {ts[10]*1000:.1f} ms, best {ts[0]*1000:.1f} ms")
PY
