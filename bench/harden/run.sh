#!/usr/bin/env bash
# Times `warden harden` on a generated 100k-file tree against the tools people use instead:
#   (a) warden harden                         (release build)
#   (b) find TIER -type f -exec chmod 0440 {} \;  + the same for directories: one process per entry
#   (c) chown -R + chmod -R                   per tier
#   (d) warden harden again                   nothing to change: must write nothing
# Each method runs on its own fresh copy of the same tree. Run as root (chown needs it).
#
#   bench/harden/run.sh                 # 3 tiers, ~102k files, ~100 per directory
#   FILES_PER_DIR=100 DIRS=34 GROUPS_PER_TIER=10 bench/harden/run.sh
#   FULL_FIND=1 bench/harden/run.sh     # run find -exec on every tier instead of extrapolating
#   WARDEN=target/release/warden bench/harden/run.sh   # skip the build
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
GROUPS_PER_TIER=${GROUPS_PER_TIER:-10}
DIRS=${DIRS:-34}
FILES_PER_DIR=${FILES_PER_DIR:-100}
FULL_FIND=${FULL_FIND:-0}
FIND_SUBSET=${FIND_SUBSET:-3}   # groups of the first tier that find -exec runs on

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: chown and the account's group need it" >&2
    exit 2
fi
if [ -z "${WARDEN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --bin warden)
    WARDEN="$repo/target/release/warden"
fi

work=$(mktemp -d /tmp/warden-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
group=$(id -gn nobody)

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

echo "generating the tree in $work/template ..." >&2
python3 - "$work/template" "$GROUPS_PER_TIER" "$DIRS" "$FILES_PER_DIR" "$group" <<'PY'
import os, sys
root, groups, dirs, files, group = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(root)
with open(os.path.join(root, "app.py"), "w") as f:
    f.write("print('app')\n")
tiers = ["models/base", "models/edit", "adapters/lora"]
for t in tiers:
    for g in range(groups):
        for d in range(dirs):
            p = os.path.join(root, t, f"g{g:02}", f"d{d:03}")
            os.makedirs(p)
            for i in range(files):
                with open(os.path.join(p, f"shard-{i:03}.safetensors"), "wb") as f:
                    if i % 10 == 0:
                        f.write(b"\0" * 4096)
with open(os.path.join(root, "warden.toml"), "w") as f:
    f.write(f'[service]\nname = "bench"\ncommand = ["python3", "app.py"]\n'
            f'user = "nobody"\ngroup = "{group}"\n')
    for t in tiers:
        f.write(f'\n[[tier]]\npath = "{t}"\n')
PY
tiers=(models/base models/edit adapters/lora)
entries=$(find "$work/template" -mindepth 1 | wc -l)
files=$(find "$work/template" -type f | wc -l)
dirs=$(find "$work/template" -mindepth 1 -type d | wc -l)

fresh() { rm -rf "$work/$1"; cp -a "$work/template" "$work/$1"; sync; }

# (a) warden harden
fresh a
t0=$(now)
"$WARDEN" -c "$work/a/warden.toml" harden > "$work/a.out"
t1=$(now)
time_a=$(elapsed "$t0" "$t1")
tail -1 "$work/a.out" >&2
wrong=$(find "${tiers[@]/#/$work/a/}" \( -type f ! -perm 0440 \) -o \( -type d ! -perm 0550 \) | wc -l)
if [ "$wrong" -ne 0 ]; then
    echo "warden left $wrong entries with the wrong mode" >&2
    exit 1
fi

# (d) the same tree again: nothing to change
find "$work/a" -printf '%C@ %p\n' | sort > "$work/ctime.before"
sleep 0.05
t0=$(now)
"$WARDEN" -c "$work/a/warden.toml" harden > "$work/d.out"
t1=$(now)
time_d=$(elapsed "$t0" "$t1")
tail -1 "$work/d.out" >&2
find "$work/a" -printf '%C@ %p\n' | sort > "$work/ctime.after"
changed_ctimes=$(comm -3 "$work/ctime.before" "$work/ctime.after" | wc -l)
syscalls="strace not installed"
if command -v strace > /dev/null; then
    # A full trace: strace -c leaves out calls it has no name for (fchmodat2 in older builds,
    # traced as syscall_0x1c4).
    strace -f -o "$work/strace.out" "$WARDEN" -c "$work/a/warden.toml" harden > /dev/null
    n=$(grep -cE '^[0-9]+ +(fchmodat2|syscall_0x1c4|syscall_452|fchownat|fchmodat|fchmod|fchown|chmod|chown|lchown)\(' "$work/strace.out" || true)
    total=$(wc -l < "$work/strace.out")
    syscalls="$n chmod/chown system calls of $total traced (strace -f)"
fi

# (b) find -exec, one process per entry
fresh b
if [ "$FULL_FIND" = 1 ]; then
    targets=()
    for t in "${tiers[@]}"; do targets+=("$work/b/$t"); done
else
    targets=()
    for g in $(seq 0 $((FIND_SUBSET - 1))); do
        targets+=("$work/b/${tiers[0]}/$(printf 'g%02d' "$g")")
    done
fi
find_entries=$(find "${targets[@]}" | wc -l)
t0=$(now)
find "${targets[@]}" -type f -exec chmod 0440 {} \;
find "${targets[@]}" -type d -exec chmod 0550 {} \;
t1=$(now)
time_b_measured=$(elapsed "$t0" "$t1")
time_b=$(echo "$time_b_measured * $entries / $find_entries" | bc -l)

# (c) chown -R + chmod -R per tier
fresh c
t0=$(now)
for t in "${tiers[@]}"; do
    chown -R "root:$group" "$work/c/$t"
    chmod -R u=rX,g=rX,o= "$work/c/$t"
done
t1=$(now)
time_c=$(elapsed "$t0" "$t1")

ratio() { printf '%.1fx' "$(echo "$1 / $2" | bc -l)"; }
secs() { printf '%.3f' "$1"; }

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(df -T "$work" | awk 'NR==2 { print $2 }') on $(df "$work" | awk 'NR==2 { print $1 }')"
echo "tree: $entries entries ($files files, $dirs directories), 3 read-only tiers, $FILES_PER_DIR files per directory"
echo
printf '%-46s %12s %12s\n' "method" "seconds" "vs warden"
printf '%-46s %12s %12s\n' "(a) warden harden" "$(secs "$time_a")" "1.0x"
if [ "$FULL_FIND" = 1 ]; then
    printf '%-46s %12s %12s\n' "(b) find -exec chmod (one process per entry)" "$(secs "$time_b")" "$(ratio "$time_b" "$time_a")"
else
    printf '%-46s %12s %12s\n' "(b) find -exec chmod, extrapolated (*)" "$(secs "$time_b")" "$(ratio "$time_b" "$time_a")"
fi
printf '%-46s %12s %12s\n' "(c) chown -R + chmod -R per tier" "$(secs "$time_c")" "$(ratio "$time_c" "$time_a")"
printf '%-46s %12s %12s\n' "(d) warden harden again (no change)" "$(secs "$time_d")" "$(ratio "$time_d" "$time_a")"
echo
if [ "$FULL_FIND" != 1 ]; then
    echo "(*) find -exec ran on $find_entries entries in $(secs "$time_b_measured") s and is extrapolated linearly to $entries entries (FULL_FIND=1 runs it on everything)"
fi
echo "(d) wrote nothing: $changed_ctimes changed ctimes; $syscalls"
