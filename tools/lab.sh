#!/usr/bin/env bash
# The veilmesh netns lab: one client, one gateway, two nodes, three VMs, all
# network namespaces on this machine, IPv4 198.18.0.0/15 and IPv6 2001:db8::/32.
#
#   tools/lab.sh up      [ID]   build the lab, start the daemons and the VMs' TLS servers
#   tools/lab.sh down    [ID]   stop everything and remove the namespaces
#   tools/lab.sh demo    [ID]   up, fetch every VM's page over IPv4 and IPv6, show maps and counters
#   tools/lab.sh status  [ID]   routes, flows and counters from the pinned maps
#   tools/lab.sh env     [ID]   print shell variables describing the lab (for tests)
#
# VEIL_DATAPLANE=dpdk runs the gateway as veil-gw-dpdk (DPDK, --no-huge,
# net_af_packet vdevs on gw-cli and gw-mesh) instead of veil-gw (XDP);
# VEIL_DPDK_WORKERS (default 1) how many worker lcores it runs beside the
# control plane's; VEIL_DPDK_PMD=af_xdp takes the veths from the kernel
# (net_af_xdp) and gives the kernel two TAPs as exception ports instead.
# `make demo-lab DATAPLANE=dpdk`.
#
#      client (cli)          gateway (gw)                switch (sw)         node1 (n1) -- vm1, vm2
#   198.18.0.2 ---- 198.18.0.1 | 198.19.0.1 ----------- br0 ------------ 198.19.0.11
#   2001:db8::2     2001:db8::1| 2001:db8:ff::1                          node2 (n2) -- vm3
#      VIPs 198.18.100.1, 2001:db8:100::1 routed to the gateway          198.19.0.12
#
# VEIL_LAB_REAL_VM=1 (the default for demo, not for up) adds vm4, a real VM
# (qemu through libvirt, tests/agent-image.sh) run on node1 by veil-agent, the
# node's hypervisor role, beside veil-node: 198.18.14.2 / 2001:db8:14::2.
#
# VEIL_LAB_GW_EXTRA: lines appended to the gateway's config (e.g. "store nats://..." and
# "store_pub FILE": routes also from the cluster store).
#
# ID (default "lab") keeps labs apart: namespaces are vml-ID-*, pinned maps
# live under /sys/fs/bpf/veilmesh-ID/, files under ${VEIL_LAB_DIR:-/tmp/veilmesh-ID}.
set -euo pipefail

cmd=${1:-demo}
ID=${2:-${VEIL_LAB_ID:-lab}}
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
P="vml-$ID"
DIR=${VEIL_LAB_DIR:-/tmp/veilmesh-$ID}
PIN="/sys/fs/bpf/veilmesh-$ID"
NS=(cli gw sw n1 n2 vm1 vm2 vm3)
DATAPLANE=${VEIL_DATAPLANE:-xdp}
REAL_VM=${VEIL_LAB_REAL_VM:-0}
[ "$cmd" = demo ] && REAL_VM=${VEIL_LAB_REAL_VM:-1}
VIP4=198.18.100.1
VIP6=2001:db8:100::1

# VM table: name node ifname mac v4 v6 vm-id
VMS=(
  "vm1 n1 198.18.11 2001:db8:11 02:00:00:00:11:02 1"
  "vm2 n1 198.18.12 2001:db8:12 02:00:00:00:12:02 2"
  "vm3 n2 198.18.13 2001:db8:13 02:00:00:00:13:02 3"
)

nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

say() { printf '%s\n' "$*"; }

veth() { # veth NS1 IF1 NS2 IF2
	ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
	for side in "$1 $2" "$3 $4"; do
		set -- $side
		# Complete checksums in software: frames that XDP redirects into
		# a veth are never checksummed later.
		nsx "$1" ethtool -K "$2" tx off >/dev/null 2>&1 || true
		nsx "$1" ip link set "$2" up
	done
}

