#!/usr/bin/env bash
# The gateway fed from the cluster store: with ROUTES routes in a real
# nats-server (JetStream KV, bucket routes, each a sealed envelope as the
# controller writes it), the time from one route's write to its entry in
# veil-gw's pinned routes map (p50/p99, new routes and changed ones), the time
# to load them all (write_to_map includes the store's own put, reported
# alone as put_acked), and the gateway's memory (VmRSS/VmHWM) and the map's.
# veil-gw, nats-server and the measuring client (tools/bench_routes.c) run in
# one network namespace of their own; the gateway is attached to two veth pairs.
#   tools/bench_routes.sh ROUTES SAMPLES OUT.json
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
ROUTES=${1:-100000}
SAMPLES=${2:-400}
OUT=${3:-/dev/stdout}
NS="vmroutes-$$"
PIN="/sys/fs/bpf/veilmesh-rb$$"
T=$(mktemp -d /tmp/veil-routes-bench.XXXXXX)
PORT=$((20000 + $$ % 10000))
PIDS=()
say() { printf '%s\n' "$*" >&2; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T" "$PIN"
}
trap cleanup EXIT INT TERM
command -v nats-server >/dev/null || { say "bench_routes: nats-server missing"; echo null >"$OUT"; exit 1; }
inns() { nsenter --net="/run/netns/$NS" "$@"; }

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add rbc type veth peer name rbcp
ip -n "$NS" link add rbm type veth peer name rbmp
ip -n "$NS" addr add 198.18.61.1/24 dev rbc
ip -n "$NS" addr add 198.18.60.1/24 dev rbm
for l in rbc rbcp rbm rbmp; do ip -n "$NS" link set "$l" up; done
ip netns exec "$NS" sysctl -qw net.ipv4.conf.all.forwarding=1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/cookie.key"
chmod 600 "$T/cookie.key"
openssl genpkey -algorithm ed25519 -out "$T/ctl.key" 2>/dev/null
openssl pkey -in "$T/ctl.key" -pubout -out "$T/ctl.pub" 2>/dev/null
cat > "$T/gw.conf" <<EOF
pin_root $PIN
client_interface rbc
mesh_interface rbm
underlay4 198.18.60.1
cookie_secret_file $T/cookie.key
control_socket $T/gw.sock
metrics 127.0.0.1:9431
vip 198.18.61.1 443 alert
route file.bench.veil.test 1 198.18.60.2
store nats://127.0.0.1:$PORT
store_pub $T/ctl.pub
EOF
# nsenter execs nats-server: $! is the server (through the inns function it would be a subshell)
nsenter --net="/run/netns/$NS" nats-server -js -sd "$T/nats" -a 127.0.0.1 -p "$PORT" >"$T/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do inns "$BUILD/tests/store_put" "nats://127.0.0.1:$PORT" keys routes >/dev/null 2>&1 && break; sleep 0.1; done
# nsenter execs the daemon: $! is the gateway itself (its memory is measured)
nsenter --net="/run/netns/$NS" "$BUILD/veil-gw" --config "$T/gw.conf" >"$T/gw.log" 2>&1 &
GW=$!
PIDS+=($GW)
for _ in $(seq 100); do grep -q "event=store_synced" "$T/gw.log" && break; sleep 0.1; done
if ! grep -q "event=store_synced" "$T/gw.log"; then
	say "bench_routes: the gateway did not sync with the store: $(tail -3 "$T/gw.log")"
	echo null >"$OUT"
	exit 1
fi
say "bench_routes: $ROUTES routes into the store, then $SAMPLES single writes timed to the map"
line=$(inns "$BUILD/veil-bench-routes" --store "nats://127.0.0.1:$PORT" --key "$T/ctl.key" --map "$PIN/routes" \
	--node4 198.18.60.2 --routes "$ROUTES" --samples "$SAMPLES" --gw-pid "$GW" 2>"$T/bench.err")
rc=$?
cat "$T/bench.err" >&2
# a gateway restarted with the routes pinned: the time until the store's snapshot is in the maps again
kill "$GW"; wait "$GW" 2>/dev/null
t0=$(date +%s%N)
nsenter --net="/run/netns/$NS" "$BUILD/veil-gw" --config "$T/gw.conf" >"$T/gw2.log" 2>&1 &
GW=$!
PIDS+=($GW)
for _ in $(seq 1200); do grep -q "event=store_synced" "$T/gw2.log" && break; sleep 0.1; done
resync=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b - a) / 1e9}')
grep -q "event=store_synced" "$T/gw2.log" || resync=null
say "bench_routes: restarted gateway back in step with the store after $resync s"
grep -E "event=(started|store_watching|store_synced|attach)" "$T/gw2.log" | cut -c1-160 >&2
case $line in
'{'*) line="${line%\}}, \"restart_resync_s\": $resync}"; echo "$line" >"$OUT"; say "bench_routes: $line" ;;
*) say "bench_routes: no result: $(tail -3 "$T/gw.log")"; echo null >"$OUT"; exit 1 ;;
esac
[ $rc = 0 ] || { say "bench_routes: too many writes never reached the map"; exit 1; }
