#!/usr/bin/env bash
# Attestation and key release end to end (protocol v2, docs/attestation.md),
# with a real TPM simulator (swtpm), validators on loopback over TLS 1.3, the
# registry formatting a real LUKS2 container, and the attestation client
# rebuilding its key.  Until a real OVMF boot log is captured (issue 14), the
# firmware's TCG event log is made by tests/attest/mkevlog.py and replayed
# into the swtpm's PCRs with tpm2_pcrextend, as OVMF and the EFI stub would.
# Prints PASS/FAIL lines; everything is removed on exit.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
W=$(mktemp -d /tmp/veil-attest-XXXXXX)
# our ports: BASE..BASE+9, below the ephemeral range (32768-60999) so that no
# outgoing connection's local port can hold one of them when a validator binds
BASE=$((20000 + ($$ % 1200) * 10))
TPM_PORT=$((BASE)); TPM_CTRL=$((BASE + 1))
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
[ -n "${KEEP:-}" ] && trap - EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"

# ---------- keys and certificates ----------
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=validators CA" \
	-keyout ca.key -out ca.pem 2>/dev/null
openssl genpkey -algorithm ed25519 -out registry.key 2>/dev/null
openssl pkey -in registry.key -pubout -out registry.pub
openssl genpkey -algorithm ed25519 -out rogue.key 2>/dev/null
for i in 1 2 3 4 5; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=validator $i" \
		-keyout v$i.tls.key -out v$i.csr 2>/dev/null
	openssl x509 -req -in v$i.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile <(echo "subjectAltName=IP:127.0.0.1") -out v$i.crt 2>/dev/null
	openssl genpkey -algorithm ed25519 -out v$i.sign.key 2>/dev/null
	chmod 600 v$i.tls.key v$i.sign.key
	openssl pkey -in v$i.sign.key -pubout -out v$i.sign.pub
	( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > v$i.storage )
done
cd - >/dev/null

# TPMs as their manufacturer leaves them: swtpm_setup with an EK certificate
# signed by a CA this test keeps as "the TPM vendor" (test-owned localca,
# ../shared/FACTS.md); one more TPM from the vendor (not this VM's) and one
# whose EK certificate another CA signed
mktpm() { # state-dir ca-dir
	local ca="$W/$2"
	mkdir -p "$W/$1" "$W/$1.ekc" "$ca"
	if [ "$2" = vendor ] && [ ! -e "$ca/issuercert.pem" ]; then
		# the vendor's root and EK-issuing CA made here, with CRL signing in
		# their key usage (swtpm_localca's own issuer has none), so that the
		# vendor can revoke EKs; swtpm_localca signs EK certificates with them
		openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=test TPM vendor root" -keyout "$ca/root.key" \
			-out "$ca/swtpm-localca-rootca-cert.pem" -addext "basicConstraints=critical,CA:true" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
		openssl req -newkey rsa:2048 -nodes -subj "/CN=test TPM vendor EK CA" -keyout "$ca/signkey.pem" \
			-out "$ca/issuer.csr" 2>/dev/null &&
		openssl x509 -req -in "$ca/issuer.csr" -CA "$ca/swtpm-localca-rootca-cert.pem" -CAkey "$ca/root.key" \
			-CAcreateserial -days 3 -out "$ca/issuercert.pem" -extfile <(printf '%s\n' \
			"basicConstraints=critical,CA:true" "keyUsage=critical,keyCertSign,cRLSign" "subjectKeyIdentifier=hash") \
			2>/dev/null || { fail attest_setup "cannot make the vendor CA"; exit 1; }
	fi
	if [ ! -e "$ca/setup.conf" ]; then
		printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
			"$ca" "$ca" "$ca" "$ca" > "$ca/localca.conf"
		printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\nactive_pcr_banks = sha256\n' \
			"$ca" > "$ca/setup.conf"
	fi
	swtpm_setup --tpm2 --tpmstate "$W/$1" --createek --create-ek-cert --lock-nvram --overwrite --config "$ca/setup.conf" \
		--write-ek-cert-files "$W/$1.ekc" --vmid "attest-$1" >"$W/$1.setup.log" 2>&1 &&
		[ -s "$W/$1.ekc/ek-rsa2048.crt" ] || { fail attest_setup "swtpm_setup $1: $(tail -3 "$W/$1.setup.log")"; exit 1; }
}
mktpm tpm vendor; mktpm tpm-other vendor; mktpm tpm-rogue rogue
cat "$W/vendor/swtpm-localca-rootca-cert.pem" "$W/vendor/issuercert.pem" > "$W/vendor.pem"
EKCERT=$W/tpm.ekc/ek-rsa2048.crt

start_validators() { # count
	local n=$1
	for i in $(seq "$n"); do
		{
			echo "id v$i"
			echo "listen 127.0.0.1:$((BASE + 1 + i))"
			echo "cert $W/v$i.crt"
			echo "key $W/v$i.tls.key"
			echo "signing_key $W/v$i.sign.key"
			echo "storage_key_file $W/v$i.storage"
			echo "state_dir $W/state$n-v$i"
			echo "registry_pub $W/registry.pub"
			echo "ek_ca $W/vendor.pem"
			echo "workers 2"
			[ "$i" = 3 ] && echo "nonce_ttl_s 2"
			[ "$i" = 2 ] && echo "request_timeout_s 3"
		} > "$W/v$i.conf"
		start_v "$i"
	done
	for i in $(seq "$n"); do wait_v "$i"; done
}
start_v() { # i: validator i from its config
	"$BUILD/veil-validator" -c "$W/v$1.conf" 2>>"$W/v$1.log" &
	VPID[$1]=$!
	PIDS+=($!)
}
wait_v() { # i: until it answers
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$((BASE + 1 + $1))") 2>/dev/null && break
		sleep 0.1
	done
	(exec 3<>"/dev/tcp/127.0.0.1/$((BASE + 1 + $1))") 2>/dev/null ||
		echo "start_validators: v$1 not listening on $((BASE + 1 + $1)): $(tail -3 "$W/v$1.log")" >&2
}
stop_validators() {
	for i in "${!VPID[@]}"; do kill "${VPID[$i]}" 2>/dev/null; done
	wait "${VPID[@]}" 2>/dev/null
	unset VPID
	declare -gA VPID=()
}
declare -A VPID=()
vlist() { local s=""; for i in $(seq "$1"); do s="$s${s:+,}127.0.0.1:$((BASE + 1 + i))"; done; echo "$s"; }

