#!/usr/bin/env bash
# A vTPM, manufactured with an EK certificate from "the vendor" (a
# swtpm-localca this machine keeps as the TPM vendor, ../shared/FACTS.md):
#   tools/vtpm-manufacture.sh DIR [VENDOR_DIR]   -> prints DIR once DIR holds
#   state/tpm2-00.permall (the TPM state: libvirt starts a VM's TPM from it,
#   swtpm runs a node's TPM on a copy of it), ek-rsa2048.crt (its EK
#   certificate) and vendor.pem (root + intermediate), ca/issuercert.pem (the
#   intermediate).  With VENDOR_DIR (a DIR made by this script) the EK is
#   certified by that one's vendor CA, else DIR gets a vendor CA of its own.
# Made once, then reused (tests/launch.sh keeps the same layout under its cache).
set -u
D=$1 V=${2:-}
if [ ! -s "$D/ek-rsa2048.crt" ] || [ ! -s "$D/vendor.pem" ] || [ ! -s "$D/state/tpm2-00.permall" ]; then
	rm -rf "$D"; mkdir -p "$D/state" "$D/ca" "$D/ekc"
	if [ -n "$V" ]; then
		[ -s "$V/ca/setup.conf" ] && [ -s "$V/vendor.pem" ] || { echo "vtpm-manufacture: $V holds no vendor CA" >&2; rm -rf "$D"; exit 1; }
		setup=$V/ca/setup.conf
	else
		printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
			"$D/ca" "$D/ca" "$D/ca" "$D/ca" > "$D/ca/localca.conf"
		printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\nactive_pcr_banks = sha256\n' \
			"$D/ca" > "$D/ca/setup.conf"
		setup=$D/ca/setup.conf
	fi
	swtpm_setup --tpm2 --tpm-state "$D/state" --createek --create-ek-cert --lock-nvram --not-overwrite \
		--config "$setup" --write-ek-cert-files "$D/ekc" --vmid "veilmesh-node:$(cat /proc/sys/kernel/random/uuid)" \
		>"$D/setup.log" 2>&1 && [ -s "$D/ekc/ek-rsa2048.crt" ] || { echo "swtpm_setup: $(tail -2 "$D/setup.log")" >&2; rm -rf "$D"; exit 1; }
	if [ -n "$V" ]; then
		cp "$V/vendor.pem" "$D/vendor.pem"
		cp "$V/ca/issuercert.pem" "$D/ca/issuercert.pem"
	else
		cat "$D/ca/swtpm-localca-rootca-cert.pem" "$D/ca/issuercert.pem" > "$D/vendor.pem"
	fi
	cp "$D/ekc/ek-rsa2048.crt" "$D/ek-rsa2048.crt"
fi
echo "$D"
