#!/usr/bin/env bash
# Builds a VM's initrd, reproducibly (sorted cpio, fixed mtimes and owners,
# zstd, one thread: the same inputs give the same bytes).
#   images/mkinitrd.sh OUT KVER VEIL_ATTEST CONFDIR
#   VEIL_IMAGE_CACHE=DIR  keeps the compressed part (below) by the sha256 of its inputs
#   VEIL_IMAGE_CACHE=DIR images/mkinitrd.sh --cache-only KVER VEIL_ATTEST   fills it, builds no initrd
# Contents: busybox (a link per applet), /init (images/init), veil-attest,
# cryptsetup and tpm2 (pcrextend) with their ldd libraries and the ones they
# dlopen, the kernel modules for virtio, dm-crypt and ext4 resolved with
# modprobe --show-depends, and CONFDIR's files under /etc/veil.  The archive is
# zstd(main) followed by a small uncompressed cpio holding CONFDIR's files
# (/etc/veil: vm.conf, CA, registry key, motd).  main holds no file of the VM's
# own, so it is the same for every VM of a kernel and tool set and is built
# once: with VEIL_IMAGE_CACHE it is kept there, named by the sha256 of
# everything that goes into it (this script, /init, every program, library and
# module, their paths).  It holds no secret.  A one-byte change of the initrd
# that still boots (the motd in the tail) is easy to make in tests.
set -euo pipefail
if [ "${1:-}" = --cache-only ]; then
	out="" kver=$2 attest=$3 conf=""
	[ -n "${VEIL_IMAGE_CACHE:-}" ] || { echo "mkinitrd: --cache-only needs VEIL_IMAGE_CACHE" >&2; exit 2; }
else
	out=$1 kver=$2 attest=$3 conf=$4
fi
here=$(cd "$(dirname "$0")" && pwd)
cache=${VEIL_IMAGE_CACHE:-}
moddir=/lib/modules/$kver
[ -d "$moddir" ] || { echo "mkinitrd: no modules for kernel $kver in $moddir" >&2; exit 1; }
st=$(mktemp -d /tmp/veil-initrd-XXXXXX)
trap 'rm -rf "$st"' EXIT
main=$st/main tail=$st/tail
list=$st/files   # "SRC DST" per line: what main holds besides busybox's links
mkdir -p "$tail/etc/veil"

libs() { # the libraries a program needs
	ldd "$1" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'
}
{
	echo /bin/busybox
	echo "$attest /sbin/veil-attest"
	echo "$(command -v cryptsetup) /sbin/cryptsetup"
	echo "$(command -v tpm2) /usr/bin/tpm2"
	libs "$attest"; libs "$(command -v cryptsetup)"; libs "$(command -v tpm2)"
	# loaded with dlopen, so ldd does not list them
	for l in libtss2-tcti-device.so.0 libtss2-tctildr.so.0 libgcc_s.so.1; do
		p=$(ls /lib/x86_64-linux-gnu/$l /usr/lib/x86_64-linux-gnu/$l 2>/dev/null | head -1)
		[ -n "$p" ] || { echo "mkinitrd: $l not found" >&2; exit 1; }
		echo "$p"
		libs "$p"
	done
} | awk '{print $1, ($2 == "" ? $1 : $2)}' | awk '!seen[$2]++' > "$st/names"
# by their real paths (one readlink for all); /init from here
paste -d' ' <(awk '{print $1}' "$st/names" | xargs readlink -f) <(awk '{print $2}' "$st/names") > "$list"
echo "$here/init /init" >> "$list"
# modules, in load order, each once
for m in virtio_pci virtio_blk virtio_net dm_crypt ext4 xts; do
	modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' > "$st/modules"

# what main is made of: names and bytes
key=$( { cat "$0"; cat "$list" "$st/modules"; awk '{print $1}' "$list" | xargs sha256sum; xargs sha256sum < "$st/modules"; } |
	sha256sum | cut -c1-64)
cached=${cache:+$cache/initrd-main-$key.cpio.zst}

pack() { # dir -> cpio on stdout
	(cd "$1" && find . -mindepth 1 -exec touch -h -d @1 {} + &&
		find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible)
}
if [ -n "$cached" ]; then # one builder of it at a time: the others wait, then copy it
	mkdir -p "$cache"
	exec 9>"$cache/.initrd-main.lock"
	flock 9
fi
if [ -n "$cached" ] && [ -s "$cached" ]; then
	[ -n "$out" ] || exit 0
	cp "$cached" "$out.tmp"
else
	[ -n "$out" ] || out=$st/out
	mkdir -p "$main"/{bin,sbin,etc/veil,proc,sys,dev,run,newroot,lib/modules,usr/bin,usr/sbin,lib64}
	while read -r src dst; do
		mkdir -p "$main$(dirname "$dst")"
		cp -L "$src" "$main$dst"
	done < "$list"
	chmod 0755 "$main/init"
	# busybox: a link per applet, never busybox to itself
	# (one perl process for the ~400 links: a fork per link took seconds)
	perl -MFile::Path=make_path -e '($root, %skip) = (shift, map { $_ => 1 } @ARGV);
		for (`/bin/busybox --list-full`) { chomp; next if $skip{$_}; my $l = "$root/$_"; (my $d = $l) =~ s{/[^/]*$}{};
			-d $d or make_path($d); -e $l or symlink("/bin/busybox", $l) or die "mkinitrd: $l: $!\n" }' "$main" bin/busybox
	ln -sf tpm2 "$main/usr/bin/tpm2_pcrextend"
	: > "$main/etc/veil/modules"
	while read -r ko; do
		mkdir -p "$main$(dirname "$ko")"
		cp "$ko" "$main$ko"
		echo "$ko" >> "$main/etc/veil/modules"
	done < "$st/modules"
	pack "$main" | zstd -q -10 -T1 > "$out.tmp"
	if [ -n "$cached" ]; then
		cp "$out.tmp" "$cached.$$" && mv -f "$cached.$$" "$cached"
	fi
fi
[ -n "$conf" ] || exit 0
exec 9>&-
cp "$conf"/* "$tail/etc/veil/"
[ -e "$tail/etc/veil/motd" ] || echo "veilmesh initrd" > "$tail/etc/veil/motd"
# the kernel looks for the next archive on a 4-byte boundary: pad with zeros
truncate -s %4 "$out.tmp"
pack "$tail" >> "$out.tmp"
mv "$out.tmp" "$out"