# the TPM: a fresh boot (PCRs reset, counters on) with the same seeds each time
TPMPID=""
tpm_boot() {
	# an orderly shutdown first, as a VM's reboot does: after a disorderly one
	# the TPM's clock is "not safe" and the validators refuse its quotes
	if [ -n "$TPMPID" ]; then
		tpm2_shutdown -T "$TCTI" >/dev/null 2>&1
		kill "$TPMPID" 2>/dev/null && wait "$TPMPID" 2>/dev/null
	fi
	swtpm socket --tpm2 --server type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1 --ctrl type=tcp,port=$TPM_CTRL,bindaddr=127.0.0.1 \
		--tpmstate dir="$W/${TPMDIR:-tpm}" --flags not-need-init,startup-clear >>"$W/swtpm.log" 2>&1 &
	TPMPID=$!
	PIDS+=($!)
	for _ in $(seq 50); do tpm2_pcrread -T "$TCTI" sha256:0 >/dev/null 2>&1 && break; sleep 0.1; done
}

# the VM's boot files, and what the firmware logs when it boots them
printf 'a kernel\n' > "$W/vmlinuz"; printf 'an initrd\n' > "$W/initrd"
printf 'console=ttyS0 root=/dev/mapper/root\n' > "$W/cmdline"; printf 'vm=order-7\n' > "$W/config"
MEASURE=(--measure kernel="$W/vmlinuz" --measure initrd="$W/initrd" --measure cmdline="$W/cmdline" --measure config="$W/config")
python3 tests/attest/mkevlog.py --cmdline "$W/cmdline" --initrd "$W/initrd" --out "$W/evlog.good" > "$W/evlog.good.ext"
REFPCRS=(--pcr 0="$(awk '$1=="pcr0"{print $2}' "$W/evlog.good.ext")" --pcr 7="$(awk '$1=="pcr7"{print $2}' "$W/evlog.good.ext")")

replay() { # extends-file [pcr to skip]: what firmware would extend at boot
	while read -r pcr d; do
		case $pcr in pcr*) continue ;; esac
		[ "$pcr" = "${2:-x}" ] && continue
		tpm2_pcrextend -T "$TCTI" "$pcr:sha256=$d" >/dev/null 2>&1 || echo "replay: extend $pcr failed" >&2
	done < "$1"
}
boot() { # [cmdline-file initrd-file]: a fresh boot whose firmware measured these
	local c=${1:-$W/cmdline} i=${2:-$W/initrd}
	tpm_boot
	python3 tests/attest/mkevlog.py --cmdline "$c" --initrd "$i" --out "$W/evlog" > "$W/evlog.ext"
	replay "$W/evlog.ext"
}
unlock() { # t validators [eventlog] [extra args] -> key file $W/key.out, exit code
	local t=$1 vals=$2 log=${3:-$W/evlog}
	shift 3 2>/dev/null || shift $#
	rm -f "$W/key.out"
	"$BUILD/veil-attest" unlock --tcti "$TCTI" --vm order-7 --t "$t" --validators "$vals" --ca "$W/ca.pem" \
		--registry-pub "$W/registry.pub" --eventlog "$log" --key-out "$W/key.out" "$@" 2>"$W/client.err"
}
order() { # vm validators t [extra] -> registry exit code, output in $W/reg.out
	local vm=$1 vals=$2 t=$3; shift 3
	"$BUILD/veil-registry" order --vm "$vm" --t "$t" --validators "$vals" --ca "$W/ca.pem" --key "$W/registry.key" \
		--ek-cert "$EKCERT" --ek-ca "$W/vendor.pem" --disk "$W/disk-$vm.img" "${MEASURE[@]}" "${REFPCRS[@]}" "$@" >"$W/reg.out" 2>&1
}
opens() { # the key rebuilt opens the container; kept for the log check at the end
	[ -s "$W/key.out" ] && cryptsetup open --test-passphrase --key-file "$W/key.out" "$W/disk-order-7.img" 2>/dev/null &&
		od -An -tx1 "$W/key.out" | tr -d ' \n' >> "$W/keys.opened" && echo >> "$W/keys.opened"
}
post() { # port path body -> the HTTP status, body in $W/resp
	curl -s --tlsv1.3 --cacert "$W/ca.pem" -o "$W/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$3" "https://127.0.0.1:$1$2"
}
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
token() { # signing-key issuer vm exp: a v1 bearer token
	local p; p=$(printf '{"vm":"%s","nonce":"%s","exp":%s,"iss":"%s"}' "$3" "$(printf '0%.0s' $(seq 64))" "$4" "$2")
	printf '%s' "$p" > "$W/tok.payload"
	openssl pkeyutl -sign -rawin -inkey "$1" -in "$W/tok.payload" -out "$W/tok.sig" 2>/dev/null
	echo "$(printf '%s' "$p" | b64url).$(b64url < "$W/tok.sig")"
}
refused() { # exit code, message expected in the client's stderr
	[ "$1" != 0 ] && [ ! -e "$W/key.out" ] && grep -q "$2" "$W/client.err"
}

