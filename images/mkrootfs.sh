#!/usr/bin/env bash
# The recipe "nginx": a root filesystem with busybox and nginx serving TLS on
# 443 with the certificate the registry issued for the VM's name.
#   images/mkrootfs.sh DIR NAME CERT KEY [PROBE CONFDIR]
#   VEIL_IMAGE_CACHE=DIR images/mkrootfs.sh --cache-only   fills the cache (below), builds no tree
# DIR is created (it must not exist).  /sbin/init is images/os-init.
# VEIL_IMAGE_CACHE=DIR keeps the part that is the same for every VM (busybox
# and its links, nginx and its libraries, /sbin/init, passwd, group) there,
# named by the sha256 of its inputs, and copies it: no name, certificate or
# key of a VM is ever in it.
# Tests only: PROBE (a veil-attest binary) and CONFDIR (the initrd's
# /etc/veil) put an attestation client into the OS, which tries to get the
# key once nginx runs, as any process of a booted VM could: it must fail.
set -euo pipefail
if [ "${1:-}" = --cache-only ]; then
	dir="" probe=""
	[ -n "${VEIL_IMAGE_CACHE:-}" ] || { echo "mkrootfs: --cache-only needs VEIL_IMAGE_CACHE" >&2; exit 2; }
else
	dir=$1 name=$2 cert=$3 key=$4 probe=${5:-} probeconf=${6:-}
	[ ! -e "$dir" ] || { echo "mkrootfs: $dir exists" >&2; exit 1; }
fi
here=$(cd "$(dirname "$0")" && pwd)
base() { # DIR: what every VM of this recipe has
	local dir=$1
	mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc/nginx/tls,proc,sys,dev,run,tmp,var/www,var/log/nginx,var/lib/nginx,lib64}
	cp /bin/busybox "$dir/bin/busybox"
	# (one perl process for the ~400 links: a fork per link took seconds)
	perl -MFile::Path=make_path -e '($root, %skip) = (shift, map { $_ => 1 } @ARGV);
		for (`/bin/busybox --list-full`) { chomp; next if $skip{$_}; my $l = "$root/$_"; (my $d = $l) =~ s{/[^/]*$}{};
			-d $d or make_path($d); -e $l or symlink("/bin/busybox", $l) or die "mkrootfs: $l: $!\n" }' "$dir" bin/busybox sbin/init linuxrc
	cp /usr/sbin/nginx "$dir/usr/sbin/nginx"
	ldd /usr/sbin/nginx | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r l; do
		mkdir -p "$dir$(dirname "$l")"
		cp -L "$l" "$dir$l"
	done
	install -m 0755 "$here/os-init" "$dir/sbin/init"
	printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
}
cache=${VEIL_IMAGE_CACHE:-}
if [ -n "$cache" ] && [ -z "$probe" ]; then
	nlibs=$(ldd /usr/sbin/nginx | awk '/=> \//{print $3} /^\t\/lib/{print $1}')
	ckey=$( { cat "$0"; echo "$nlibs"; sha256sum "$here/os-init" /bin/busybox /usr/sbin/nginx $(readlink -f $nlibs); } | sha256sum | cut -c1-64)
	b=$cache/rootfs-base-$ckey
	mkdir -p "$cache"
	exec 9>"$cache/.rootfs-base.lock"
	flock 9 # one builder of it at a time: the others wait, then copy it
	if [ ! -d "$b" ]; then # built aside, then renamed
		tmpb=$(mktemp -d "$cache/.rootfs-base-XXXXXX")
		base "$tmpb/t"
		mv -T "$tmpb/t" "$b"
		rm -rf "$tmpb"
	fi
	exec 9>&-
	[ -n "$dir" ] || exit 0
	cp -a "$b" "$dir"
else
	base "$dir"
fi
libs() {
	ldd "$1" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r l; do
		mkdir -p "$dir$(dirname "$l")"
		cp -L "$l" "$dir$l"
	done
}
if [ -n "$probe" ]; then
	cp "$probe" "$dir/usr/sbin/veil-attest"
	libs "$probe"
	for l in libtss2-tcti-device.so.0 libtss2-tctildr.so.0 libgcc_s.so.1; do
		p=$(ls /lib/x86_64-linux-gnu/$l /usr/lib/x86_64-linux-gnu/$l 2>/dev/null | head -1)
		mkdir -p "$dir$(dirname "$p")"
		cp -L "$p" "$dir$p"
		libs "$p"
	done
	mkdir -p "$dir/etc/veil"
	cp "$probeconf"/* "$dir/etc/veil/"
	cp "$here/init" "$dir/etc/veil/init"
fi
install -m 0644 "$cert" "$dir/etc/nginx/tls/cert.pem"
install -m 0600 "$key" "$dir/etc/nginx/tls/key.pem"
echo "$name" > "$dir/etc/hostname"
cat > "$dir/etc/nginx/nginx.conf" <<NGX
user nobody nogroup;
worker_processes 1;
pid /run/nginx.pid;
error_log /dev/console warn;
events { worker_connections 64; }
http {
	access_log off;
	types { text/html html; }
	server {
		listen 443 ssl;
		server_name $name;
		ssl_certificate /etc/nginx/tls/cert.pem;
		ssl_certificate_key /etc/nginx/tls/key.pem;
		ssl_protocols TLSv1.3;
		root /var/www;
	}
}
NGX
# the page, with a string that must never be readable in the disk image
echo "veilmesh: $name booted from its encrypted disk (rootfs-marker-7f3a9c)" > "$dir/var/www/index.html"
