#!/usr/bin/env bash
# veil-controller against a private nats-server (and a 3-server cluster):
# the daemon conventions, the API checked against docs/api.yaml (tests/ctl_api.py),
# the order flow driven to closed by a TEST DRIVER that plays the node agents
# and the registry through the store (tests/ctl_agents.c, real signed formats),
# a node that dies, and 20 orders placed while the controller is killed and,
# separately, while one server of a 3-server cluster is killed.
# Loopback only; ports below 32768 derived from $$; everything in a temp dir.
set -u
cd "$(dirname "$0")/.."
. tests/lib/ctlkeys.sh
BUILD=${BUILD:-build}
T=$(mktemp -d /tmp/veil-ctl.$$.XXXX)
base=$((10000 + ($$ % 2000) * 10))          # base .. base+9, all below 32768
P_API=$base P_MET=$((base + 1)) P_N1=$((base + 2)) P_N2=$((base + 3)) P_N3=$((base + 4))
P_C1=$((base + 5)) P_C2=$((base + 6)) P_C3=$((base + 7))
CTL=$BUILD/veil-controller AGENTS=$BUILD/tests/ctl_agents
declare -A PID
cleanup() {
	for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null; done
	for k in "${!PID[@]}"; do wait "${PID[$k]}" 2>/dev/null; done
	[ -n "${KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
stop() { # name [signal]
	[ -n "${PID[$1]:-}" ] || return 0
	kill -"${2:-TERM}" "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}

for t in "$CTL" "$AGENTS"; do
	[ -x "$t" ] || { fail "setup: $t is not built"; exit 1; }
done
command -v nats-server >/dev/null || { fail "setup: nats-server missing (tools/deps.sh test)"; exit 1; }

# ---------- keys, certificates, nodes ----------
cd "$T"
umask 077
ctl_keys
cp "$OLDPWD/$AGENTS" ctl_agents
mknode() { # dir name cpu ram_mb disk_gb underlay4 sev
	local d=$1/$2
	mkdir -p "$d"
	openssl genpkey -algorithm ed25519 -out "$d/node.pem" 2>/dev/null
	openssl pkey -in "$d/node.pem" -pubout -outform DER | tail -c 32 | base64 -w0 > "$d/pub.b64"
	openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$d/ek.pem" 2>/dev/null
	openssl pkey -in "$d/ek.pem" -pubout -outform DER > "$d/ek.der"
	base64 -w0 "$d/ek.der" > "$d/ek.b64"
	sha256sum "$d/ek.der" | cut -d' ' -f1 > "$d/id"
	echo "$2" > "$d/name"; echo "$3" > "$d/cpu"; echo "$4" > "$d/ram_mb"; echo "$5" > "$d/disk_gb"
	echo "$6" > "$d/underlay4"; echo "$7" > "$d/sev"
	rm -f "$d/ek.pem" "$d/ek.der"
	mv "$d/node.pem" "$1.$2.pem"   # the key stays out of the folder the client reads
}
nodeargs() { # dir -> --node ID:KEY ...
	for d in "$1"/*; do printf -- '--node %s:%s ' "$(cat "$d/id")" "$PWD/$1.$(basename "$d").pem"; done
}
mknode nodes n1 16 16384 100 198.18.1.1 0
mknode nodes n2 16 16384 100 198.18.1.2 0
mknode nodes n3 16 16384 100 198.18.1.3 1
mknode extra n4 64 65536 800 198.18.1.4 0
cd "$OLDPWD"

writeconf() { # file store replicas
	cat > "$1" <<-EOF
	# veil-controller test config
	listen 127.0.0.1:$P_API
	cert $T/ca.pem
	key $T/tls.key
	metrics 127.0.0.1:$P_MET
	store $2
	store_replicas $3
	signing_key $T/controller.pem
	registry_pub $T/registry.pub.pem
	admin_token_file $T/admin.token
	pidfile $T/ctl.pid
	node_timeout_s 5
	schedule_timeout_s 15
	state_timeout_s 60
	tick_ms 100
	validator 198.18.3.1:8443
	validator 198.18.3.2:8443
	validator 198.18.3.3:8443
	validators_t 2
	vm_net4 198.19.0.0/16
	vm_net6 2001:db8:ee::/64
	EOF
}
start_ctl() { # log
	"$CTL" --config "$T/ctl.conf" 2>>"$1" &
	PID[ctl]=$!
	for _ in $(seq 150); do
		curl -s --cacert "$T/ca.pem" "https://127.0.0.1:$P_API/v1/health" 2>/dev/null | grep -q ok && return 0
		kill -0 "${PID[ctl]}" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}
start_nats() { # name port [cluster args...]
	local n=$1 p=$2
	shift 2
	mkdir -p "$T/js-$n"
	nats-server -js -sd "$T/js-$n" -a 127.0.0.1 -p "$p" "$@" >"$T/nats-$n.log" 2>&1 &
	PID[nats-$n]=$!
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
api() { python3 tests/ctl_api.py "$T" "$@"; }

# ---------- daemon conventions ----------
out=$("$CTL" --help); rc=$?
[ $rc = 0 ] && echo "$out" | grep -q -- "--config" && pass "help_on_stdout_exit_0" || fail "help_on_stdout_exit_0: rc $rc"
STORE1=nats://127.0.0.1:$P_N1
writeconf "$T/ctl.conf" "$STORE1" 1
echo "https://127.0.0.1:$P_API" > "$T/url"; echo "$STORE1" > "$T/store"; echo "http://127.0.0.1:$P_MET/metrics" > "$T/metrics_url"
out=$("$CTL" --config "$T/ctl.conf" --check 2>&1); rc=$?
[ $rc = 0 ] && pass "check_good_config" || fail "check_good_config: rc $rc $out"
{ cat "$T/ctl.conf"; echo "tick_ms fast"; } > "$T/bad.conf"
out=$("$CTL" --config "$T/bad.conf" --check 2>&1); rc=$?
line=$(wc -l < "$T/bad.conf")
[ $rc = 2 ] && echo "$out" | grep -q "bad.conf:$line: 'tick_ms'" && pass "check_bad_config_file_line" ||
	fail "check_bad_config_file_line: rc $rc, $out"
chmod 644 "$T/admin.token"
out=$("$CTL" --config "$T/ctl.conf" --check 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "chmod 600" && pass "check_refuses_readable_secret" || fail "check_refuses_readable_secret: rc $rc $out"
chmod 600 "$T/admin.token"

if [ "${CTL_ONLY:-}" != cluster ]; then
# ---------- one server: the API, the flow, a node that dies, the controller killed ----------
start_nats 1 "$P_N1"
wait_port "$P_N1" || { fail "setup: nats-server on $P_N1 did not start"; cat "$T/nats-1.log"; exit 1; }
if ! start_ctl "$T/ctl.log"; then fail "setup: controller did not start"; tail "$T/ctl.log"; exit 1; fi
[ "$(cat "$T/ctl.pid" 2>/dev/null)" = "${PID[ctl]}" ] && pass "pidfile" || fail "pidfile: $(cat "$T/ctl.pid" 2>/dev/null)"
# shellcheck disable=SC2046
"$AGENTS" --store "$STORE1" --controller-pub "$T/controller.pub.pem" --registry-key "$T/registry.pem" \
	--image nginx@1.25 --image broken@1 --fail-image broken $(cd "$T" && nodeargs nodes) > "$T/agents.log" 2>&1 &
PID[agents]=$!
api api
# a node that dies: its own test-driver process, gone at its third VM spec
# shellcheck disable=SC2046
"$AGENTS" --store "$STORE1" --controller-pub "$T/controller.pub.pem" --registry-key "$T/registry.pem" \
	$(cd "$T" && nodeargs extra) --die "$(cat "$T/extra/n4/id")":3 --no-registry > "$T/agents-n4.log" 2>&1 &
PID[agents4]=$!
api node_death

# metrics, reload
m=$(curl -s "http://127.0.0.1:$P_MET/metrics")
echo "$m" | grep -q '^veil_controller_orders{state="closed"} [1-9]' && echo "$m" | grep -q 'veil_controller_orders_created_total' &&
	pass "metrics" || fail "metrics: $(echo "$m" | head -5)"
sed -i 's/^node_timeout_s 5/node_timeout_s 6/' "$T/ctl.conf"
kill -HUP "${PID[ctl]}"; sleep 0.5
grep -q "event=reloaded node_timeout_s=6" "$T/ctl.log" && pass "sighup_reload" || fail "sighup_reload: $(tail -2 "$T/ctl.log")"
echo "node_timeout_s -1" >> "$T/ctl.conf"
kill -HUP "${PID[ctl]}"; sleep 0.5
grep -q "event=reload_rejected reason=\"$T/ctl.conf:[0-9]*: 'node_timeout_s'" "$T/ctl.log" &&
	curl -s --cacert "$T/ca.pem" "https://127.0.0.1:$P_API/v1/health" | grep -q ok &&
	pass "sighup_bad_config_changes_nothing" || fail "sighup_bad_config_changes_nothing: $(tail -2 "$T/ctl.log")"
sed -i '$d' "$T/ctl.conf"

# kill -9 the controller while 20 orders are being placed; restart it
api place 20 ctlkill > "$T/place-ctlkill.out" 2>&1 &
placer=$!
for _ in $(seq 300); do
	n=$(cat "$T/ctlkill.count" 2>/dev/null | wc -l)
	[ "$n" -ge 6 ] && break
	sleep 0.1
done
stop ctl KILL
killed_at=$n
[ "$n" -ge 1 ] && [ "$n" -lt 20 ] && pass "controller_kill_landed_mid_placement ($n of 20 accepted)" ||
	fail "controller_kill_landed_mid_placement: $n of 20 accepted when killed"
sleep 1
start_ctl "$T/ctl.log" || fail "controller_restart: did not come back"
wait $placer; cat "$T/place-ctlkill.out"
sleep 2; stop ctl KILL; start_ctl "$T/ctl.log" || fail "controller_restart: second restart"   # and once more mid-flow
api settle ctlkill 120
grep -q "event=started .* orders=[1-9]" "$T/ctl.log" && pass "controller_killed_after_${killed_at}_orders_resumed_from_store" ||
	fail "controller_killed_resumed: no restart line"

# secrets never in logs
leak=0
for s in "$(cat "$T/admin.token")" $(cat "$T"/*.token 2>/dev/null); do
	grep -qF -- "$s" "$T/ctl.log" && leak=1
done
grep -q "vreg_" "$T/ctl.log" && leak=1
[ $leak = 0 ] && pass "no_secret_in_logs" || fail "no_secret_in_logs: a token or key is in the controller's log"
stop ctl; stop agents; stop agents4; stop nats-1
fi

# ---------- a 3-server cluster (R3): one server killed while 20 orders are placed ----------
routes="nats://127.0.0.1:$P_C1,nats://127.0.0.1:$P_C2,nats://127.0.0.1:$P_C3"
start_nats c1 "$P_N1" --cluster "nats://127.0.0.1:$P_C1" --routes "$routes" --cluster_name "c$$" -n n1
start_nats c2 "$P_N2" --cluster "nats://127.0.0.1:$P_C2" --routes "$routes" --cluster_name "c$$" -n n2
start_nats c3 "$P_N3" --cluster "nats://127.0.0.1:$P_C3" --routes "$routes" --cluster_name "c$$" -n n3
wait_port "$P_N1" && wait_port "$P_N2" && wait_port "$P_N3" || fail "setup: cluster did not start"
STORE3=nats://127.0.0.1:$P_N1,nats://127.0.0.1:$P_N2,nats://127.0.0.1:$P_N3
echo "$STORE3" > "$T/store"
writeconf "$T/ctl.conf" "$STORE3" 3
ok=0
for _ in $(seq 30); do   # JetStream needs a meta leader first
	start_ctl "$T/ctl3.log" && { ok=1; break; }
	stop ctl; sleep 1
done
[ $ok = 1 ] || { fail "setup: controller on the cluster did not start"; tail "$T/ctl3.log"; exit 1; }
# shellcheck disable=SC2046
"$AGENTS" --store "$STORE3" --controller-pub "$T/controller.pub.pem" --registry-key "$T/registry.pem" \
	--image nginx@1.25 $(cd "$T" && nodeargs nodes) > "$T/agents3.log" 2>&1 &
PID[agents]=$!
python3 - "$T" <<-'EOF'
	import sys; sys.argv = [sys.argv[0], sys.argv[1], "x"]
	sys.path.insert(0, "tests"); import ctl_api as c
	ids = c.register_all(); c.result(c.wait_nodes_up(ids), "cluster_nodes_up", "nodes not up on the cluster")
	EOF
api place 20 natskill > "$T/place-natskill.out" 2>&1 &
placer=$!
for _ in $(seq 300); do
	n=$(cat "$T/natskill.count" 2>/dev/null | wc -l)
	[ "$n" -ge 6 ] && break
	sleep 0.1
done
stop nats-c2 KILL
[ "$n" -ge 1 ] && [ "$n" -lt 20 ] && pass "nats_kill_landed_mid_placement ($n of 20 accepted, server 2 of 3 killed)" ||
	fail "nats_kill_landed_mid_placement: $n of 20 accepted when killed"
wait $placer; cat "$T/place-natskill.out"
api settle natskill 150
exit 0
