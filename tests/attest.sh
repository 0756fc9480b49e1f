#!/usr/bin/env bash
# Attestation and key shares end to end, with a real TPM simulator (swtpm),
# validators on loopback over TLS 1.3, the registry formatting a real LUKS2
# container, and the attestation client rebuilding its key.
# Prints PASS/FAIL lines; everything is removed on exit.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
W=$(mktemp -d /tmp/veil-attest-XXXXXX)
BASE=$((20000 + ($$ % 2000) * 10))   # our ports: BASE..BASE+9
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
	openssl pkey -in v$i.sign.key -pubout -out v$i.sign.pub
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > v$i.storage
done
cd - >/dev/null

start_validators() { # count [token_ttl]
	local n=$1 ttl=${2:-60}
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
			echo "token_ttl_s $ttl"
			[ "$i" = 3 ] && echo "nonce_ttl_s 2"
			for j in $(seq "$n"); do echo "pool v$j $W/v$j.sign.pub"; done
		} > "$W/v$i.conf"
		"$BUILD/veil-validator" -c "$W/v$i.conf" 2>>"$W/v$i.log" &
		VPID[$i]=$!
		PIDS+=($!)
	done
	sleep 0.5
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
	mkdir -p "$W/tpm"
	swtpm socket --tpm2 --server type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1 --ctrl type=tcp,port=$TPM_CTRL,bindaddr=127.0.0.1 \
		--tpmstate dir="$W/tpm" --flags not-need-init,startup-clear >>"$W/swtpm.log" 2>&1 &
	TPMPID=$!
	PIDS+=($!)
	for _ in $(seq 50); do tpm2_pcrread -T "$TCTI" sha256:0 >/dev/null 2>&1 && break; sleep 0.1; done
}

# the VM's boot files
printf 'a kernel\n' > "$W/vmlinuz"; printf 'an initrd\n' > "$W/initrd"
printf 'console=ttyS0 root=/dev/mapper/root\n' > "$W/cmdline"; printf 'vm=order-7\n' > "$W/config"
MEASURE=(--measure kernel="$W/vmlinuz" --measure initrd="$W/initrd" --measure cmdline="$W/cmdline" --measure config="$W/config")

unlock() { # t validators... -> key file $W/key.out, exit code
	local t=$1 vals=$2
	rm -f "$W/key.out"
	"$BUILD/veil-attest" unlock --tcti "$TCTI" --vm order-7 --t "$t" --validators "$vals" --ca "$W/ca.pem" \
		--registry-pub "$W/registry.pub" "${MEASURE[@]}" --measure disk="$W/disk.img" --key-out "$W/key.out" 2>"$W/client.err"
}
opens() { [ -s "$W/key.out" ] && cryptsetup open --test-passphrase --key-file "$W/key.out" "$W/disk.img" 2>/dev/null; }
post() { # port path body -> the HTTP status, body in $W/resp
	curl -s --tlsv1.3 --cacert "$W/ca.pem" -o "$W/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$3" "https://127.0.0.1:$1$2"
}
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
token() { # signing-key issuer vm exp
	local p; p=$(printf '{"vm":"%s","nonce":"%s","exp":%s,"iss":"%s"}' "$3" "$(printf '0%.0s' $(seq 64))" "$4" "$2")
	printf '%s' "$p" > "$W/tok.payload"
	openssl pkeyutl -sign -rawin -inkey "$1" -in "$W/tok.payload" -out "$W/tok.sig" 2>/dev/null
	echo "$(printf '%s' "$p" | b64url).$(b64url < "$W/tok.sig")"
}

# ---------- 2 of 3 ----------
tpm_boot
"$BUILD/veil-attest" ak-pub --tcti "$TCTI" --out "$W/ak.pub" 2>"$W/ak.err" || { fail attest_setup "ak-pub: $(cat "$W/ak.err")"; exit 1; }
start_validators 3
t=registry_formats_and_registers
out=$("$BUILD/veil-registry" order --vm order-7 --t 2 --validators "$(vlist 3)" --ca "$W/ca.pem" --key "$W/registry.key" \
	--ak-pub "$W/ak.pub" --disk "$W/disk.img" "${MEASURE[@]}" 2>&1); rc=$?
hdr=$(cryptsetup luksDump "$W/disk.img" 2>/dev/null | grep -c "^Version:.*2")
[ $rc = 0 ] && [ "$hdr" = 1 ] && pass "$t (LUKS2 container, key split 2 of 3)" || fail $t "rc=$rc $out"

t=unlock_2_of_3
tpm_boot
start=$(date +%s%N)
unlock 2 "$(vlist 3)"; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
opens && [ $rc = 0 ] && pass "$t (the rebuilt key opens the container; ${ms} ms)" || fail $t "rc=$rc $(cat "$W/client.err")"