xdp_pass() { # NS IF: see tools/lab_pass.bpf.c
	nsx "$1" ip link set dev "$2" xdp obj "$BUILD/lab_pass.bpf.o" sec xdp
}

sysctls() { # in a namespace
	nsx "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
}

make_certs() {
	mkdir -p "$DIR/pki"
	[ -f "$DIR/pki/ca.pem" ] && return 0
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
		-subj "/CN=veilmesh lab CA $ID" -keyout "$DIR/pki/ca.key" -out "$DIR/pki/ca.pem" 2>/dev/null
	for row in "${VMS[@]}"; do
		set -- $row
		local names="DNS:$1.veil.test"
		[ "$1" = vm3 ] && names="$names,DNS:*.apps.veil.test"
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=$1.veil.test" -keyout "$DIR/pki/$1.key" -out "$DIR/pki/$1.csr" 2>/dev/null
		openssl x509 -req -in "$DIR/pki/$1.csr" -CA "$DIR/pki/ca.pem" -CAkey "$DIR/pki/ca.key" \
			-CAcreateserial -days 7 -extfile <(printf 'subjectAltName=%s\n' "$names") \
			-out "$DIR/pki/$1.pem" 2>/dev/null
	done
	rm -f "$DIR/pki/ca.key"   # nothing else is ever signed by it
}

vm_server() { # name: nginx with HTTP/1.1 and HTTP/2, serving who it is and a large file
	local vm=$1 d="$DIR/$1"
	mkdir -p "$d/www" "$d/tmp"
	printf 'hello from %s\n' "$vm" > "$d/www/index.html"
	[ -e "$d/www/big.bin" ] || ln -sf "$DIR/big.bin" "$d/www/big.bin"
	cat > "$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
user root;
events { worker_connections 1024; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
    log_format peer '\$remote_addr \$server_protocol \$ssl_server_name';
    server {
        listen 443 ssl http2;
        listen [::]:443 ssl http2;
        ssl_certificate $DIR/pki/$vm.pem;
        ssl_certificate_key $DIR/pki/$vm.key;
        # nginx 1.22's default stops at TLS 1.2; clients today negotiate 1.3
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log $d/peers.log peer;
        root $d/www;
        location = /whoami { default_type text/plain; return 200 "$vm saw \$remote_addr\n"; }
    }
}
EOF
	nsx "$vm" nginx -c "$d/nginx.conf"
}

write_configs() {
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/cookie.key"
	chmod 600 "$DIR/cookie.key"
	cat > "$DIR/gw.conf" <<EOF
# veil-gw config for lab $ID
pin_root $PIN/gw
client_interface gw-cli
mesh_interface gw-mesh
underlay4 198.19.0.1
underlay6 2001:db8:ff::1
cookie_secret_file $DIR/cookie.key
control_socket $DIR/gw.sock
metrics 127.0.0.1:9431
flows_max ${LAB_FLOWS_MAX:-262144}
vip $VIP4 443 alert
vip $VIP6 443 alert
route vm1.veil.test 1 198.19.0.11
route vm2.veil.test 2 2001:db8:ff::11
route vm3.veil.test 3 2001:db8:ff::12
route *.apps.veil.test 3 198.19.0.12
EOF
	[ "$REAL_VM" = 1 ] && echo "route vm4.veil.test 4 198.19.0.11" >> "$DIR/gw.conf"
	# more gateway settings from the caller (tests: "store ..." and "store_pub ...")
	[ -n "${VEIL_LAB_GW_EXTRA:-}" ] && printf '%s\n' "$VEIL_LAB_GW_EXTRA" >> "$DIR/gw.conf"
	for n in 1 2; do
		{
			echo "# veil-node config for node$n of lab $ID"
			echo "pin_root $PIN/n$n"
			echo "mesh_interface n$n-mesh"
			echo "control_socket $DIR/n$n.sock"
			echo "metrics 127.0.0.1:9432"
			echo "underlay4 198.19.0.1$n"
			echo "underlay6 2001:db8:ff::1$n"
			for row in "${VMS[@]}"; do
				set -- $row
				[ "$2" = "n$n" ] && echo "vm $6 $1-host $5 $3.2 $4::2"
			done
		} > "$DIR/n$n.conf"
	done
}

