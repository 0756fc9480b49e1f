#!/usr/bin/env bash
# Issue 13, "No connection is ever left hanging": its acceptance tests, in a
# lab of their own (tools/lab.sh, ID rel$$), removed on exit whatever happens.
#
#   refusal_*     an unknown name is refused (alert, and RST on a VIP that
#                 refuses so) and within 1 s the client namespace holds no
#                 socket of that connection (TIME-WAIT counts as closed)
#   port_reuse_*  sequential connections from one client port, the client
#                 closing first, in a client namespace with
#                 net.ipv4.tcp_max_tw_buckets=0 (as a NAT that reuses ports)
#   drop_*        one bad input per row of DROPS, the named counter must move
#                 by the amount given (veilctl -j stats, gateway or node)
#   rst_*         a RST on a live connection (tests/rel_rst.py): one the
#                 VM's TCP refuses (near its sequence, RFC 5961) ends
#                 nothing; one it takes ends the next request in a reset
#   held_lost_*   a held hello's copy lost at the gateway and one on the mesh
#                 (or a VM that answers nothing): the client reset within
#                 seconds (held_lost_reset), no hang
#   loss_*        1% random loss on every link, both directions (client <->
#                 gateway, gateway <-> nodes, nodes <-> VMs), REL_CONNS
#                 connections with 1900-byte (SNI in the second segment) and
#                 500-byte hellos, each fetching a 16 KB page whose SHA-256 is
#                 checked; a connection not done in REL_DEADLINE_MS is a hang.
#                 p50/p99/max connection time reported, never asserted.
#
# Knobs: REL_LOSS_LINKS ("client mesh vm"), REL_CONNS (2000), REL_WORKERS (32 clients in parallel),
# REL_DEADLINE_MS (10000), REL_REUSE (200), REL_ONLY (a regex on check
# families: refusal|port_reuse|drop|rst|held_lost|loss).
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-$TOP/build}
export BUILD
ID="rel$$"
export VEIL_LAB_DIR="/tmp/veilmesh-$ID"
LAB="tools/lab.sh"
P="vml-$ID"
DIR=$VEIL_LAB_DIR
PIN="/sys/fs/bpf/veilmesh-$ID"
VIP4=198.18.100.1
VIP6=2001:db8:100::1
CONNS=${REL_CONNS:-2000}
WORKERS=${REL_WORKERS:-32}
DEADLINE_MS=${REL_DEADLINE_MS:-10000}
REUSE=${REL_REUSE:-200}
ONLY=${REL_ONLY:-.}
RST_PORT=8443    # a VIP port added here that refuses with RST

