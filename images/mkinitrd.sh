#!/usr/bin/env bash
# Builds a VM's initrd, reproducibly (sorted cpio, fixed mtimes and owners,
# zstd, one thread: the same inputs give the same bytes).
#   images/mkinitrd.sh OUT KVER VEIL_ATTEST CONFDIR
# Contents: busybox (a link per applet), /init (images/init), veil-attest,
# cryptsetup and tpm2 (pcrextend) with their ldd libraries and the ones they
# dlopen, the kernel modules for virtio, dm-crypt and ext4 resolved with
# modprobe --show-depends, and CONFDIR's files under /etc/veil.  The archive is
# zstd(main) followed by a small uncompressed cpio holding /etc/veil/motd, so a
# one-byte change of the initrd that still boots is easy to make in tests.
set -euo pipefail
out=$1 kver=$2 attest=$3 conf=$4
here=$(cd "$(dirname "$0")" && pwd)
moddir=/lib/modules/$kver
[ -d "$moddir" ] || { echo "mkinitrd: no modules for kernel $kver in $moddir" >&2; exit 1; }
st=$(mktemp -d /tmp/veil-initrd-XXXXXX)
trap 'rm -rf "$st"' EXIT
main=$st/main tail=$st/tail
mkdir -p "$main"/{bin,sbin,etc/veil,proc,sys,dev,run,newroot,lib/modules,usr/bin,usr/sbin,lib64} "$tail/etc/veil"

# busybox: a link per applet, never busybox to itself
cp /bin/busybox "$main/bin/busybox"
for a in $(/bin/busybox --list-full); do
	[ "$a" = bin/busybox ] && continue
	[ -d "$main/${a%/*}" ] || mkdir -p "$main/${a%/*}"
	[ -e "$main/$a" ] || ln -s /bin/busybox "$main/$a"
done

libs() { # copies each library a program needs, by its real path
	ldd "$1" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r l; do
		mkdir -p "$main$(dirname "$l")"
		cp -L "$l" "$main$l"
	done
}
for p in "$attest:/sbin/veil-attest" "$(command -v cryptsetup):/sbin/cryptsetup" "$(command -v tpm2):/usr/bin/tpm2"; do
	src=${p%%:*} dst=${p#*:}
	cp "$src" "$main$dst"
	libs "$src"
done
ln -sf tpm2 "$main/usr/bin/tpm2_pcrextend"
# loaded with dlopen, so ldd does not list them
for l in libtss2-tcti-device.so.0 libtss2-tctildr.so.0 libgcc_s.so.1; do
	p=$(ls /lib/x86_64-linux-gnu/$l /usr/lib/x86_64-linux-gnu/$l 2>/dev/null | head -1)
	[ -n "$p" ] || { echo "mkinitrd: $l not found" >&2; exit 1; }
	mkdir -p "$main$(dirname "$p")"
	cp -L "$p" "$main$p"
	libs "$p"
done

# modules, in load order, each once
: > "$main/etc/veil/modules"
for m in virtio_pci virtio_blk virtio_net dm_crypt ext4 xts; do
	modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	mkdir -p "$main$(dirname "$ko")"
	cp "$ko" "$main$ko"
	echo "$ko" >> "$main/etc/veil/modules"
done

install -m 0755 "$here/init" "$main/init"
cp "$conf"/* "$main/etc/veil/"
mv "$main/etc/veil/motd" "$tail/etc/veil/motd" 2>/dev/null || echo "veilmesh initrd" > "$tail/etc/veil/motd"

pack() { # dir -> cpio on stdout
	(cd "$1" && find . -mindepth 1 -exec touch -h -d @1 {} + &&
		find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible)
}
pack "$main" | zstd -q -10 -T1 > "$out.tmp"
# the kernel looks for the next archive on a 4-byte boundary: pad with zeros
truncate -s %4 "$out.tmp"
pack "$tail" >> "$out.tmp"
mv "$out.tmp" "$out"
