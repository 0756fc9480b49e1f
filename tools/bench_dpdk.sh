#!/usr/bin/env bash
# The DPDK gateway's packet rate on one forwarding lcore, next to two
# yardsticks on the same vdevs, lcores, frames and memory, in interleaved
# rounds (gateway, macswap, baseline, gateway, ...), as ratios:
#   dpdk-testpmd --forward-mode=macswap   reads each packet and swaps its MACs
#   veil-dpdk-baseline (tools/dpdk_baseline.c)   the least a Geneve forwarder
#        does: flow key, rte_hash bulk lookup, prebuilt header, TX burst
#
# All read the same pcap from net_pcap with infinite_rx=1 (the file held in
# mbufs, replayed at memory speed) and send into net_null; all forward on
# lcore 1 (-l 0-1: lcore 0 is veil-gw-dpdk's control plane / testpmd's
# console / the baseline's main thread).  Rate = ipackets of port 0 over the
# interval, read through DPDK telemetry (/ethdev/stats,0) the same way for
# all, per second of wall clock and per second the forwarding lcore's thread
# was on a CPU (/proc/PID/task/TID/schedstat): on this shared 2-core machine
# a busy neighbour takes the CPU away from whichever program runs, and the
# second figure is what the code does with the CPU it gets.  Ratios are taken
# within a round (runs next to each other) and given as median and range.
#   established: 512 connections, each its hello then 16 data packets of 100
#                bytes (~94% of packets forwarded from the flow table), all
#                within the hello's first 16 KB: each carries the handoff option
#   steady:      the same past the hello's 16 KB (veil-fpgen --offset 16384):
#                no handoff option, as the rest of a connection's packets
#   interleaved: 4096 connections' steady data in turns (veil-fpgen
#                --interleave: every hello, then each connection's first
#                data packet, ...), as a gateway sees many connections at
#                once: the next packet's flow entry is rarely in the caches
#                (in the two cases above a connection's 17 packets come one
#                after another); 16 data packets each, 98304 mbufs
#   hello:       4096 distinct connections' ClientHellos (600 bytes) against a
#                1024-flow table, so each is a new flow: cookie check, parse,
#                route, flow insert (evicting), Geneve handoff (no baseline:
#                it does not route hellos)
#   ack:         an ACK flood, 65536 spoofed clients' ACKs with wrong cookies
#                (veil-fpgen --kind ack) into the 262144-flow table: each
#                looked for (the flow filter) and dropped, without its
#                cookie's MAC once the flood has turned the worker's flow
#                gate on, but for each window's 8 probes (ack_unjudged;
#                no baseline: it forwards what it has not seen)
# The cookies are made from the run's own secret for the current window (the
# pcap is made again before each gateway run).
#
# Memory: 2 MB hugepages when the kernel has (or lets us reserve, and give
# back at the end) enough of them, with --in-memory (no hugetlbfs mount
# needed); otherwise --no-huge.  DPDK_HUGE=no forces --no-huge.
#   tools/bench_dpdk.sh SECONDS OUT.json [ROUNDS]
# VEIL_GW_B=PATH adds another veil-gw-dpdk build to every round (A/B).
# DPDK_KINDS="established steady interleaved hello ack" (the default) picks the cases.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECS=${1:-5}
OUT=${2:-/dev/stdout}
ROUNDS=${3:-${DPDK_ROUNDS:-3}}
ID="vmb$$"
NS="vml-$ID-dpdk"
T=$(mktemp -d)
PIDS=()
HUGE_WAS=""
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	[ -n "$HUGE_WAS" ] && echo "$HUGE_WAS" >/proc/sys/vm/nr_hugepages 2>/dev/null
	rm -rf "$T" /var/run/dpdk/"$ID"-*
}
trap cleanup EXIT INT TERM
say() { printf '%s\n' "$*" >&2; }

