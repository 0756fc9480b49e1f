# The libvirt lab shared by tests/agent.sh and tests/agentstore.sh (sourced):
#   client --- gateway (veil-gw, XDP) --- node (veil-node [+ the suite's agent]) --- tap --- VM
# The suite sets P (namespace and domain prefix), DIR, PIN, BUILD, VIP4, VIP6
# and the arrays pids and started_libvirt before it sources this file.

pass() { echo "PASS $1"; }
failm() { echo "FAIL $1: $2"; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# Everything the suite may have made, even if it did not get that far: the
# agent, our processes, this run's domains and taps, namespaces, files, and
# the libvirt daemons we started (stopped and waited for, so the next suite
# does not find a virtlogd or libvirtd that is still going away).
vmlab_cleanup() {
	set +e
	[ -f "$DIR/agent.pid" ] && kill "$(cat "$DIR/agent.pid")" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep "^$P-"); do
		virsh -c qemu:///system destroy "$d" >/dev/null 2>&1
		virsh -c qemu:///system undefine --nvram --tpm "$d" >/dev/null 2>&1 ||
			virsh -c qemu:///system undefine "$d" >/dev/null 2>&1
	done
	for t in $(grep -o 'tap=vt[0-9a-f]*' "$DIR/agent.log" 2>/dev/null | cut -d= -f2 | sort -u); do
		ip link del "$t" 2>/dev/null
		ip netns exec "$P-node" ip link del "$t" 2>/dev/null
	done
	for n in cli gw node; do
		ip netns pids "$P-$n" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$P-$n" 2>/dev/null
	done
	rm -rf "$PIN" "$DIR"
	for p in "${started_libvirt[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${started_libvirt[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
}

# libvirt: the running one, else ours; a libvirtd that a previous suite is
# just stopping is waited for, not raced.  Sets LVPID; 1 when it never answers.
vmlab_libvirt() {
	for _ in $(seq 60); do
		[ -S /run/libvirt/virtlogd-sock ] && virsh -c qemu:///system version >/dev/null 2>&1 && break
		if ! pgrep -x virtlogd >/dev/null; then virtlogd -d && sleep 0.3 && started_libvirt+=("$(pgrep -nx virtlogd)"); fi
		if ! pgrep -x libvirtd >/dev/null; then libvirtd -d && sleep 1 && started_libvirt+=("$(pgrep -nx libvirtd)"); fi
		sleep 0.5
	done
	LVPID=$(pgrep -nx libvirtd)
	[ -n "$LVPID" ] && virsh -c qemu:///system version >/dev/null 2>&1
}

# The namespaces and links, IPv4 and IPv6: client 198.18.0.2 / 2001:db8::2,
# gateway 198.18.0.1 / 2001:db8::1 and 198.19.0.1 / 2001:db8:ff::1 on the
# mesh, node 198.19.0.11 / 2001:db8:ff::11; the VIPs routed to the gateway.
vmlab_net() {
	local n
	for n in cli gw node; do ip netns add "$P-$n"; nsx "$n" ip link set lo up; done
	for n in gw node; do
		nsx "$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.all.accept_dad=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
	done
	nsx cli sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null
	vmlab_veth cli cli-gw gw gw-cli
	vmlab_veth gw gw-mesh node n-mesh
	nsx cli ip addr add 198.18.0.2/24 dev cli-gw
	nsx cli ip addr add 2001:db8::2/64 dev cli-gw nodad
	nsx gw ip addr add 198.18.0.1/24 dev gw-cli
	nsx gw ip addr add 2001:db8::1/64 dev gw-cli nodad
	nsx cli ip route add "$VIP4/32" via 198.18.0.1
	nsx cli ip -6 route add "$VIP6/128" via 2001:db8::1
	nsx gw ip addr add 198.19.0.1/24 dev gw-mesh
	nsx gw ip addr add 2001:db8:ff::1/64 dev gw-mesh nodad
	nsx node ip addr add 198.19.0.11/24 dev n-mesh
	nsx node ip addr add 2001:db8:ff::11/64 dev n-mesh nodad
	nsx cli ip link set dev cli-gw xdp obj "$BUILD/lab_pass.bpf.o" sec xdp
}
vmlab_veth() { # NS1 IF1 NS2 IF2
	ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
	nsx "$1" ethtool -K "$2" tx off >/dev/null 2>&1; nsx "$3" ethtool -K "$4" tx off >/dev/null 2>&1
	nsx "$1" ip link set "$2" up; nsx "$3" ip link set "$4" up
}

# veil-gw (route web1.veil.test -> VM 7 on the node) and veil-node, each in
# its namespace; waits until both say started (the caller checks the logs).
vmlab_daemons() {
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/cookie.key"
	chmod 600 "$DIR/cookie.key"
	cat > "$DIR/gw.conf" <<EOC
pin_root $PIN/gw
client_interface gw-cli
mesh_interface gw-mesh
underlay4 198.19.0.1
underlay6 2001:db8:ff::1
cookie_secret_file $DIR/cookie.key
control_socket $DIR/gw.sock
metrics off
vip $VIP4 443 alert
vip $VIP6 443 alert
route web1.veil.test 7 198.19.0.11
EOC
	cat > "$DIR/node.conf" <<EOC
pin_root $PIN/node
mesh_interface n-mesh
underlay4 198.19.0.11
underlay6 2001:db8:ff::11
control_socket $DIR/node.sock
metrics off
EOC
	nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
	pids+=($!)
	nsenter --net="/run/netns/$P-node" "$BUILD/veil-node" --config "$DIR/node.conf" >>"$DIR/node.log" 2>&1 &
	pids+=($!)
	local d
	for d in gw node; do
		for _ in $(seq 50); do grep -q "event=started" "$DIR/$d.log" 2>/dev/null && break; sleep 0.1; done
	done
}
