#!/usr/bin/env bash
# veil-agent fed from the cluster store (docs/agent.md, docs/store.md): a real
# nats-server (JetStream KV) in the node's namespace, the controller's signed
# order for a real VM (qemu TCG through libvirt, tests/agent-image.sh, cached)
# in bucket vms under <node_id>.<vm_id>; the agent verifies it, runs the VM
# (reached through veil-gw by curl), reports each lifecycle event as a signed
# vmstatus and a signed heartbeat every few seconds; forged, garbled,
# replayed orders and unsigned deletes are refused and counted; an agent that
# was away while the controller deleted the VM removes it when back (and a
# bad order written meanwhile is reported failed with its reason).  One boot.
#   client --- gateway (veil-gw, XDP) --- node (veil-node + veil-agent + nats-server) --- tap --- VM
# Prints PASS/FAIL lines; cleans up namespaces, domains, taps, files and what it started.
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
BUILD=${BUILD:-$TOP/build}
BUILD=$(cd "$BUILD" && pwd)
P="vmas-$$"
DIR=/tmp/$P
PIN=/sys/fs/bpf/$P
VIP4=198.18.100.1
VIP6=2001:db8:100::1
PORT=$((20000 + $$ % 10000))   # inside the node's namespace
URL="nats://127.0.0.1:$PORT"
NODE=node-$$
started_libvirt=()
pids=()

. tests/lib/vmlab.sh
innode() { nsenter --net="/run/netns/$P-node" "$@"; }
sp() { innode "$BUILD/tests/store_put" "$URL" "$@"; }

trap vmlab_cleanup EXIT
trap 'exit 1' INT TERM

command -v nats-server >/dev/null || { failm agentstore_setup "nats-server missing (tools/deps.sh test)"; exit 1; }
vmlab_libvirt || { failm agentstore_setup "libvirtd does not answer"; exit 1; }

mkdir -p "$DIR"
IMG=$(tests/agent-image.sh /tmp/veilmesh-agent-img) || { failm agent_image "could not build the VM image"; exit 1; }
SHA=$(sha256sum "$IMG/disk.raw" | cut -d' ' -f1)

# ---- keys: the controller's, this node's, and someone else's
for k in ctl node evil; do
	openssl genpkey -algorithm ed25519 -out "$DIR/$k.key" 2>/dev/null
	openssl pkey -in "$DIR/$k.key" -pubout -out "$DIR/$k.pub" 2>/dev/null
done

# ---- config: the store section, its errors
cat > "$DIR/agent.cfg" <<EOF
node_key: nk_test_$$_not_for_logs
resources:
  cpu: 2
  ram: 1gb
  disk: 4gb
store:
  urls: $URL
  controller_pub: $DIR/ctl.pub
  node_signing_key: $DIR/node.key
  node_id: $NODE
  heartbeat_s: 2
EOF
printf 'node_key: k\nstore:\n  urls: http://x\n' > "$DIR/bad1.cfg"
printf 'node_key: k\nstore:\n  urls: nats://127.0.0.1:1\n  controller_pub: /x\n' > "$DIR/bad2.cfg"
sed "s|controller_pub: .*|controller_pub: $DIR/nope.pub|" "$DIR/agent.cfg" > "$DIR/bad3.cfg"
o1=$("$BUILD/veil-agent" --config "$DIR/bad1.cfg" --check 2>&1); r1=$?
o2=$("$BUILD/veil-agent" --config "$DIR/bad2.cfg" --check 2>&1); r2=$?
o3=$("$BUILD/veil-agent" --config "$DIR/bad3.cfg" --check 2>&1); r3=$?
if [ $r1 = 2 ] && grep -q "bad1.cfg:3:9: 'store.urls' takes nats://" <<<"$o1" && [ $r2 = 2 ] &&
	grep -q "bad2.cfg:3:3: 'store.node_signing_key' missing" <<<"$o2" && [ $r3 = 2 ] && grep -q "nope.pub" <<<"$o3"; then
	pass "agent_store_config_errors (file:line:column; a missing key file refused at --check)"
else
	failm agent_store_config_errors "$r1 '$o1' / $r2 '$o2' / $r3 '$o3'"
fi