# The DPDK gateway reads and writes the gateway's veths through af_packet
# sockets, which see every frame before the kernel's ingress hooks; the
# kernel still answers ARP/ND for the gateway's addresses, and is kept away
# from the traffic that is the gateway's (VIP TCP, Geneve from the nodes),
# which it would otherwise answer with ICMP errors.
start_gw_dpdk() {
	# lcore 0 (the control plane) on CPU 0, workers spread over the other CPUs
	local nw=${VEIL_DPDK_WORKERS:-1} ncpu lcores=0@0 k
	ncpu=$(nproc)
	for k in $(seq 1 "$nw"); do lcores="$lcores,$k@$(( ncpu > 1 ? 1 + (k - 1) % (ncpu - 1) : 0 ))"; done
	if [ "${VEIL_DPDK_PMD:-af_packet}" = af_xdp ]; then
		start_gw_dpdk_af_xdp "$lcores" "$nw"
		return
	fi
	nsx gw nft -f - <<EOF
table netdev veil_dpdk {
	chain client { type filter hook ingress device gw-cli priority 0; ip daddr $VIP4 tcp dport 443 drop; ip6 daddr $VIP6 tcp dport 443 drop; }
	chain mesh { type filter hook ingress device gw-mesh priority 0; udp dport 6081 drop; }
}
EOF
	nsx gw ethtool -K gw-cli gro off >/dev/null 2>&1 || true
	nsx gw ethtool -K gw-mesh gro off >/dev/null 2>&1 || true
	nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw-dpdk" --no-huge -m 512 --no-pci --file-prefix "veil-$ID" \
		--lcores "$lcores" --vdev "net_af_packet0,iface=gw-cli,qpairs=$nw" --vdev "net_af_packet1,iface=gw-mesh,qpairs=$nw" \
		-- --config "$DIR/gw.conf" --idle-us "${VEIL_DPDK_IDLE_US:-20}" >>"$DIR/gw.log" 2>&1 &
}

# VEIL_DPDK_PMD=af_xdp: the veths are DPDK's alone, as a NIC bound to DPDK
# would be (net_af_xdp steals every frame); the kernel's side of the gateway
# (its addresses, ARP/ND, the next hops to the nodes) lives on two TAPs that
# veil-gw-dpdk serves as exception ports, with the veths' MACs.
start_gw_dpdk_af_xdp() { # lcores workers
	local mc mm
	mc=$(nsx gw cat /sys/class/net/gw-cli/address)
	mm=$(nsx gw cat /sys/class/net/gw-mesh/address)
	nsx gw ip addr flush dev gw-cli
	nsx gw ip addr flush dev gw-mesh
	sed -i 's/^client_interface .*/client_interface gwk-cli/; s/^mesh_interface .*/mesh_interface gwk-mesh/' "$DIR/gw.conf"
	nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw-dpdk" --no-huge -m 512 --no-pci --file-prefix "veil-$ID" \
		--lcores "$1" --vdev "net_af_xdp0,iface=gw-cli,start_queue=0,queue_count=$2" \
		--vdev "net_af_xdp1,iface=gw-mesh,start_queue=0,queue_count=$2" \
		--vdev "net_tap0,iface=gwk-cli,mac=$mc" --vdev "net_tap1,iface=gwk-mesh,mac=$mm" \
		-- --config "$DIR/gw.conf" --client-exception-port 2 --mesh-exception-port 3 \
		--idle-us "${VEIL_DPDK_IDLE_US:-20}" >>"$DIR/gw.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do nsx gw ip link show gwk-mesh >/dev/null 2>&1 && break; sleep 0.1; done
	nsx gw ip addr add 198.18.0.1/24 dev gwk-cli
	nsx gw ip addr add 2001:db8::1/64 dev gwk-cli nodad
	nsx gw ip addr add 198.19.0.1/24 dev gwk-mesh
	nsx gw ip addr add 2001:db8:ff::1/64 dev gwk-mesh nodad
	nsx gw ip link set gwk-cli up
	nsx gw ip link set gwk-mesh up
	return 0
}

