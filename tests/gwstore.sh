#!/usr/bin/env bash
# veil-gw fed from the cluster store (docs/store.md, bucket routes): routes
# written, changed and deleted in a real nats-server (JetStream KV) show up in
# the gateway's routes map and curl through the netns lab (tools/lab.sh)
# reaches the VM they name; forged, garbled and replayed envelopes are dropped
# and counted; the file's routes stay and win over the store's for the same
# name; a gateway restarted while the store changed converges (a route put
# while it was down appears, one deleted goes); a nats-server restart is
# survived.  Prints PASS/FAIL lines; removes everything it made.
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-$TOP/build}
BUILD=$(cd "$BUILD" && pwd)
export BUILD
ID="gws$$"
export VEIL_LAB_DIR="/tmp/veilmesh-$ID"
LAB="tools/lab.sh"
P="vml-$ID"
DIR=$VEIL_LAB_DIR
PIN="/sys/fs/bpf/veilmesh-$ID"
W=$(mktemp -d /tmp/gwstore-XXXXXX)
PORT=$((20000 + $$ % 10000))   # inside the gateway's own namespace
URL="nats://127.0.0.1:$PORT"
VIP4=198.18.100.1
NATS_PID=""

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
cleanup() {
	[ -n "$NATS_PID" ] && kill "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
	$LAB down "$ID" >/dev/null 2>&1
	rm -rf "$DIR" "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for c in nats-server jq curl openssl; do
	command -v "$c" >/dev/null || { fail gwstore_setup "$c is missing (tools/deps.sh test installs it)"; exit 1; }
done
ingw() { nsenter --net="/run/netns/$P-gw" "$@"; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
sp() { ingw "$BUILD/tests/store_put" "$URL" "$@"; }
# a route body as the controller writes it
body() { # name gen vm_id node4 node6
	local n4='null' n6='null'
	[ -n "$4" ] && n4="\"$4\""
	[ -n "${5:-}" ] && n6="\"$5\""
	printf '{"name":"%s","gen":%s,"vm_id":%s,"node":"node-test","node4":%s,"node6":%s}' "$1" "$2" "$3" "$n4" "$n6"
}
map_vm() { # name -> the VM id in the gateway's routes map, or nothing
	"$BUILD/veilctl" -p "$PIN/gw" -s "$DIR/gw.sock" -j routes 2>/dev/null |
		jq -r --arg n "$1" '.[] | select(.name == $n) | .vm_id'
}
wait_map() { # name want(vm id or "none") timeout_s
	local end=$((SECONDS + $3)) got
	while :; do
		got=$(map_vm "$1")
		[ "${got:-none}" = "$2" ] && return 0
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
}
metric() { # name{labels} -> value
	ingw curl -s --max-time 5 http://127.0.0.1:9431/metrics | awk -v m="$1" '$1 == m {print $2}'
}
page() { # name [curl args] -> what the VM answers
	local n=$1; shift
	nsx cli curl -s --max-time 10 --cacert "$DIR/pki/ca.pem" --resolve "$n:443:$VIP4" "$@" "https://$n/" 2>&1
}
start_nats() {
	ingw nats-server -js -sd "$W/nats" -a 127.0.0.1 -p "$PORT" >>"$W/nats.log" 2>&1 &
	NATS_PID=$!
	for _ in $(seq 100); do ingw "$BUILD/tests/store_put" "$URL" keys routes >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

openssl genpkey -algorithm ed25519 -out "$W/ctl.key" 2>/dev/null
openssl pkey -in "$W/ctl.key" -pubout -out "$W/ctl.pub" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$W/evil.key" 2>/dev/null
CK=$W/ctl.key

t=gw_config_store_lines
printf 'client_interface lo\nunderlay4 198.19.0.1\ncookie_secret_file %s/none\nstore nats://127.0.0.1:1\n' "$W" > "$W/bad.conf"
out=$("$BUILD/veil-gw" --check --config "$W/bad.conf" 2>&1); rc=$?
printf 'client_interface lo\nunderlay4 198.19.0.1\ncookie_secret_file %s/none\nstore http://x\nstore_pub %s\n' "$W" "$W/ctl.pub" > "$W/bad2.conf"
out2=$("$BUILD/veil-gw" --check --config "$W/bad2.conf" 2>&1); rc2=$?
if [ $rc = 2 ] && echo "$out" | grep -q "store_pub" && [ $rc2 = 2 ] && echo "$out2" | grep -q "bad2.conf:4: 'store' takes nats://"; then
	pass "$t (store without store_pub and a non-nats URL refused with file:line)"
else
	fail $t "rc=$rc '$out' rc2=$rc2 '$out2'"
fi

# the gateway starts before the store exists: its file routes work, it retries the store
export VEIL_LAB_GW_EXTRA="store $URL
store_pub $W/ctl.pub
store_gens $W/gw.gens"
mkdir -p "$BUILD/tests/logs"
if ! $LAB up "$ID" >"$BUILD/tests/logs/gwstore-lab.log" 2>&1; then
	fail lab_up "$(tail -5 "$BUILD/tests/logs/gwstore-lab.log")"
	exit 1
fi
unset VEIL_LAB_GW_EXTRA
t=file_routes_without_store
got=$(page vm1.veil.test)
[ "$got" = "hello from vm1" ] && grep -q "event=store_unavailable" "$DIR/gw.log" &&
	pass "$t (store down at start: the file's routes serve, the gateway retries)" || fail $t "'$got' $(grep store "$DIR/gw.log" | tail -2)"

start_nats || { fail nats_start "$(tail -3 "$W/nats.log")"; exit 1; }
t=gw_watches_store
for _ in $(seq 100); do grep -q "event=store_synced" "$DIR/gw.log" && break; sleep 0.2; done
grep -q "event=store_synced" "$DIR/gw.log" && pass "$t (connected after the retry, snapshot in the maps)" ||
	fail $t "$(grep store "$DIR/gw.log" | tail -3)"

# 1. a new name: no route, then a store route to vm3 (node2, IPv4 underlay)
t=store_route_added
before=$(page new.apps2.veil.test -k)
s=$(date +%s%N)
sp put routes new.apps2.veil.test "$CK" "$(body new.apps2.veil.test 100 3 198.19.0.12)"
if wait_map new.apps2.veil.test 3 10; then
	ms=$(( ($(date +%s%N) - s) / 1000000 ))
	got=$(page new.apps2.veil.test -k)
	[ "$got" = "hello from vm3" ] && ! echo "$before" | grep -q "hello" &&
		pass "$t (in the map ${ms} ms after the put; curl reaches vm3; before: refused)" || fail $t "'$got' (before '$before')"
else
	fail $t "not in the routes map: $(grep store "$DIR/gw.log" | tail -3)"
fi

# 2. an exact store name under the file's wildcard: it wins, then changes VM, then goes
t=store_route_beats_wildcard
sp put routes shop.apps.veil.test "$CK" "$(body shop.apps.veil.test 200 1 198.19.0.11)"
wait_map shop.apps.veil.test 1 10 && [ "$(page shop.apps.veil.test -k)" = "hello from vm1" ] &&
	pass "$t (shop.apps.veil.test -> vm1 instead of the wildcard's vm3)" || fail $t "$(map_vm shop.apps.veil.test) '$(page shop.apps.veil.test -k)'"
sp get routes shop.apps.veil.test > "$W/old-envelope"
t=store_route_changed
sp put routes shop.apps.veil.test "$CK" "$(body shop.apps.veil.test 201 2 "" 2001:db8:ff::11)"
wait_map shop.apps.veil.test 2 10 && [ "$(page shop.apps.veil.test -k)" = "hello from vm2" ] &&
	pass "$t (now vm2 over the IPv6 underlay)" || fail $t "$(map_vm shop.apps.veil.test) '$(page shop.apps.veil.test -k)'"

# 3. forged, garbled and replayed envelopes: dropped, counted, the map unchanged
t=forged_envelope_refused
sp put routes evil.veil.test "$W/evil.key" "$(body evil.veil.test 300 1 198.19.0.11)"
sp raw routes evil2.veil.test '{"v":1,"kid":"00","body":"e30=","sig":"AAAA"}'
sp raw routes evil3.veil.test 'not json at all'
# a valid body moved to another key does not verify either
sp raw routes moved.veil.test "$(cat "$W/old-envelope")"
sleep 1
n=$(metric 'store_rejected_total{bucket="routes",reason="signature"}')
[ "${n:-0}" -ge 4 ] && [ -z "$(map_vm evil.veil.test)$(map_vm evil2.veil.test)$(map_vm evil3.veil.test)$(map_vm moved.veil.test)" ] &&
	pass "$t (wrong key, bad signature, not JSON, moved to another key: $n counted, none in the map)" ||
	fail $t "signature rejects '$n'; map: $(map_vm evil.veil.test) $(map_vm moved.veil.test)"
t=replay_refused
sp raw routes shop.apps.veil.test "$(cat "$W/old-envelope")"
sleep 1
n=$(metric 'store_rejected_total{bucket="routes",reason="replay"}')
[ "${n:-0}" -ge 1 ] && [ "$(map_vm shop.apps.veil.test)" = 2 ] &&
	pass "$t (the gen-200 envelope put back: counted, the route stays on vm2)" || fail $t "replays '$n', map $(map_vm shop.apps.veil.test)"
t=bad_body_refused
sp put routes badbody.veil.test "$CK" '{"name":"other.veil.test","gen":5,"vm_id":1,"node4":"198.19.0.11"}'
sp put routes badvm.veil.test "$CK" '{"name":"badvm.veil.test","gen":5,"vm_id":0,"node4":"198.19.0.11"}'
sleep 1
n=$(metric 'store_rejected_total{bucket="routes",reason="body"}')
[ "${n:-0}" -ge 2 ] && [ -z "$(map_vm badbody.veil.test)$(map_vm other.veil.test)$(map_vm badvm.veil.test)" ] &&
	pass "$t (a name that is not the key's, vm_id 0: $n counted)" || fail $t "body rejects '$n'"

# 4. the file's route wins over the store's for the same name
t=file_route_wins
sp put routes vm1.veil.test "$CK" "$(body vm1.veil.test 400 3 198.19.0.12)"
sleep 1
sh=$(metric veilmesh_gw_store_routes_shadowed)
[ "$(map_vm vm1.veil.test)" = 1 ] && [ "${sh:-0}" -ge 1 ] && [ "$(page vm1.veil.test)" = "hello from vm1" ] &&
	pass "$t (vm1.veil.test stays the file's vm1; shadowed $sh)" || fail $t "map $(map_vm vm1.veil.test) shadowed '$sh'"

# 5. delete: the exact route goes, the wildcard serves again (and the VM's own certificate verifies)
t=store_route_deleted
sp del routes shop.apps.veil.test
wait_map shop.apps.veil.test none 10 && [ "$(page shop.apps.veil.test)" = "hello from vm3" ] &&
	pass "$t (gone from the map; the file's wildcard -> vm3, certificate verified)" || fail $t "$(map_vm shop.apps.veil.test)"

# 6. SIGHUP reload keeps the store's routes
t=reload_keeps_store_routes
kill -HUP "$(cat "$DIR/gw.pid")"
sleep 1
[ "$(map_vm new.apps2.veil.test)" = 3 ] && [ "$(map_vm vm1.veil.test)" = 1 ] && pass "$t" ||
	fail $t "new.apps2 $(map_vm new.apps2.veil.test) vm1 $(map_vm vm1.veil.test)"

# 7. the gateway away while the store changes: it converges when back (maps are pinned)
t=gw_restart_converges
kill "$(cat "$DIR/gw.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/gw.pid")" 2>/dev/null || break; sleep 0.1; done
sp put routes late.veil.test "$CK" "$(body late.veil.test 500 2 198.19.0.11)"
sp del routes new.apps2.veil.test
ingw "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
echo $! > "$DIR/gw.pid"
if wait_map late.veil.test 2 20 && wait_map new.apps2.veil.test none 5; then
	[ "$(page late.veil.test -k)" = "hello from vm2" ] && pass "$t (put while down: routed; deleted while down: gone from the pinned map)" ||
		fail $t "late.veil.test in the map but '$(page late.veil.test -k)'"
else
	fail $t "late $(map_vm late.veil.test) new.apps2 $(map_vm new.apps2.veil.test)"
fi

# 7b. a replay while the gateway is away: the gens it applied are in its
# store_gens file, so the restarted gateway still refuses the older envelope
t=replay_after_restart_refused
sp get routes late.veil.test > "$W/late-500"
sp put routes late.veil.test "$CK" "$(body late.veil.test 501 1 198.19.0.11)"
wait_map late.veil.test 1 10 || fail $t "gen 501 not applied: $(map_vm late.veil.test)"
kill "$(cat "$DIR/gw.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/gw.pid")" 2>/dev/null || break; sleep 0.1; done
sp raw routes late.veil.test "$(cat "$W/late-500")"     # the store now serves the older envelope
synced0=$(grep -c "event=store_synced" "$DIR/gw.log")
ingw "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
echo $! > "$DIR/gw.pid"
for _ in $(seq 100); do [ "$(grep -c "event=store_synced" "$DIR/gw.log")" -gt "$synced0" ] && break; sleep 0.2; done
n=$(metric 'store_rejected_total{bucket="routes",reason="replay"}')
if [ "${n:-0}" -ge 1 ] && [ "$(map_vm late.veil.test)" != 2 ]; then
	pass "$t (gen 500 put back while the gateway was down: refused after its restart, counted; the route is not vm2's: $(map_vm late.veil.test))"
else
	fail $t "replays '$n', map $(map_vm late.veil.test), gens file: $(grep late "$W/gw.gens" 2>/dev/null | tail -2)"
fi
sp put routes late.veil.test "$CK" "$(body late.veil.test 502 2 198.19.0.11)"   # as before, for what follows
wait_map late.veil.test 2 10 || fail $t "gen 502 not applied"

# 8. the store itself restarts: the gateway keeps its routes and follows again
t=nats_restart_survived
kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null; NATS_PID=""
sleep 1
[ "$(page late.veil.test -k)" = "hello from vm2" ] || fail $t "routes lost while the store was down"
start_nats
sp put routes after.veil.test "$CK" "$(body after.veil.test 600 1 198.19.0.11)"
wait_map after.veil.test 1 30 && [ "$(map_vm late.veil.test)" = 2 ] &&
	pass "$t (routes kept while the server was down; a put after its restart routed)" || fail $t "after $(map_vm after.veil.test)"

t=status_reports_store
st=$("$BUILD/veilctl" -p "$PIN/gw" -s "$DIR/gw.sock" -j status 2>/dev/null)
echo "$st" | jq -e '.store.synced == true and .store.routes >= 3' >/dev/null 2>&1 &&
	pass "$t ($(echo "$st" | jq -c '.store | {routes, shadowed, rejected}'))" || fail $t "$(echo "$st" | jq -c .store 2>/dev/null || echo "$st" | head -c 300)"