# ---------- memory: hugepages if we can have 300 of them (600 MB) ----------
MEM=(--no-huge -m 1024)
MEMNOTE="no hugepages (--no-huge, 4 KB pages)"
if [ "${DPDK_HUGE:-auto}" != no ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	need=300
	free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	if [ "${free:-0}" -lt $need ]; then
		HUGE_WAS=$(cat /proc/sys/vm/nr_hugepages)
		echo $((HUGE_WAS + need - free)) >/proc/sys/vm/nr_hugepages 2>/dev/null
		free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	fi
	if [ "${free:-0}" -ge $need ]; then
		MEM=(--in-memory -m 512)
		MEMNOTE="2 MB hugepages (--in-memory -m 512)"
	else
		say "bench_dpdk: the kernel gave ${free:-0} of $need hugepages: --no-huge"
	fi
fi
say "bench_dpdk: memory: $MEMNOTE"

# the mesh side's next hop, as the kernel gives it to veil-gw-dpdk
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add m0 type veth peer name m0p
ip -n "$NS" link set m0 up
ip -n "$NS" link set m0p up
ip -n "$NS" addr add 198.19.0.1/24 dev m0
ip -n "$NS" neigh add 198.19.0.11 lladdr 02:00:00:00:00:11 dev m0 nud permanent
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
chmod 600 "$T/key"   # the daemons refuse a secret others can read
conf() { # flows_max
	cat <<EOF
pin_root /sys/fs/bpf/veilmesh-$ID
client_interface c0
mesh_interface m0
underlay4 198.19.0.1
cookie_secret_file $T/key
control_socket $T/gw.sock
metrics off
flows_max $1
vip 198.18.100.1 443 alert
route bench.veil.test 1 198.19.0.11
EOF
}
conf 262144 >"$T/est.conf"
conf 1024 >"$T/hello.conf"

tel() { # prefix command -> json
	echo "$2" | dpdk-telemetry.py -f "$1" 2>/dev/null | head -1
}
wait_for() { # file pattern pid
	for _ in $(seq 150); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# "wall_pps cpu_pps" of a running program: ipackets of port 0 (telemetry
# socket, read directly: one process, not four) and the CPU time of its
# forwarding lcore's thread, SECS apart after a 1 s warm-up
measure() { # prefix pid
	python3 - "/var/run/dpdk/$1/dpdk_telemetry.v2" "$2" "$SECS" <<'PY'
import glob, json, socket, sys, time
sock, pid, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sock)
s.recv(1 << 16)
task = next(t for t in glob.glob(f"/proc/{pid}/task/*") if open(t + "/comm").read().strip() == "rte-worker-1")
def sample():
    s.send(b"/ethdev/stats,0")
    n = json.loads(s.recv(1 << 20))["/ethdev/stats"]["ipackets"]
    return n, time.monotonic(), int(open(task + "/schedstat").read().split()[0])
time.sleep(1)
n0, t0, c0 = sample()
time.sleep(secs)
n1, t1, c1 = sample()
print((n1 - n0) / (t1 - t0), (n1 - n0) / max((c1 - c0) / 1e9, 1e-9))
PY
}

EAL=("${MEM[@]}" --no-pci -l 0-1 --log-level lib.eal:warning)
run_one() { # who kind -> "wall cpu" on stdout
	local who=$1 kind=$2 pid pfx="$ID-$1" log="$T/$1-$2.log" r bin args cf mb=32768
	case $kind in
	established) args="--kind established --flows 512 --per-flow 16"; cf=$T/est.conf ;;
	steady) args="--kind established --flows 512 --per-flow 16 --offset 16384"; cf=$T/est.conf ;;
	interleaved) args="--kind established --flows 4096 --per-flow 16 --offset 16384 --interleave"; cf=$T/est.conf; mb=98304 ;;
	ack) args="--kind ack --flows 65536"; cf=$T/est.conf; mb=98304 ;;
	*) args="--kind hello --flows 4096"; cf=$T/hello.conf ;;
	esac
	"$BUILD/veil-fpgen" --config "$cf" $args --out "$T/$kind.pcap" >/dev/null || return 1
	local VDEV=(--vdev "net_pcap0,rx_pcap=$T/$kind.pcap,infinite_rx=1" --vdev net_null1,no-rx=1)
	case $who in
	veil|veilb)
		bin=$BUILD/veil-gw-dpdk
		[ "$who" = veilb ] && bin=$VEIL_GW_B
		ip netns exec "$NS" "$bin" "${EAL[@]}" --file-prefix "$pfx" "${VDEV[@]}" \
			-- --config "$cf" --mbufs $mb >"$log" 2>&1 &
		pid=$!; wait_for "$log" "event=started" "$pid" || { say "bench_dpdk: $bin did not start: $(tail -3 "$log")"; return 1; } ;;
	macswap)
		# with --stats-period testpmd runs until a signal instead of reading stdin
		dpdk-testpmd "${EAL[@]}" --file-prefix "$pfx" "${VDEV[@]}" \
			-- --forward-mode=macswap --auto-start --stats-period 60 --total-num-mbufs=$mb </dev/null >"$log" 2>&1 &
		pid=$!; wait_for "$log" "Checking link statuses" "$pid" || { say "bench_dpdk: dpdk-testpmd did not start: $(tail -3 "$log")"; return 1; } ;;
	baseline)
		"$BUILD/veil-dpdk-baseline" "${EAL[@]}" --file-prefix "$pfx" "${VDEV[@]}" \
			-- --underlay4 198.19.0.1 --node4 198.19.0.11 --next-hop-mac 02:00:00:00:00:11 --mbufs $mb >"$log" 2>&1 &
		pid=$!; wait_for "$log" "event=started" "$pid" || { say "bench_dpdk: veil-dpdk-baseline did not start: $(tail -3 "$log")"; return 1; } ;;
	esac
	PIDS+=("$pid")
	r=$(measure "$pfx" "$pid") || { say "bench_dpdk: no telemetry from $who"; kill -INT "$pid"; wait "$pid"; return 1; }
	if [ "${who#veil}" != "$who" ]; then
		tel "$pfx" /veil/stats | python3 -c 'import json,sys; d=json.loads(sys.stdin.readline())["/veil/stats"]; print(json.dumps({k: v for k, v in d.items() if v}))' >"$T/$who-$kind.counters"
	fi
	kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	echo "$r"
}

