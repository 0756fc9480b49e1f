#!/usr/bin/env bash
# `make demo`: the whole documented flow on this machine (issue 17, README
# "What make demo shows").  Everything runs in network namespaces this script
# makes and removes:
#
#   core (198.19.0.100): nats-server (JetStream), veil-controller (API), veil-registry
#         worker + serve, three veil-validators, veil-dns (fed from the store; also 198.18.3.1)
#   gw1, gw2: veil-gw (XDP) fed from the store, VIPs 198.18.100.1 / 198.18.100.2
#   n1, n2: veil-node (transport) + veil-agent (store mode, libvirt/qemu TCG, OVMF + vTPM)
#   sw: the underlay bridge 198.19.0.0/24;  cli: the client (curl, kdig)
#
# Three orders are placed with curl through the controller's API (one carries an
# SSH key, all a hostname, that the registry writes into the encrypted disk); the
# registry builds, the nodes launch, the VMs attest to the validators, unlock and
# serve TLS; the controller writes routes and DNS records; the client resolves each
# name through veil-dns and fetches each page through a gateway.  Then one order is
# cancelled and its name leaves DNS and the gateways.  Stage times are printed.
#   tools/demo-flow.sh            KEEP=1 keeps the work folder (never domains/namespaces)
#   VEIL_DEMO_VMS=1 tools/demo-flow.sh   one order only (tests/run.sh demo)
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-$TOP/build}
BUILD=$(cd "$BUILD" && pwd)
ID=${VEIL_DEMO_ID:-$$}
P="vdf$ID"
DIR=$(mktemp -d /tmp/veil-demo-XXXXXX)
chmod 755 "$DIR"
PIN=/sys/fs/bpf/$P
CACHE=${VEIL_LAUNCH_CACHE:-/tmp/veilmesh-launch-cache}
KVER=${VEIL_KVER:-$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')}
NVMS=${VEIL_DEMO_VMS:-3}
CORE=198.19.0.100
VIP1=198.18.100.1 VIP2=198.18.100.2
DNSIP=198.18.3.1
API=https://$CORE:8400
NATS=nats://$CORE:4222
V="virsh -q -c qemu:///system"
pids=() started_libvirt=()
T0=$(date +%s.%N)
FAILED=0

say() { printf '%s\n' "$*"; }
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b - a}'; }
stage() { printf '[%s s] %s\n' "$(el)" "$*"; }
die() { say "demo: FAILED: $*"; FAILED=1; exit 1; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
inn() { local n=$1; shift; nsenter --net="/run/netns/$P-$n" "$@"; }

cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for d in $($V list --all --name 2>/dev/null | grep "^$P-"); do
		$V destroy "$d" >/dev/null 2>&1
		$V undefine --nvram --tpm "$d" >/dev/null 2>&1 || $V undefine "$d" >/dev/null 2>&1
	done
	for t in $(cat "$DIR"/agent-n*.log 2>/dev/null | grep -o 'tap=vt[0-9a-f]*' | cut -d= -f2 | sort -u); do
		ip link del "$t" 2>/dev/null
	done
	for n in cli sw core gw1 gw2 n1 n2; do
		ip netns pids "$P-$n" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$P-$n" 2>/dev/null
	done
	rm -rf "$PIN"
	# the daemons we started, stopped and waited for: the next suite must not
	# find a virtlogd or libvirtd that is still going away
	for p in "${started_libvirt[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${started_libvirt[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
	if [ -n "${KEEP:-}" ] || [ "$FAILED" = 1 ]; then say "demo: files (logs, consoles) kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'FAILED=1; exit 1' INT TERM

for c in nats-server virsh swtpm swtpm_setup tpm2_getcap cryptsetup kdig curl jq openssl python3; do
	command -v "$c" >/dev/null || die "$c is missing (tools/deps.sh test installs it)"
done
for f in veil-controller veil-registry veil-validator veil-attest veil-agent veil-node veil-gw veil-dns veilctl lab_pass.bpf.o; do
	[ -e "$BUILD/$f" ] || die "$BUILD/$f is not built (make)"
done
[ -e "/boot/vmlinuz-$KVER" ] || die "no kernel $KVER for the VMs (linux-image-amd64)"
# PCR 0 and 7 of this firmware build, from the reference boot tests/launch.sh caches
REFPCR=$(ls -t "$CACHE"/pcrs-* 2>/dev/null | head -1)
if [ ! -s "$REFPCR" ]; then   # a fresh machine: make the reference boot once (tests/launch.sh caches it)
	echo "demo: no reference boot of this OVMF cached in $CACHE: running tests/launch.sh once to record PCR 0 and 7 (a few minutes)"
	BUILD="$BUILD" VEIL_LAUNCH_CACHE="$CACHE" "$TOP/tests/launch.sh" > "$CACHE.first-launch.log" 2>&1 ||
		echo "demo: tests/launch.sh reported failures (log: $CACHE.first-launch.log)"
	REFPCR=$(ls -t "$CACHE"/pcrs-* 2>/dev/null | head -1)
fi
[ -s "$REFPCR" ] || die "no reference boot cached in $CACHE (tests/launch.sh records PCR 0 and 7 of this OVMF; log: $CACHE.first-launch.log)"
PCR0=$(awk '$1 == 0 {print $2}' "$REFPCR") PCR7=$(awk '$1 == 7 {print $2}' "$REFPCR")

# libvirt: the running one, or ours
if ! pgrep -x virtlogd >/dev/null; then virtlogd -d && started_libvirt+=("$(pgrep -nx virtlogd)"); fi
if ! pgrep -x libvirtd >/dev/null; then libvirtd -d && sleep 1 && started_libvirt+=("$(pgrep -nx libvirtd)"); fi
for _ in $(seq 50); do $V version >/dev/null 2>&1 && break; sleep 0.2; done
LVPID=$(pgrep -nx libvirtd) || die "libvirtd is not running"

# ---------- the node's vTPM, manufactured with an EK certificate from "the vendor" (cached, as tests/launch.sh) ----------
TPMC=$(tools/vtpm-manufacture.sh "$CACHE/tpm-ek") || die "cannot manufacture the vTPM"
# ---------- each node's own TPM, certified by the same vendor (cached: made once, as hardware is) ----------
declare -A TPMN regp
for n in 1 2; do
	TPMN[$n]=$(tools/vtpm-manufacture.sh "$CACHE/tpm-node$n" "$TPMC") || die "cannot manufacture node$n's TPM"
done

# ---------- keys and certificates ----------
stage "setup: keys, namespaces, daemons"
cd "$DIR" || exit 1
umask 077
for k in ctl reg; do
	openssl genpkey -algorithm ed25519 -out $k.key 2>/dev/null && openssl pkey -in $k.key -pubout -out $k.pub 2>/dev/null
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=demo validators CA" \
	-keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=demo VM CA" \
	-keyout vmca.key -out vmca.pem 2>/dev/null
tlscert() { # name
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" -keyout "$1.tls.key" -out "$1.csr" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile <(echo "subjectAltName=IP:$CORE") -out "$1.crt" 2>/dev/null
}
for i in 1 2 3; do
	tlscert v$i
	openssl genpkey -algorithm ed25519 -out v$i.sign.key 2>/dev/null
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > v$i.storage
	mkdir -p state-v$i
	printf 'id v%s\nlisten %s:%s\ncert %s/v%s.crt\nkey %s/v%s.tls.key\nsigning_key %s/v%s.sign.key\nstorage_key_file %s/v%s.storage\nstate_dir %s/state-v%s\nregistry_pub %s/reg.pub\nek_ca %s\nworkers 1\n' \
		$i $CORE $((8440 + i)) "$DIR" $i "$DIR" $i "$DIR" $i "$DIR" $i "$DIR" $i "$DIR" "$TPMC/vendor.pem" > v$i.conf
done
tlscert serve
tlscert api
openssl rand -hex 24 > admin.token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > cookie.key
# the user's SSH key (the demo's own, thrown away at the end)
ssh-keygen -q -t ed25519 -N '' -C "demo-user@veil.test" -f user_ssh >/dev/null 2>&1 ||
	die "ssh-keygen failed"
umask 022
cd "$TOP" || exit 1

# ---------- the network (ip -n / nsenter: no mount namespace per command) ----------
for n in cli sw core gw1 gw2 n1 n2; do ip netns add "$P-$n" || die "cannot create netns $P-$n"; ip -n "$P-$n" link set lo up; done
for n in gw1 gw2 n1 n2 core; do
	inn $n sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.all.accept_dad=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
done
veth() { # NS1 IF1 NS2 IF2
	ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
	inn "$1" ethtool -K "$2" tx off >/dev/null 2>&1; inn "$3" ethtool -K "$4" tx off >/dev/null 2>&1
	ip -n "$P-$1" link set "$2" up; ip -n "$P-$3" link set "$4" up
}
xdp_pass() { ip -n "$P-$1" link set dev "$2" xdp obj "$BUILD/lab_pass.bpf.o" sec xdp; }
ip -n "$P-sw" link add br0 type bridge && ip -n "$P-sw" link set br0 up
for n in core gw1 gw2 n1 n2; do veth $n $n-u sw sw-$n; ip -n "$P-sw" link set sw-$n master br0; done
ip -n "$P-core" addr add $CORE/24 dev core-u
ip -n "$P-gw1" addr add 198.19.0.1/24 dev gw1-u
ip -n "$P-gw2" addr add 198.19.0.2/24 dev gw2-u
ip -n "$P-n1" addr add 198.19.0.11/24 dev n1-u
ip -n "$P-n2" addr add 198.19.0.12/24 dev n2-u
veth cli cli-g1 gw1 gw1-c
veth cli cli-g2 gw2 gw2-c
veth cli cli-core core core-c
ip -n "$P-cli" addr add 198.18.1.2/24 dev cli-g1; ip -n "$P-gw1" addr add 198.18.1.1/24 dev gw1-c
ip -n "$P-cli" addr add 198.18.2.2/24 dev cli-g2; ip -n "$P-gw2" addr add 198.18.2.1/24 dev gw2-c
ip -n "$P-cli" addr add 198.18.3.2/24 dev cli-core; ip -n "$P-core" addr add $DNSIP/24 dev core-c
ip -n "$P-cli" route add $VIP1/32 via 198.18.1.1
ip -n "$P-cli" route add $VIP2/32 via 198.18.2.1
# ends that receive frames from XDP_TX / XDP_REDIRECT
for x in "cli cli-g1" "cli cli-g2" "sw sw-gw1" "sw sw-gw2"; do xdp_pass $x; done

stage "network: namespaces, underlay bridge, client links"
# ---------- the control plane in core ----------
inn core nats-server -js -sd "$DIR/nats" -a $CORE -p 4222 >"$DIR/nats.log" 2>&1 &
pids+=($!)
for i in 1 2 3; do
	inn core "$BUILD/veil-validator" -c "$DIR/v$i.conf" 2>>"$DIR/v$i.log" &
	pids+=($!)
done
for _ in $(seq 100); do inn core bash -c "exec 3<>/dev/tcp/$CORE/4222" 2>/dev/null && break; sleep 0.1; done
cat > "$DIR/ctl.conf" <<EOF
# veil-controller for the demo
listen $CORE:8400
cert $DIR/api.crt
key $DIR/api.tls.key
metrics 127.0.0.1:9437
store $NATS
store_replicas 1
signing_key $DIR/ctl.key
registry_pub $DIR/reg.pub
admin_token_file $DIR/admin.token
tpm_vendor_ca $TPMC/vendor.pem
pidfile $DIR/ctl.pid
node_timeout_s 90
schedule_timeout_s 120
state_timeout_s 1200
ready_timeout_s 240
tick_ms 200
validator $CORE:8441
validator $CORE:8442
validator $CORE:8443
validators_t 2
vm_net4 198.18.64.0/24
vm_net6 2001:db8:64::/64
EOF
chmod 600 "$DIR/ctl.key" "$DIR/admin.token"
inn core "$BUILD/veil-controller" --config "$DIR/ctl.conf" 2>>"$DIR/ctl.log" &
pids+=($!)
cat > "$DIR/worker.conf" <<EOF
# veil-registry worker for the demo
store $NATS
controller_pub $DIR/ctl.pub
registry_key $DIR/reg.key
validators_ca $DIR/ca.pem
vm_ca_cert $DIR/vmca.pem
vm_ca_key $DIR/vmca.key
ek_cert $TPMC/ek-rsa2048.crt
ek_ca $TPMC/vendor.pem
kernel /boot/vmlinuz-$KVER
kver $KVER
veil_attest $BUILD/veil-attest
images_dir $TOP/images
cmdline console=ttyS0 loglevel=4 panic=10
pcr0 $PCR0
pcr7 $PCR7
work_dir $DIR/work
publish_dir $DIR/pub
listen $CORE:8470
tls_cert $DIR/serve.crt
tls_key $DIR/serve.tls.key
public_url https://$CORE:8470
disk_mb 64
build_jobs 2
image_cache $CACHE/image-cache
EOF
inn core "$BUILD/veil-registry" worker --config "$DIR/worker.conf" >>"$DIR/worker.log" 2>&1 &
pids+=($!)
cat > "$DIR/dns.conf" <<EOF
# veil-dns for the demo: names from the store, the two gateways from this file
zone veil.test
ns ns1 $DNSIP
listen $DNSIP
answers 1
ttl 5
metrics 127.0.0.1:9433
override 198.18.0.0/15 DE
gateway gw1 DE up $VIP1
gateway gw2 FR up $VIP2
store $NATS
store_pub $DIR/ctl.pub
EOF
inn core "$BUILD/veil-dns" --config "$DIR/dns.conf" >>"$DIR/dns.log" 2>&1 &
pids+=($!)

# ---------- gateways and nodes ----------
for g in 1 2; do
	cat > "$DIR/gw$g.conf" <<EOF
pin_root $PIN/gw$g
client_interface gw$g-c
mesh_interface gw$g-u
underlay4 198.19.0.$g
cookie_secret_file $DIR/cookie.key
control_socket $DIR/gw$g.sock
metrics off
vip $([ $g = 1 ] && echo $VIP1 || echo $VIP2) 443 alert
store $NATS
store_pub $DIR/ctl.pub
EOF
	inn gw$g "$BUILD/veil-gw" --config "$DIR/gw$g.conf" >>"$DIR/gw$g.log" 2>&1 &
	pids+=($!)
done
for n in 1 2; do
	printf 'pin_root %s/n%s\nmesh_interface n%s-u\nunderlay4 198.19.0.1%s\ncontrol_socket %s/n%s.sock\nmetrics off\n' \
		"$PIN" $n $n $n "$DIR" $n > "$DIR/node$n.conf"
	inn n$n "$BUILD/veil-node" --config "$DIR/node$n.conf" >>"$DIR/node$n.log" 2>&1 &
	pids+=($!)
done
for d in gw1 gw2 node1 node2; do
	for _ in $(seq 50); do grep -q "event=started" "$DIR/$d.log" 2>/dev/null && break; sleep 0.1; done
	grep -q "event=started" "$DIR/$d.log" || die "$d did not start: $(tail -3 "$DIR/$d.log")"
done
capi() { # METHOD PATH [JSON] -> body; the operator's token
	inn core curl -sS --max-time 20 --cacert "$DIR/ca.pem" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		-H 'Content-Type: application/json' -X "$1" "$API$2" ${3:+--data "$3"}
}
for _ in $(seq 100); do inn core curl -s --cacert "$DIR/ca.pem" "$API/v1/health" 2>/dev/null | grep -q ok && break; sleep 0.2; done
inn core curl -s --cacert "$DIR/ca.pem" "$API/v1/health" | grep -q ok || die "controller: $(tail -3 "$DIR/ctl.log")"
for _ in $(seq 100); do grep -q "event=started" "$DIR/worker.log" && break; sleep 0.1; done
stage "control plane up: nats-server, veil-controller, registry worker, 3 validators, veil-dns; 2 gateways, 2 nodes"

# ---------- nodes join: veil-agent --register, attested by each node's own TPM ----------
# Each node has its own TPM (swtpm, manufactured once with an EK certificate from the
# same vendor CA as the VMs' vTPM and cached; run on a copy of its state inside the
# node's namespace).  The controller trusts the vendor CA (tpm_vendor_ca): the agent
# registers with a one-time key, the controller checks the EK chain, the AK beside
# the EK by credential activation and a quote over the node's new key.
for n in 1 2; do
	cp -r "${TPMN[$n]}/state" "$DIR/tpm-n$n"
	inn n$n swtpm socket --tpm2 --server type=tcp,port=2321,bindaddr=127.0.0.1 --ctrl type=tcp,port=2322,bindaddr=127.0.0.1 \
		--tpmstate dir="$DIR/tpm-n$n" --flags not-need-init,startup-clear >>"$DIR/swtpm-n$n.log" 2>&1 &
	pids+=($!)
done
for n in 1 2; do
	for _ in $(seq 50); do inn n$n tpm2_getcap -T swtpm:host=127.0.0.1,port=2321 properties-fixed >/dev/null 2>&1 && break; sleep 0.1; done
done
for n in 1 2; do
	key=$(capi POST /v1/regkeys | jq -r .key)
	[ -n "$key" ] && [ "$key" != null ] || die "no registration key from the controller"
	cat > "$DIR/agent-n$n.cfg" <<EOF
node_key: unused-the-regkey-is-given-on-the-command-line
resources:
  cpu: 2
  ram: 1gb
  disk: 4gb
store:
  heartbeat_s: 2
  registry_ca: $DIR/ca.pem
EOF
	chmod 600 "$DIR/agent-n$n.cfg"
	inn n$n "$BUILD/veil-agent" --config "$DIR/agent-n$n.cfg" --image-dir "$DIR" --register "$API" --regkey "$key" \
		--tcti swtpm:host=127.0.0.1,port=2321 --ca "$DIR/ca.pem" --ek-chain "${TPMN[$n]}/ca/issuercert.pem" \
		--underlay 198.19.0.1$n --location DE --name node$n --store "$NATS" --controller-pub "$DIR/ctl.pub" \
		--key-out "$DIR/n$n.node.key" >"$DIR/n$n.id" 2>>"$DIR/register-n$n.log" &
	regp[$n]=$!
done
for n in 1 2; do
	wait "${regp[$n]}" || die "node$n: veil-agent --register failed: $(tail -2 "$DIR/register-n$n.log")"
	nid=$(cat "$DIR/n$n.id")
	[ "$nid" = "$(openssl x509 -inform DER -in "${TPMN[$n]}/ek-rsa2048.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)" ] ||
		die "node$n: id '$nid' is not the sha256 of its EK"
done
stage "nodes registered through TPM attestation (veil-agent --register: EK certificate -> vendor CA, credential activation, quote)"
for n in 1 2; do
	mkdir -p "$DIR/agent-n$n/orders"
	inn n$n "$BUILD/veil-agent" --config "$DIR/agent-n$n.cfg" --spec-dir "$DIR/agent-n$n/orders" \
		--state-dir "$DIR/agent-n$n/vms" --image-dir "$DIR/agent-n$n/cache" --libvirt-netns "/proc/$LVPID/ns/net" \
		--node-config "$DIR/node$n.conf" --node-socket "$DIR/n$n.sock" --name-prefix "$P-" --max-booting 1 \
		--vtpm-state "$TPMC/state/tpm2-00.permall" >>"$DIR/agent-n$n.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 150); do
	[ "$(capi GET /v1/nodes | jq '[.nodes[] | select(.state == "up")] | length')" = 2 ] && break
	sleep 0.2
done
[ "$(capi GET /v1/nodes | jq '[.nodes[] | select(.state == "up")] | length')" = 2 ] ||
	die "nodes not up: $(capi GET /v1/nodes | jq -c '[.nodes[] | {name, state}]'); $(tail -2 "$DIR/agent-n1.log")"
stage "nodes up (heartbeats signed by each node's key): $(capi GET /v1/nodes | jq -r '[.nodes[] | .name + "=" + .id[0:12] + (if .attested then " attested" else " NOT attested" end)] | join(", ")')"
[ "$(capi GET /v1/nodes | jq '[.nodes[] | select(.attested == true)] | length')" = 2 ] || die "a node is up without TPM attestation"
capi GET /v1/images | jq -r '.images[]? | "  image in the catalogue: \(.name)@\(.version) sha256 \(.sha256[0:16])... (\(.maintainer))"'

# ---------- three orders through the API ----------
NAMES=(web1.veil.test web2.veil.test web3.veil.test)
NAMES=("${NAMES[@]:0:$NVMS}")
SSHPUB=$(cat "$DIR/user_ssh.pub")
declare -A OID
TORDER=$(date +%s.%N)
for h in "${NAMES[@]}"; do
	body=$(jq -cn --arg h "$h" --arg k "$SSHPUB" '{image: "nginx@1", hostname: $h, ssh_keys: [$k],
		user_data: "#!/bin/sh\necho first-boot-user-data-ran > /root/hello\n"}')
	r=$(inn core curl -sS --cacert "$DIR/ca.pem" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		-H 'Content-Type: application/json' -H "Idempotency-Key: demo-$ID-$h" -w '\n%{http_code}' -X POST "$API/v1/orders" --data "$body")
	code=${r##*$'\n'}; r=${r%$'\n'*}
	OID[$h]=$(jq -r .id <<<"$r" 2>/dev/null)
	[ "$code" = 201 ] || [ "$code" = 200 ] || die "order $h: HTTP $code $r"
	stage "order accepted: $h -> ${OID[$h]} (HTTP $code, state $(jq -r .state <<<"$r"))"
done
say "  curl --cacert ca.pem -H 'Authorization: Bearer ...' -H 'Idempotency-Key: ...' -X POST $API/v1/orders \\"
say "       --data '{\"image\":\"nginx@1\",\"hostname\":\"${NAMES[0]}\",\"ssh_keys\":[\"$(cut -c1-30 <<<"$SSHPUB")...\"]}'"

# ---------- follow: order states (the controller's event stream per order), routes, DNS ----------
# Each order's state changes arrive on its server-sent event stream (GET /v1/orders/ID/events,
# Accept: text/event-stream) as they happen; routes and DNS are looked at once a name is ready.
dns_a() { nsx cli kdig @$DNSIP +short +time=1 +retry=0 "$1" A 2>/dev/null | head -1; }
routed() { # name gw -> 0 when the gateway's map has it
	"$BUILD/veilctl" --pin-root "$PIN/gw$2" --socket "$DIR/gw$2.sock" routes 2>/dev/null | grep -q "$1"
}
declare -A SEEN ROUTE DNS EVP
events() { # name: (re)open the order's event stream into $DIR/events-NAME (the server replays from the start)
	inn core curl -sSN --cacert "$DIR/ca.pem" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		-H 'Accept: text/event-stream' "$API/v1/orders/${OID[$1]}/events" > "$DIR/events-$1" 2>>"$DIR/events.err" &
	EVP[$1]=$!
	pids+=($!)
}
for h in "${NAMES[@]}"; do events "$h"; done
NODES=$(capi GET /v1/nodes)   # node names for the lines below
END=$(( $(date +%s) + 1500 ))
while [ "$(date +%s)" -lt $END ]; do
	all=1
	for h in "${NAMES[@]}"; do
		for s in $(sed -n 's/^data: *//p' "$DIR/events-$h" 2>/dev/null | jq -r '.state' 2>/dev/null); do
			[ -n "${SEEN[$h.$s]:-}" ] && continue
			SEEN[$h.$s]=1
			case $s in
			requested) ;;
			scheduled) o=$(capi GET "/v1/orders/${OID[$h]}")
				stage "$h scheduled on $(jq -r --arg n "$(jq -r .node <<<"$o")" '.nodes[] | select(.id == $n) | .name' <<<"$NODES") (vm $(jq -r .vm_id <<<"$o"), $(jq -r .addr4 <<<"$o"))" ;;
			building) stage "$h building: the registry builds the encrypted disk and the initrd" ;;
			launching) stage "$h built (disk LUKS2, key split 2 of 3 to the validators); launching on its node" ;;
			attesting) stage "$h launched: VM booting (OVMF + vTPM), attesting to the validators" ;;
			ready) stage "$h ready: attested, disk unlocked, nginx answering TLS" ;;
			failed) o=$(capi GET "/v1/orders/${OID[$h]}"); stage "$h FAILED: $(jq -r .reason <<<"$o")"; die "order $h failed: $(jq -r .reason <<<"$o")" ;;
			*) stage "$h $s" ;;
			esac
		done
		# a stream that ended before the order did is opened again
		if [ -z "${SEEN[$h.closed]:-}" ] && ! kill -0 "${EVP[$h]}" 2>/dev/null; then events "$h"; fi
		if [ -n "${SEEN[$h.ready]:-}" ]; then
			if [ -z "${ROUTE[$h]:-}" ] && routed "$h" 1 && routed "$h" 2; then ROUTE[$h]=1; stage "$h route live on both gateways"; fi
			if [ -z "${DNS[$h]:-}" ] && [ -n "$(dns_a "$h")" ]; then DNS[$h]=1; stage "$h DNS live: $(dns_a "$h")"; fi
		fi
		[ -n "${ROUTE[$h]:-}" ] && [ -n "${DNS[$h]:-}" ] || all=0
	done
	[ $all = 1 ] && break
	sleep 0.3
