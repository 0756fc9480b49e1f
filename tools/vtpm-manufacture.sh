#!/usr/bin/env bash
# A node's vTPM, manufactured with an EK certificate from "the vendor" (a
# swtpm-localca this machine keeps as the TPM vendor, ../shared/FACTS.md):
#   tools/vtpm-manufacture.sh DIR    -> prints DIR once DIR holds
#   state/tpm2-00.permall (the TPM state libvirt starts a VM's TPM from),
#   ek-rsa2048.crt (its EK certificate) and vendor.pem (root + intermediate).
# Made once, then reused (tests/launch.sh keeps the same layout under its cache).
set -u
D=$1
if [ ! -s "$D/ek-rsa2048.crt" ] || [ ! -s "$D/vendor.pem" ] || [ ! -s "$D/state/tpm2-00.permall" ]; then
	rm -rf "$D"; mkdir -p "$D/state" "$D/ca" "$D/ekc"
	printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
		"$D/ca" "$D/ca" "$D/ca" "$D/ca" > "$D/ca/localca.conf"
	printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\nactive_pcr_banks = sha256\n' \
		"$D/ca" > "$D/ca/setup.conf"
	swtpm_setup --tpm2 --tpm-state "$D/state" --createek --create-ek-cert --lock-nvram --not-overwrite \
		--config "$D/ca/setup.conf" --write-ek-cert-files "$D/ekc" --vmid "veilmesh-node:$(cat /proc/sys/kernel/random/uuid)" \
		>"$D/setup.log" 2>&1 && [ -s "$D/ekc/ek-rsa2048.crt" ] || { echo "swtpm_setup: $(tail -2 "$D/setup.log")" >&2; rm -rf "$D"; exit 1; }
	cat "$D/ca/swtpm-localca-rootca-cert.pem" "$D/ca/issuercert.pem" > "$D/vendor.pem"
	cp "$D/ekc/ek-rsa2048.crt" "$D/ek-rsa2048.crt"
fi
echo "$D"