# Daemons run under nsenter (network namespace only) so that they share the
# host's /sys/fs/bpf: `ip netns exec` remounts /sys and would hide the pins.
start_daemons() {
	# nsenter execs the daemon, so $! is the daemon's own pid
	if [ "$DATAPLANE" = dpdk ]; then
		start_gw_dpdk
	else
		nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
	fi
	echo $! > "$DIR/gw.pid"
	for n in 1 2; do
		nsenter --net="/run/netns/$P-n$n" "$BUILD/veil-node" --config "$DIR/n$n.conf" >>"$DIR/n$n.log" 2>&1 &
		echo $! > "$DIR/n$n.pid"
	done
	for d in gw n1 n2; do
		for _ in $(seq 50); do grep -q "event=started" "$DIR/$d.log" 2>/dev/null && break; sleep 0.1; done
		grep -q "event=started" "$DIR/$d.log" || { say "lab: $d daemon did not start:"; cat "$DIR/$d.log"; return 1; }
	done
}

# vm4: veil-agent in node1's namespace, libvirtd in the host's (taps are made
# there and moved into node1's); the order is a spec file in $DIR/agent/orders.
real_vm_up() {
	local a="$DIR/agent"
	mkdir -p "$a/orders"
	if ! pgrep -x virtlogd >/dev/null; then virtlogd -d && pgrep -nx virtlogd >> "$a/libvirt.started"; fi
	if ! pgrep -x libvirtd >/dev/null; then libvirtd -d && sleep 1 && pgrep -nx libvirtd >> "$a/libvirt.started"; fi
	for _ in $(seq 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
	local img sha
	img=$("$TOP/tests/agent-image.sh" /tmp/veilmesh-agent-img) || { say "lab: cannot build the VM image"; return 1; }
	echo "$img" > "$a/image"
	sha=$(sha256sum "$img/disk.raw" | cut -d' ' -f1)
	printf 'node_key: lab-node1-key\nresources:\n  cpu: 1\n  ram: 512mb\n  disk: 1gb\n' > "$a/config"
	nsenter --net="/run/netns/$P-n1" "$BUILD/veil-agent" --config "$a/config" --spec-dir "$a/orders" \
		--state-dir "$a/vms" --image-dir "$a/cache" --libvirt-netns "/proc/$(pgrep -nx libvirtd)/ns/net" \
		--node-config "$DIR/n1.conf" --node-socket "$DIR/n1.sock" --name-prefix "$P-" >>"$DIR/agent.log" 2>&1 &
	echo $! > "$DIR/agent.pid"
	cat > "$a/orders/.vm4.tmp" <<EOF
id: vm4
vm_id: 4
vcpus: 1
memory: 256mb
disk:
  url: file://$img/disk.raw
  sha256: $sha
boot:
  kernel: $img/vmlinuz
  initrd: $img/initrd.img
  cmdline: console=ttyS0 quiet
network:
  ipv4: 198.18.14.2/24
  gateway4: 198.18.14.1
  ipv6: 2001:db8:14::2/64
  gateway6: 2001:db8:14::1
ready_timeout: 150
EOF
	mv "$a/orders/.vm4.tmp" "$a/orders/vm4.yaml"
	say "lab: vm4 ordered from veil-agent on node1 (a real VM under qemu TCG: about 30 s)"
	for _ in $(seq 800); do
		grep -qE "event=vm_(ready|failed|refused) id=vm4" "$DIR/agent.log" 2>/dev/null && break
		sleep 0.2
	done
	grep -m1 "event=vm_ready id=vm4" "$DIR/agent.log" || { say "lab: vm4 did not become ready:"; tail -5 "$DIR/agent.log"; return 1; }
}

real_vm_down() {
	local a="$DIR/agent"
	if [ -f "$DIR/agent.pid" ] && kill -0 "$(cat "$DIR/agent.pid")" 2>/dev/null; then
		rm -f "$a/orders/vm4.yaml"
		for _ in $(seq 100); do grep -q "event=vm_deleted id=vm4" "$DIR/agent.log" 2>/dev/null && break; sleep 0.2; done
		kill "$(cat "$DIR/agent.pid")" 2>/dev/null || true
	fi
	rm -f "$DIR/agent.pid"
	# whatever an interrupted run left behind
	local d
	for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep "^$P-vm4$"); do
		virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
		virsh -c qemu:///system undefine "$d" >/dev/null 2>&1 || true
	done
	for d in $(grep -o 'tap=vt[0-9a-f]*' "$DIR/agent.log" 2>/dev/null | cut -d= -f2 | sort -u); do
		ip link del "$d" 2>/dev/null || true
	done
	[ -f "$a/libvirt.started" ] && xargs -r kill < "$a/libvirt.started" 2>/dev/null || true
	[ -f "$a/libvirt.started" ] && for p in $(cat "$a/libvirt.started"); do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
	rm -rf "$a" "$DIR/agent.log"
}