# ---------- the EK: veil-ek's MakeCredential against a real TPM ----------
t=ek_makecredential_round_trip
cp -r "$W/tpm" "$W/tpm-rt"
TPMDIR=tpm-rt tpm_boot
tt() { "$@" -T "$TCTI" >/dev/null 2>>"$W/rt.err"; }
flush() { tpm2_flushcontext -T "$TCTI" -t >/dev/null 2>&1; }   # no resource manager: transient objects pile up
activate() { # credential-file -> $W/rt.out; exit code of tpm2_activatecredential
	rm -f "$W/rt.out"
	tt tpm2_startauthsession --policy-session -S "$W/rt.s" && tt tpm2_policysecret -S "$W/rt.s" -c e &&
		tt tpm2_activatecredential -c 0x81010022 -C 0x81010021 -i "$1" -o "$W/rt.out" -P"session:$W/rt.s"
	local r=$?
	tpm2_flushcontext -T "$TCTI" "$W/rt.s" >/dev/null 2>&1; flush
	return $r
}
( cd "$W" && tt tpm2_createek -c 0x81010021 -G rsa && flush &&
	tt tpm2_createak -C 0x81010021 -c rt.ak -G ecc -g sha256 -s ecdsa -u rt.akpub -n rt.name && flush &&
	tt tpm2_evictcontrol -C o -c rt.ak 0x81010022 && flush && tt tpm2_readpublic -c 0x81010021 -o rt.ekpub.pem -f pem )
name=$(od -An -tx1 "$W/rt.name" | tr -d ' \n')
head -c 32 /dev/urandom > "$W/rt.secret"
"$BUILD/veil-ek" makecredential --ca "$W/vendor.pem" --cert "$EKCERT" --name "$name" --secret "$W/rt.secret" \
	--out "$W/mine.cred" 2>>"$W/rt.err"; mk=$?
activate "$W/mine.cred"; r1=$?; cmp -s "$W/rt.out" "$W/rt.secret"; c1=$?
tpm2_makecredential -T none -e "$W/rt.ekpub.pem" -G rsa -s "$W/rt.secret" -n "$name" -o "$W/theirs.cred" >/dev/null 2>&1
activate "$W/theirs.cred"; r2=$?; cmp -s "$W/rt.out" "$W/rt.secret"; c2=$?
bad=$(printf '%s' "$name" | sed 's/.$/'"$( [ "${name: -1}" = 0 ] && echo 1 || echo 0)"'/')
"$BUILD/veil-ek" makecredential --ca "$W/vendor.pem" --cert "$EKCERT" --name "$bad" --secret "$W/rt.secret" --out "$W/bad.cred"
activate "$W/bad.cred"; r3=$?
"$BUILD/veil-ek" makecredential --ca "$W/vendor.pem" --cert "$W/tpm-other.ekc/ek-rsa2048.crt" --name "$name" \
	--secret "$W/rt.secret" --out "$W/other.cred"
activate "$W/other.cred"; r4=$?
id=$("$BUILD/veil-ek" id --ca "$W/vendor.pem" --cert "$EKCERT")
tpmid=$(openssl pkey -pubin -in "$W/rt.ekpub.pem" -outform DER | sha256sum | cut -d' ' -f1)
"$BUILD/veil-ek" id --ca "$W/vendor.pem" --cert "$W/tpm-rogue.ekc/ek-rsa2048.crt" >/dev/null 2>"$W/rogue.err"; r5=$?
[ $mk = 0 ] && [ $r1 = 0 ] && [ $c1 = 0 ] && [ $r2 = 0 ] && [ $c2 = 0 ] && [ $r3 != 0 ] && [ $r4 != 0 ] &&
	[ "$id" = "$tpmid" ] && [ $r5 = 1 ] && grep -q "does not chain" "$W/rogue.err" &&
	pass "$t (veil-ek's credential activated by swtpm as tpm2_makecredential's is; a one-bit-wrong name and another EK refused by the TPM; EK id = sha256 of the TPM's EK SPKI; a rogue CA's EK refused)" ||
	fail $t "mk=$mk r1=$r1 c1=$c1 r2=$r2 c2=$c2 r3=$r3 r4=$r4 id=$id tpm=$tpmid r5=$r5 $(tail -5 "$W/rt.err")"

# The vendor's CRL (openssl ca over the vendor's EK-issuing CA): revoked,
# stale or missing from the EK's issuer: refused
vcrl() { # out [openssl ca -gencrl options...] (revokes what crl/index.txt lists)
	local out=$1; shift
	openssl ca -config "$W/crl/ca.cnf" -keyfile "$W/vendor/signkey.pem" -cert "$W/vendor/issuercert.pem" -gencrl \
		-out "$out" -batch "$@" >/dev/null 2>&1
}
t=ek_revocation_list
mkdir -p "$W/crl"; : > "$W/crl/index.txt"; echo 01 > "$W/crl/crlnumber"
printf '[ca]\ndefault_ca = v\n[v]\ndatabase = %s/crl/index.txt\ncrlnumber = %s/crl/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n' \
	"$W" "$W" > "$W/crl/ca.cnf"
vcrl "$W/crl/none.crl"                        # nothing revoked yet
openssl x509 -inform DER -in "$W/tpm-other.ekc/ek-rsa2048.crt" -out "$W/crl/other.pem" 2>/dev/null
openssl ca -config "$W/crl/ca.cnf" -keyfile "$W/vendor/signkey.pem" -cert "$W/vendor/issuercert.pem" \
	-revoke "$W/crl/other.pem" -crl_reason keyCompromise -batch >/dev/null 2>&1
