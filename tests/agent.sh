#!/usr/bin/env bash
# veil-agent end to end: a real VM (qemu TCG through libvirt's API) reached
# through the gateway.  Network namespaces vmag-$$-{cli,gw,node}; the agent
# runs in the node namespace beside veil-node, libvirtd in the host's (taps
# are made there and moved into the node's).  The VM image is built from this
# machine's packages (tests/agent-image.sh, cached under /tmp).
#   client --- gateway (veil-gw, XDP) --- node (veil-node + veil-agent) --- tap --- VM (nginx, TLS 443)
# Prints PASS/FAIL lines; cleans up namespaces, domains, taps, files and the
# libvirt daemons it started, even when it fails.
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
BUILD=${BUILD:-$TOP/build}
P="vmag-$$"
DIR=/tmp/$P
PIN=/sys/fs/bpf/$P
VIP4=198.18.100.1
VIP6=2001:db8:100::1
started_libvirt=()
pids=()

. tests/lib/vmlab.sh
trap vmlab_cleanup EXIT
trap 'exit 1' INT TERM
vmlab_libvirt || { failm agent_setup "libvirtd does not answer"; exit 1; }

mkdir -p "$DIR"
IMG=$(tests/agent-image.sh /tmp/veilmesh-agent-img) || { failm agent_image "could not build the VM image"; exit 1; }
SHA=$(sha256sum "$IMG/disk.raw" | cut -d' ' -f1)
pass agent_image

# ---- bad input: exit code 2 and file:line:column, the secret never printed
printf 'node_key: s3cretvalue\nresources:\n  cpu: lots\n' > "$DIR/bad.cfg"
out=$("$BUILD/veil-agent" --config "$DIR/bad.cfg" --check 2>&1); rc=$?
if [ $rc = 2 ] && grep -q "$DIR/bad.cfg:3:8: 'cpu'" <<<"$out" && ! grep -q s3cret <<<"$out"; then
	pass agent_bad_config
else failm agent_bad_config "rc $rc: $out"; fi
# software emulation, or KVM where the emulator runs the agent's vCPU on it
# (a KVM it cannot use is named, and not taken: kvm_unusable)
out=$("$BUILD/veil-agent" --scan 2>&1) && grep -q '"cpu"' <<<"$out" && grep -q '"tpm-crb"' <<<"$out" &&
	{ grep -q '"domain_type": "qemu"' <<<"$out" || { grep -q '"domain_type": "kvm"' <<<"$out" && ! grep -q kvm_unusable <<<"$out"; }; } &&
	pass "agent_scan_json ($(grep -o '"domain_type": "[a-z]*"' <<<"$out")$(grep -o '"kvm_unusable": "[^"]*"' <<<"$out" | sed 's/^/, /'))" ||
	failm agent_scan_json "$out"

printf 'id: x\nvcpus: 1\nmemory: 256mb\nnetwork:\n  ipv4: 198.18.0.300/24\n' > "$DIR/bad.yaml"
out=$("$BUILD/veil-agent" --check-spec "$DIR/bad.yaml" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "$DIR/bad.yaml:5:9: 'network.ipv4'" <<<"$out" && pass agent_bad_spec_exit_2 ||
	failm agent_bad_spec_exit_2 "rc $rc: $out"
printf 'id: x\nvcpus: 1\nmemory: 256mb\ndisk:\n  url: file:///x\n  sha256: %064d\nboot:\n  firmware: efi\nconfidential: sev\nnetwork:\n  ipv6: 2001:db8::9/64\n' 0 > "$DIR/sev.yaml"
out=$("$BUILD/veil-agent" --check-spec "$DIR/sev.yaml" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "asks for SEV; this host does not offer it" <<<"$out" && pass agent_spec_beyond_host_refused ||
	failm agent_spec_beyond_host_refused "rc $rc: $out"

# ---- the network: client -- gateway -- node (tests/lib/vmlab.sh)
vmlab_net
vmlab_daemons
if grep -q event=started "$DIR/gw.log" && grep -q event=started "$DIR/node.log"; then pass agent_lab_up
else failm agent_lab_up "daemons: $(tail -3 "$DIR/gw.log" "$DIR/node.log")"; exit 1; fi

# ---- the image server (in the node namespace, on loopback), slow on demand
cat > "$DIR/serve.py" <<'EOF'
import http.server, os, sys, time
root, port, delay_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, *a): pass  # a client that goes away mid-download (the agent restart)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404); return
        size = os.path.getsize(path); start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start)); self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                b = f.read(1 << 20)
                if not b: break
                self.wfile.write(b)
                if os.path.exists(delay_file): time.sleep(0.5)