bg_pids=()
cleanup() {
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	$LAB down "$ID" >/dev/null 2>&1
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
want() { [[ $1 =~ $ONLY ]]; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
vip() { [ "$1" = 6 ] && echo "[$VIP6]" || echo "$VIP4"; }
hg() { nsx cli "$BUILD/veil-hellogen" --cafile "$DIR/pki/ca.pem" "$@"; }
# counters of gw, n1 or n2 as name:value lines (no Python here: starting
# an interpreter takes seconds when colleagues load the machine)
stats() { "$BUILD/veilctl" -p "$PIN/$1" -j stats | tr -d '{} "' | tr ',' '\n'; }
# counter deltas between two snapshots: "name +n ..." (non-zero only)
deltas() {
	awk -F: 'NR == FNR { a[$1] = $2; next } $2 != a[$1] { printf "%s%s +%d", s, $1, $2 - a[$1]; s = " " } END { print "" }' "$1" "$2"
}

mkdir -p "$BUILD/tests/logs"
if ! $LAB up "$ID" >"$BUILD/tests/logs/rel-lab-up.log" 2>&1; then
	fail lab_up "$(tail -5 "$BUILD/tests/logs/rel-lab-up.log")"
	exit 1
fi
pass "lab_up ($ID)"

# the page every connection fetches, and its digest
head -c 16384 /dev/urandom >"$DIR/rel.bin"
for vm in vm1 vm2 vm3; do cp "$DIR/rel.bin" "$DIR/$vm/www/rel.bin"; done
SUM=$(sha256sum "$DIR/rel.bin" | cut -d' ' -f1)
GWMAC=$(nsx gw cat /sys/class/net/gw-cli/address)
GWMESH=$(nsx gw cat /sys/class/net/gw-mesh/address)
N1MESH=$(nsx n1 cat /sys/class/net/n1-mesh/address)

# a second VIP port on both addresses that refuses with RST (live reload)
printf 'vip %s %s rst\nvip %s %s rst\n' "$VIP4" $RST_PORT "$VIP6" $RST_PORT >>"$DIR/gw.conf"
kill -HUP "$(cat "$DIR/gw.pid")"
for _ in $(seq 30); do grep -q "event=config_reloaded.*vips=4" "$DIR/gw.log" && break; sleep 0.1; done
grep -q "event=config_reloaded.*vips=4" "$DIR/gw.log" && RST_VIP=1 || RST_VIP=0

# ---------- every drop is counted, by name ----------
# One row per bad input: label, where the counter lives (gw, n1), the
# counters and how much each must move (=N exactly, >=N at least), the
# namespace that sends, and what it sends ("send KIND ...": a kind of
# tests/rel_send.py; anything else is run as a program). New drop counters:
# add a row.
RAW4="--iface cli-gw --dst-mac $GWMAC --src 198.18.0.2 --dst $VIP4"
RAW6="--iface cli-gw --dst-mac $GWMAC --src 2001:db8::2 --dst $VIP6"
TO_N1="--iface n2-mesh --dst-mac $N1MESH --src 198.18.0.2 --dst $VIP4 --osrc 198.19.0.12 --odst 198.19.0.11"
TO_GW="--iface n1-mesh --dst-mac $GWMESH --src $VIP4 --dst 198.18.0.2 --osrc 198.19.0.11 --odst 198.19.0.1"
DROPS=(
	"bad_cookie_ack         gw bad_cookie=5                 cli send ack $RAW4 --count 5"
	"bad_cookie_ack_v6      gw bad_cookie=5                 cli send ack $RAW6 --count 5"
	"bad_cookie_data        gw asm_handed=5                 cli send ackdata $RAW4 --count 5"
	"rst_no_flow            gw rst_no_flow=5                cli send rst $RAW4 --count 5"
	"truncated_tcp_header   gw malformed=5                  cli send doff4 $RAW4 --count 5"
	"syn_with_payload       gw malformed=5                  cli send syndata $RAW6 --count 5"
	"ipv4_fragment          gw fragment=5                   cli send frag $RAW4 --count 5"
	"ipv4_options           gw ip_options=5                 cli send ipopt $RAW4 --count 5"
	"ipv6_extension_header  gw ip_options=5                 cli send v6hbh $RAW6 --count 5"
	"no_sni                 gw no_sni=3,refused_alert=3     cli send hello-nosni --dst $VIP4 --count 3"
	"bad_name               gw bad_name=3,refused_alert=3   cli send hello-name --name bad_name.veil.test --dst $VIP6 --count 3"
	"no_route               gw no_route=3,refused_alert=3   cli send hello-name --name nope.veil.test --dst $VIP4 --count 3"
	"not_tls                gw parse_error=3                cli send nottls --dst $VIP4 --count 3"
	"reassembly_overflow    gw asm_overflow>=1              cli $BUILD/veil-hellogen --connect $VIP4:443 --name vm1.veil.test --size 12000 --mss 300 --count 1 --timeout-ms 1500"
	"return_no_flow         gw ret_no_flow=5                n1  send gnv-noflow $TO_GW --count 5"
	"node_no_conn           n1 no_conn=5,reset_sent=5       n2  send gnv-noconn $TO_N1 --count 5"
	"node_handoff_no_vm     n1 handoff_no_vm=5,reset_sent=5 n2  send gnv-novm $TO_N1 --count 5"
	"node_bad_geneve_option n1 mesh_malformed=5             n2  send gnv-badopt $TO_N1 --count 5"
)
if want drop; then
	printf '%s\n' "${DROPS[@]}" | python3 tests/rel_send.py table --ns-prefix "$P" --veilctl "$BUILD/veilctl" --pin "$PIN"
fi

# ---------- refusal: the client sees it, and nothing is left open ----------
# The client's sockets on PORT that are not closed (TIME-WAIT is closed).
left_open() { nsx cli ss -tanH "( sport = :$1 )" | grep -v TIME-WAIT; }
refusal() { # mode(alert|rst) family shape-name shape-args...
	local mode=$1 fam=$2 sh=$3; shift 3
	local t="refusal_${mode}_v${fam}_$sh" port=443 out lport how left ms g0 g1
	[ "$mode" = rst ] && port=$RST_PORT
	stats gw >"$DIR/g0.json"
	out=$(hg --connect "$(vip "$fam"):$port" --name nope.veil.test --count 1 --timeout-ms 3000 "$@" 2>&1)
	lport=$(echo "$out" | grep -o 'port [0-9]*' | head -1 | cut -d' ' -f2)
	how=$(echo "$out" | grep -o 'FAILED .*(ttfb' | sed 's/ (ttfb//; s/^FAILED //')
	if [ "$mode" = alert ]; then
		echo "$how" | grep -q "unrecognized name" || { fail "$t" "client saw '$how', not the alert"; return; }
	else
		echo "$how" | grep -qi "reset" || { fail "$t" "client saw '$how', not a reset"; return; }
	fi
	[ -n "$lport" ] && [ "$lport" != 0 ] || { fail "$t" "no local port: $out"; return; }
	left=$(left_open "$lport")
	for ms in 0 100 200 300 400 500 600 700 800 900 1000; do
		[ -z "$left" ] && break
		sleep 0.1
		left=$(left_open "$lport")
	done
	stats gw >"$DIR/g1.json"
	local flows
	flows=$("$BUILD/veilctl" -p "$PIN/gw" -j flows | grep -o "\"client_port\": $lport," | wc -l)
	if [ -z "$left" ] && [ "$flows" = 0 ]; then
		pass "$t (${how#handshake: }; no socket left after ${ms} ms; gateway: $(deltas "$DIR/g0.json" "$DIR/g1.json"))"
	else
		fail "$t" "${how#handshake: }; after 1 s the client still holds [$(echo "$left" | awk '{print $1, $4, "->", $5, "send-q", $3}' | paste -sd';')], gateway flows for port $lport: $flows; gateway counters: $(deltas "$DIR/g0.json" "$DIR/g1.json")"
	fi
}
if want refusal; then
	for mode in alert rst; do
		if [ "$mode" = rst ] && [ "$RST_VIP" = 0 ]; then
			skip refusal_rst "could not add an RST VIP by reload: $(grep event=reload "$DIR/gw.log" | tail -1)"
			continue
		fi
		for fam in 4 6; do
			refusal $mode $fam 500 --size 500
			refusal $mode $fam 1900_sni_first --size 1900 --order sni-first
			refusal $mode $fam 1900_sni_last --size 1900 --order sni-last
		done
	done
fi

# ---------- port reuse: one client port, the client closing first ----------
port_reuse() { # family count port shape-args...
	local fam=$1 n=$2 lport=$3; shift 3
	local t="port_reuse_v$fam" vm=vm1 out sum first
	[ "$fam" = 6 ] && vm=vm3
	stats gw >"$DIR/g0.json"; stats n1 >"$DIR/a0.json"; stats n2 >"$DIR/b0.json"
	out=$(hg --connect "$(vip "$fam"):443" --name $vm.veil.test --count "$n" --bind-port "$lport" --close client \
		--path /rel.bin --expect-sha256 "$SUM" --deadline-ms 5000 --timeout-ms 3000 --max-fails 10 --quiet "$@" 2>&1)
	stats gw >"$DIR/g1.json"; stats n1 >"$DIR/a1.json"; stats n2 >"$DIR/b1.json"
	sum=$(echo "$out" | grep '^summary:')
	local tried failed
	tried=$(echo "$sum" | grep -o 'tried=[0-9]*' | cut -d= -f2)
	failed=$(echo "$sum" | grep -o 'failed=[0-9]*' | cut -d= -f2)
	if [ "$failed" = 0 ] && [ "$tried" = "$n" ]; then
		pass "$t ($n/$n from port $lport, $*; total p50 $(echo "$sum" | grep -o 'total_p50_ms=[0-9.]*' | cut -d= -f2) ms)"
	else
		first=$(echo "$out" | grep -m3 FAILED | sed 's/ hello [0-9]* bytes in [0-9]* record(s)://; s/ (ttfb [^,]*,/ (/' | paste -sd';')
		fail "$t" "$((tried - failed))/$n succeeded from port $lport ($*), stopped after $failed failures: $first; client sockets now: [$(nsx cli ss -tanH "( sport = :$lport )" | awk '{print $1}' | paste -sd,)]; gateway: $(deltas "$DIR/g0.json" "$DIR/g1.json"); $([ $vm = vm3 ] && echo node2: $(deltas "$DIR/b0.json" "$DIR/b1.json") || echo node1: $(deltas "$DIR/a0.json" "$DIR/a1.json"))"
	fi
}
if want port_reuse; then
	tw=$(nsx cli sysctl -n net.ipv4.tcp_max_tw_buckets)
	nsx cli sysctl -qw net.ipv4.tcp_max_tw_buckets=0
	port_reuse 4 "$REUSE" 20000 --size 500
	port_reuse 6 $((REUSE / 4)) 20001 --size 1900 --order sni-last
	nsx cli sysctl -qw net.ipv4.tcp_max_tw_buckets="$tw"
fi

# ---------- a client RST: the VM's TCP judges it ----------
# (tests/rel_rst.py) near: a RST inside the VM's window but not at its
# RCV.NXT, which the VM refuses (RFC 5961): the connection goes on, the
# second request on it served; exact: the RST at the client's sequence,
# which the VM takes: the next request ends in a reset, not a hang.
# tests/rel_rst.py's case $2 over family $1 (IPv4 to vm1 on n1, IPv6 to
# vm3 on n2): its output in out, its exit status returned
rst_node() { [ "$1" = 6 ] && echo n2 || echo n1; }
rst_run() { # family case
	local vip=$VIP4 vm=vm1
	[ "$1" = 6 ] && { vip=$VIP6; vm=vm3; }
	out=$(nsx cli python3 tests/rel_rst.py --case "$2" --vip "$vip" --name $vm.veil.test \
		--cafile "$DIR/pki/ca.pem" --iface cli-gw --dst-mac "$GWMAC" --path /rel.bin --sha256 "$SUM" 2>&1)
}
rst_case() { # family near|exact
	local kind=$2 t="rst_$2_v$1" out rc d w miss="" nd
	nd=$(rst_node "$1")
	stats gw >"$DIR/g0.json"; stats $nd >"$DIR/a0.json"
	rst_run "$1" "$kind"
	rc=$?
	stats gw >"$DIR/g1.json"; stats $nd >"$DIR/a1.json"
	d="gateway: $(deltas "$DIR/g0.json" "$DIR/g1.json"); $nd: $(deltas "$DIR/a0.json" "$DIR/a1.json")"
	# near: forwarded unmarked (rst_near), kept at the node (client_rst);
	# exact: the flow marked (flow_reset), then the VM's RST (conn_reset)
	local want=("rst_near +1" "client_rst +1")
	[ "$kind" = exact ] && want=("flow_reset +[0-9]" "client_rst +1" "conn_reset +1")
	for w in "${want[@]}"; do
		echo "$d" | grep -q "$w\([^0-9]\|\$\)" || miss="$miss $w"
	done
	if [ $rc = 0 ] && [ -z "$miss" ]; then
		pass "$t ($(echo "$out" | tail -1); $d)"
	else
		fail "$t" "$(echo "$out" | tail -2 | paste -sd' ')${miss:+; counters missing:$miss}; $d"
	fi
}
# taken: the RST the VM takes, then the client's abort and silence: the
# sweeps (two passes 5 s apart) retire the gateway's flow and the node's
# connection, as they do a closed one's
# trail: the same after 100 bytes the VM dropped (a wrong checksum): the
# RST at the VM's last ACK, not at cli_nxt, is the one it takes
rst_taken() { # family [taken|trail]
	local kind=${2:-taken} cli=198.18.0.2 out port gone="" nd
	local t="rst_${kind}_v$1"
	nd=$(rst_node "$1")
	[ "$1" = 6 ] && cli=2001:db8::2
	rst_run "$1" "$kind" || { fail "$t" "$(echo "$out" | tail -2 | paste -sd' ')"; return; }
	port=$(echo "$out" | awk '/^port / {print $2}')
	local t0=$SECONDS gw nd_n
	held() { # how many entries the gateway ($1=gw) or the node holds for port
		if [ "$1" = gw ]; then
			"$BUILD/veilctl" -p "$PIN/gw" -j flows --client "$cli" | grep -c "\"client_port\": $port,"
		else
			"$BUILD/veilctl" -p "$PIN/$nd" -j conns | grep -c "\"client_port\": $port,"
		fi
	}
	fin_of() { # the fin state veilctl shows for port's entry at the gateway ($1=gw) or the node
		if [ "$1" = gw ]; then
			"$BUILD/veilctl" -p "$PIN/gw" -j flows --client "$cli"
		else
			"$BUILD/veilctl" -p "$PIN/$nd" -j conns
		fi | grep -o "\"client_port\": $port,[^}]*" | grep -o '"fin": "[a-z_]*"' | cut -d'"' -f4 | paste -sd,
	}
	# still there at first, marked (the sweep wants two passes 5 s apart):
	# the lookups below see them
	gw=$(held gw); nd_n=$(held node)
	local gf nf
	gf=$(fin_of gw); nf=$(fin_of node)
	if [ "$gw" != 1 ] || [ "$nd_n" != 1 ] || [ "$gf" != reset ] || [ "$nf" != reset ]; then
		fail "$t" "port $port: right after the RST the gateway holds $gw flow(s) (fin ${gf:-none}), $nd $nd_n connection(s) (fin ${nf:-none}), not 1 and 1, reset"
		return
	fi
	for _ in $(seq 40); do
		gw=$(held gw); nd_n=$(held node)
		[ "$gw" = 0 ] && [ "$nd_n" = 0 ] && { gone=1; break; }
		sleep 0.5
	done
	[ -n "$gone" ] && pass "$t (port $port: the gateway's flow and $nd's connection retired $((SECONDS - t0)) s after the client's RST)" ||
		fail "$t" "port $port after $((SECONDS - t0)) s: the gateway holds $gw flow(s), $nd $nd_n connection(s)"
}
if want rst; then
	rst_case 4 near
	rst_case 6 near
	rst_case 4 exact
	rst_case 6 exact
	rst_taken 4
	rst_taken 6
	rst_taken 4 trail
	rst_taken 6 trail
fi

# ---------- a held hello's copy lost, and a copy lost on the mesh ----------
# The gateway keeps a hello it reassembled until the VM acknowledges it all,
# for a copy lost on the mesh (docs/reassembly.md). Here the mesh loses one
# (the switch drops the Nth Geneve frame over 700 bytes) and the gateway
# loses its own before the client retransmits (hello_asm emptied, as newer
# hellos evicting it would leave it; the client's retransmissions held back
# until then). first: the hello's first segment of two lost; mid: the
# second of three. Either way the VM's ACKs stay below the hello's end.
# Nobody has those bytes (the client had the gateway's ACK): the connection
# must end in a reset (held_lost_reset) within seconds, not hang until the
# client's deadline. silent: nothing lost on the mesh, but the VM answers
# no SYN (its namespace drops them), so it never speaks: the client's
# retransmissions are counted instead, and the reset comes later.
held_lost() { # family first|mid|silent
	local fam=$1 kind=$2 t="held_lost_$2_v$1" vm=vm1 nd=n1 mss=1200 segs=2 nth=0 out rc d r0 r1 pid emptied t0
	[ "$fam" = 6 ] && { vm=vm3; nd=n2; }
	[ "$kind" = mid ] && { mss=700; segs=3; nth=1; }
	[ "$kind" = silent ] && nth=1000000   # never
	nsx sw nft -f - <<EOF
table bridge veil_rel_held {
	chain f { type filter hook forward priority 0; udp dport 6081 meta length > 700 numgen inc mod 2000000 $nth counter drop; }
}
EOF
	[ "$kind" = silent ] && nsx $vm nft -f - <<EOF
table inet veil_rel_held {
	chain in { type filter hook input priority 0; tcp dport 443 tcp flags & (syn | ack) == syn counter drop; }
}
EOF
	nsx cli nft -f - <<EOF
table inet veil_rel_held {
	chain out { type filter hook output priority 0; tcp dport 443 meta length > 200 limit rate over 1/hour burst $segs packets counter drop; }
}
EOF
	stats gw >"$DIR/g0.json"; stats $nd >"$DIR/a0.json"
	r0=$(grep '^asm_routed:' "$DIR/g0.json" | cut -d: -f2)
	t0=$(date +%s%N)
	hg --connect "$(vip "$fam"):443" --name $vm.veil.test --count 1 --size 1900 --order sni-last --mss $mss \
		--path /rel.bin --timeout-ms 20000 --deadline-ms 20000 >"$DIR/held.out" 2>&1 &
	pid=$!
	bg_pids+=($pid)
	for _ in $(seq 100); do
		r1=$(stats gw | grep '^asm_routed:' | cut -d: -f2)
		[ "${r1:-0}" -gt "${r0:-0}" ] && break
		sleep 0.05
	done
	emptied=$("$BUILD/tests/mapcount" --empty "$PIN/gw/hello_asm")
	nsx cli nft delete table inet veil_rel_held
	wait $pid
	rc=$?
	bg_pids=()
	local ms=$((($(date +%s%N) - t0) / 1000000)) lost
	lost=$(nsx sw nft list table bridge veil_rel_held | grep -o 'packets [0-9]*' | awk '{print $2}')
	nsx sw nft delete table bridge veil_rel_held
	[ "$kind" = silent ] && nsx $vm nft delete table inet veil_rel_held
	stats gw >"$DIR/g1.json"; stats $nd >"$DIR/a1.json"
	d="gateway: $(deltas "$DIR/g0.json" "$DIR/g1.json"); $nd: $(deltas "$DIR/a0.json" "$DIR/a1.json")"
	out=$(grep -m1 '^conn ' "$DIR/held.out")
	if [ "$rc" != 0 ] && echo "$out" | grep -q "reset by peer" && echo "$d" | grep -q "held_lost +1[^0-9]" &&
		echo "$d" | grep -q "held_lost_reset +1\([^0-9]\|\$\)"; then
		pass "$t (reset after ${ms} ms; the mesh lost $lost, the gateway's table held $emptied; $d)"
	else
		fail "$t" "after ${ms} ms, exit $rc: ${out:-$(tail -2 "$DIR/held.out" | paste -sd' ')}; the mesh lost ${lost:-?}, the gateway's table held ${emptied:-?}; $d"
	fi
}
if want held_lost; then
	held_lost 4 first
	held_lost 6 first
	held_lost 4 mid
	held_lost 6 mid
	held_lost 4 silent
	held_lost 6 silent
fi

# ---------- 1% loss on every link, thousands of connections ----------
LOSS_LINKS=${REL_LOSS_LINKS:-client mesh vm}   # fewer, to find which link's loss hurts
LOSS_NS=()
[[ $LOSS_LINKS == *client* ]] && LOSS_NS+=(cli)
[[ $LOSS_LINKS == *vm* ]] && LOSS_NS+=(vm1 vm2 vm3)
loss_on() {
	# client and VM ends: their own input and output (frames the gateway's
	# and the nodes' XDP send reach the client and the VMs through the stack)
	for n in "${LOSS_NS[@]}"; do
		nsx "$n" nft -f - <<'EOF'
table inet veil_rel_loss {
	chain in { type filter hook input priority 0; meta l4proto tcp numgen random mod 100 < 1 counter drop; }
	chain out { type filter hook output priority 0; meta l4proto tcp numgen random mod 100 < 1 counter drop; }
}
EOF
	done
	# gateway <-> nodes: the switch's bridge, every Geneve frame either way
	# (the gateway's XDP output never meets its own namespace's netfilter)
	[[ $LOSS_LINKS == *mesh* ]] || return 0
	nsx sw nft -f - <<'EOF'
table bridge veil_rel_loss {
	chain mesh_loss { type filter hook forward priority 0; udp dport 6081 numgen random mod 100 < 1 counter drop; }
}
EOF
}
loss_off() {
	for n in "${LOSS_NS[@]}"; do nsx "$n" nft delete table inet veil_rel_loss 2>/dev/null; done
	nsx sw nft delete table bridge veil_rel_loss 2>/dev/null
}
dropped() { # namespaces... -> packets dropped by the loss rules
	local n s=0
	for n in "$@"; do
		s=$((s + $(nsx "$n" nft list ruleset 2>/dev/null | grep -A3 veil_rel_loss | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}')))
	done
	echo $s
}

# CONNS connections in WORKERS parallel clients: a fifth IPv6, the VMs in turn
load() { # name size
	local t=$1 size=$2 w per fam vm pids=() start=$SECONDS
	per=$((CONNS / WORKERS))
	stats gw >"$DIR/g0.json"; stats n1 >"$DIR/a0.json"; stats n2 >"$DIR/b0.json"
	local d0 m0 v0
	d0=$(dropped cli); m0=$(dropped sw); v0=$(dropped vm1 vm2 vm3)
	rm -f "$DIR"/load.*
	for w in $(seq 0 $((WORKERS - 1))); do
		local n=$per
		[ "$w" = 0 ] && n=$((per + CONNS - per * WORKERS))
		fam=4; [ $((w % 5)) = 4 ] && fam=6
		vm=vm$((w % 3 + 1))
		timeout 300 ip netns exec "$P-cli" "$BUILD/veil-hellogen" --cafile "$DIR/pki/ca.pem" \
			--connect "$(vip $fam):443" --name $vm.veil.test --count "$n" --size "$size" --order sni-last \
			--path /rel.bin --expect-sha256 "$SUM" --deadline-ms "$DEADLINE_MS" --timeout-ms "$DEADLINE_MS" \
			>"$DIR/load.$w.v$fam" 2>&1 &
		pids+=($!)
		bg_pids+=($!)
	done
	wait "${pids[@]}"
	bg_pids=()
	stats gw >"$DIR/g1.json"; stats n1 >"$DIR/a1.json"; stats n2 >"$DIR/b1.json"
	local dc dm dv
	dc=$(($(dropped cli) - d0)); dm=$(($(dropped sw) - m0)); dv=$(($(dropped vm1 vm2 vm3) - v0))
	cat "$DIR"/load.* >"$BUILD/tests/logs/rel-$t.log"
	# where the hung connections stand at the gateway and the nodes
	"$BUILD/veilctl" -p "$PIN/gw" -j flows >"$DIR/flows.json" 2>/dev/null
	for n in n1 n2; do "$BUILD/veilctl" -p "$PIN/$n" -j conns >"$DIR/conns.$n.json" 2>/dev/null; done
	python3 - "$t" "$CONNS" "$DIR" "$((SECONDS - start))" "$dc" "$dm" "$dv" "$DEADLINE_MS" \
		"$(deltas "$DIR/g0.json" "$DIR/g1.json")" "$(deltas "$DIR/a0.json" "$DIR/a1.json")" \
		"$(deltas "$DIR/b0.json" "$DIR/b1.json")" <<'EOF'
import glob, json, re, sys
t, want, d, secs, dc, dm, dv, dl, gw, n1, n2 = sys.argv[1:]
want = int(want)
ok, bad, fam = [], [], {"v4": 0, "v6": 0}
for f in sorted(glob.glob(d + "/load.*")):
    for line in open(f):
        m = re.match(r"conn (\d+): port (\d+) .*?: (ok|FAILED )(.*) \(ttfb [0-9.]+ ms, total ([0-9.]+) ms", line)
        if not m:
            continue
        if m.group(3) == "ok":
            ok.append(float(m.group(5)))
            fam[f[-2:]] += 1
        else:
            bad.append((f.split("load.")[1], m.group(2), m.group(4).strip(), float(m.group(5))))
ok.sort()
def jload(f):
    try:
        return json.load(open(f))
    except Exception:
        return []
flows, conns = jload(d + "/flows.json"), jload(d + "/conns.n1.json") + jload(d + "/conns.n2.json")
def where(w, port):
    v6 = w.endswith("v6")
    mine = lambda e: e["client_port"] == int(port) and (":" in e["client"]) == v6
    f = [e for e in flows if mine(e)]
    c = [e for e in conns if mine(e)]
    return (f"gw flow {'to vm ' + str(f[0]['vm_id']) if f else 'none'}, "
            f"node conn {c[0].get('state', '?') if c else 'none'}")
def ms(x):
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.1f} ms"
tim = f"p50 {ms(ok[len(ok) // 2])} p99 {ms(ok[len(ok) * 99 // 100])} max {ms(ok[-1])}" if ok else "no connection completed"
hung = [b for b in bad if "deadline" in b[2] or "Resource temporarily" in b[2]]
corrupt = [b for b in bad if "body" in b[2]]
other = [b for b in bad if b not in hung and b not in corrupt]
missing = want - len(ok) - len(bad)
info = (f"{len(ok)}/{want} intact (IPv4 {fam['v4']}, IPv6 {fam['v6']}), {tim}; {secs} s; "
        f"loss dropped {dc} client-link, {dm} mesh, {dv} VM-link packets; gateway: {gw}; node1: {n1}; node2: {n2}")
if len(ok) == want:
    print(f"PASS {t}: {info}")
else:
    ex = "; ".join(f"[worker {w} port {p}: {r} after {ms(x)}; {where(w, p)}]" for w, p, r, x in (hung + corrupt + other)[:4])
    print(f"FAIL {t}: {len(hung)} hung (not done within {int(dl) // 1000} s), {len(corrupt)} payloads not intact, "
          f"{len(other)} other failures, {missing} never run; {info}; e.g. {ex}")
EOF
}
if want loss; then
	loss_on
	load loss_1900 1900
	load loss_500 500
	loss_off
fi
exit 0