vcrl "$W/crl/other.crl"                       # tpm-other's EK revoked
vcrl "$W/crl/stale.crl" -crl_lastupdate 20200101000000Z -crl_nextupdate 20200102000000Z
ek() { "$BUILD/veil-ek" id --ca "$W/vendor.pem" "$@" 2>&1 >/dev/null; }
e1=$(ek --crl "$W/crl/none.crl" --cert "$W/tpm-other.ekc/ek-rsa2048.crt"); r1=$?
e2=$(ek --crl "$W/crl/other.crl" --cert "$W/tpm-other.ekc/ek-rsa2048.crt"); r2=$?
e3=$(ek --crl "$W/crl/other.crl" --cert "$EKCERT"); r3=$?
e4=$(ek --crl "$W/crl/stale.crl" --cert "$EKCERT"); r4=$?
e5=$(ek --crl "$W/tpm.ekc/ek-rsa2048.crt" --cert "$EKCERT"); r5=$?   # not a CRL
[ $r1 = 0 ] && [ $r2 = 1 ] && [[ $e2 == *"revoked by the TPM vendor"* ]] && [ $r3 = 0 ] &&
	[ $r4 = 1 ] && [[ $e4 == *"no current CRL from its issuer"* ]] && [ $r5 = 1 ] && [[ $e5 == *"no PEM CRL"* ]] &&
	pass "$t (a revoked EK refused, the others accepted; a CRL past its next update refuses all (fail closed); a file without a CRL is an error)" ||
	fail $t "r1=$r1 $e1 | r2=$r2 $e2 | r3=$r3 $e3 | r4=$r4 $e4 | r5=$r5 $e5"

# ---------- 2 of 3 ----------
tpm_boot
start_validators 3
V3=$(vlist 3)
P1=$((BASE + 2)); P2=$((BASE + 3)); P3=$((BASE + 4))

t=registry_refuses_t1
order order-7 "$V3" 1; rc=$?
[ $rc = 2 ] && grep -q "at least 2" "$W/reg.out" && pass $t || fail $t "rc=$rc $(cat "$W/reg.out")"

t=registry_formats_and_registers
order order-7 "$V3" 2; rc=$?
hdr=$(cryptsetup luksDump "$W/disk-order-7.img" 2>/dev/null | grep -c "^Version:.*2")
[ $rc = 0 ] && [ "$hdr" = 1 ] && pass "$t (LUKS2 container, key split 2 of 3, signed references)" || fail $t "rc=$rc $(cat "$W/reg.out")"

t=ek_revoked_at_one_holder
# the vendor revokes this VM's EK; v1 is given the CRL (ek_crl) and restarted:
# it refuses the VM, the two others (without the CRL) still make 2 of 3
openssl x509 -inform DER -in "$EKCERT" -out "$W/crl/vm.pem" 2>/dev/null
openssl ca -config "$W/crl/ca.cnf" -keyfile "$W/vendor/signkey.pem" -cert "$W/vendor/issuercert.pem" \
	-revoke "$W/crl/vm.pem" -batch >/dev/null 2>&1
vcrl "$W/crl/vm.crl"
restart_v1() { # extra config line, or nothing
	kill "${VPID[1]}" 2>/dev/null; wait "${VPID[1]}" 2>/dev/null
	sed -i '/^ek_crl /d' "$W/v1.conf"; [ -n "${1:-}" ] && echo "$1" >> "$W/v1.conf"
	start_v 1
	wait_v 1
}
restart_v1 "ek_crl $W/crl/vm.crl"
# the client asks holders in random order and stops at t: again until v1 was asked
for _ in 1 2 3 4 5 6 7 8; do
	boot
	unlock 2 "$V3" "" --no-cap; rc=$?
	c=$(grep -c "revoked by the TPM vendor" "$W/v1.log")
	[ "$c" -ge 1 ] && break
done
restart_v1   # v1 as it was
opens && [ $rc = 0 ] && [ "$c" -ge 1 ] &&
	pass "$t (v1 with the vendor's CRL refuses the revoked EK; unlocked through the two others)" ||
	fail $t "rc=$rc refusals=$c $(tail -3 "$W/client.err")"

t=unlock_2_of_3
boot
start=$(date +%s%N)
unlock 2 "$V3"; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
opens && [ $rc = 0 ] && grep -q "PCRs capped" "$W/client.err" &&
	pass "$t (each holder verified the event log and quote itself; the rebuilt key opens the container; ${ms} ms)" ||
	fail $t "rc=$rc $(cat "$W/client.err")"

t=booted_os_cannot_attest
unlock 2 "$V3"; rc=$?   # same boot, after the initrd capped the PCRs
refused $rc "quoted PCRs differ" && pass "$t (after the cap, a quote of the same boot gets nothing)" || fail $t "rc=$rc $(cat "$W/client.err")"

t=cap_command
boot
"$BUILD/veil-attest" cap --tcti "$TCTI" 2>"$W/cap.err"; crc=$?
unlock 2 "$V3"; rc=$?
[ $crc = 0 ] && refused $rc "quoted PCRs differ" && pass "$t (veil-attest cap: no share after it)" || fail $t "cap=$crc rc=$rc $(cat "$W/cap.err" "$W/client.err")"

t=cmdline_one_byte_changed
printf 'console=ttyS0 root=/dev/mapper/roou\n' > "$W/cmdline.bad"
boot "$W/cmdline.bad" "$W/initrd"
unlock 2 "$V3"; rc=$?
refused $rc "PCR 9 event 1 (kernel command line) differs" && pass $t || fail $t "rc=$rc $(cat "$W/client.err")"

t=initrd_one_byte_changed
printf 'an initrc\n' > "$W/initrd.bad"
boot "$W/cmdline" "$W/initrd.bad"
unlock 2 "$V3"; rc=$?
refused $rc "PCR 9 event 2 (initrd) differs" &&
	grep -q '"event":"attest","vm":"order-7","result":"refused","reason":"event log: PCR 9 event 2' "$W"/state3-v*/audit.log &&
	pass $t || fail $t "rc=$rc $(cat "$W/client.err")"