S(("127.0.0.1", port), H).serve_forever()
EOF
# a service beyond the node (as validators and the registry are): who does it see?
cat > "$DIR/egress.py" <<'EOF'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b = ("egress-saw-%s" % self.client_address[0]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(("198.19.0.1", 8089), H).serve_forever()
EOF
nsx gw python3 "$DIR/egress.py" &
pids+=($!)
mkdir -p "$DIR/www"
ln -s "$IMG/disk.raw" "$DIR/www/disk.raw"
nsx node python3 "$DIR/serve.py" "$DIR/www" 8088 "$DIR/slow" &
pids+=($!)
for _ in $(seq 50); do nsx node ss -ltn 2>/dev/null | grep -q '127.0.0.1:8088 ' && break; sleep 0.1; done

cat > "$DIR/agent.cfg" <<EOF
node_key: nk_test_$$_not_for_logs
resources:
  cpu: 2
  ram: 1gb
  disk: 4gb
EOF
mkdir -p "$DIR/orders"
start_agent() {
	nsenter --net="/run/netns/$P-node" "$BUILD/veil-agent" --config "$DIR/agent.cfg" --spec-dir "$DIR/orders" \
		--state-dir "$DIR/vms" --image-dir "$DIR/cache" --libvirt-netns "/proc/$LVPID/ns/net" \
		--node-config "$DIR/node.conf" --node-socket "$DIR/node.sock" --name-prefix "$P-" \
		>>"$DIR/agent.log" 2>&1 &
	echo $! > "$DIR/agent.pid"
}
wait_log() { # pattern seconds
	for _ in $(seq $(($2 * 5))); do grep -q "$1" "$DIR/agent.log" 2>/dev/null && return 0; sleep 0.2; done
	return 1
}
start_agent
wait_log event=started 20 && pass agent_started || { failm agent_started "$(tail -5 "$DIR/agent.log")"; exit 1; }
grep -q nk_test_ "$DIR/agent.log" && failm agent_secret_not_logged "node_key in the log" || pass agent_secret_not_logged

spec() { # id vm_id v4net v6net
	cat <<EOF
id: $1
vm_id: $2
vcpus: 1
memory: 256mb
disk:
  url: http://127.0.0.1:8088/disk.raw
  sha256: $SHA
boot:
  kernel: $IMG/vmlinuz
  initrd: $IMG/initrd.img
  cmdline: console=ttyS0 quiet veil.egress=198.19.0.1:8089
network:
  ipv4: $3.2/24
  gateway4: $3.1
  ipv6: $4::2/64
  gateway6: $4::1
ready_timeout: 120
${5:-}
EOF
}

# ---- an order beyond what is left is refused with a reason
# orders are written aside and renamed in, so the agent never reads half a file
order() { cat > "$DIR/orders/.$1.tmp" && mv "$DIR/orders/.$1.tmp" "$DIR/orders/$1.yaml"; }
spec big 9 198.18.61 2001:db8:61 | sed 's/^vcpus: 1/vcpus: 3/' | order big
wait_log "event=vm_refused id=big" 10 && grep -q 'event=vm_refused id=big reason="needs 3 vCPUs' "$DIR/agent.log" &&
	pass agent_refuses_beyond_resources || failm agent_refuses_beyond_resources "$(grep big "$DIR/agent.log")"
rm -f "$DIR/orders/big.yaml"
printf 'id: Bad!\n' | order bad
wait_log "event=spec_rejected file=$DIR/orders/bad.yaml reason=\"$DIR/orders/bad.yaml:1:5:" 10 &&
	pass agent_bad_spec_rejected || failm agent_bad_spec_rejected "$(grep bad.yaml "$DIR/agent.log")"
rm -f "$DIR/orders/bad.yaml"

# ---- the real VM: spec in, ready, reached through the gateway
touch "$DIR/slow" # the download takes a while: the agent is restarted in the middle of it
t0=$(date +%s.%N)
# VEIL_AGENT_TEST_TPM=1: the VM gets a vTPM too (libvirt runs swtpm_setup as tss, which needs a
# tss-writable /var/lib/swtpm-localca; a root-run swtpm_setup elsewhere can leave it root's)
tpm_line=""; [ "${VEIL_AGENT_TEST_TPM:-0}" = 1 ] && tpm_line="tpm: true"
spec web1 7 198.18.50 2001:db8:50 "$tpm_line" | order web1
if wait_log "event=vm_fetching id=web1" 20; then
	sleep 2
	kill "$(cat "$DIR/agent.pid")"
	for _ in $(seq 50); do kill -0 "$(cat "$DIR/agent.pid")" 2>/dev/null || break; sleep 0.1; done
	part=$(stat -c %s "$DIR/cache/$SHA.part" 2>/dev/null || echo 0)
	rm -f "$DIR/slow"
	start_agent
	if [ "$part" -gt 0 ] && wait_log "event=vm_fetched id=web1" 60 && [ "$(grep -c 'event=started' "$DIR/agent.log")" = 2 ]; then
		pass "agent_restart_during_download (had $part bytes, resumed)"
	else failm agent_restart_during_download "part $part: $(tail -5 "$DIR/agent.log")"; fi
else
	rm -f "$DIR/slow"
	failm agent_restart_during_download "no fetch: $(tail -5 "$DIR/agent.log")"
fi

if wait_log "event=vm_\(ready\|failed\) id=web1" 150 && grep -q "event=vm_ready id=web1" "$DIR/agent.log"; then
	t1=$(date +%s.%N)
	secs=$(grep -o 'event=vm_ready id=web1 .*spec_to_ready_s=[0-9.]*' "$DIR/agent.log" | grep -o 'spec_to_ready_s=[0-9.]*')
	pass "agent_vm_ready ($secs by the agent, $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s from spec to ready seen by the test)"
else
	failm agent_vm_ready "$(grep -E 'web1|failed' "$DIR/agent.log" | tail -5); console: $(tail -5 "$DIR"/vms/web1/console.log 2>/dev/null)"
	exit 1
fi
tap=$(grep -o 'event=vm_started id=web1 .*tap=vt[0-9a-f]*' "$DIR/agent.log" | tail -1 | grep -o 'vt[0-9a-f]*$')
virsh -c qemu:///system domuuid "$P-web1" 2>/dev/null | head -1 > "$DIR/web1.uuid"
nsx node ip link show "$tap" >/dev/null 2>&1 && ! ip link show "$tap" >/dev/null 2>&1 &&
	pass agent_tap_in_node_namespace || failm agent_tap_in_node_namespace "tap $tap"
grep -q "vm 7 $tap " "$DIR/node.conf" && grep -q "event=vm_interfaces_attached" "$DIR/node.log" &&
	pass agent_handed_to_veil_node || failm agent_handed_to_veil_node "$(cat "$DIR/node.conf"; tail -3 "$DIR/node.log")"

for fam in 4 6; do
	vip=$VIP4; src=198.18.0.2; [ $fam = 6 ] && { vip="[$VIP6]"; src=2001:db8::2; }
	out=$(nsx cli curl -sS --max-time 15 --cacert "$IMG/ca.pem" --resolve "web1.veil.test:443:$vip" \
		https://web1.veil.test/ 2>&1)
	who=$(nsx cli curl -sS --max-time 15 --cacert "$IMG/ca.pem" --resolve "web1.veil.test:443:$vip" \
		https://web1.veil.test/whoami 2>&1)
	sleep 0.5
	if [ "$out" = "hello from a real VM" ] && [ "$who" = "real VM saw $src" ] &&
		grep -q "nginx-access $src \"GET / HTTP" "$DIR/vms/web1/console.log"; then
		pass "agent_curl_through_gateway_ipv$fam"
	else
		failm "agent_curl_through_gateway_ipv$fam" "got '$out' / '$who'; log: $(grep nginx-access "$DIR/vms/web1/console.log" | tail -2)"
	fi
done

# ---- its vTPM (swtpm, started by libvirt)
if [ -n "$tpm_line" ]; then
	grep -q "vm-init: tpm0 present" "$DIR/vms/web1/console.log" && pgrep -f "swtpm.*$P-web1" >/dev/null &&
		pass agent_vm_has_vtpm || failm agent_vm_has_vtpm "$(grep vm-init "$DIR/vms/web1/console.log")"
fi

# ---- the VM's egress leaves through the node's NAT; nothing gets in but what the mesh hands over
if grep -q "vm-egress: egress-saw-198.19.0.11" "$DIR/vms/web1/console.log" ||
	{ sleep 5; grep -q "vm-egress: egress-saw-198.19.0.11" "$DIR/vms/web1/console.log"; }; then
	pass agent_vm_egress_nat
else failm agent_vm_egress_nat "$(grep vm-egress "$DIR/vms/web1/console.log"; nsx node nft list ruleset | head -20)"; fi
nsx gw ip route add 198.18.50.0/24 via 198.19.0.11
nsx gw ip -6 route add 2001:db8:50::/64 via 2001:db8:ff::11
if ! nsx gw curl -sk --max-time 3 https://198.18.50.2/ >/dev/null 2>&1 &&
	! nsx gw curl -sk --max-time 3 'https://[2001:db8:50::2]/' >/dev/null 2>&1 &&
	nsx node nft list table inet "veil_$tap" >/dev/null 2>&1; then
	pass agent_vm_firewall_drops_direct
else failm agent_vm_firewall_drops_direct "a direct connection got through"; fi

# ---- a VM whose service never answers is failed in time, with its console, and stopped
spec mute 8 198.18.51 2001:db8:51 | sed 's/^ready_timeout: 120/ready_timeout: 4\nport: 8443/' | order mute
if wait_log 'event=vm_failed id=mute reason="not ready after 4 s (198.18.51.2:8443: .*console: ' 40; then
	for _ in $(seq 20); do virsh -c qemu:///system domstate "$P-mute" 2>/dev/null | grep -q "shut off" && break; sleep 0.5; done
	virsh -c qemu:///system domstate "$P-mute" 2>/dev/null | grep -q "shut off" && pass agent_not_ready_fails ||
		failm agent_not_ready_fails "still $(virsh -c qemu:///system domstate "$P-mute" 2>&1)"
else failm agent_not_ready_fails "$(grep mute "$DIR/agent.log" | tail -3)"; fi
mute_tap=$(grep -o 'event=vm_started id=mute .*tap=vt[0-9a-f]*' "$DIR/agent.log" | tail -1 | grep -o 'vt[0-9a-f]*$')

# ---- an agent restart adopts the running VM and kills nothing; an order removed while it
#      was away (mute) is deleted when it comes back, leaving nothing
qpid=$(pgrep -f "guest=$P-web1" | head -1)
kill "$(cat "$DIR/agent.pid")"; sleep 1
rm -f "$DIR/orders/mute.yaml"
start_agent
if wait_log "event=vm_deleted id=mute" 20; then
	left=""
	virsh -c qemu:///system list --all --name | grep -q "^$P-mute$" && left="$left domain"
	nsx node ip link show "$mute_tap" >/dev/null 2>&1 && left="$left tap"
	nsx node nft list tables | grep -q "veil_$mute_tap" && left="$left nft"
	grep -q "veil-agent mute" "$DIR/node.conf" && left="$left node-table"
	[ -e "$DIR/vms/mute" ] && left="$left state"
	[ -z "$left" ] && pass agent_order_removed_while_away || failm agent_order_removed_while_away "left:$left"
else failm agent_order_removed_while_away "$(grep mute "$DIR/agent.log" | tail -2)"; fi
if wait_log "event=vm_adopted id=web1" 20 && wait_log "event=vm_ready id=web1 .*adopted=yes" 30; then
	[ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null && pass agent_restart_adopts_vm ||
		failm agent_restart_adopts_vm "qemu $qpid gone"
else failm agent_restart_adopts_vm "$(tail -4 "$DIR/agent.log")"; fi

# ---- a VM that dies is reported (with its console) and not restarted
qpid=$(pgrep -f "guest=$P-web1" | head -1)
[ -n "$qpid" ] && kill -9 "$qpid"
if wait_log 'event=vm_failed id=web1 reason="the domain stopped (failed: the emulator died)' 15; then
	sleep 3
	if virsh -c qemu:///system domstate "$P-web1" 2>/dev/null | grep -q "shut off" && ! pgrep -f "guest=$P-web1" >/dev/null; then
		pass agent_crash_reported_not_restarted
	else failm agent_crash_reported_not_restarted "state: $(virsh -c qemu:///system domstate "$P-web1" 2>&1)"; fi
else failm agent_crash_reported_not_restarted "$(tail -3 "$DIR/agent.log")"; fi
# ... and taken out of veil-node's table: a connection to it is reset at once
# (the node answers through the mesh), not left to time out
t=agent_crashed_vm_connections_reset
if ! grep -q "veil-agent web1" "$DIR/node.conf"; then
	s0=$(date +%s%N)
	out=$(nsx cli curl -sS --max-time 15 --cacert "$IMG/ca.pem" --resolve "web1.veil.test:443:$VIP4" \
		https://web1.veil.test/ 2>&1); rc=$?
	ms=$(( ($(date +%s%N) - s0) / 1000000 ))
	if [ $rc != 0 ] && echo "$out" | grep -qi "reset" && [ $ms -lt 5000 ]; then
		pass "$t (reset after ${ms} ms)"
	else failm $t "curl rc=$rc after ${ms} ms: $out"; fi
else failm $t "its line is still in veil-node's table"; fi

# ---- deletion leaves nothing: domain, tap, node table line, disk, state
rm -f "$DIR/orders/web1.yaml"
if wait_log "event=vm_deleted id=web1" 30; then
	left=""
	virsh -c qemu:///system list --all --name | grep -q "^$P-web1$" && left="$left domain"
	nsx node ip link show "$tap" >/dev/null 2>&1 && left="$left tap(node)"
	ip link show "$tap" >/dev/null 2>&1 && left="$left tap(host)"
	grep -q "veil-agent web1" "$DIR/node.conf" && left="$left node-table"
	nsx node nft list tables | grep -q veil_ && left="$left nft:$(nsx node nft list tables | tr '\n' ' ')"
	ls "$DIR/cache/" | grep -q part && left="$left partial-download"
	pgrep -f "swtpm.*$P-" >/dev/null && left="$left swtpm"
	[ -e "/var/lib/libvirt/swtpm/$(cat "$DIR/web1.uuid" 2>/dev/null)" ] && left="$left tpm-state"
	[ -e "$DIR/vms/web1" ] && left="$left state:$(ls "$DIR/vms/web1")"
	[ -z "$left" ] && pass agent_delete_leaves_nothing || failm agent_delete_leaves_nothing "left:$left"
else failm agent_delete_leaves_nothing "$(tail -4 "$DIR/agent.log")"; fi
echo "-- agent events:" >&2
sed 's/^[0-9-]*T\([0-9:.]*\)Z veil-agent: \(event=[a-z_]*\)\( id=[a-z0-9-]*\)\{0,1\}.*/\1 \2\3/' "$DIR/agent.log" >&2
grep -E 'event=(fetch_retry|vm_failed|vm_refused|spec_rejected)' "$DIR/agent.log" >&2
exit 0