up() {
	down >/dev/null 2>&1 || true
	mkdir -p "$DIR"
	rm -f "$DIR"/{gw,n1,n2}.log
	for n in "${NS[@]}"; do ip netns add "$P-$n"; nsx "$n" ip link set lo up; done
	for n in gw sw n1 n2; do sysctls "$n"; done
	for n in cli vm1 vm2 vm3; do
		nsx "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null
	done

	# client <-> gateway
	veth cli cli-gw gw gw-cli
	nsx cli ip addr add 198.18.0.2/24 dev cli-gw
	nsx cli ip addr add 2001:db8::2/64 dev cli-gw nodad
	nsx gw ip addr add 198.18.0.1/24 dev gw-cli
	nsx gw ip addr add 2001:db8::1/64 dev gw-cli nodad
	nsx cli ip route add $VIP4/32 via 198.18.0.1
	nsx cli ip -6 route add $VIP6/128 via 2001:db8::1

	# underlay: a bridge in the switch namespace
	nsx sw ip link add br0 type bridge
	nsx sw ip link set br0 up
	local i=1
	for n in gw n1 n2; do
		veth "$n" "$n-mesh" sw "sw-$n"
		nsx sw ip link set "sw-$n" master br0
	done
	nsx gw ip addr add 198.19.0.1/24 dev gw-mesh
	nsx gw ip addr add 2001:db8:ff::1/64 dev gw-mesh nodad
	for n in 1 2; do
		nsx "n$n" ip addr add "198.19.0.1$n/24" dev "n$n-mesh"
		nsx "n$n" ip addr add "2001:db8:ff::1$n/64" dev "n$n-mesh" nodad
	done

	# VMs behind their nodes
	for row in "${VMS[@]}"; do
		set -- $row
		local vm=$1 node=$2 v4=$3 v6=$4 mac=$5
		veth "$node" "$vm-host" "$vm" eth0
		nsx "$vm" ip link set eth0 address "$mac"
		nsx "$node" ip addr add "$v4.1/24" dev "$vm-host"
		nsx "$node" ip addr add "$v6::1/64" dev "$vm-host" nodad
		nsx "$vm" ip addr add "$v4.2/24" dev eth0
		nsx "$vm" ip addr add "$v6::2/64" dev eth0 nodad
		nsx "$vm" ip route add default via "$v4.1"
		nsx "$vm" ip -6 route add default via "$v6::1"
	done

	# ends that receive frames from XDP_TX / XDP_REDIRECT on the other end
	xdp_pass cli cli-gw
	xdp_pass sw sw-gw
	# the nodes answer a client whose VM is gone with a RST sent back out (XDP_TX)
	xdp_pass sw sw-n1
	xdp_pass sw sw-n2
	for vm in vm1 vm2 vm3; do xdp_pass "$vm" eth0; done

	# the VMs learn their gateways (veil-gw keeps the nodes resolved itself)
	for row in "${VMS[@]}"; do
		set -- $row
		nsx "$1" ping -c1 -W1 "$3.1" >/dev/null || true
		nsx "$1" ping -6 -c1 -W1 "$4::1" >/dev/null || true
	done

	make_certs
	[ -f "$DIR/big.bin" ] || head -c $((100 * 1024 * 1024)) /dev/urandom > "$DIR/big.bin"
	for row in "${VMS[@]}"; do set -- $row; vm_server "$1"; done
	write_configs
	start_daemons
	[ "$REAL_VM" = 1 ] && real_vm_up
	say "lab $ID is up: namespaces $P-{${NS[*]// /,}}, files in $DIR, maps under $PIN"
}