# ---- the network: client -- gateway -- node (tests/lib/vmlab.sh)
vmlab_net
vmlab_daemons
innode nats-server -js -sd "$DIR/nats" -a 127.0.0.1 -p "$PORT" >>"$DIR/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do sp keys vms >/dev/null 2>&1 && break; sleep 0.1; done
# the image, served from the node's loopback
mkdir -p "$DIR/www"
ln -s "$IMG/disk.raw" "$DIR/www/disk.raw"
ln -s "$IMG/vmlinuz" "$DIR/www/vmlinuz"
ln -s "$IMG/initrd.img" "$DIR/www/initrd.img"
KSHA=$(sha256sum "$IMG/vmlinuz" | cut -d' ' -f1)
ISHA=$(sha256sum "$IMG/initrd.img" | cut -d' ' -f1)
nsx node python3 -m http.server -b 127.0.0.1 -d "$DIR/www" 8088 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do nsx node ss -ltn 2>/dev/null | grep -q '127.0.0.1:8088 ' && break; sleep 0.1; done

start_agent() {
	nsenter --net="/run/netns/$P-node" "$BUILD/veil-agent" --config "$DIR/agent.cfg" --spec-dir "$DIR/orders" \
		--state-dir "$DIR/vms" --image-dir "$DIR/cache" --libvirt-netns "/proc/$LVPID/ns/net" \
		--node-config "$DIR/node.conf" --node-socket "$DIR/node.sock" --name-prefix "$P-" \
		>>"$DIR/agent.log" 2>&1 &
	echo $! > "$DIR/agent.pid"
}
stop_agent() {
	kill "$(cat "$DIR/agent.pid")"
	for _ in $(seq 50); do kill -0 "$(cat "$DIR/agent.pid")" 2>/dev/null || break; sleep 0.1; done
}
wait_log() { # pattern seconds
	for _ in $(seq $(($2 * 5))); do grep -q "$1" "$DIR/agent.log" 2>/dev/null && return 0; sleep 0.2; done
	return 1
}
status_of() { # vm_id -> the verified vmstatus body (signed by this node)
	sp open vmstatus "$1" "$DIR/node.pub" 2>/dev/null
}
# an order as the controller writes it
order() { # vm_id gen op [spec-json]
	local spec=""
	[ -n "${4:-}" ] && spec=",\"spec\":$4"
	printf '{"vm_id":"%s","node":"%s","order":"ord-%s","gen":%s,"op":"%s"%s}' "$1" "$NODE" "$1" "$2" "$3" "$spec"
}
SPEC=$(cat <<EOF
{"vm_id":7,"vcpus":1,"memory":"256mb","disk":{"url":"http://127.0.0.1:8088/disk.raw","sha256":"$SHA"},
 "boot":{"kernel":"http://127.0.0.1:8088/vmlinuz","kernel_sha256":"$KSHA","initrd":"http://127.0.0.1:8088/initrd.img",
  "initrd_sha256":"$ISHA","cmdline":"console=ttyS0 quiet"},
 "network":{"ipv4":"198.18.50.2/24","gateway4":"198.18.50.1"},"ready_timeout":420}
EOF
)
SPEC=$(echo "$SPEC" | tr -d '\n')
mkdir -p "$DIR/orders"

t=spec_kernel_by_url
printf 'id: u\nvcpus: 1\nmemory: 256mb\ndisk:\n  url: file:///x\n  sha256: %064d\nboot:\n  kernel: https://r.example.test/k\nnetwork:\n  ipv4: 198.18.53.2/24\n' 0 > "$DIR/url.yaml"
out=$("$BUILD/veil-agent" --check-spec "$DIR/url.yaml" --domcaps tests/fixtures/hosts/no-gpu/domcaps.xml 2>&1); rc=$?
[ $rc = 2 ] && grep -q "'boot.kernel' is a URL: 'boot.kernel_sha256' is needed" <<<"$out" &&
	pass "$t (a kernel by URL needs its sha256)" || failm $t "rc $rc: $out"

start_agent
t=agent_store_synced
if wait_log "event=store_synced bucket=vms prefix=$NODE\\.\\*" 20; then
	sp keys vms | grep -q . ; marker=$(sp get vms "$NODE.__")
	[ "$marker" = "{}" ] && pass "$t (watch on $NODE.* behind its marker key)" || failm $t "marker '$marker'"
else
	failm $t "$(tail -5 "$DIR/agent.log")"; exit 1
fi
t=heartbeat_signed
hb=""
for _ in $(seq 30); do hb=$(sp open heartbeats "$NODE" "$DIR/node.pub" 2>/dev/null) && [ -n "$hb" ] && break; sleep 0.2; done
g1=$(jq -r .gen <<<"$hb" 2>/dev/null); sleep 2.5
hb2=$(sp open heartbeats "$NODE" "$DIR/node.pub" 2>/dev/null); g2=$(jq -r .gen <<<"$hb2" 2>/dev/null)
if jq -e --arg n "$NODE" '.node == $n and .free.cpu == 2 and .free.ram_mb == 1024 and (.vms | type) == "object"' <<<"$hb" >/dev/null 2>&1 &&
	[ "${g2:-0}" -gt "${g1:-0}" ] && ! sp open heartbeats "$NODE" "$DIR/ctl.pub" >/dev/null 2>&1; then
	pass "$t (verifies with the node's key only; gen $g1 -> $g2 two seconds later; $(jq -c .free <<<"$hb"))"
