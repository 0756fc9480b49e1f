#!/usr/bin/env bash
# Builds the test VM for tests/agent.sh from this machine's own packages (no
# download beyond the package archive): the Debian kernel (linux-image-amd64),
# an initrd (busybox-static + the virtio and ext4 modules) and a raw ext4 disk
# holding the root filesystem (busybox, nginx and its ldd libraries, a TLS
# certificate from a test CA, an init that takes its addresses from the kernel
# command line: veil.ip4=ADDR/P,GW veil.ip6=ADDR/P,GW; veil.egress=HOST:PORT is asked
# once up, to show the way out).
#   tests/agent-image.sh OUTDIR_BASE   prints the directory holding vmlinuz,
#                                      initrd.img, disk.raw, ca.pem
# The build is cached under OUTDIR_BASE/<key>, the key a hash of this script
# and of the package versions used, so reruns take no time.
set -euo pipefail
base=${1:-/tmp/veilmesh-agent-img}
KVER=$(ls /lib/modules | grep -E '^[0-9].*-amd64$' | sort -V | tail -1)
[ -n "$KVER" ] && [ -f "/boot/vmlinuz-$KVER" ] || { echo "agent-image: no Debian kernel (linux-image-amd64)" >&2; exit 1; }
key=$( { cat "$0"; echo "$KVER"; dpkg-query -W -f='${Version}\n' busybox-static nginx-light 2>/dev/null || true; } |
	sha256sum | cut -c1-16)
out="$base/$key"
if [ -f "$out/done" ]; then echo "$out"; exit 0; fi
rm -rf "$out"
# builds for other keys (an older script or packages) are of no use any more
find "$base" -mindepth 1 -maxdepth 1 -type d -not -name "build.*" -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$out"
work=$(mktemp -d "$base/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

cp "/boot/vmlinuz-$KVER" "$out/vmlinuz"

# ---- initrd: modules, then the disk becomes root
ir="$work/initrd"
mkdir -p "$ir"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ir/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ir/bin/$a"; done
mods=()
for m in virtio_pci virtio_blk virtio_net ext4; do
	while read -r _ path _; do
		[ -n "$path" ] || continue
		case "$path" in *crc32c-intel*) continue ;; esac  # fails under TCG; generic takes over
		case " ${mods[*]-} " in *" $(basename "$path") "*) continue ;; esac
		cp "$path" "$ir/lib/modules/"
		mods+=("$(basename "$path")")
	done < <(modprobe -S "$KVER" --show-depends "$m" | grep '^insmod')
done
{
	echo '#!/bin/sh'
	echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
	for m in "${mods[@]}"; do echo "insmod /lib/modules/$m"; done
	echo 'for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done'
	echo 'mount -t ext4 /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; sleep 5; poweroff -f; }'
	echo 'mount --move /dev /newroot/dev; umount /proc /sys'
	echo 'exec switch_root /newroot /init'
} > "$ir/init"
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img"

# ---- root filesystem on the disk
rf="$work/root"
mkdir -p "$rf"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/log/nginx,var/lib/nginx,www,pki,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$rf/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rf/bin/$a"; done
cp /usr/sbin/nginx "$rf/sbin/nginx"
for lib in $(ldd /usr/sbin/nginx | grep -o '/[^ ]*'); do
	mkdir -p "$rf$(dirname "$lib")"
	cp -L "$lib" "$rf$lib"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$rf/etc/passwd"
echo 'root:x:0:' > "$rf/etc/group"
echo 'hosts: files' > "$rf/etc/nsswitch.conf"

# a test CA and the VM's certificate (names: web1.veil.test, *.veil.test)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/CN=veilmesh agent test CA" -keyout "$work/ca.key" -out "$out/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=web1.veil.test" \
	-keyout "$rf/pki/vm.key" -out "$work/vm.csr" 2>/dev/null
openssl x509 -req -in "$work/vm.csr" -CA "$out/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 30 \
	-extfile <(printf 'subjectAltName=DNS:web1.veil.test,DNS:*.veil.test\n') -out "$rf/pki/vm.pem" 2>/dev/null

echo 'hello from a real VM' > "$rf/www/index.html"
cat > "$rf/etc/nginx.conf" <<'EOF'
worker_processes 1;
pid /run/nginx.pid;
error_log /dev/console warn;
user root;
daemon off;
events { worker_connections 256; }
http {
    log_format peer 'nginx-access $remote_addr "$request" $status $ssl_server_name';
    access_log /dev/console peer;
    client_body_temp_path /tmp; proxy_temp_path /tmp; fastcgi_temp_path /tmp;
    uwsgi_temp_path /tmp; scgi_temp_path /tmp;
    server {
        listen 443 ssl;
        listen [::]:443 ssl;
        ssl_certificate /pki/vm.pem;
        ssl_certificate_key /pki/vm.key;
        root /www;
        location = /whoami { default_type text/plain; return 200 "real VM saw $remote_addr\n"; }
    }
}
EOF
cat > "$rf/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
for c in all default eth0; do echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad; done
ip link set lo up
ip link set eth0 up
for w in $(cat /proc/cmdline); do
	case $w in
	veil.ip4=*) v=${w#veil.ip4=}; ip addr add ${v%,*} dev eth0; ip route add default via ${v#*,} ;;
	veil.ip6=*) v=${w#veil.ip6=}; ip -6 addr add ${v%,*} dev eth0; ip -6 route add default via ${v#*,} ;;
	esac
done
echo "vm-init: addresses"; ip addr show eth0 | grep inet
[ -e /dev/tpm0 ] && echo "vm-init: tpm0 present"
/sbin/nginx -c /etc/nginx.conf &
echo "vm-init: nginx started"
# veil.egress=HOST:PORT: the VM's way out (through the node's NAT), as an initrd reaches its
# validators; an HTTP GET by nc (busybox-static's wget crashes in Debian 12)
for w in $(cat /proc/cmdline); do
	case $w in veil.egress=*)
		u=${w#veil.egress=}
		( for i in $(seq 30); do
			r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 ${u%:*} ${u##*:} 2>/dev/null | tail -1)
			[ -n "$r" ] && { echo "vm-egress: $r"; break; }
			sleep 2
		  done ) & ;;
	esac
done
while :; do sleep 3600; done
EOF
chmod +x "$rf/init"
truncate -s 64M "$out/disk.raw"
mke2fs -q -F -t ext4 -d "$rf" "$out/disk.raw"
touch "$out/done"
echo "$out"
