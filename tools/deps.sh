#!/usr/bin/env bash
# Installs the Debian packages veilmesh needs for a target, when missing.
#   tools/deps.sh build|test|demo|bench
# (tor-geoipdb pulls in tor, which is installed but not started)
set -euo pipefail
need=(clang llvm make gcc pkg-config libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev
      libssl-dev libmnl-dev libpcap-dev libtss2-dev libjson-c-dev libevent-dev iproute2 ethtool
      dpdk-dev dpdk libyaml-dev libxml2-dev libvirt-dev libnl-3-dev libnl-route-3-dev
      libcurl4-openssl-dev libnftnl-dev libldns-dev libnats-dev)
case "${1:-build}" in
bench) need+=(haproxy wrk gnuplot-nox libnginx-mod-stream nginx-light python3 dnsperf gdnsd tor-geoipdb
	       knot-dnsutils util-linux nats-server linux-perf) ;;
test|demo) need+=(nginx-light openssl curl nftables tshark procps psmisc python3 iputils-ping util-linux
		   swtpm swtpm-tools tpm2-tools cryptsetup-bin
		   qemu-system-x86 libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients ovmf
		   linux-image-amd64 busybox-static e2fsprogs kmod cpio gzip zstd jq
		   knot-dnsutils bind9-dnsutils tor-geoipdb nats-server python3-jsonschema python3-yaml openssh-client
		   linux-perf) ;;
esac
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
	# tshark asks whether non-root users may capture; answer no.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
	$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# bpffs for pinned maps
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