t=tampered_kernel_refused
tpm_boot
printf 'an evil kernel\n' > "$W/vmlinuz"
unlock 2 "$(vlist 3)"; rc=$?
printf 'a kernel\n' > "$W/vmlinuz"
[ $rc != 0 ] && [ ! -e "$W/key.out" ] && grep -q "kernel hash differs from the reference" "$W/client.err" &&
	grep -q '"event":"attest".*"result":"refused","reason":"kernel hash differs' "$W"/state3-v*/audit.log &&
	pass $t || fail $t "rc=$rc $(cat "$W/client.err")"

t=tampered_config_refused
tpm_boot
printf 'vm=order-7 debug=1\n' > "$W/config"
unlock 2 "$(vlist 3)"; rc=$?
printf 'vm=order-7\n' > "$W/config"
[ $rc != 0 ] && [ ! -e "$W/key.out" ] && grep -q "config hash differs" "$W/client.err" && pass $t || fail $t "rc=$rc $(cat "$W/client.err")"

t=swapped_disk_refused
tpm_boot
cp "$W/disk.img" "$W/disk.good"
cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file <(echo x) "$W/disk.img" >/dev/null 2>&1
unlock 2 "$(vlist 3)"; rc=$?
mv "$W/disk.good" "$W/disk.img"
[ $rc != 0 ] && [ ! -e "$W/key.out" ] && grep -q "disk hash differs from the reference" "$W/client.err" && pass $t ||
	fail $t "rc=$rc $(cat "$W/client.err")"

t=wrong_pcr_refused
tpm_boot
tpm2_pcrextend -T "$TCTI" 9:sha256=$(printf 'x%.0s' $(seq 64) | tr x a) >/dev/null 2>&1   # something else measured too
unlock 2 "$(vlist 3)"; rc=$?
[ $rc != 0 ] && [ ! -e "$W/key.out" ] && grep -q "PCR values differ from the reference" "$W/client.err" && pass $t ||
	fail $t "rc=$rc $(cat "$W/client.err")"

t=tokens_checked
now=$(date +%s)
P1=$((BASE + 2))
c1=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/v2.sign.key" v2 order-7 $((now - 10)))\"}"); r1=$(cat "$W/resp")
c2=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/v2.sign.key" v2 other-vm $((now + 60)))\"}"); r2=$(cat "$W/resp")
c3=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/rogue.key" v2 order-7 $((now + 60)))\"}"); r3=$(cat "$W/resp")
c4=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/rogue.key" rogue order-7 $((now + 60)))\"}"); r4=$(cat "$W/resp")
c5=$(post $P1 /v1/share "{\"vm\":\"order-7\",\"token\":\"$(token "$W/v2.sign.key" v2 order-7 $((now + 60)))\"}")
[ "$c1" = 403 ] && echo "$r1" | grep -q expired && [ "$c2" = 403 ] && echo "$r2" | grep -q "another VM" &&
	[ "$c3" = 403 ] && echo "$r3" | grep -q "does not verify" && [ "$c4" = 403 ] && echo "$r4" | grep -q "not a validator of this pool" &&
	[ "$c5" = 200 ] && pass "$t (expired, another VM's, forged, unknown issuer refused; a pool validator's token accepted)" ||
	fail $t "$c1 $r1 | $c2 $r2 | $c3 $r3 | $c4 $r4 | $c5"

t=nonce_fresh_and_once
P2=$((BASE + 3))
c1=$(post $P2 /v1/attest '{"vm":"order-7","nonce":"'"$(printf '0%.0s' $(seq 64))"'","attest":"AA==","sig":"AA==","time":'"$now"',"hashes":{}}'); r1=$(cat "$W/resp")
post $P2 /v1/challenge '{"vm":"order-7"}' >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
body='{"vm":"order-7","nonce":"'$n'","attest":"AA==","sig":"AA==","time":'"$now"',"hashes":{"kernel":"00","initrd":"00","cmdline":"00","config":"00"}}'
c2=$(post $P2 /v1/attest "$body"); r2=$(cat "$W/resp")
c3=$(post $P2 /v1/attest "$body"); r3=$(cat "$W/resp")
post $((BASE + 4)) /v1/challenge '{"vm":"order-7"}' >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
sleep 3   # v3 gives nonces 2 s
c4=$(post $((BASE + 4)) /v1/attest '{"vm":"order-7","nonce":"'$n'","attest":"AA==","sig":"AA==","time":'"$now"',"hashes":{}}'); r4=$(cat "$W/resp")
[ "$c1" = 403 ] && echo "$r1" | grep -q "nonce unknown" && [ "$c2" = 403 ] && [ "$c3" = 403 ] &&
	echo "$r3" | grep -q "nonce unknown, already used" && [ "$c4" = 403 ] && echo "$r4" | grep -q "expired" &&
	pass "$t (unknown, replayed and stale nonces refused)" || fail $t "$c1 $r1 | $c2 $r2 | $c3 $r3 | $c4 $r4"