down() {
	real_vm_down
	for d in gw n1 n2; do
		[ -f "$DIR/$d.pid" ] && kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
	done
	for d in gw n1 n2; do
		[ -f "$DIR/$d.pid" ] || continue
		for _ in $(seq 30); do kill -0 "$(cat "$DIR/$d.pid")" 2>/dev/null || break; sleep 0.1; done
		rm -f "$DIR/$d.pid"
	done
	for vm in vm1 vm2 vm3; do
		[ -f "$DIR/$vm/nginx.pid" ] && kill "$(cat "$DIR/$vm/nginx.pid")" 2>/dev/null || true
	done
	for n in "${NS[@]}"; do
		ip netns pids "$P-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
		ip netns del "$P-$n" 2>/dev/null || true
	done
	rm -rf "$PIN" "/var/run/dpdk/veil-$ID"
}

curl_vm() { # name family [extra curl args]
	local name=$1 fam=$2; shift 2
	local vip=$VIP4; [ "$fam" = 6 ] && vip="[$VIP6]"
	nsx cli curl -sS --max-time 10 --cacert "$DIR/pki/ca.pem" --resolve "$name:443:$vip" "$@" "https://$name/"
}

status_dpdk() {
	say "== gateway status (control socket $DIR/gw.sock: status)"
	python3 - "$DIR/gw.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"status\n")
print(json.dumps(json.loads(s.makefile().readline()), indent=1))
EOF
	say "== gateway counters (echo /veil/stats | dpdk-telemetry.py -f veil-$ID; non-zero)"
	echo /veil/stats | dpdk-telemetry.py -f "veil-$ID" | python3 -c '
import json, sys
for k, v in json.loads(sys.stdin.readline())["/veil/stats"].items():
    if v: print(f"  {k:24} {v}")'
	for n in 1 2; do
		say "== node$n counters (non-zero)"
		"$BUILD/veilctl" --pin-root "$PIN/n$n" --socket "$DIR/n$n.sock" stats
	done
}

status() {
	[ "$DATAPLANE" = dpdk ] && { status_dpdk; return; }
	local ctl="$BUILD/veilctl --pin-root $PIN/gw --socket $DIR/gw.sock"
	say "== routes (veilctl routes; bpftool map dump pinned $PIN/gw/routes)"
	$ctl routes
	say "== flows (veilctl flows)"
	$ctl flows | head -20
	say "== gateway status (veilctl status)"
	$ctl status
	say "== gateway counters (sum over CPUs, non-zero)"
	"$BUILD/veilctl" --pin-root "$PIN/gw" --socket "$DIR/gw.sock" stats
	for n in 1 2; do
		say "== node$n counters (non-zero)"
		"$BUILD/veilctl" --pin-root "$PIN/n$n" --socket "$DIR/n$n.sock" stats
	done
}

