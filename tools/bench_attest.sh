#!/usr/bin/env bash
# Validator throughput (protocol v2): full attestations (challenge, quote +
# event log + AK verification, share boxed to the VM's key) against one
# veil-validator with one worker pinned to CPU 0, from veil-attest-bench (a
# software TPM) on the other CPUs.  Prints one JSON object per run, then a
# summary object; everything on loopback, removed at the end.
#   tools/bench_attest.sh [SECONDS]      (make bench)
#   VALIDATOR=path/to/veil-validator: another build (an A/B comparison)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
SECS=${1:-5}
W=$(mktemp -d /tmp/veil-bench-attest-XXXXXX)
PORT=$((30000 + ($$ % 1000)))
VPID=""
cleanup() { [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT INT TERM
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench CA" \
	-keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=validator" -keyout tls.key -out tls.csr 2>/dev/null
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile <(echo "subjectAltName=IP:127.0.0.1") -out tls.crt 2>/dev/null
openssl genpkey -algorithm ed25519 -out sign.key 2>/dev/null
openssl genpkey -algorithm ed25519 -out registry.key 2>/dev/null
openssl pkey -in registry.key -pubout -out registry.pub
chmod 600 tls.key sign.key
# the soft TPM's vendor (a CA) and its EK (RSA-2048) certified by it
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench TPM vendor" \
	-keyout vendor.key -out vendor.pem 2>/dev/null
openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out bench-ek.key 2>/dev/null
openssl req -new -key bench-ek.key -subj "/CN=bench EK" 2>/dev/null |
	openssl x509 -req -CA vendor.pem -CAkey vendor.key -CAcreateserial -days 2 -outform DER -out bench-ek.der 2>/dev/null
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > storage )
cat > v.conf <<EOC
id v1
listen 127.0.0.1:$PORT
cert $W/tls.crt
key $W/tls.key
signing_key $W/sign.key
storage_key_file $W/storage
state_dir $W/state
registry_pub $W/registry.pub
ek_ca $W/vendor.pem
workers 1
audit_sync_ms 10
nonce_ttl_s 60
EOC
taskset -c 0 "${VALIDATOR:-$BUILD/veil-validator}" -c v.conf 2>validator.log &
VPID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$BUILD/veil-attest-bench" register --addr 127.0.0.1:$PORT --ca ca.pem --registry-key registry.key --vm bench-vm --vms 128 || exit 1
ncpu=$(nproc); cl="1-$((ncpu - 1))"; [ "$ncpu" = 1 ] && cl=0
run() { taskset -c "$cl" "$BUILD/veil-attest-bench" run --addr 127.0.0.1:$PORT --ca ca.pem --vm bench-vm --pid "$VPID" --seconds "$SECS" --vms 128 "$@"; }
# the baseline, on the validator's CPU: the server's half of a bare TLS 1.3
# handshake (same certificate, X25519, in memory): what a new connection costs
# before any attestation work
hs=$(taskset -c 0 "$BUILD/veil-tls-bench" tls.crt tls.key 500) || hs='{"handshakes":0,"server_us":0}'
hs_us=$(echo "$hs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server_us"])')
base=$(python3 -c "u=$hs_us; print('{\"server_us\": %.1f, \"per_cpu_s\": %d}' % (u, 1e6 / u if u else 0))"); echo "$base"
new=$(run --mode new --clients 8); echo "$new"
res=$(run --mode resume --clients 8); echo "$res"
ka=$(run --mode keepalive --clients 8); echo "$ka"
[ -n "${PERF:-}" ] && { perf record -q -g -p "$VPID" -o /tmp/keyrel-perf.data -- sleep "$SECS" & PP=$!; run --mode keepalive --clients 8 >/dev/null; wait $PP; }
many=$(run --mode keepalive --clients 900 --slow 100); echo "$many"
for v in new res ka many; do [ -n "${!v}" ] || eval "$v=null"; done   # a run that printed nothing: null, not broken JSON
echo "{\"tls_handshake_only\": $base, \"new_tls\": $new, \"resumed_tls\": $res, \"keepalive\": $ka, \"c1000_slow10pct\": $many, \"note\": \"one validator worker pinned to CPU 0, clients (software TPM) on CPU $cl; per_cpu_s = attestations per validator CPU second, i.e. per core; tls_handshake_only = the server half of a bare TLS 1.3 handshake on the same CPU, the baseline\"}"