t=event_log_lies
boot "$W/cmdline" "$W/initrd.bad"      # the TPM saw the bad initrd; the log sent is the good one
unlock 2 "$V3" "$W/evlog.good"; rc=$?
refused $rc "quoted PCRs differ" && pass "$t (a good log with a bad boot's quote refused)" || fail $t "rc=$rc $(cat "$W/client.err")"

t=hand_extended_pcr9_refused
tpm_boot                                 # no firmware: PCR 9 extended by hand, the good log sent
grep '^9 ' "$W/evlog.good.ext" > "$W/pcr9.ext"; replay "$W/pcr9.ext"
unlock 2 "$V3" "$W/evlog.good"; rc=$?
r1=$rc; cp "$W/client.err" "$W/c1.err"
tpm_boot                                 # firmware's PCRs 0-7, PCR 9 by hand, a log without PCR 9 events
python3 tests/attest/mkevlog.py --cmdline "$W/cmdline" --initrd "$W/initrd" --no-pcr9 --out "$W/evlog.no9" >/dev/null
replay "$W/evlog.good.ext"
unlock 2 "$V3" "$W/evlog.no9"; rc=$?
[ $r1 != 0 ] && grep -q "quoted PCRs differ" "$W/c1.err" && refused $rc "0 PCR 9 events, the reference has 2" &&
	pass "$t (fresh swtpm, PCR 9 by hand: refused with and without a matching log)" || fail $t "$r1 $(cat "$W/c1.err") | rc=$rc $(cat "$W/client.err")"

t=ek_not_vendor_issued
TPMDIR=tpm-rogue boot                    # an EK certificate from another CA than the vendor's
unlock 2 "$V3"; rc=$?
refused $rc "EK certificate: does not chain to the TPM vendor's CA" &&
	grep -q '"result":"refused","reason":"EK certificate: does not chain' "$W"/state3-v*/audit.log &&
	pass "$t (each holder refuses an EK its vendor CA did not certify)" || fail $t "rc=$rc $(cat "$W/client.err")"

t=ek_not_this_vms
TPMDIR=tpm-other boot                    # a genuine TPM of the vendor, not the one recorded at the order
unlock 2 "$V3"; rc=$?
refused $rc "EK: not the one recorded for this VM" && pass "$t (a vendor-issued EK other than the VM's refused)" ||
	fail $t "rc=$rc $(cat "$W/client.err")"

t=credential_needs_the_recorded_tpm
TPMDIR=tpm-other boot                    # the recorded EK's certificate is public: sent by another TPM
rel0=$(cat "$W"/v*.log | grep -c 'event=release')
unlock 2 "$V3" "" --ek-cert "$EKCERT"; rc=$?
refused $rc "does not activate the credential" && [ "$(cat "$W"/v*.log | grep -c 'event=release')" = "$rel0" ] &&
	pass "$t (another TPM presenting this VM's EK certificate cannot activate the holders' credentials: nothing released)" ||
	fail $t "rc=$rc $(cat "$W/client.err")"

# a challenge as the client sends it: the VM's EK certificate and an AK of
# that TPM (tpm2_createak's, made in the round-trip check above)
chal() { printf '{"vm":"%s","ek_cert":"%s","ak":"%s"}' "$1" "$(base64 -w0 "$EKCERT")" "$(base64 -w0 "$W/rt.akpub")"; }