demo() {
	up
	local fail=0
	for row in "${VMS[@]}"; do
		set -- $row
		for fam in 4 6; do
			printf '%-28s IPv%s: ' "https://$1.veil.test/" "$fam"
			curl_vm "$1.veil.test" "$fam" || fail=1
		done
		for fam in 4 6; do
			local vip=$VIP4; [ "$fam" = 6 ] && vip="[$VIP6]"
			printf '%-28s IPv%s: ' "https://$1.veil.test/whoami" "$fam"
			nsx cli curl -sS --max-time 10 --cacert "$DIR/pki/ca.pem" --resolve "$1.veil.test:443:$vip" "https://$1.veil.test/whoami" || fail=1
		done
	done
	if [ "$REAL_VM" = 1 ]; then
		local img; img=$(cat "$DIR/agent/image")
		for fam in 4 6; do
			local vip=$VIP4; [ "$fam" = 6 ] && vip="[$VIP6]"
			printf '%-28s IPv%s: ' "https://vm4.veil.test/whoami" "$fam"
			nsx cli curl -sS --max-time 15 --cacert "$img/ca.pem" --resolve "vm4.veil.test:443:$vip" "https://vm4.veil.test/whoami" || fail=1
		done
	fi
	printf '%-28s IPv4: ' "https://shop.apps.veil.test/"
	curl_vm shop.apps.veil.test 4 || fail=1
	printf '%-28s IPv4: ' "https://nope.veil.test/"
	curl_vm nope.veil.test 4 2>&1 | head -1 || true
	say ""
	status
	say ""
	if [ "$DATAPLANE" = dpdk ]; then
		say "Inspect:  echo /veil/stats | dpdk-telemetry.py -f veil-$ID   (also /veil/dp, /veil/lcore,0, /veil/status, /ethdev/stats,0)"
		say "          $BUILD/veilctl -s $DIR/gw.sock -j status   (and routes add|replace|del, flows drop)"
	else
		say "Inspect:  $BUILD/veilctl -p $PIN/gw -s $DIR/gw.sock status|stats|routes|flows"
		say "          bpftool map dump pinned $PIN/gw/routes   (and gw_stats; flows and a node's conns are arrays of buckets: map lookup ... key 0 0 0 0 shows one)"
		say "          nsenter --net=/run/netns/$P-gw xdp-loader status"
	fi
	say "          $BUILD/veilctl -p $PIN/n1 -s $DIR/n1.sock conns      (a node)"
	[ "$REAL_VM" = 1 ] && say "          vm4 (a real VM): $DIR/agent.log, console $DIR/agent/vms/vm4/console.log, virsh list | grep $P-"
	say "          ip netns exec $P-gw curl -s 127.0.0.1:9431/metrics   (Prometheus)"
	say "          ip netns exec $P-cli curl --cacert $DIR/pki/ca.pem --resolve vm1.veil.test:443:$VIP4 https://vm1.veil.test/"
	say "Logs:     $DIR/{gw,n1,n2}.log"
	say "Tear down: tools/lab.sh down $ID"
	return $fail
}

env_vars() {
	cat <<EOF
LAB_ID=$ID
LAB_NS_PREFIX=$P
LAB_DIR=$DIR
LAB_PIN=$PIN
LAB_VIP4=$VIP4
LAB_VIP6=$VIP6
EOF
}

case "$cmd" in
up) up ;;
down) down ;;
demo) demo ;;
status) status ;;
env) env_vars ;;
*) sed -n '2,20p' "$0"; exit 2 ;;
esac
