#!/usr/bin/env bash
# The DPDK gateway's packet rate per worker lcore, next to dpdk-testpmd's io
# forwarding on the same vdevs in the same run, as a ratio.
#
# Both read the same pcap from net_pcap with infinite_rx=1 (the file held in
# mbufs, replayed at memory speed) and send into net_null; both forward on
# one lcore (-l 0-1: lcore 0 is veil-gw-dpdk's control plane / testpmd's
# console, lcore 1 forwards).  The rate is ipackets of port 0 over SECONDS,
# read through DPDK telemetry (/ethdev/stats,0), the same way for both.
#   established: 512 connections, each its hello then 16 data packets of 100
#                bytes (forwarded to the node with no parse; ~94% of packets)
#   hello:       4096 distinct connections' ClientHellos (600 bytes) against a
#                1024-flow table, so each is a new flow: cookie check, parse,
#                route, flow insert (evicting), Geneve handoff
# The cookies are made from the run's own secret for the current window.
#   tools/bench_dpdk.sh SECONDS OUT.json
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECS=${1:-5}
OUT=${2:-/dev/stdout}
ID="vmb$$"
NS="vml-$ID-dpdk"
T=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T" "/var/run/dpdk/$ID-gw" "/var/run/dpdk/$ID-tp"
}
trap cleanup EXIT INT TERM
say() { printf '%s\n' "$*" >&2; }

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

rate() { # prefix -> packets/s on port 0 over SECS, after a 1 s warm-up
	local a b t0 t1
	sleep 1
	a=$(echo /ethdev/stats,0 | dpdk-telemetry.py -f "$1" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["/ethdev/stats"]["ipackets"])') || return 1
	t0=$(date +%s.%N)
	sleep "$SECS"
	b=$(echo /ethdev/stats,0 | dpdk-telemetry.py -f "$1" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["/ethdev/stats"]["ipackets"])') || return 1
	t1=$(date +%s.%N)
	python3 -c "print(($b - $a) / ($t1 - $t0))"
}

wait_for() { # file pattern pid
	for _ in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

results=()
for kind in established hello; do
	if [ $kind = established ]; then args="--flows 512 --per-flow 16"; cf=$T/est.conf; else args="--flows 4096"; cf=$T/hello.conf; fi
	"$BUILD/veil-fpgen" --config "$cf" --kind $kind $args --out "$T/$kind.pcap" >&2 || exit 1
	npkt=$(($(stat -c %s "$T/$kind.pcap")))
	VDEV=(--vdev "net_pcap0,rx_pcap=$T/$kind.pcap,infinite_rx=1" --vdev net_null1,no-rx=1)
	EAL=(--no-huge -m 1024 --no-pci -l 0-1 --log-level lib.eal:warning)

	ip netns exec "$NS" "$BUILD/veil-gw-dpdk" "${EAL[@]}" --file-prefix "$ID-gw" "${VDEV[@]}" \
		-- --config "$cf" --mbufs 32768 >"$T/gw-$kind.log" 2>&1 &
	gw=$!; PIDS+=("$gw")
	if ! wait_for "$T/gw-$kind.log" "event=started" "$gw"; then
		say "bench_dpdk: veil-gw-dpdk did not start: $(tail -3 "$T/gw-$kind.log")"; exit 1
	fi
	veil=$(rate "$ID-gw") || { say "bench_dpdk: no telemetry from veil-gw-dpdk"; exit 1; }
	stats=$(echo /veil/stats | dpdk-telemetry.py -f "$ID-gw" | python3 -c 'import json,sys; d=json.loads(sys.stdin.readline())["/veil/stats"]; print(json.dumps({k: v for k, v in d.items() if v}))')
	kill -INT "$gw"; wait "$gw" 2>/dev/null

	# with --stats-period testpmd runs until a signal instead of reading stdin
	dpdk-testpmd "${EAL[@]}" --file-prefix "$ID-tp" "${VDEV[@]}" \
		-- --forward-mode=io --auto-start --stats-period 5 --total-num-mbufs=32768 </dev/null >"$T/tp-$kind.log" 2>&1 &
	tp=$!; PIDS+=("$tp")
	if ! wait_for "$T/tp-$kind.log" "Checking link statuses" "$tp"; then
		say "bench_dpdk: dpdk-testpmd did not start: $(tail -3 "$T/tp-$kind.log")"; exit 1
	fi
	base=$(rate "$ID-tp") || { say "bench_dpdk: no telemetry from dpdk-testpmd"; exit 1; }
	kill -INT "$tp" 2>/dev/null; wait "$tp" 2>/dev/null

	frame=$(tshark -r "$T/$kind.pcap" -T fields -e frame.len 2>/dev/null | sort -n | uniq -c | sort -rn | head -1 | awk '{print $2}')
	line=$(python3 -c "
import json
v, b = $veil, $base
print(json.dumps({'case': '$kind', 'veil_mpps': round(v / 1e6, 3), 'testpmd_io_mpps': round(b / 1e6, 3),
                  'ratio': round(v / b, 3) if b else None, 'frame_bytes': ${frame:-0}, 'seconds': $SECS,
                  'counters': json.loads('$stats')}))")
	say "bench_dpdk: $kind: veil-gw-dpdk $(python3 -c "print(f'{$veil/1e6:.2f}')") Mpps, dpdk-testpmd io $(python3 -c "print(f'{$base/1e6:.2f}')") Mpps (same vdevs, one lcore each)"
	results+=("$line")
done
(IFS=,; echo "[${results[*]}]") >"$OUT"