t=forged_quote_refused
post $P2 /v1/challenge '{"vm":"order-7"}' >/dev/null; n=$(python3 -c 'import json;print(json.load(open("'"$W/resp"'"))["nonce"])')
h() { sha256sum "$1" | cut -d' ' -f1; }
# a structurally valid TPMS_ATTEST with the right nonce and the right PCR
# digest (so only the signature can give it away), signed by nobody's TPM
python3 - "$n" "$W/vmlinuz" "$W/initrd" "$W/cmdline" "$W/config" "$W/disk.img" > "$W/forged.b64" <<'PY'
import sys, struct, base64, hashlib
nonce = bytes.fromhex(sys.argv[1])
pcr9 = b"\0" * 32
for i, f in enumerate(sys.argv[2:7]):
    data = open(f, "rb").read(16 << 20) if i == 4 else open(f, "rb").read()
    pcr9 = hashlib.sha256(pcr9 + hashlib.sha256(data).digest()).digest()
digest = hashlib.sha256(b"\0" * 32 * 8 + pcr9).digest()
a = struct.pack(">IH", 0xff544347, 0x8018)            # magic, TPM2_ST_ATTEST_QUOTE
a += struct.pack(">H", 34) + b"\x00\x0b" + b"\x11" * 32  # qualifiedSigner (sha256 name)
a += struct.pack(">H", 32) + nonce                     # extraData
a += struct.pack(">QIIB", 1000, 1, 0, 1)               # clockInfo, safe
a += struct.pack(">Q", 0)                              # firmwareVersion
a += struct.pack(">I", 1) + struct.pack(">HB", 0x000b, 3) + bytes([0xff, 0x02, 0x00])
a += struct.pack(">H", 32) + digest
print(base64.b64encode(a).decode())
PY
sig=$(python3 -c 'import base64,struct;print(base64.b64encode(struct.pack(">HHH",0x0018,0x000b,32)+b"\x01"*32+struct.pack(">H",32)+b"\x02"*32).decode())')
body='{"vm":"order-7","nonce":"'$n'","attest":"'$(cat "$W/forged.b64")'","sig":"'$sig'","time":'"$now"',"hashes":{"kernel":"'$(h "$W/vmlinuz")'","initrd":"'$(h "$W/initrd")'","cmdline":"'$(h "$W/cmdline")'","config":"'$(h "$W/config")'","disk":"'$(head -c 16777216 "$W/disk.img" | sha256sum | cut -d' ' -f1)'"}}'
c=$(post $P2 /v1/attest "$body"); r=$(cat "$W/resp")
[ "$c" = 403 ] && echo "$r" | grep -q "signature does not verify with the VM's attestation key" && pass "$t ($(echo "$r" | python3 -c 'import json,sys;print(json.load(sys.stdin)["error"])'))" || fail $t "$c $r"

t=bad_requests_clear_errors
c1=$(post $P2 /v1/attest 'not json'); r1=$(cat "$W/resp")
big=$(head -c 70000 /dev/zero | tr '\0' 'a')
c2=$(curl -s --tlsv1.3 --cacert "$W/ca.pem" -o "$W/resp" -w '%{http_code}' --data-binary "{\"x\":\"$big\"}" "https://127.0.0.1:$P2/v1/attest"); r2=$(cat "$W/resp")
tls12=$(echo | timeout 5 openssl s_client -connect 127.0.0.1:$P2 -tls1_2 2>&1 | grep -c "alert protocol version\|no protocols available\|handshake failure")
c3=$(post $P2 /v1/register '{"vm":"order-7"}'); r3=$(cat "$W/resp")
kill -0 "${VPID[2]}" 2>/dev/null; alive=$?
[ "$c1" = 400 ] && [ "$c2" = 413 ] && [ "$tls12" -ge 1 ] && [ "$c3" = 403 ] && echo "$r3" | grep -q "not signed by the image registry" && [ $alive = 0 ] &&
	pass "$t (bad JSON 400, oversized 413, TLS 1.2 refused, unsigned registration 403; still up)" ||
	fail $t "$c1 $r1 | $c2 $r2 | tls12=$tls12 | $c3 $r3 | alive=$alive"