done
[ $all = 1 ] || die "not every name routed and in DNS after 1500 s"
TALL=$(awk -v a="$TORDER" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
stage "all $NVMS VMs serving: $TALL s from the first order to the last DNS record"

# ---------- the client: resolve through veil-dns, fetch through a gateway ----------
say ""
say "== the client ($P-cli): kdig @$DNSIP NAME, then curl through the gateway it names"
bad=0
for h in "${NAMES[@]}"; do
	a=$(dns_a "$h")
	say "kdig @$DNSIP $h A -> $a"
	page=$(nsx cli curl -sS --max-time 20 --cacert "$DIR/vmca.pem" --resolve "$h:443:$a" "https://$h/" 2>&1)
	say "curl https://$h/ (via $a):"
	sed 's/^/    /' <<<"$page"
	grep -q "veilmesh: $h booted from its encrypted disk" <<<"$page" || bad=1
done
# the other gateway routes the same names
h=${NAMES[0]}
other=$VIP2; [ "$(dns_a "$h")" = "$VIP2" ] && other=$VIP1
page=$(nsx cli curl -sS --max-time 20 --cacert "$DIR/vmca.pem" --resolve "$h:443:$other" "https://$h/" 2>&1 | head -1)
say "curl https://$h/ via the other gateway $other: $page"
grep -q "veilmesh: $h booted" <<<"$page" || bad=1

# ---------- the post-provisioning: hostname and SSH key came through the encrypted disk ----------
say ""
fp_hex=$(awk '{print $2}' "$DIR/user_ssh.pub" | base64 -d | sha256sum | cut -c1-64)
say "== the SSH key ordered: $(ssh-keygen -lf "$DIR/user_ssh.pub") = sha256:$fp_hex"
for h in "${NAMES[@]}"; do
	vm=$(capi GET "/v1/orders/${OID[$h]}" | jq -r .vm_id)
	con=$(ls "$DIR"/agent-n*/vms/"$vm"/console.log 2>/dev/null | head -1)
	say "console of $h ($con):"
	grep -a "veil-os: \(first boot\|ssh key\|booted\)\|veil-attest: unlocked\|veil-init: disk opened" "$con" 2>/dev/null | tr -d '\r' | sed 's/^/    /'
	grep -aq "veil-os: ssh key for root: ssh-ed25519 sha256:$fp_hex" "$con" && grep -aq "first boot: hostname $h" "$con" || bad=1
done
[ $bad = 0 ] || die "a page, the hostname or the key fingerprint is not what was ordered"

# ---------- cancel one order: its name leaves DNS and the gateways ----------
say ""
h=${NAMES[$((NVMS - 1))]}
vm=$(capi GET "/v1/orders/${OID[$h]}" | jq -r .vm_id)
r=$(capi POST "/v1/orders/${OID[$h]}/cancel")
stage "cancel $h (${OID[$h]}): $(jq -r .state <<<"$r" 2>/dev/null)"
gone_dns="" gone_gw=""
for _ in $(seq 120); do
	[ -z "$gone_dns" ] && [ -z "$(dns_a "$h")" ] && gone_dns=1 && stage "$h gone from DNS ($(nsx cli kdig @$DNSIP +time=1 "$h" A 2>/dev/null | awk '/status:/ {sub(",", "", $6); print $6}'))"
	[ -z "$gone_gw" ] && ! routed "$h" 1 && ! routed "$h" 2 && gone_gw=1 && stage "$h route withdrawn from both gateways"
	[ -n "$gone_dns" ] && [ -n "$gone_gw" ] && break
	sleep 0.5
done
out=$(nsx cli curl -sS --max-time 10 --cacert "$DIR/vmca.pem" --resolve "$h:443:$VIP1" "https://$h/" 2>&1 | head -1)
say "curl https://$h/ via $VIP1 now: $out"
for _ in $(seq 60); do
	st=$(capi GET "/v1/orders/${OID[$h]}" | jq -r .state)
	[ "$st" = cancelled ] || [ "$st" = failed ] && break
	sleep 0.5
done
for _ in $(seq 60); do grep -q "event=vm_deleted id=$vm" "$DIR"/agent-n*.log && break; sleep 0.5; done
grep -q "event=vm_deleted id=$vm" "$DIR"/agent-n*.log && stage "$h: VM torn down by its node, order $st" || say "demo: the VM of $h is not deleted yet (order $st)"
[ -n "$gone_dns" ] && [ -n "$gone_gw" ] || die "the cancelled name is still in DNS or a gateway"
for x in "${NAMES[@]:0:$((NVMS - 1))}"; do
	[ -n "$(dns_a "$x")" ] || die "$x left DNS with the cancel of $h"
done

say ""
say "== stages per order (seconds after the order was accepted; from the order's history)"
printf '%-16s' order; for s in scheduled building launching attesting ready; do printf '%10s' "$s"; done; echo
for x in "${NAMES[@]}"; do
	o=$(capi GET "/v1/orders/${OID[$x]}")
	printf '%-16s' "$x"
	for s in scheduled building launching attesting ready; do
		printf '%10s' "$(jq -r --arg s "$s" '(.history[0].ts | sub("\\.[0-9]+"; "") | fromdate) as $t0 |
			[.history[] | select(.state == $s)][0].ts // empty | sub("\\.[0-9]+"; "") | fromdate - $t0' <<<"$o" 2>/dev/null)"
	done
	echo
done
say "whole demo: $(el | tr -d ' ') s"
say "Logs: $DIR ({ctl,worker,v1..3,dns,gw1,gw2,node1,node2,agent-n1,agent-n2}.log; consoles agent-n*/vms/*/console.log)"
KEEP=${KEEP:-}
exit 0