t=credential_proof_checked
TPMDIR=tpm-rt tpm_boot                   # the VM's TPM, with that AK persisted
c1=$(post $P1 /v1/challenge "$(chal order-7)"); r1=$(cat "$W/resp")
python3 - "$W/resp" "$W/v.cred" <<'PY' 2>>"$W/rt.err"
import base64, json, sys
j = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(bytes.fromhex("badcc0de00000001") + base64.b64decode(j["credential"]) + base64.b64decode(j["secret"]))
PY
activate "$W/v.cred"; ra=$?
n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])' 2>/dev/null)
ak64=$(base64 -w0 "$W/rt.akpub")
ev='"pub":"'$(printf '0%.0s' $(seq 64))'","ak":"'$ak64'","attest":"AA==","sig":"AA==","eventlog":"AA=="'
# the proof with its first nibble flipped (setting it to f left it right when it was f already)
wrong=$(od -An -tx1 "$W/rt.out" | tr -d ' \n' | python3 -c 'import sys; s = sys.stdin.read().strip(); print("%x" % (int(s[0], 16) ^ 8) + s[1:])')
c2=$(post $P1 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"',"cred":"'$wrong'"}'); r2=$(cat "$W/resp")
post $P1 /v1/challenge "$(chal order-7)" >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
c3=$(post $P1 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"'}'); r3=$(cat "$W/resp")
post $P1 /v1/challenge "$(chal order-7)" >/dev/null; cp "$W/resp" "$W/ch2"
python3 - "$W/ch2" "$W/v.cred" <<'PY' 2>>"$W/rt.err"
import base64, json, sys
j = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(bytes.fromhex("badcc0de00000001") + base64.b64decode(j["credential"]) + base64.b64decode(j["secret"]))
PY
activate "$W/v.cred"; rb=$?
n=$(python3 -c 'import json;print(json.load(open("'"$W/ch2"'"))["nonce"])')
right=$(od -An -tx1 "$W/rt.out" | tr -d ' \n')
c4=$(post $P1 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"',"cred":"'$right'"}'); r4=$(cat "$W/resp")
[ "$c1" = 200 ] && [ $ra = 0 ] && [ "$c2" = 403 ] && echo "$r2" | grep -q "credential: not activated" &&
	[ "$c3" = 403 ] && echo "$r3" | grep -q "credential: not activated" && [ $rb = 0 ] && [ "$c4" = 403 ] &&
	! echo "$r4" | grep -q "credential" &&
	pass "$t (the holder's credential activates in the VM's TPM; a wrong or missing proof refused; the right one passes on to the quote check: $(echo "$r4" | cut -c1-60))" ||
	fail $t "$c1 ra=$ra | $c2 $r2 | $c3 $r3 | rb=$rb $c4 $r4 $(tail -3 "$W/rt.err")"

t=tokens_withdrawn
now=$(date +%s)
c1=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/v2.sign.key" v2 order-7 $((now + 60)))\"}"); r1=$(cat "$W/resp")
c2=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/v1.sign.key" v1 order-7 $((now + 60)))\"}")
[ "$c1" = 410 ] && [ "$c2" = 410 ] && echo "$r1" | grep -q "each holder verifies" &&
	pass "$t (a token minted by one validator, or replayed to its own issuer, gets nothing: 410)" || fail $t "$c1 $r1 | $c2"

t=nonce_fresh_and_once
z64=$(printf '0%.0s' $(seq 64))
ev='"pub":"'$z64'","ak":"AA==","attest":"AA==","sig":"AA==","eventlog":"AA=="'
c1=$(post $P2 /v1/attest '{"vm":"order-7","nonce":"'$z64'",'"$ev"'}'); r1=$(cat "$W/resp")
post $P2 /v1/challenge "$(chal order-7)" >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
c2=$(post $P2 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"'}'); r2=$(cat "$W/resp")
c3=$(post $P2 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"'}'); r3=$(cat "$W/resp")
post $P3 /v1/challenge "$(chal order-7)" >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
sleep 3   # v3 gives nonces 2 s
c4=$(post $P3 /v1/attest '{"vm":"order-7","nonce":"'$n'",'"$ev"'}'); r4=$(cat "$W/resp")
[ "$c1" = 403 ] && echo "$r1" | grep -q "nonce unknown" && [ "$c2" = 403 ] && [ "$c3" = 403 ] &&
	echo "$r3" | grep -q "nonce unknown, already used" && [ "$c4" = 403 ] && echo "$r4" | grep -q "expired" &&
	pass "$t (unknown, replayed and stale nonces refused)" || fail $t "$c1 $r1 | $c2 $r2 | $c3 $r3 | $c4 $r4"

t=bad_requests_clear_errors
c1=$(post $P2 /v1/attest 'not json'); r1=$(cat "$W/resp")
big=$(head -c 2200000 /dev/zero | tr '\0' 'a')
c2=$(printf '{"x":"%s"}' "$big" | curl -s --tlsv1.3 --cacert "$W/ca.pem" -o "$W/resp" -w '%{http_code}' --data-binary @- "https://127.0.0.1:$P2/v1/attest")
c3=$(post $P2 /v1/challenge "$(printf '{"vm":"order-7\xc3\xa9"}')"); r3=$(cat "$W/resp")
printf '{"vm":"\xff\xfe\x00"}' > "$W/nonascii"
c4=$(curl -s --tlsv1.3 --cacert "$W/ca.pem" -o /dev/null -w '%{http_code}' --data-binary @"$W/nonascii" "https://127.0.0.1:$P2/v1/challenge")
tls12=$(echo | timeout 5 openssl s_client -connect 127.0.0.1:$P2 -tls1_2 2>&1 | grep -c "alert protocol version\|no protocols available\|handshake failure")
c5=$(post $P2 /v1/register '{"vm":"order-7"}'); r5=$(cat "$W/resp")
c6=$(curl -s --tlsv1.3 --cacert "$W/ca.pem" -o /dev/null -w '%{http_code}' -H "X-Long: $(head -c 9000 /dev/zero | tr '\0' b)" --data-binary '{}' "https://127.0.0.1:$P2/v1/challenge")
kill -0 "${VPID[2]}" 2>/dev/null; alive=$?
[ "$c1" = 400 ] && [ "$c2" = 413 ] && [ "$c3" = 400 ] && echo "$r3" | grep -q "non-ASCII" && [ "$c4" = 400 ] &&
	[ "$tls12" -ge 1 ] && [ "$c5" = 403 ] && echo "$r5" | grep -q "not signed by the image registry" &&
	[ "$c6" != 200 ] && [ $alive = 0 ] &&
	pass "$t (bad JSON 400, 2 MB body 413, non-ASCII 400, 9 KB header refused ($c6), TLS 1.2 refused, unsigned registration 403; still up)" ||
	fail $t "$c1 $r1 | $c2 | $c3 $r3 | $c4 | tls12=$tls12 | $c5 $r5 | $c6 | alive=$alive"

t=slowloris_does_not_delay_others
python3 - "$P2" > "$W/slow.out" 2>&1 <<'PY' &
import socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
held = []
for i in range(60):       # half stuck in the TLS handshake, half sending headers a byte at a time
    s = socket.create_connection(("127.0.0.1", port))
    if i % 2:
        s = ctx.wrap_socket(s); s.send(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\n")
    else:
        s.send(b"\x16\x03\x01")
    held.append(s)
end = time.time() + 8
while time.time() < end:
    for s in held:
        try: s.send(b"X" if isinstance(s, ssl.SSLSocket) else b"\x00")
        except Exception: pass
    time.sleep(0.5)
PY
SLOW=$!
sleep 1
worst=0; okc=0
for _ in $(seq 20); do
	s=$(date +%s%N); c=$(post $P2 /v1/challenge '{"vm":"no-such-vm"}'); ms=$(( ($(date +%s%N) - s) / 1000000 ))
	[ "$c" = 404 ] && okc=$((okc + 1)); [ $ms -gt $worst ] && worst=$ms
done
kill $SLOW 2>/dev/null; wait $SLOW 2>/dev/null
[ $okc = 20 ] && [ $worst -lt 2000 ] && pass "$t (60 slow clients held; 20 challenges answered, slowest ${worst} ms)" ||
	fail $t "$okc/20 answered, slowest ${worst} ms"

t=request_deadline_cuts_trickle
# v2: request_timeout_s 3, idle_timeout_s 5: a body trickled a byte every 0.5 s
# never trips the idle timeout, only the whole-request deadline
python3 - "$P2" > "$W/trickle.out" 2>&1 <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def trickle(first_ok):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
    t0 = time.time()
    if first_ok:   # a whole request first: the deadline restarts from its answer
        b = b'{"vm":"no-such-vm"}'
        s.sendall(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
        s.settimeout(5); r = s.recv(4096); s.settimeout(None)
        if b" 404 " not in r.split(b"\r\n")[0]:
            return "first request not answered: %r" % r[:40]
        t0 = time.time()
    s.send(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n")
    s.settimeout(0.5)
    for i in range(60):            # 30 s if nobody cuts it
        try:
            s.send(b" ")
            if s.recv(1) == b"":
                break
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            break
    return "%.1f" % (time.time() - t0)
print(trickle(False), trickle(True))
PY
read -r c1 c2 < "$W/trickle.out"
c=$(post $P2 /v1/challenge '{"vm":"no-such-vm"}')
awk -v a="$c1" -v b="$c2" 'BEGIN { exit !(a >= 2.5 && a <= 7 && b >= 2.5 && b <= 7) }' && [ "$c" = 404 ] &&
	pass "$t (a request trickled byte by byte cut after ${c1} s, and after ${c2} s on a kept-alive connection; deadline 3 s, idle timeout 5 s)" ||
	fail $t "$(cat "$W/trickle.out") then $c"

t=abandoned_connections_released
# clients that leave half-way (in the handshake, or after half a request) give
# their descriptors back when they go, not when the 3 s deadline fires
fds() { ls "/proc/${VPID[2]}/fd" 2>/dev/null | wc -l; }
f0=$(fds)
python3 - "$P2" > "$W/abandon.out" 2>&1 <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
held = []
for i in range(40):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    if i % 2:
        s = ctx.wrap_socket(s); s.send(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{")
    else:
        s.send(b"\x16\x03\x01")
    held.append(s)
time.sleep(0.3)
for s in held:
    s.close()
PY
sleep 0.3
f1=$(fds); f2=$f1
for _ in $(seq 10); do [ "$f2" -le $((f0 + 2)) ] && break; sleep 0.1; f2=$(fds); done
[ "$f2" -le $((f0 + 2)) ] && pass "$t (40 abandoned connections: descriptors $f0 before, $f2 within 1.3 s after, deadline 3 s)" ||
	fail $t "descriptors $f0 before, $f1 then $f2 after the clients left $(cat "$W/abandon.out")"

t=registration_replay_refused
order order-7 "$V3" 2 --epoch 5 --disk "$W/disk-replay.img"; rc=$?
[ $rc = 1 ] && grep -q "not newer than the one held" "$W/reg.out" && pass "$t (an older epoch is refused by every holder)" || fail $t "rc=$rc $(cat "$W/reg.out")"

t=share_swapped_between_vms
order order-8 "$V3" 2 >/dev/null; rc8=$?
cp "$W/state3-v1/order-7.share" "$W/v1-order-7.share"
cp "$W/state3-v1/order-8.share" "$W/state3-v1/order-7.share"
# the client asks validators in random order and stops at t shares: boot and
# unlock again until v1 was among those asked (2 in 3 each time)
for _ in 1 2 3 4 5 6 7 8; do
	boot
	unlock 2 "$V3" "" --no-cap; rc=$?
	c=$(grep -c "no share stored for this VM and epoch" "$W"/v1.log)
	[ "$c" -ge 1 ] && break
done
cp "$W/v1-order-7.share" "$W/state3-v1/order-7.share"
[ $rc8 = 0 ] && opens && [ $rc = 0 ] && [ "$c" -ge 1 ] && pass "$t (v1 refuses the swapped share: it does not unseal for this VM; unlocked through the others)" ||
	fail $t "rc8=$rc8 rc=$rc c=$c $(cat "$W/client.err")"

t=references_edited_on_disk
cp "$W/state3-v2/order-7.refs" "$W/v2.refs"
sed -i 's/"t":2/"t":3/' "$W/state3-v2/order-7.refs"
boot
unlock 2 "$(vlist 3 | cut -d, -f2)" "" --no-cap; rc=$?
cp "$W/v2.refs" "$W/state3-v2/order-7.refs"
refused $rc "not signed by the image registry" && pass $t || fail $t "rc=$rc $(cat "$W/client.err")"

t=share_removed_not_served
# the validator caches what a VM's files hold while it sees no change to them
# (inotify): a share taken off the disk is not served from memory
c0=$(grep -c "no share stored for this VM and epoch" "$W"/v2.log)
boot
unlock 2 "$(vlist 3 | cut -d, -f2)" "" --no-cap >/dev/null 2>&1   # v2's cache now holds order-7
mv "$W/state3-v2/order-7.share" "$W/v2-order-7.share.away"
boot
unlock 2 "$(vlist 3 | cut -d, -f2)" "" --no-cap; rc=$?
mv "$W/v2-order-7.share.away" "$W/state3-v2/order-7.share"
c1=$(grep -c "no share stored for this VM and epoch" "$W"/v2.log)
[ $rc != 0 ] && [ "$c1" -gt "$c0" ] && pass "$t (refused at once: the removal is seen before the request is answered)" ||
	fail $t "rc=$rc refusals $c0 -> $c1 $(tail -3 "$W"/v2.log)"

t=stale_share_named_and_routed_around
mkdir -p "$W/old-v1"; cp "$W"/state3-v1/order-7.* "$W/old-v1/"
order order-7 "$V3" 2; rco=$?           # a new key, a new epoch
cp "$W"/old-v1/order-7.refs "$W"/old-v1/order-7.refs.sig "$W"/old-v1/order-7.share "$W/state3-v1/"   # v1 rolled back
named=0
for _ in 1 2 3 4 5 6; do   # the client asks holders in a random order: until v1 was among those asked
	boot
	unlock 2 "$V3" "" --no-cap; rc=$?
	grep -q "older than" "$W/client.err" && { named=1; break; }
done
[ $rco = 0 ] && [ $rc = 0 ] && opens && [ $named = 1 ] &&
	pass "$t (v1 serves the old epoch: named, skipped; the new key rebuilt from v2 and v3)" || fail $t "rco=$rco rc=$rc $(cat "$W/reg.out" "$W/client.err")"

t=open_nonces_bounded
# the VM's oldest open challenge, then ten more: the newest take the oldest's places
# (8 open a VM), so whoever asks in a VM's name cannot lock it out, nor fill the table
post $P1 /v1/challenge "$(chal order-7)" >/dev/null; n0=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
for _ in $(seq 10); do post $P1 /v1/challenge "$(chal order-7)" >/dev/null; done
c5=$(post $P1 /v1/challenge "$(chal order-7)"); n5=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])' 2>/dev/null)
c6=$(post $P1 /v1/challenge "$(chal order-8)")
ev='"pub":"'$(printf '0%.0s' $(seq 64))'","ak":"AA==","attest":"AA==","sig":"AA==","eventlog":"AA=="'
c7=$(post $P1 /v1/attest '{"vm":"order-7","nonce":"'$n0'",'"$ev"'}'); r7=$(cat "$W/resp")
c8=$(post $P1 /v1/attest '{"vm":"order-7","nonce":"'$n5'",'"$ev"'}'); r8=$(cat "$W/resp")
[ "$c5" = 200 ] && [ "$c6" = 200 ] && [ "$c7" = 403 ] && echo "$r7" | grep -q "nonce unknown" &&
	[ "$c8" = 403 ] && ! echo "$r8" | grep -q "nonce" &&
	pass "$t (12 challenges for one VM all answered; its oldest superseded, its newest still open; another VM's answered)" ||
	fail $t "$c5 | $c6 | $c7 $r7 | $c8 $r8"

t=fewer_than_t_reachable
kill "${VPID[2]}" "${VPID[3]}" 2>/dev/null; wait "${VPID[2]}" "${VPID[3]}" 2>/dev/null
boot
unlock 2 "$V3"; rc=$?
refused $rc "nothing unlocked" && pass $t || fail $t "rc=$rc $(cat "$W/client.err")"
stop_validators

t=key_files_0600_enforced
chmod 644 "$W/v1.storage"
"$BUILD/veil-validator" -c "$W/v1.conf" 2>"$W/mode.err"; rc=$?
chmod 600 "$W/v1.storage"
[ $rc = 2 ] && grep -q "chmod 600" "$W/mode.err" && pass "$t ($(cat "$W/mode.err"))" || fail $t "rc=$rc $(cat "$W/mode.err")"

t=audit_log_chained_and_signed
ok=1
for i in 1 2 3; do
	"$BUILD/veil-validator" -c "$W/v$i.conf" --verify-audit >"$W/va.out" 2>&1 || { ok=0; cat "$W/va.out" >&2; }
done
sed -i '1s/"result":"[a-z]*"/"result":"forged"/' "$W/state3-v1/audit.log"
"$BUILD/veil-validator" -c "$W/v1.conf" --verify-audit >"$W/va.out" 2>&1 && ok=0
grep -q "line 1: altered" "$W/va.out" || ok=0
[ $ok = 1 ] && pass "$t (every entry chained and Ed25519-signed; an edited line is detected)" || fail $t "$(cat "$W/va.out")"

# ---------- 3 of 5 ----------
t=unlock_3_of_5
start_validators 5
order order-7 "$(vlist 5)" 3 >/dev/null; rco=$?
kill "${VPID[1]}" "${VPID[4]}" 2>/dev/null   # two down: three is still enough
boot
unlock 3 "$(vlist 5)"; rc=$?
opens && [ $rc = 0 ] && pass "$t (two of five validators down)" || fail $t "rco=$rco rc=$rc $(cat "$W/reg.out" "$W/client.err")"
stop_validators

# ---------- nothing secret in any log ----------
t=no_key_or_share_in_logs
leak=""
for f in "$W"/*.log "$W"/*.err "$W"/state*/*.log "$W"/state*/*.refs; do
	[ -f "$f" ] || continue
	[ -s "$W/keys.opened" ] && grep -qiFf "$W/keys.opened" "$f" && leak="$leak ${f##*/}:key"
	grep -q '"share"' "$f" && leak="$leak ${f##*/}:share-field"
	# a share's bytes (its magic and version 1), or their base64 or hex:
	# the magic alone ("VMSH", four of base64's characters) can turn up
	# by chance in a log's base64
	grep -qaP 'VMSH\x01' "$f" && leak="$leak ${f##*/}:share-bytes"
	grep -qE 'Vk1TSAE|564[dD]534801' "$f" && leak="$leak ${f##*/}:share-encoded"
done
for f in "$W"/state*/*.share; do   # sealed: no plaintext magic
	grep -qaP 'VMSH\x01' "$f" && leak="$leak ${f##*/}:share-unsealed"
done
[ -z "$leak" ] && [ -s "$W/keys.opened" ] && pass "$t (key, shares: absent from logs and audit; shares sealed at rest)" ||
	fail $t "a secret appears:${leak:- (no key was opened)}"
