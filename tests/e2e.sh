#!/usr/bin/env bash
# End-to-end tests in the netns lab (tools/lab.sh): real clients (curl,
# openssl s_client) through the XDP gateway and the nodes to nginx in the VMs.
# Prints PASS/FAIL lines; the lab is removed on exit, whatever happens.
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-$TOP/build}
export BUILD
ID="e2e$$"
export VEIL_LAB_DIR="/tmp/veilmesh-$ID"
LAB="tools/lab.sh"
P="vml-$ID"
DIR=$VEIL_LAB_DIR
PIN="/sys/fs/bpf/veilmesh-$ID"
VIP4=198.18.100.1
VIP6=2001:db8:100::1

cleanup() {
	$LAB down "$ID" >/dev/null 2>&1
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
vip() { [ "$1" = 6 ] && echo "[$VIP6]" || echo "$VIP4"; }
# tshark in a namespace, in the background (CAP_PID), waited for until it
# captures: it takes seconds to start on a loaded machine.
cap_start() { # ns errfile tshark-args...
	local ns=$1 err=$2
	shift 2
	nsx "$ns" timeout 120 tshark "$@" 2>"$err" &
	CAP_PID=$!
	# tshark takes tens of seconds to start on a busy machine
	for _ in $(seq 600); do grep -q "Capturing on" "$err" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# A capture file that stopped growing: tshark writes behind the traffic
# on a busy machine, and is killed only once it has caught up.
cap_settled() { # file
	local a b
	for _ in $(seq 40); do
		a=$(stat -c %s "$1" 2>/dev/null); sleep 0.5; b=$(stat -c %s "$1" 2>/dev/null)
		[ -n "$a" ] && [ "$a" = "$b" ] && return 0
	done
	return 1
}
ccurl() { # name family [args]
	local name=$1 fam=$2; shift 2
	nsx cli curl -sS --max-time 20 --cacert "$DIR/pki/ca.pem" --resolve "$name:443:$(vip "$fam")" "$@"
}

mkdir -p "$BUILD/tests/logs"
if ! $LAB up "$ID" >"$BUILD/tests/logs/lab-up.log" 2>&1; then
	fail lab_up "$(tail -5 "$BUILD/tests/logs/lab-up.log")"
	exit 1
fi
pass lab_up

# 1. every VM over IPv4 and IPv6, and the VM sees the real client
t=each_vm_v4_v6
bad=""
for vm in vm1 vm2 vm3; do
	for fam in 4 6; do
		got=$(ccurl "$vm.veil.test" "$fam" "https://$vm.veil.test/" 2>&1)
		[ "$got" = "hello from $vm" ] || bad="$bad $vm/v$fam:'$got'"
		want=198.18.0.2; [ "$fam" = 6 ] && want=2001:db8::2
		got=$(ccurl "$vm.veil.test" "$fam" "https://$vm.veil.test/whoami" 2>&1)
		[ "$got" = "$vm saw $want" ] || bad="$bad whoami-$vm/v$fam:'$got'"
	done
done
[ -z "$bad" ] && pass $t || fail $t "$bad"

# 2. openssl s_client gets each VM's own certificate, verified against the lab CA
t=openssl_sees_vm_certificate
bad=""
for vm in vm1 vm2 vm3; do
	for fam in 4 6; do
		out=$(echo | nsx cli timeout 10 openssl s_client -connect "$(vip "$fam"):443" -servername "$vm.veil.test" \
			-CAfile "$DIR/pki/ca.pem" -verify_return_error -verify_hostname "$vm.veil.test" 2>&1)
		echo "$out" | grep -q "subject=CN = $vm.veil.test" && echo "$out" | grep -q "Verify return code: 0 (ok)" ||
			bad="$bad $vm/v$fam"
	done
done
[ -z "$bad" ] && pass $t || fail $t "no verified certificate for:$bad"

# 3. ALPN passes untouched: HTTP/2 and HTTP/1.1
t=alpn_http2_and_http1
v2=$(ccurl vm2.veil.test 4 --http2 -o /dev/null -w '%{http_version}' https://vm2.veil.test/)
v1=$(ccurl vm2.veil.test 6 --http1.1 -o /dev/null -w '%{http_version}' https://vm2.veil.test/)
[ "$v2" = 2 ] && [ "$v1" = 1.1 ] && pass $t || fail $t "http versions '$v2' '$v1'"

# 4. wildcard route
t=wildcard_route
got=$(ccurl shop.apps.veil.test 6 https://shop.apps.veil.test/ 2>&1)
[ "$got" = "hello from vm3" ] && pass $t || fail $t "'$got'"

# 5. a name without a route fails at once with a clear reason
t=unknown_name_refused_at_once
start=$(date +%s%N)
out=$(ccurl nope.veil.test 4 https://nope.veil.test/ 2>&1); rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ $rc != 0 ] && echo "$out" | grep -q "unrecognized name" && [ $ms -lt 2000 ]; then
	pass "$t (refused in ${ms} ms)"
else
	fail $t "rc=$rc after ${ms} ms: $out"
fi
t=no_sni_refused_at_once
out=$(echo | nsx cli timeout 5 openssl s_client -connect "$VIP4:443" -noservername 2>&1); rc=$?
echo "$out" | grep -q "unrecognized name" && pass $t || fail $t "rc=$rc: $(echo "$out" | tail -2)"

# 6. pinned maps print named fields; xdp-loader shows the programs
t=maps_have_named_fields
r=$(bpftool map dump pinned "$PIN/gw/routes" 2>&1)
f=$(bpftool map lookup pinned "$PIN/gw/flows" key 0 0 0 0 2>&1)   # a bucket of the flow table: its slots' fields
c=$(bpftool map lookup pinned "$PIN/n1/conns" key 0 0 0 0 2>&1)   # a bucket (a dump prints all 49,152: 70 s)
echo "$r" | grep -q '"name": "vm1.veil.test"' && echo "$f" | grep -q '"client_port_be"' &&
	echo "$f" | grep -q '"vm_ack"' && echo "$f" | grep -q '"vm_id_be"' && echo "$c" | grep -q '"seq_delta"' && pass $t ||
	fail $t "$(echo "$r" | head -5)"
t=node_neighbours_managed
nb=$(nsx gw ip neigh show)
echo "$nb" | grep -q "198.19.0.11 .*managed" && echo "$nb" | grep -q "2001:db8:ff::12 .*managed" &&
	grep -q "event=neigh_managed node=198.19.0.12" "$DIR/gw.log" && pass $t || fail $t "$nb"
t=xdp_loader_status
s=$(nsenter --net="/run/netns/$P-gw" xdp-loader status 2>&1)
echo "$s" | grep -q "gw_ingress" && echo "$s" | grep -q "gw_return" && pass $t || fail $t "$s"

# 7. tshark dissects mesh traffic down to the inner TLS
t=tshark_dissects_geneve
cap_start sw "$DIR/geneve.err" -i sw-n1 -f "udp port 6081" -c 6 -O geneve,tls >"$DIR/geneve.txt" ||
	echo "# tshark_dissects_geneve: tshark not capturing after 60 s: $(head -c 200 "$DIR/geneve.err")"
# requests until tshark has its six packets (on a busy machine it may start
# capturing only after the first one went by): a capture left short would
# otherwise wait for timeout's 120 s and print nothing
for _ in $(seq 20); do
	ccurl vm1.veil.test 4 https://vm1.veil.test/ >/dev/null 2>&1
	kill -0 "$CAP_PID" 2>/dev/null || break
	sleep 1
done
wait $CAP_PID
grep -q "Generic Network Virtualization Encapsulation" "$DIR/geneve.txt" && grep -q "Class: Unknown (0xfff0)\|Class: .*0xfff0" "$DIR/geneve.txt" &&
	grep -q "Handshake Protocol: Client Hello" "$DIR/geneve.txt" && pass $t ||
	fail $t "$(head -20 "$DIR/geneve.txt")"

# 7b. real handshakes with big and odd ClientHellos (veil-hellogen): every
#     shape routes first time, over IPv4 and IPv6
t=big_and_split_hellos_route
bad=""
for shape in "--size 500" "--size 1800" "--size 1800 --order sni-first" "--size 6000" \
	     "--size 6000 --fragment 512" "--size 16000" "--size 16000 --mss 536 --fragment 1000"; do
	for fam in 4 6; do
		vm=vm1; [ "$fam" = 6 ] && vm=vm3
		out=$(nsx cli "$BUILD/veil-hellogen" --connect "$(vip "$fam"):443" --name "$vm.veil.test" \
			--cafile "$DIR/pki/ca.pem" --count 3 --timeout-ms 3000 $shape 2>&1)
		# a failure says why (each connection's line), and what the gateway counted
		echo "$out" | grep -q "failed=0" ||
			bad="$bad [v$fam $shape: $(echo "$out" | grep -v ': ok' | tail -4 | tr '\n' ' ') gateway: $("$BUILD/veilctl" -p "$PIN/gw" -s "$DIR/gw.sock" stats 2>&1 | grep -E 'asm|held|refused|reset' | tr -s ' \n' ' ')]"
	done
done
[ -z "$bad" ] && pass $t || fail $t "$bad"

# 7c. time to first byte: big hellos cost no extra round trip (reported, not asserted)
t=ttfb_by_hello_size
res=""
bad=""
for size in 500 1800 6000; do
	out=$(nsx cli "$BUILD/veil-hellogen" --connect "$VIP4:443" --name vm2.veil.test --cafile "$DIR/pki/ca.pem" \
		--count 40 --quiet --size $size 2>&1 | tail -1)
	p50=$(echo "$out" | grep -o 'ttfb_p50_ms=[0-9.]*' | cut -d= -f2)
	echo "$out" | grep -q "failed=0" || bad="$bad $size"
	res="$res ${size}B:${p50}ms"
done
[ -z "$bad" ] && pass "$t (median of 40:$res)" || fail $t "failures at sizes:$bad"

SUM=$(sha256sum "$DIR/big.bin" | cut -d' ' -f1)

# 8. 100 MB with 1% random loss on the client link, both directions
t=download_100mb_with_1pct_loss
nsx cli nft -f - <<'EOF'
table inet veil_loss {
	chain in { type filter hook input priority 0; numgen random mod 100 < 1 counter drop; }
	chain out { type filter hook output priority 0; numgen random mod 100 < 1 counter drop; }
}
EOF
start=$SECONDS
got=$(ccurl vm1.veil.test 4 --max-time 120 https://vm1.veil.test/big.bin 2>"$DIR/loss.err" | sha256sum | cut -d' ' -f1)
dropped=$(nsx cli nft list table inet veil_loss | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}')
nsx cli nft delete table inet veil_loss
[ "$got" = "$SUM" ] && [ "$dropped" -gt 0 ] && pass "$t ($dropped packets dropped, $((SECONDS - start)) s)" ||
	fail $t "sha256 $got, $dropped dropped: $(cat "$DIR/loss.err")"

# 9. two clients in parallel (one IPv4, one IPv6, different VMs)
t=two_clients_in_parallel
ccurl vm1.veil.test 4 https://vm1.veil.test/big.bin 2>"$DIR/p1.err" | sha256sum | cut -d' ' -f1 >"$DIR/p1.sum" &
a=$!
ccurl vm3.veil.test 6 https://vm3.veil.test/big.bin 2>"$DIR/p2.err" | sha256sum | cut -d' ' -f1 >"$DIR/p2.sum" &
b=$!
wait $a $b
[ "$(cat "$DIR/p1.sum")" = "$SUM" ] && [ "$(cat "$DIR/p2.sum")" = "$SUM" ] && pass $t ||
	fail $t "$(cat "$DIR/p1.err" "$DIR/p2.err")"

# 10. the gateway daemon restarted during a download: the download completes
t=gateway_restart_during_download
ccurl vm2.veil.test 6 --max-time 60 --limit-rate 25M https://vm2.veil.test/big.bin 2>"$DIR/r.err" | sha256sum | cut -d' ' -f1 >"$DIR/r.sum" &
dl=$!
sleep 1.5
seed0=$(bpftool map dump pinned "$PIN/gw/flow_seed" 2>&1)
rb0=$(bpftool -j map show pinned "$PIN/gw/route_bits" 2>&1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>&1)
kill "$(cat "$DIR/gw.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/gw.pid")" 2>/dev/null || break; sleep 0.1; done
# as a build before the routes' filter leaves things: no route_bits pinned (10c)
rm -f "$PIN/gw/route_bits"
nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
echo $! >"$DIR/gw.pid"
for _ in $(seq 100); do [ "$(grep -c "event=started" "$DIR/gw.log")" = 2 ] && break; sleep 0.1; done
# the download's flow, from the pinned map under the restarted daemon: its
# addresses are the value's (the key holds IPv6 ones folded)
v6flow=$("$BUILD/veilctl" -p "$PIN/gw" -j flows 2>&1 | python3 -c 'import json,sys
d=json.load(sys.stdin)
print(any(x["client"] == "2001:db8::2" and x["vip"] == "2001:db8:100::1" and x["vip_port"] == 443 for x in d))' 2>&1)
wait $dl
seed1=$(bpftool map dump pinned "$PIN/gw/flow_seed" 2>&1)
restarts=$(grep -c "event=started" "$DIR/gw.log")
[ "$(cat "$DIR/r.sum")" = "$SUM" ] && [ "$restarts" = 2 ] && pass $t ||
	fail $t "sha256 $(cat "$DIR/r.sum"), starts $restarts: $(cat "$DIR/r.err")"

# 10b. the flow key's seed (IPv6 addresses are folded under it) is the pinned
#      map's: the restart kept it, so the IPv6 download above kept its flow
t=flow_seed_kept_across_restart
nonzero=$(echo "$seed0" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(any(e.get("formatted", e)["value"]["k"]))' 2>&1)
[ "$seed0" = "$seed1" ] && [ "$nonzero" = True ] && [ "$v6flow" = True ] && [ "$(cat "$DIR/r.sum")" = "$SUM" ] &&
	pass $t || fail $t "seed kept: $([ "$seed0" = "$seed1" ] && echo yes || echo no), nonzero: $nonzero, IPv6 flow listed after the restart: $v6flow"

# 10c. route_bits, the filter in front of the routes map (docs/design.md): the
#      restart above found none pinned, as after an upgrade from a build
#      before it, and made it from the routes map before its programs ran:
#      a new map, a bit for every route, every VM reachable by name.  The
#      load made it from every pinned route (until 2026-12-07 veil-gw's
#      load read gw_ingress's routes map before libxdp had loaded it: no
#      route, every name refused until the first sync, which a gateway fed
#      from the store makes once the store's snapshot is in, seconds later)
t=route_bits_made_at_load
rbuilt=$(grep -o 'event=started .* pinned_routes=[0-9]*' "$DIR/gw.log" | tail -1 | sed 's/.*pinned_routes=//')
rpinned=$("$BUILD/veilctl" -p "$PIN/gw" -j routes 2>&1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>&1)
rb1=$(bpftool -j map show pinned "$PIN/gw/route_bits" 2>&1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>&1)
rbits=$(bpftool -j map dump pinned "$PIN/gw/route_bits" 2>&1 | python3 -c 'import json,sys
print(sum(bin(int.from_bytes(bytes(int(x, 16) for x in e["value"]), "little")).count("1") for e in json.load(sys.stdin)))' 2>&1)
nroutes=$("$BUILD/veilctl" -p "$PIN/gw" -j routes 2>&1 | python3 -c 'import json,sys
r=json.load(sys.stdin); print(len(r) + sum(1 for x in r if x["name"].startswith("*.")))' 2>&1)
rwho=$(ccurl vm3.veil.test 6 https://vm3.veil.test/whoami 2>&1)
# its gauge: the share of key bits set (one a route; 2^20 bits)
rfill=$(nsx gw curl -s --max-time 3 http://127.0.0.1:9431/metrics | awk '/^veilmesh_gw_route_filter_fill/ {print $2}')
[ -n "$rb0" ] && [ "$rb1" != "$rb0" ] && [ "$rbits" = "$nroutes" ] && [ "$rwho" = "vm3 saw 2001:db8::2" ] &&
	awk -v f="${rfill:-1}" 'BEGIN {exit !(f > 0 && f < 0.0001)}' && [ "${rbuilt:-0}" -gt 0 ] && [ "$rbuilt" = "$rpinned" ] &&
	pass "$t ($rbits bits for the routes' keys and wildcard lengths, fill $rfill; made at the load from $rbuilt routes)" ||
	fail $t "map id $rb0 -> $rb1, bits set $rbits, want $nroutes, new connection '$rwho', fill '$rfill', made at the load from '$rbuilt' routes of $rpinned"

# 11. the node daemon restarted during a download
t=node_restart_during_download
ccurl vm1.veil.test 4 --max-time 60 --limit-rate 25M https://vm1.veil.test/big.bin 2>"$DIR/u.err" | sha256sum | cut -d' ' -f1 >"$DIR/u.sum" &
dl=$!
sleep 1.5
kill "$(cat "$DIR/n1.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/n1.pid")" 2>/dev/null || break; sleep 0.1; done
nsenter --net="/run/netns/$P-n1" "$BUILD/veil-node" --config "$DIR/n1.conf" >>"$DIR/n1.log" 2>&1 &
echo $! >"$DIR/n1.pid"
wait $dl
[ "$(cat "$DIR/u.sum")" = "$SUM" ] && pass $t || fail $t "sha256 $(cat "$DIR/u.sum"): $(cat "$DIR/u.err")"

# 12. a config reload: a broken file changes nothing and says where; a good
#     one adds a route without disturbing a running download
t=reload_bad_config_changes_nothing
cp "$DIR/gw.conf" "$DIR/gw.conf.good"
printf 'route Bad_Name 9 198.19.0.11\n' >>"$DIR/gw.conf"
kill -HUP "$(cat "$DIR/gw.pid")"
sleep 1.5
line=$(wc -l <"$DIR/gw.conf")
grep -q "event=reload_rejected reason=\"$DIR/gw.conf:$line: 'Bad_Name' is not a lowercase host name" "$DIR/gw.log" &&
	[ "$(bpftool map dump pinned "$PIN/gw/routes" | grep -c '"name"')" = 4 ] && pass $t ||
	fail $t "$(tail -3 "$DIR/gw.log")"
t=reload_adds_route_during_download
cp "$DIR/gw.conf.good" "$DIR/gw.conf"
ccurl vm1.veil.test 4 --max-time 60 --limit-rate 40M https://vm1.veil.test/big.bin 2>"$DIR/a.err" | sha256sum | cut -d' ' -f1 >"$DIR/a.sum" &
dl=$!
sleep 1
printf 'route new.veil.test 2 198.19.0.11\n' >>"$DIR/gw.conf"
kill -HUP "$(cat "$DIR/gw.pid")"
sleep 1.5
got=$(ccurl new.veil.test 4 https://new.veil.test/ -k 2>&1)
wait $dl
[ "$got" = "hello from vm2" ] && [ "$(cat "$DIR/a.sum")" = "$SUM" ] && pass $t ||
	fail $t "new route gave '$got', download $(cat "$DIR/a.sum")"

# 12b. a VM taken out of its node's table (its order failed or was deleted:
#      veil-agent takes it out) does not leave its clients hanging.  vm2 is
#      frozen first (SIGSTOP: silent, as a dead VM is), with a download in
#      flight (its client then idle, everything it got acked) and a TLS
#      connection open.  veil-node nudges the clients of its established
#      connections, node_mesh resets them on their answer; a new connection
#      is reset at its hello; each at once.  Back in the table, it serves.
t=vm_removed_connections_reset
cp "$DIR/n1.conf" "$DIR/n1.conf.good"
rm -f "$DIR/gone.go"
nsx cli python3 - "$VIP4" "$DIR/pki/ca.pem" "$DIR/gone.go" >"$DIR/gone.out" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
vip, ca, go = sys.argv[1:4]
req = b"GET / HTTP/1.1\r\nHost: vm2.veil.test\r\n\r\n"
t = ssl.create_default_context(cafile=ca).wrap_socket(socket.create_connection((vip, 443), timeout=20),
                                                       server_hostname="vm2.veil.test")
t.sendall(req)
print("first:", b"hello from vm2" in t.recv(4096), flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
t0 = time.time()
try:
    t.sendall(req)
    got = t.recv(4096)   # the RST: ECONNRESET, or an end of stream from the SSL layer
    how = "%d bytes" % len(got) if got else "end"
except OSError as e:
    how = type(e).__name__
print("second: %s after %.2f s" % (how, time.time() - t0), flush=True)
PY
py=$!
ccurl vm2.veil.test 4 --max-time 60 --limit-rate 2M https://vm2.veil.test/big.bin -o /dev/null 2>"$DIR/gone.err" &
dl=$!
for _ in $(seq 100); do grep -q "^first:" "$DIR/gone.out" && break; sleep 0.1; done
sleep 1.5
vmp=$(ip netns pids "$P-vm2")
kill -STOP $vmp
sleep 0.5
n0=$(grep -c "event=config_reloaded" "$DIR/n1.log")
grep -v '^vm 2 ' "$DIR/n1.conf.good" >"$DIR/n1.conf"
s0=$(date +%s%N)
kill -HUP "$(cat "$DIR/n1.pid")"
wait $dl; dlrc=$?
dlms=$(( ($(date +%s%N) - s0) / 1000000 ))
touch "$DIR/gone.go"
wait $py
s0=$(date +%s%N)
out=$(ccurl vm2.veil.test 6 https://vm2.veil.test/ 2>&1); rc=$?
ms=$(( ($(date +%s%N) - s0) / 1000000 ))
resets=$("$BUILD/veilctl" -p "$PIN/n1" -j stats 2>&1 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("reset_sent", -1))' 2>&1)
nudged=$(grep "event=vm_gone vm=2 .*round=1$" "$DIR/n1.log" | tail -1 | grep -o 'clients_nudged=[0-9]*' | cut -d= -f2)
kill -CONT $vmp
cp "$DIR/n1.conf.good" "$DIR/n1.conf"
kill -HUP "$(cat "$DIR/n1.pid")"
for _ in $(seq 50); do [ "$(grep -c "event=config_reloaded" "$DIR/n1.log")" -gt "$((n0 + 1))" ] && break; sleep 0.1; done
back=$(ccurl vm2.veil.test 4 https://vm2.veil.test/ 2>&1)
if grep -q "^first: True" "$DIR/gone.out" && grep -Eq "^second: (ConnectionResetError|BrokenPipeError|SSLEOFError|end) after 0\.[0-9]* s" "$DIR/gone.out" &&
	[ $dlrc = 56 ] && grep -qi "reset" "$DIR/gone.err" && [ $dlms -lt 3000 ] && [ "${nudged:-0}" -ge 2 ] &&
	[ $rc != 0 ] && echo "$out" | grep -qi "reset" && [ $ms -lt 3000 ] && [ "$resets" -ge 3 ] &&
	[ "$back" = "hello from vm2" ]; then
	pass "$t (the idle download reset ${dlms} ms after the reload, $nudged clients nudged; the open connection: $(grep '^second:' "$DIR/gone.out" | cut -d' ' -f2-); a new one reset after ${ms} ms)"
else
	fail $t "download: rc=$dlrc after ${dlms} ms: $(cat "$DIR/gone.err"); nudged ${nudged:-none}; open connection: $(tr '\n' ' ' <"$DIR/gone.out"); new: rc=$rc after ${ms} ms: $out; reset_sent $resets; back in: '$back'"
fi

# 13. a config with an error: the daemon says file:line and exits 2
t=daemon_bad_config_exit_2
printf 'client_interface gw-cli\nunderlay4 198.19.0.1\ncookie_secret_file %s\nvip 198.18.100.1 443 maybe\n' "$DIR/cookie.key" >"$DIR/bad.conf"
out=$("$BUILD/veil-gw" --config "$DIR/bad.conf" 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "$DIR/bad.conf:4: refusal must be 'rst' or 'alert'" && pass $t || fail $t "rc=$rc: $out"

# 14. every outcome was counted: the counters explain what happened
t=counters_explain
s=$(bpftool map dump pinned "$PIN/gw/gw_stats")
bad=""
for c in syn_cookie_sent cookie_ack hello_routed no_route no_sni refused_alert fwd_established ret_forwarded asm_routed asm_sent; do
	n=$(echo "$s" | grep "\"$c\"" | grep -o '[0-9]*' | awk '{s+=$1} END {print s+0}')
	[ "$n" -gt 0 ] || bad="$bad $c"
done
ns=$(bpftool map dump pinned "$PIN/n1/node_stats")
for c in handoff_replayed vm_synack fwd_to_vm fwd_to_gw hello_seg_stored; do
	n=$(echo "$ns" | grep "\"$c\"" | grep -o '[0-9]*' | awk '{s+=$1} END {print s+0}')
	[ "$n" -gt 0 ] || bad="$bad $c"
done
[ -z "$bad" ] && pass $t || fail $t "zero:$bad"

# 15. nothing leaked into logs: the cookie secret never appears
t=secret_not_logged
key=$(cat "$DIR/cookie.key")
grep -rq "$key" "$DIR"/*.log && fail $t "the cookie secret is in a log" || pass $t

# ---------- veilctl, replay and metrics ----------
CTL="$BUILD/veilctl -p $PIN/gw -s $DIR/gw.sock"
NCTL="$BUILD/veilctl -p $PIN/n1 -s $DIR/n1.sock"
stat_sum() { bpftool map dump pinned "$PIN/gw/gw_stats" | grep "\"$1\"" | grep -o '[0-9]*' | awk '{s+=$1} END {print s+0}'; }
pyjson() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

t=veilctl_json_parses
# a connection held open meanwhile: closed ones are retired seconds after they close
(sleep 30 | nsx cli timeout 40 openssl s_client -connect "$VIP4:443" -servername vm1.veil.test >/dev/null 2>&1) &
held=$!
sleep 2
r1=$($CTL -j routes | pyjson 'print({"*.apps.veil.test","vm1.veil.test","vm2.veil.test","vm3.veil.test"} <= {x["name"] for x in d})')
r2=$($CTL -j flows | pyjson 'print(all(set(x) >= {"client","client_port","vip","vip_port","vm_id","node","age_s","fin","cli_nxt","vm_ack"} for x in d) and len(d) > 0)')
r3=$($CTL -j stats | pyjson 'print(d["syn_cookie_sent"] > 0 and d["hello_routed"] > 0)')
r4=$($CTL -j status | pyjson 'print(d["daemon"], d["routes"] >= 4, d["maps"]["flows"]["entries"] > 0, [p["program"] for p in d["programs"]])')
r5=$($NCTL -j conns | pyjson 'print(len(d) > 0 and all(x["state"] in ("established","syn_sent") and x["fin"] in ("open","client_fin","vm_fin","closed","reset") for x in d))')
r6=$($NCTL -j status | pyjson 'print(d["daemon"], d["vms"])')
[ "$r1" = True ] && [ "$r2" = True ] &&
	[ "$r3" = True ] && [ "$r4" = "veil-gw True True ['gw_ingress', 'gw_return', 'gw_asm']" ] && [ "$r5" = True ] &&
	[ "$r6" = "veil-node 2" ] && pass $t || fail $t "routes=$r1 flows=$r2 stats=$r3 status=$r4 conns=$r5 node=$r6"
pkill -P "$held" 2>/dev/null
wait $held 2>/dev/null

t=veilctl_changes_through_daemon
o1=$($CTL routes add extra.veil.test 1 198.19.0.11 2>&1); c1=$?
o2=$($CTL routes add extra.veil.test 1 198.19.0.11 2>&1); c2=$?
got=$(ccurl extra.veil.test 4 -k https://extra.veil.test/ 2>&1)
o3=$($CTL routes del extra.veil.test 2>&1); c3=$?
inconf=$(grep -c "extra.veil.test" "$DIR/gw.conf")
[ $c1 = 0 ] && [ $c2 = 1 ] && echo "$o2" | grep -q "exists: use replace" && [ "$got" = "hello from vm1" ] &&
	[ $c3 = 0 ] && [ "$inconf" = 0 ] && pass $t || fail $t "add=$c1 '$o1' again=$c2 '$o2' served='$got' del=$c3 in_config=$inconf"

# the daemon's flow drop finds an IPv6 flow through the map's seed (the key
# holds folded addresses) and drops it only once
t=veilctl_flow_drop_v6
(sleep 20 | nsx cli timeout 30 openssl s_client -connect "[$VIP6]:443" -servername vm1.veil.test >/dev/null 2>&1) &
held=$!
port=""
for _ in $(seq 50); do
	port=$($CTL -j flows | pyjson 'print(max([x["client_port"] for x in d if x["client"] == "2001:db8::2" and x["vip"] == "2001:db8:100::1" and x["age_s"] < 3] or [""]))')
	[ -n "$port" ] && break
	sleep 0.2
done
o1=$($CTL flows drop 2001:db8::2 "$port" "$VIP6" 443 2>&1); c1=$?
o2=$($CTL flows drop 2001:db8::2 "$port" "$VIP6" 443 2>&1); c2=$?
left=$($CTL -j flows | pyjson "print(sum(1 for x in d if x['client'] == '2001:db8::2' and str(x['client_port']) == '$port'))")
pkill -P "$held" 2>/dev/null
wait $held 2>/dev/null
[ -n "$port" ] && [ $c1 = 0 ] && [ $c2 != 0 ] && echo "$o2" | grep -q "no such flow" && [ "$left" = 0 ] && pass $t ||
	fail $t "port '$port', first drop $c1 '$o1', second $c2 '$o2', left $left"

t=veilctl_usage_errors_exit_2
bad=""
for args in "" "frobnicate" "routes add only-a-name" "routes add Bad 1 198.19.0.11" "flows --vm x" "stats --nope" "replay"; do
	$CTL $args >/dev/null 2>"$DIR/ctl.err"; rc=$?
	[ $rc = 2 ] && grep -qi "usage\|try 'veilctl --help'" "$DIR/ctl.err" || bad="$bad [$args: rc=$rc]"
done
[ -z "$bad" ] && pass $t || fail $t "$bad"

t=metrics_scraped
# each series the dashboards need; scraped again (5 times at most) when one
# is missing, as a scraper would: on a loaded machine a scrape can time out.
# A connection of its own held open meanwhile: the one veilctl_json_parses
# held may have closed and been retired by now on a loaded machine (then no
# flow is left to count).
(sleep 20 | nsx cli timeout 25 openssl s_client -connect "$VIP4:443" -servername vm1.veil.test >/dev/null 2>&1) &
mheld=$!
sleep 2
metrics_missing() {
	local m mn
	m=$(nsx gw curl -s --max-time 3 http://127.0.0.1:9431/metrics)
	mn=$(nsx n1 curl -s --max-time 3 http://127.0.0.1:9432/metrics)
	[ -n "$m" ] || { echo "no answer from the gateway's /metrics"; return; }
	[ -n "$mn" ] || { echo "no answer from the node's /metrics"; return; }
	for want in '^veilmesh_gw_packets_total{outcome="hello_routed"} [1-9]' '^veilmesh_map_entries{map="flows"} [1-9]' \
		'^veilmesh_gw_route_changes_total [1-9]' '^# TYPE veilmesh_gw_cookie_rotations_total counter'; do
		echo "$m" | grep -q "$want" || { echo "gateway: no line matching $want"; return; }
	done
	for want in '^veilmesh_node_packets_total{outcome="vm_synack"} [1-9]' '^veilmesh_node_connections [0-9]'; do
		echo "$mn" | grep -q "$want" || { echo "node: no line matching $want"; return; }
	done
	metrics_series="$(echo "$m" | grep -c '^veilmesh') gateway and $(echo "$mn" | grep -c '^veilmesh') node series"
}
for _ in 1 2 3 4 5; do
	why=$(metrics_missing; echo "|$metrics_series")
	[ "${why%%|*}" = "" ] && break
	sleep 1
done
kill "$mheld" 2>/dev/null; wait "$mheld" 2>/dev/null
[ "${why%%|*}" = "" ] && pass "$t (${why#*|})" || fail $t "${why%%|*}"

# closed connections (FIN both ways) leave the tables after a TIME_WAIT-like linger
t=closed_flows_retired
for _ in $(seq 30); do
	gr=$(nsx gw curl -s --max-time 3 http://127.0.0.1:9431/metrics | awk '/^veilmesh_gw_flows_retired_total/ {print $2}')
	nr=$(nsx n1 curl -s --max-time 3 http://127.0.0.1:9432/metrics | awk '/^veilmesh_node_conns_retired_total/ {print $2}')
	[ "${gr:-0}" -gt 0 ] && [ "${nr:-0}" -gt 0 ] && break
	sleep 1
done
# and each sweep says what its passes cost (a retirement takes two passes)
sw=$(nsx gw curl -s --max-time 3 http://127.0.0.1:9431/metrics |
	awk '/^veilmesh_gw_sweep_passes_total/ {p=$2} /^veilmesh_gw_sweep_last_entries/ {e=$2} /^veilmesh_gw_sweep_last_seconds/ {s=$2} END {print p+0, e+0, s+0}')
read -r swp swe sws <<<"$sw"
# and in both daemons' status (veilctl status: sweep.passes, .retired)
sst=$($CTL -j status | pyjson 'print(d["sweep"]["passes"] >= 2, d["sweep"]["retired"] > 0)' 2>&1)
nst=$($NCTL -j status | pyjson 'print(d["sweep"]["passes"] >= 2, d["sweep"]["retired"] > 0)' 2>&1)
[ "${gr:-0}" -gt 0 ] && [ "${nr:-0}" -gt 0 ] && [ "$swp" -ge 2 ] && [ "$sst" = "True True" ] && [ "$nst" = "True True" ] &&
	pass "$t (gateway retired $gr flows, node1 $nr connections; flow_closed $(stat_sum flow_closed), flow_reset $(stat_sum flow_reset); the gateway's sweep: $swp passes, the last $swe entries in $sws s)" ||
	fail $t "retired: gateway ${gr:-none}, node ${nr:-none}; gateway sweep passes ${swp:-none}; status sweep: gateway '$sst', node '$nst'"

t=replay_lab_capture
rm -f "$DIR/cap.pcapng"
cap_start cli "$DIR/cap.err" -i cli-gw -f "tcp port 443" -w "$DIR/cap.pcapng" >/dev/null ||
	echo "(replay_lab_capture: tshark did not say it was capturing within 60 s)" >&2
tp=$CAP_PID
# tshark says "Capturing on" a moment before it captures (twice in three runs
# on 2026-12-06 the first connection after it was missing from the file): a
# bare connection to the VIP (no hello: a cookie ACK, then its FIN) until
# one is in the file
for _ in $(seq 50); do
	nsx cli timeout 2 bash -c "exec 3<>/dev/tcp/$VIP4/443" 2>/dev/null
	[ "$(tshark -r "$DIR/cap.pcapng" 2>/dev/null | wc -l)" -gt 0 ] && break
	sleep 0.2
done
ccurl vm1.veil.test 4 https://vm1.veil.test/ >/dev/null 2>&1
ccurl nope.veil.test 4 https://nope.veil.test/ >/dev/null 2>&1
nsx cli "$BUILD/veil-hellogen" --connect "[$VIP6]:443" --name vm3.veil.test --cafile "$DIR/pki/ca.pem" --size 1800 --quiet >/dev/null 2>&1
sleep 1
cap_settled "$DIR/cap.pcapng"
kill $tp 2>/dev/null; wait $tp 2>/dev/null
"$BUILD/veilctl" replay "$DIR/cap.pcapng" --routes "$DIR/gw.conf" >"$DIR/replay.txt" 2>&1; rc=$?
"$BUILD/veilctl" -j replay "$DIR/cap.pcapng" --routes "$DIR/gw.conf" >"$DIR/replay.json" 2>&1
okjson=$(pyjson 'print(sum(1 for x in d if "hello_routed" in x["outcome"]))' <"$DIR/replay.json" 2>&1)
[ $rc = 0 ] && grep -q " S .* TX  *syn_cookie_sent" "$DIR/replay.txt" && grep -q " A .* DROP *cookie_ack" "$DIR/replay.txt" &&
	grep -q "hello_routed  sni=vm1.veil.test route: vm 1 via 198.19.0.11" "$DIR/replay.txt" &&
	grep -q "no_route,refused_alert  sni=nope.veil.test (no route)" "$DIR/replay.txt" &&
	grep -q "asm_routed.*sni=vm3.veil.test route: vm 3 via 2001:db8:ff::12" "$DIR/replay.txt" &&
	grep -q "fwd_established" "$DIR/replay.txt" && [ "$okjson" = 2 ] &&
	pass "$t ($(grep -c '^ *[0-9]' "$DIR/replay.txt") packets)" || fail $t "rc=$rc json=$okjson: $(head -12 "$DIR/replay.txt")"

t=veilctl_read_only_without_daemon
kill "$(cat "$DIR/n2.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/n2.pid")" 2>/dev/null || break; sleep 0.1; done
s=$("$BUILD/veilctl" -p "$PIN/n2" -s "$DIR/n2.sock" status 2>&1); c1=$?
st=$("$BUILD/veilctl" -p "$PIN/n2" -s "$DIR/n2.sock" stats 2>&1); c2=$?
ch=$("$BUILD/veilctl" -p "$PIN/gw" -s "$DIR/nobody.sock" routes del vm1.veil.test 2>&1); c3=$?
nsenter --net="/run/netns/$P-n2" "$BUILD/veil-node" --config "$DIR/n2.conf" >>"$DIR/n2.log" 2>&1 &
echo $! >"$DIR/n2.pid"
[ $c1 = 3 ] && echo "$s" | grep -q "daemon: down" && [ $c2 = 0 ] && echo "$st" | grep -q handoff_replayed &&
	[ $c3 = 1 ] && echo "$ch" | grep -q "read-only without it" && pass $t || fail $t "status=$c1 '$s' stats=$c2 change=$c3 '$ch'"

# ---------- hostile traffic (veil-flood from the client namespace) ----------
GWMAC=$(nsx gw cat /sys/class/net/gw-cli/address)
flood() { nsx cli "$BUILD/veil-flood" --iface cli-gw --dst-mac "$GWMAC" --secret "$DIR/cookie.key" "$@" 2>&1; }
count() { "$BUILD/tests/mapcount" "$@"; }
legit() { # n curls during a flood; prints how many succeeded
	local ok=0
	for _ in $(seq "$1"); do
		[ "$(ccurl vm2.veil.test 4 --max-time 5 https://vm2.veil.test/ 2>/dev/null)" = "hello from vm2" ] && ok=$((ok + 1))
		sleep 0.2
	done
	echo $ok
}

# 15b. VMs that hand over checksum-offloaded segments, as a virtio VM does
# (CHECKSUM_PARTIAL, TSO: node_vm fixes only the pseudo-header's part of
# the TCP checksum, the rest is summed when the segments go out); the lab's
# veths otherwise checksum in software (CHECKSUM_NONE)
t=vm_checksum_offload
nsx vm1 ethtool -K eth0 tx on tso on >/dev/null 2>&1
nsx vm3 ethtool -K eth0 tx on tso on >/dev/null 2>&1
got4=$(ccurl vm1.veil.test 4 --max-time 30 https://vm1.veil.test/big.bin 2>"$DIR/o4.err" | sha256sum | cut -d' ' -f1)
got6=$(ccurl vm3.veil.test 6 --max-time 30 https://vm3.veil.test/big.bin 2>"$DIR/o6.err" | sha256sum | cut -d' ' -f1)
off=$( (nsx vm1 ethtool -k eth0; nsx vm3 ethtool -k eth0) | grep -c -E '^\s*(tx-checksum-ip-generic|tcp-segmentation-offload): on')
nsx vm1 ethtool -K eth0 tx off >/dev/null 2>&1
nsx vm3 ethtool -K eth0 tx off >/dev/null 2>&1
[ "$got4" = "$SUM" ] && [ "$got6" = "$SUM" ] && [ "$off" = 4 ] && pass "$t (IPv4 and IPv6)" ||
	fail $t "offloads on: $off/4; IPv4: ${got4:0:12} $(cat "$DIR/o4.err"); IPv6: ${got6:0:12} $(cat "$DIR/o6.err")"

# 16. SYN flood: answered statelessly, no flow entry, real clients still served
t=syn_flood_keeps_no_state
f0=$(count "$PIN/gw/flows"); c0=$(stat_sum syn_cookie_sent)
flood --vip $VIP4 --kind syn --seconds 4 --count 100000000 >"$DIR/flood.out" &
fp=$!
sleep 0.5
ok=$(legit 5)
wait $fp
f1=$(count "$PIN/gw/flows"); c1=$(stat_sum syn_cookie_sent)
pps=$(grep -o 'pps=[0-9]*' "$DIR/flood.out")
sent=$(grep -o 'sent=[0-9]*' "$DIR/flood.out" | cut -d= -f2)
# the SYNs that reached the gateway were answered (the veth drops some under
# a flood: at least half arrive); how many per second depends on the machine
[ "$ok" = 5 ] && [ "$f1" -le $((f0 + 5)) ] && [ "${sent:-0}" -gt 1000 ] && [ $((c1 - c0)) -ge $((sent / 2)) ] &&
	pass "$t ($pps, $((c1 - c0)) SYN-ACKs, flows $f0 -> $f1, 5/5 clients served)" ||
	fail $t "served $ok/5, flows $f0 -> $f1, cookies $((c1 - c0)), $(cat "$DIR/flood.out")"

# 17. ACK flood with bad cookies: every one that reaches the gateway is
#     dropped and counted (the veth itself may drop a few under this load)
# the flows map's filter: veil-gw's sweep has rebuilt its halves from the
# map (the loader set every bit), so an ACK flood's unknown tuples stop there
t=flow_filter_rebuilt
for _ in $(seq 15); do
	m=$(nsx gw curl -s --max-time 3 http://127.0.0.1:9431/metrics)
	fr=$(awk '/^veilmesh_gw_flow_filter_rebuilds_total/ {print $2}' <<<"$m")
	ff=$(awk '/^veilmesh_gw_flow_filter_fill/ {print $2}' <<<"$m")
	[ "${fr:-0}" -ge 2 ] && awk -v f="${ff:-1}" 'BEGIN {exit !(f < 0.5)}' && break
	sleep 1
done
[ "${fr:-0}" -ge 2 ] && awk -v f="${ff:-1}" 'BEGIN {exit !(f < 0.5)}' && pass "$t ($fr halves rebuilt, fill $ff)" ||
	fail $t "rebuilds ${fr:-none}, fill ${ff:-none}"
t=ack_flood_dropped_and_counted
xdp_rx() { nsx gw ethtool -S gw-cli | grep -E 'rx_queue_[0-9]+_xdp_packets' | awk '{s+=$2} END {print s+0}'; }
# refused: bad_cookie while a CPU's flow gate is off, then ack_unjudged (no
# MAC: a bare ACK makes no state) once the flood has turned it on, but for
# the first 8 lookups of each 64 (the probes: VM_FLOW_GATE_PROBES), judged
b0=$(stat_sum bad_cookie); u0=$(stat_sum ack_unjudged); x0=$(xdp_rx)
out=$(flood --vip $VIP6 --kind ack --count 300000)
sent=$(echo "$out" | grep -o 'sent=[0-9]*' | cut -d= -f2)
b1=$(stat_sum bad_cookie); u1=$(stat_sum ack_unjudged); x1=$(xdp_rx)
ok=$(legit 2)
got=$((x1 - x0)); judged=$((b1 - b0)); unjudged=$((u1 - u0)); counted=$((judged + unjudged))
[ "$counted" -ge $((got - 10)) ] && [ "$counted" -ge $((sent * 99 / 100)) ] && [ "$unjudged" -ge $((counted * 3 / 4)) ] &&
	[ "$ok" = 2 ] &&
	pass "$t ($sent sent, $got reached XDP, refused $judged by their cookie and $unjudged unjudged; $(echo "$out" | grep -o 'pps=[0-9]*'))" ||
	fail $t "sent $sent, reached $got, bad_cookie $judged, ack_unjudged $unjudged, served $ok/2"

# 18. data with bad cookies reaches reassembly's early store, which stays bounded
t=ackdata_flood_bounded
e0=$(stat_sum asm_early)
out=$(flood --vip $VIP4 --kind ackdata --count 50000)
n=$(count "$PIN/gw/asm_early")
e1=$(stat_sum asm_early)
[ "$n" -le 1024 ] && [ $((e1 - e0)) -gt 40000 ] && pass "$t ($((e1 - e0)) kept in turn, $n entries at most 1024)" ||
	fail $t "entries $n, counted $((e1 - e0)): $out"

# 19. hellos that never complete (valid cookies): reassembly state stays bounded
#     and a real big-hello client still gets through
t=incomplete_hello_flood_bounded
s0=$(stat_sum asm_stored)
out=$(flood --vip $VIP4 --kind hello-frag --name vm1.veil.test --count 20000)
n=$(count "$PIN/gw/hello_asm")
s1=$(stat_sum asm_stored)
g=$(nsx cli "$BUILD/veil-hellogen" --connect "$VIP4:443" --name vm1.veil.test --cafile "$DIR/pki/ca.pem" --size 6000 --count 3 --quiet 2>&1 | tail -1)
[ "$n" -le 1024 ] && [ $((s1 - s0)) -ge 19000 ] && echo "$g" | grep -q failed=0 &&
	pass "$t ($((s1 - s0)) partial hellos kept in turn, $n entries at most 1024; timeout 5 s on touch; big hello served)" ||
	fail $t "entries $n, stored $((s1 - s0)), early $(stat_sum asm_early), handed $(stat_sum asm_handed), client: $g; flood: $out; secret epoch $(bpftool map dump pinned "$PIN/gw/cookie_secret" | grep -o '"epoch": [0-9]*'), tai $(date +%s)"

# 20. a full flow table gives up flows that carried no packet lately (the
#     clock's pick, include/veil/flowtab.h) instead of failing: flows_max
#     1024 makes 192 buckets of 8, 1536 slots
t=full_flow_table_evicts
kill "$(cat "$DIR/gw.pid")"
for _ in $(seq 50); do kill -0 "$(cat "$DIR/gw.pid")" 2>/dev/null || break; sleep 0.1; done
rm -f "$PIN/gw/flows"
sed -i 's/^flows_max .*/flows_max 1024/' "$DIR/gw.conf"
starts=$(grep -c "event=started" "$DIR/gw.log")
nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
echo $! >"$DIR/gw.pid"
# loading the programs takes seconds on a busy machine: wait for the start
for _ in $(seq 300); do [ "$(grep -c "event=started" "$DIR/gw.log")" -gt "$starts" ] && break; sleep 0.1; done
r0=$(stat_sum hello_routed)
f0=$(stat_sum flow_full)
out=$(flood --vip $VIP4 --kind hello --name vm1.veil.test --count 5000)
n=$(count "$PIN/gw/flows")
r1=$(stat_sum hello_routed)
f1=$(stat_sum flow_full)
ok=$(legit 3)
# every hello the program saw was routed, none refused for room (flow_full);
# a burst of 5000 may lose some on the veth before XDP sees them (the
# table's doing only if flow_full moved): three tables' worth suffice
[ "$n" -le 1536 ] && [ "$n" -ge 1024 ] && [ $((f1 - f0)) = 0 ] && [ $((r1 - r0)) -ge 4608 ] && [ "$ok" = 3 ] &&
	pass "$t ($((r1 - r0)) flows routed into a table of 1536 slots (flows_max 1024): $n entries, none refused, new clients served)" ||
	fail $t "entries $n, routed $((r1 - r0)), refused for room $((f1 - f0)), served $ok/3; flood: $(tail -2 <<<"$out" | tr '\n' ' ')"

# 21. the upgrade from a node of the 40-byte connection key (main at 09866c4,
#      built here once from git): its pinned conns are moved under the 12-byte
#      key, into the flow table conns is now (an array of buckets: `bpftool map
#      show` says key 4B), conn_rev rebuilt under its 12-byte key, so downloads over IPv4 and
#      IPv6 that began under the old node end under the new one, and new
#      connections work (docs/wire-formats.md).
#      Last, because the old node's node_stats and the new one's are new maps.
t=node_upgrade_from_40_byte_key
# veil-node built once from git at commit $1, in $BUILD/tests/old-node-$1:
# prints that directory; returns 1 when the commit is not in this
# checkout's history (a shallow clone or a tarball), 2 when it did not build
# (its log beside the directory).
old_node() {
	local d="$BUILD/tests/old-node-$1"
	git cat-file -e "$1^{commit}" 2>/dev/null || return 1
	if [ ! -x "$d/build/veil-node" ]; then
		rm -rf "$d" && mkdir -p "$d" && git archive "$1" | tar -x -C "$d" &&
			make -C "$d" BUILD=build -j2 build/veil-node >"$d.log" 2>&1
	fi
	[ -x "$d/build/veil-node" ] || return 2
	echo "$d"
}
OLD_REF=09866c4
old=$(old_node $OLD_REF)
old_rc=$?
restart_n1() { # binary
	kill "$(cat "$DIR/n1.pid")"
	for _ in $(seq 50); do kill -0 "$(cat "$DIR/n1.pid")" 2>/dev/null || break; sleep 0.1; done
	local before
	before=$(grep -c "event=started" "$DIR/n1.log")
	nsenter --net="/run/netns/$P-n1" "$1" --config "$DIR/n1.conf" >>"$DIR/n1.log" 2>&1 &
	echo $! >"$DIR/n1.pid"
	for _ in $(seq 100); do [ "$(grep -c "event=started" "$DIR/n1.log")" -gt "$before" ] && break; sleep 0.1; done
}
# n1 running the old build $1, then this one, while an IPv4 and an IPv6
# download run across the restart: their sha256 and errors in
# $DIR/${2}4.sum, .err and ${2}6.*, `bpftool map show` of the pinned conns
# and conn_rev under each build in $DIR/$2.conns.old, .new and
# $2.conn_rev.old, .new.
upgrade_under_downloads() { # old-binary tag
	local d4 d6 m
	restart_n1 "$1"
	for m in conns conn_rev; do bpftool map show pinned "$PIN/n1/$m" >"$DIR/$2.$m.old" 2>&1; done
	ccurl vm1.veil.test 4 --max-time 60 --limit-rate 20M https://vm1.veil.test/big.bin 2>"$DIR/${2}4.err" | sha256sum | cut -d' ' -f1 >"$DIR/${2}4.sum" &
	d4=$!
	ccurl vm2.veil.test 6 --max-time 60 --limit-rate 20M https://vm2.veil.test/big.bin 2>"$DIR/${2}6.err" | sha256sum | cut -d' ' -f1 >"$DIR/${2}6.sum" &
	d6=$!
	sleep 1.5
	restart_n1 "$BUILD/veil-node"
	for m in conns conn_rev; do bpftool map show pinned "$PIN/n1/$m" >"$DIR/$2.$m.new" 2>&1; done
	wait $d4 $d6
}
if [ $old_rc = 1 ]; then
	echo "SKIP $t: commit $OLD_REF is not in this checkout's history"
elif [ $old_rc != 0 ]; then
	fail $t "cannot build veil-node at $OLD_REF: $(tail -3 "$BUILD/tests/old-node-$OLD_REF.log" 2>&1)"
else
	upgrade_under_downloads "$old/build/veil-node" g
	key_old=$(grep -o 'key [0-9]*B' "$DIR/g.conns.old")
	rev_old=$(grep -o 'key [0-9]*B' "$DIR/g.conn_rev.old")
	key_new=$(grep -o 'key [0-9]*B' "$DIR/g.conns.new")
	rev_new=$(grep -o 'key [0-9]*B' "$DIR/g.conn_rev.new")
	moved=$(grep -o "event=conns_migrated moved=[0-9]*" "$DIR/n1.log" | tail -1 | cut -d= -f3)
	rebuilt=$(grep -o "event=conn_rev_rebuilt moved=[0-9]*" "$DIR/n1.log" | tail -1 | cut -d= -f3)
	who=$(ccurl vm2.veil.test 6 https://vm2.veil.test/whoami 2>&1)
	if [ "$(cat "$DIR/g4.sum")" = "$SUM" ] && [ "$(cat "$DIR/g6.sum")" = "$SUM" ] && [ "${moved:-0}" -ge 2 ] &&
		[ "$key_old" = "key 40B" ] && [ "$key_new" = "key 4B" ] && [ "$rev_old" = "key 40B" ] &&
		[ "$rev_new" = "key 12B" ] && [ "${rebuilt:-0}" = "$moved" ] && [ "$who" = "vm2 saw 2001:db8::2" ]; then
		pass "$t ($moved connections moved)"
	else
		fail $t "keys '$key_old' -> '$key_new', conn_rev '$rev_old' -> '$rev_new', moved '$moved', rebuilt '$rebuilt', sums $(cat "$DIR/g4.sum" "$DIR/g6.sum" | cut -c1-8 | tr '\n' ' ')(want ${SUM:0:8}), new conn '$who': $(cat "$DIR/g4.err" "$DIR/g6.err" | tail -2) $(grep -E 'conns_migrated|conn_rev_rebuilt|pinned_map' "$DIR/n1.log" | tail -4)"
	fi
fi

# 22. the upgrade from a node whose conn_rev held the conns key alone (main
#      at 4d33f8f, the last build before conn_rev's copy, built here once from
#      git): conn_rev is rebuilt from conns with the copies node_vm sends with,
#      so downloads over IPv4 and IPv6 that began under the old node end under
#      the new one, and new connections work (docs/wire-formats.md).
t=node_upgrade_from_conn_rev_key_value
OLD_REF2=4d33f8f
old2=$(old_node $OLD_REF2)
old_rc=$?
if [ $old_rc = 1 ]; then
	echo "SKIP $t: commit $OLD_REF2 is not in this checkout's history"
elif [ $old_rc != 0 ]; then
	fail $t "cannot build veil-node at $OLD_REF2: $(tail -3 "$BUILD/tests/old-node-$OLD_REF2.log" 2>&1)"
else
	upgrade_under_downloads "$old2/build/veil-node" h
	val_old=$(grep -o 'value [0-9]*B' "$DIR/h.conn_rev.old")
	val_new=$(grep -o 'value [0-9]*B' "$DIR/h.conn_rev.new")
	rebuilt=$(grep -o "event=conn_rev_rebuilt moved=[0-9]*" "$DIR/n1.log" | tail -1 | cut -d= -f3)
	who=$(ccurl vm2.veil.test 6 https://vm2.veil.test/whoami 2>&1)
	who4=$(ccurl vm1.veil.test 4 https://vm1.veil.test/whoami 2>&1)
	if [ "$(cat "$DIR/h4.sum")" = "$SUM" ] && [ "$(cat "$DIR/h6.sum")" = "$SUM" ] && [ "$val_old" = "value 12B" ] &&
		[ "$val_new" = "value 112B" ] && [ "${rebuilt:-0}" -ge 2 ] && [ "$who" = "vm2 saw 2001:db8::2" ] &&
		[ "$who4" = "vm1 saw 198.18.0.2" ]; then
		pass "$t ($rebuilt connections' copies made)"
	else
		fail $t "conn_rev values '$val_old' -> '$val_new', rebuilt '$rebuilt', sums $(cat "$DIR/h4.sum" "$DIR/h6.sum" | cut -c1-8 | tr '\n' ' ')(want ${SUM:0:8}), new conns '$who' '$who4': $(cat "$DIR/h4.err" "$DIR/h6.err" | tail -2) $(grep -E 'conn_rev_rebuilt|pinned_map' "$DIR/n1.log" | tail -4)"
	fi
fi
