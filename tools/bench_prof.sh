#!/usr/bin/env bash
# Where one micro-bench case's BPF program spends its time, by source line.
#   tools/bench_prof.sh CASE [REPEAT] [ROUNDS]     (root, from anywhere)
# perf samples every CPU while build/veil-bench-micro runs CASE alone
# (--only); the samples that fall in JITed BPF code are joined with the
# programs' line tables, which the bench writes once its programs are loaded
# (--lines: the kernel address where each source line's machine code
# starts).  perf here cannot annotate BPF code itself (no libopcodes) and
# bpftool cannot dump it (no libbfd).  Samples are taken with call chains
# (the JIT keeps frame pointers): a sample in a kernel function that a
# program called (a helper, a map's lookup) counts for the program's line
# that called it, with the function named in brackets.  Prints, per
# program, the share of its samples each source line took, most first.
# Samples land on the instruction after a slow one at times (skid): read a
# line's share together with its neighbours'.
#   VEIL_BENCH=path: another build of veil-bench-micro (an A/B); TOP=N lines
set -euo pipefail
cd "$(dirname "$0")/.."
CASE=${1:?usage: tools/bench_prof.sh CASE [REPEAT] [ROUNDS]}
REPEAT=${2:-2000000}
ROUNDS=${3:-10}
BENCH=${VEIL_BENCH:-build/veil-bench-micro}
TOP=${TOP:-25}
command -v perf >/dev/null || { echo "bench_prof: perf is missing (tools/deps.sh bench installs linux-perf)" >&2; exit 2; }
W=$(mktemp -d /tmp/veil-prof-XXXXXX)
trap 'rm -rf "$W"' EXIT
if ! perf record -q -g -a -o "$W/perf.data" -- "$BENCH" --only "$CASE" --repeat "$REPEAT" --rounds "$ROUNDS" \
	--lines "$W/lines.txt" >"$W/bench.txt" 2>&1; then
	cat "$W/bench.txt" >&2
	exit 1
fi
perf script -i "$W/perf.data" -F ip,sym 2>/dev/null >"$W/samples.txt"
head -2 "$W/bench.txt"
python3 - "$W/lines.txt" "$W/samples.txt" "$TOP" <<'PY'
import bisect, collections, sys

lines_path, samples_path, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
funcs, rows = [], []            # (start, end, prog); (address, where, source)
for ln in open(lines_path):
    parts = ln.rstrip("\n").split(" ", 4)
    if parts[0] == "F":
        start = int(parts[1], 16)
        funcs.append((start, start + int(parts[2]), parts[3]))
    elif parts[0] == "L":
        rows.append((int(parts[1], 16), parts[3], parts[4].strip() if len(parts) > 4 else ""))
rows.sort()
addrs = [r[0] for r in rows]
funcs.sort()
fstarts = [f[0] for f in funcs]


def ours(ip):
    """(program, where, source) when ip is in one of our programs' code"""
    i = bisect.bisect_right(fstarts, ip) - 1
    if i < 0 or not funcs[i][0] <= ip < funcs[i][1]:
        return None
    j = bisect.bisect_right(addrs, ip) - 1
    if j < 0 or addrs[j] < funcs[i][0]:
        return (funcs[i][2], "?", "(before the function's first line record)")
    return (funcs[i][2], rows[j][1], rows[j][2])


def samples(path):
    """each sample's frames, leaf first: [(ip, symbol)]"""
    frames = []
    for ln in open(path):
        parts = ln.split(None, 1)
        if not parts:
            if frames:
                yield frames
            frames = []
            continue
        try:
            frames.append((int(parts[0], 16), parts[1].strip() if len(parts) > 1 else "?"))
        except ValueError:
            pass
    if frames:
        yield frames


per_prog = collections.defaultdict(collections.Counter)
outside = collections.Counter()
total = 0
for fr in samples(samples_path):
    total += 1
    for depth, (ip, sym) in enumerate(fr):
        # a caller's frame holds the return address: the call is the
        # instruction before it (which may be another line's)
        o = ours(ip if depth == 0 else ip - 1)
        if o:
            prog, where, src = o
            callee = "" if depth == 0 else fr[0][1].split("+")[0]
            per_prog[prog][(where, src, callee)] += 1
            break
    else:
        outside[fr[0][1].split("+")[0]] += 1

if not total:
    sys.exit("bench_prof: perf recorded no samples")
for prog, c in sorted(per_prog.items(), key=lambda kv: -sum(kv[1].values())):
    n = sum(c.values())
    called = sum(k for (w, s, callee), k in c.items() if callee)
    print(f"\n{prog}: {n} samples ({100.0 * n / total:.1f}% of all CPUs' samples), "
          f"{100.0 * called / n:.1f}% of them in kernel functions it called")
    for (where, src, callee), k in c.most_common(top):
        what = f"[{callee}] " if callee else ""
        print(f"  {100.0 * k / n:5.1f}%  {where:<22} {what}{src[:90]}")
print(f"\noutside the programs ({total} samples in all, every CPU), the most:")
for sym, k in outside.most_common(10):
    print(f"  {100.0 * k / total:5.1f}%  {sym}")
PY