else
	failm $t "'$hb' / '$hb2'"
fi

# ---- refused orders: forged, garbled, for another node, an unsigned delete; none runs
t=forged_orders_refused
sp put vms "$NODE.evil" "$DIR/evil.key" "$(order evil 1 run "$SPEC")"
sp raw vms "$NODE.junk" 'not an envelope'
sp put vms "$NODE.other" "$DIR/ctl.key" "$(order other 1 run "$SPEC" | sed "s/\"node\":\"$NODE\"/\"node\":\"someone-else\"/")"
if wait_log "key=$NODE.other .*reason=body" 10 && grep -q "key=$NODE.evil .*reason=signature" "$DIR/agent.log" &&
	grep -q "key=$NODE.junk .*reason=signature" "$DIR/agent.log" && ! grep -q "event=vm_ordered id=\(evil\|junk\|other\)" "$DIR/agent.log"; then
	pass "$t (another key, not an envelope, another node's body under our key: counted, nothing ordered)"
else
	failm $t "$(grep store_rejected "$DIR/agent.log" | tail -3)"
fi

# ---- the real VM, ordered through the store, reported at each step
t0=$(date +%s.%N)
sp put vms "$NODE.web1" "$DIR/ctl.key" "$(order web1 10 run "$SPEC")"
sp get vms "$NODE.web1" > "$DIR/env-gen10"
states=""
end=$((SECONDS + 480))   # qemu TCG on a loaded machine: minutes, not seconds
while [ $SECONDS -lt $end ]; do
	s=$(status_of web1 | jq -r .state 2>/dev/null)
	[ -n "$s" ] && [ "${states##* }" != "$s" ] && states="$states $s"
	[ "$s" = ready ] || [ "$s" = failed ] && break
	sleep 0.2