results=()
for kind in ${DPDK_KINDS:-established steady interleaved hello ack}; do
	whos="veil macswap"
	[ $kind != hello ] && [ $kind != ack ] && whos="$whos baseline"
	[ -n "${VEIL_GW_B:-}" ] && whos="$whos veilb"
	: >"$T/$kind.runs"
	for round in $(seq "$ROUNDS"); do
		# the order turns each round: none always runs first or last
		set -- $whos
		for _ in $(seq $(((round - 1) % $#))); do set -- "${@:2}" "$1"; done
		for who in "$@"; do
			r=$(run_one "$who" "$kind") || exit 1
			echo "$round $who $r" >>"$T/$kind.runs"
			say "bench_dpdk: $kind round $round: $who $(echo "$r" | awk '{printf "%.2f Mpps (%.2f per CPU-second)", $1 / 1e6, $2 / 1e6}')"
		done
	done
	frame=$(tshark -r "$T/$kind.pcap" -T fields -e frame.len 2>/dev/null | sort -n | uniq -c | sort -rn | head -1 | awk '{print $2}')
	line=$(python3 - "$T/$kind.runs" "$T/veil-$kind.counters" <<EOF
import json, sys, statistics as st
runs = {}
for l in open(sys.argv[1]):
    r, who, wall, cpu = l.split()
    runs.setdefault(who, {})[int(r)] = (float(wall), float(cpu))
def summ(who, i):
    v = [x[i] / 1e6 for x in runs[who].values()]
    return {'median': round(st.median(v), 3), 'min': round(min(v), 3), 'max': round(max(v), 3)}
def ratio(a, b, i):
    v = [runs[a][r][i] / runs[b][r][i] for r in runs[a] if r in runs.get(b, {}) and runs[b][r][i]]
    return {'median': round(st.median(v), 3), 'min': round(min(v), 3), 'max': round(max(v), 3)} if v else None
out = {'case': '$kind', 'frame_bytes': ${frame:-0}, 'seconds': $SECS, 'rounds': $ROUNDS, 'memory': '$MEMNOTE'}
for who in runs:
    out[who] = {'mpps': summ(who, 0), 'mpps_per_cpu_s': summ(who, 1)}
for who in runs:
    if who == 'veil':
        continue
    out['veil_vs_' + who] = {'wall': ratio('veil', who, 0), 'per_cpu_s': ratio('veil', who, 1)}
try:
    out['counters'] = json.load(open(sys.argv[2]))
except Exception:
    out['counters'] = {}
print(json.dumps(out))
EOF
)
	say "bench_dpdk: $kind: $(echo "$line" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(", ".join("veil/%s %.2f (%.2f-%.2f) per CPU-s, %.2f wall" % (k[8:], v["per_cpu_s"]["median"], v["per_cpu_s"]["min"], v["per_cpu_s"]["max"], v["wall"]["median"]) for k, v in d.items() if k.startswith("veil_vs_")))')"
	results+=("$line")
done
(IFS=,; echo "[${results[*]}]") >"$OUT"