t=fewer_than_t_reachable
kill "${VPID[2]}" "${VPID[3]}" 2>/dev/null; wait "${VPID[2]}" "${VPID[3]}" 2>/dev/null
tpm_boot
unlock 2 "$(vlist 3)"; rc=$?
[ $rc != 0 ] && [ ! -e "$W/key.out" ] && grep -q "1 of the 2 shares needed: nothing unlocked" "$W/client.err" &&
	pass $t || fail $t "rc=$rc $(cat "$W/client.err")"
stop_validators

t=audit_log_chained
ok=1
for f in "$W"/state3-v*/audit.log; do
	python3 - "$f" <<'PY' || ok=0
import sys, hashlib, json
prev = "0" * 64
for n, line in enumerate(open(sys.argv[1]), 1):
    body, h = line.rstrip("\n").rsplit(',"hash":"', 1)
    d = json.loads(line)
    assert d["prev"] == prev, f"line {n}: chain broken"
    assert hashlib.sha256(body.encode()).hexdigest() == h[:64], f"line {n}: altered"
    prev = h[:64]
PY
done
sed -i '1s/"result":"ok"/"result":"OK"/' "$W/state3-v1/audit.log"
python3 - "$W/state3-v1/audit.log" 2>/dev/null <<'PY' && ok=0
import sys, hashlib
for line in open(sys.argv[1]):
    body, h = line.rstrip("\n").rsplit(',"hash":"', 1)
    assert hashlib.sha256(body.encode()).hexdigest() == h[:64]
PY
[ $ok = 1 ] && pass "$t (every release and refusal chained; an edited line is detected)" || fail $t "chain check failed"

# ---------- 3 of 5 ----------
t=unlock_3_of_5
start_validators 5
tpm_boot
"$BUILD/veil-registry" order --vm order-7 --t 3 --validators "$(vlist 5)" --ca "$W/ca.pem" --key "$W/registry.key" \
	--ak-pub "$W/ak.pub" --disk "$W/disk.img" "${MEASURE[@]}" >"$W/reg5.out" 2>&1
kill "${VPID[1]}" "${VPID[4]}" 2>/dev/null   # two down: three is still enough
unlock 3 "$(vlist 5)"; rc=$?
opens && [ $rc = 0 ] && pass "$t (two of five validators down)" || fail $t "rc=$rc $(cat "$W/reg5.out" "$W/client.err")"

# ---------- throughput of one validator ----------
t=validator_throughput
P=$((BASE + 3))
n=0; start=$(date +%s%N)
while [ $n -lt 100 ]; do post $P /v1/challenge '{"vm":"order-7"}' >/dev/null; n=$((n + 1)); done
chal=$(( 100 * 1000000000 / ($(date +%s%N) - start) ))
tok=$(token "$W/v2.sign.key" v2 order-7 $(( $(date +%s) + 60 )))
n=0; start=$(date +%s%N)
while [ $n -lt 100 ]; do post $P /v1/share "{\"vm\":\"order-7\",\"token\":\"$tok\"}" >/dev/null; n=$((n + 1)); done
rel=$(( 100 * 1000000000 / ($(date +%s%N) - start) ))
tpm_boot
n=0; start=$(date +%s%N); ok=0
while [ $n -lt 10 ]; do tpm_boot; unlock 3 "127.0.0.1:$((BASE + 3)),127.0.0.1:$((BASE + 4)),127.0.0.1:$((BASE + 6))" && ok=$((ok + 1)); n=$((n + 1)); done
full=$(( ok * 1000000000 / ($(date +%s%N) - start) ))
[ $ok = 10 ] && pass "$t (curl, new TLS connection each: $chal challenges/s, $rel share releases/s; full unlocks incl. TPM reboot: $full/s)" ||
	fail $t "$ok/10 unlocks"
stop_validators

# ---------- nothing secret in any log ----------
t=no_key_or_share_in_logs
keyhex=$(od -An -tx1 "$W/key.out" 2>/dev/null | tr -d ' \n')
leak=0
for f in "$W"/*.log "$W"/*.err "$W"/state*/*.log "$W"/state*/*.json; do
	[ -f "$f" ] || continue
	[ -n "$keyhex" ] && grep -qi "$keyhex" "$f" && leak=1
	grep -q '"share"' "$f" && leak=1
	grep -q 'VMSH' "$f" && leak=1
done
for f in "$W"/state*/*.share; do grep -q 'VMSH' "$f" && leak=1; done   # sealed: no plaintext magic
[ $leak = 0 ] && [ -n "$keyhex" ] && pass "$t (key, shares: absent from logs and audit; shares sealed at rest)" || fail $t "a secret appears"