done
t1=$(date +%s.%N)
t=store_order_runs_vm
if [ "${states##* }" = ready ] && wait_log "event=vm_ordered id=web1 source=store order=ord-web1 gen=10" 1; then
	pass "$t (spec to ready in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s; vmstatus states seen:$states)"
	x=$(virsh -c qemu:///system dumpxml "$P-web1" 2>/dev/null)
	grep -q "<kernel>$DIR/vms/web1/vmlinuz</kernel>" <<<"$x" && grep -q "<initrd>$DIR/vms/web1/initrd.img</initrd>" <<<"$x" &&
		cmp -s "$DIR/vms/web1/vmlinuz" "$IMG/vmlinuz" && pass "store_vm_kernel_by_url (kernel and initrd fetched by URL, checked, beside the disk)" ||
		failm store_vm_kernel_by_url "$(grep -E '<kernel>|<initrd>' <<<"$x")"
else
	failm $t "states:$states; $(grep -E 'web1|failed' "$DIR/agent.log" | tail -4); console: $(tail -3 "$DIR"/vms/web1/console.log 2>/dev/null)"
	exit 1
fi
t=vmstatus_each_event
st=$(status_of web1)
# the states the test saw are those it polled; the agent's log has every one it wrote
okw=1
for s in fetching launching attesting; do echo "$states" | grep -qw "$s" || grep -q "event=vm_$([ $s = attesting ] && echo started || echo ${s%ing}ing) id=web1" "$DIR/agent.log" || okw=0; done
if jq -e --arg n "$NODE" '.vm_id == "web1" and .node == $n and .addr4 == "198.18.50.2" and .gen > 0' <<<"$st" >/dev/null && [ $okw = 1 ] &&
	! sp open vmstatus web1 "$DIR/ctl.pub" >/dev/null 2>&1; then
	pass "$t (signed by the node: $(jq -c '{state, addr4, gen}' <<<"$st"))"
else
	failm $t "'$st' states:$states"
fi
t=store_vm_curl_through_gateway
out=$(nsx cli curl -sS --max-time 15 --cacert "$IMG/ca.pem" --resolve "web1.veil.test:443:$VIP4" https://web1.veil.test/ 2>&1)
[ "$out" = "hello from a real VM" ] && pass "$t" || failm $t "'$out'"
t=heartbeat_lists_vm
sleep 2.5
hb=$(sp open heartbeats "$NODE" "$DIR/node.pub")
jq -e '.vms.web1 == "ready" and .free.cpu == 1 and .free.ram_mb == 768' <<<"$hb" >/dev/null 2>&1 &&
	pass "$t ($(jq -c '{vms, free}' <<<"$hb"))" || failm $t "'$hb'"

# ---- replay and unsigned delete: counted, the VM keeps running
t=replayed_order_refused
sp put vms "$NODE.web1" "$DIR/ctl.key" "$(order web1 11 run "$SPEC")"
wait_log "event=store_order_changed id=web1 gen=11" 10
sp raw vms "$NODE.web1" "$(cat "$DIR/env-gen10")"
if wait_log "key=$NODE.web1 .*reason=replay .*gen 10 is not above" 10; then
	pass "$t (the gen-10 envelope put back: refused; gen 11 of the same spec changed nothing)"
else
	failm $t "$(grep web1 "$DIR/agent.log" | tail -3)"
fi
t=unsigned_delete_refused
sp del vms "$NODE.web1"
if wait_log "key=$NODE.web1 .*reason=unsigned_delete" 10; then
	sleep 1
	virsh -c qemu:///system domstate "$P-web1" 2>/dev/null | grep -q running && ! grep -q "event=vm_deleting id=web1" "$DIR/agent.log" &&
		pass "$t (a KV delete is not an order: the VM runs on)" || failm $t "$(virsh -c qemu:///system domstate "$P-web1" 2>&1)"
else
	failm $t "$(grep web1 "$DIR/agent.log" | tail -3)"
fi
tap=$(grep -o 'event=vm_started id=web1 .*tap=vt[0-9a-f]*' "$DIR/agent.log" | tail -1 | grep -o 'vt[0-9a-f]*$')
uuid=$(virsh -c qemu:///system domuuid "$P-web1" 2>/dev/null | head -1)

# ---- the agent away while the controller deletes the VM and writes a bad order: it converges
t=restart_converges
stop_agent
sp put vms "$NODE.web1" "$DIR/ctl.key" "$(order web1 12 delete)"
sp put vms "$NODE.mute" "$DIR/ctl.key" "$(order mute 1 run '{"vcpus":1,"memory":"1mb","network":{"ipv4":"198.18.51.2/24"}}')"
start_agent
if wait_log "event=vm_deleted id=web1" 40; then
	left=""
	virsh -c qemu:///system list --all --name | grep -q "^$P-web1$" && left="$left domain"
	nsx node ip link show "$tap" >/dev/null 2>&1 && left="$left tap"
	grep -q "veil-agent web1" "$DIR/node.conf" && left="$left node-table"
	nsx node nft list tables | grep -q "veil_$tap" && left="$left nft"
	[ -e "$DIR/vms/web1" ] && left="$left state"
	[ -n "$uuid" ] && [ -e "/var/lib/libvirt/swtpm/$uuid" ] && left="$left tpm-state"
	sleep 1
	dst=$(status_of web1 | jq -r .state)
	mst=$(status_of mute)
	if [ -n "$left" ]; then
		failm $t "left:$left"
	elif [ "$dst" != deleted ]; then
		failm $t "vmstatus of web1 is '$dst'"
	elif ! jq -e '.state == "failed" and (.reason | test("memory.*below 64mb"))' <<<"$mst" >/dev/null 2>&1; then
		failm $t "mute: '$mst'"
	else
		pass "$t (deleted while away: domain, tap, nft, node table and files gone, vmstatus deleted; a bad order: failed, '$(jq -r .reason <<<"$mst")')"
	fi
else
	failm $t "$(tail -5 "$DIR/agent.log")"
fi
t=spec_dir_still_works
cat > "$DIR/orders/.x.tmp" <<EOF
id: big
vcpus: 3
memory: 256mb
disk:
  url: http://127.0.0.1:8088/disk.raw
  sha256: $SHA
network:
  ipv4: 198.18.52.2/24
EOF
mv "$DIR/orders/.x.tmp" "$DIR/orders/big.yaml"
wait_log 'event=vm_refused id=big reason="needs 3 vCPUs' 10 && ! status_of big >/dev/null &&
	pass "$t (a spec file is still an order, and not reported to the store)" || failm $t "$(grep big "$DIR/agent.log" | tail -2)"
grep -q nk_test_ "$DIR/agent.log" && failm agent_secret_not_logged "node_key in the log" || pass agent_store_secrets_not_logged
echo "-- agent events:" >&2
grep -E 'event=(store|vm_)' "$DIR/agent.log" | cut -c1-220 >&2
exit 0
