#!/usr/bin/env bash
# Bounded fuzzing campaigns: the parser alone (libFuzzer + ASan/UBSan, reads
# past the input poisoned), the differential harnesses (fuzz_diff: the XDP
# program through BPF_PROG_TEST_RUN against the parser's userspace build;
# fuzz_fastpath: whole packets through XDP, vm_fp and a DPDK worker, the C
# build under ASan/UBSan), the node's programs held to rules (fuzz_node:
# frames sent on whole, checksums that held still holding, every drop
# counted), and the control plane's parsers.
#   tests/fuzz.sh [SECONDS_EACH]     (make test: 15, make fuzz: 300; FUZZ_JOBS at once)
# Corpora live in build/fuzz/ and grow from run to run; a crash is kept there.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
secs=${1:-25}
mkdir -p "$BUILD/fuzz"
export VEIL_FIXTURES="$PWD/tests/fixtures"
# no allocation stack traces and no fill of fresh allocations: ~20% more
# executions; a crash still names where it happened (unless set by the caller)
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0:max_malloc_fill_size=0}
# undefined behaviour stops a campaign as a crash does (UBSan would print
# and go on, and the campaign pass)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
FUZZERS="fuzz_hello fuzz_diff fuzz_fastpath fuzz_node fuzz_share fuzz_evidence fuzz_eventlog fuzz_request fuzz_dns fuzz_envelope fuzz_ctl fuzz_dns_frame"
# one campaign: its line (PASS or FAIL) into $BUILD/fuzz/$f.result
fuzz_one() {
	local f=$1 corp log max limit rc runs cov ft units
	corp="$BUILD/fuzz/$f.corpus"
	mkdir -p "$corp"
	if [ $f = fuzz_share ]; then cp -n tests/fixtures/share-*.bin "$corp/" 2>/dev/null
	elif [ $f = fuzz_evidence ]; then cp -n tests/fixtures/evidence-*.bin "$corp/" 2>/dev/null
	elif [ $f = fuzz_eventlog ]; then   # seeds: an OVMF-shaped log (selector byte 0), a reference document (2)
		if [ ! -e "$corp/seed-log" ]; then
			printf 'console=ttyS0\n' > "$corp/.c"; printf 'initrd\n' > "$corp/.i"
			python3 tests/attest/mkevlog.py --cmdline "$corp/.c" --initrd "$corp/.i" --out "$corp/.log" >/dev/null &&
				{ printf '\0'; cat "$corp/.log"; } > "$corp/seed-log"
			printf '\002{"v":2,"vm":"a","epoch":1,"t":2,"n":3,"pcr0":"%064d","pcr7":"%064d","pcr9":["%064d"],"commit":"%064d","ek":"%064d"}' 0 0 0 0 0 > "$corp/seed-refs"
			rm -f "$corp/.c" "$corp/.i" "$corp/.log"
		fi
	elif [ $f = fuzz_request ]; then
		printf '\000{"vm":"order-7"}' > "$corp/seed-challenge"
		printf '\001{"vm":"order-7","nonce":"%064d","pub":"%064d","ak":"AA==","attest":"AA==","sig":"AA==","eventlog":"AA=="}' 0 0 > "$corp/seed-attest"
		printf '\202{"vm":"order-7","refs":"{}","refs_sig":"AA==","share":"AA=="}' > "$corp/seed-register"
	elif [ $f = fuzz_dns ]; then cp -n tests/fixtures/dns-*.bin "$corp/" 2>/dev/null
	elif [ $f = fuzz_dns_frame ]; then   # seeds: the fixtures' queries in IPv4 and IPv6 frames
		[ -e "$corp/seed-v4-0" ] || python3 - "$corp" tests/fixtures/dns-*.bin <<'PY'
import struct, sys
def frame(q, v6, n):
    u = struct.pack('>HHHH', 40000 + n, 53, 8 + len(q), 0x1234) + q
    if v6:
        ip = struct.pack('>IHBB', 0x60000000, len(u), 17, 64) + bytes.fromhex('20010db8005400000000000000000002') + bytes.fromhex('20010db8005300000000000000000001')
        et = 0x86dd
    else:
        h = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 0, 0x4000, 64, 17, 0, bytes([198, 18, 54, 2]), bytes([198, 18, 53, 1]))
        s = sum(struct.unpack('>10H', h)); s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
        ip = h[:10] + struct.pack('>H', ~s & 0xffff) + h[12:]
        et = 0x0800
    return bytes.fromhex('020000000001020000000002') + struct.pack('>H', et) + ip + u
for n, path in enumerate(sys.argv[2:]):
    q = open(path, 'rb').read()[17:] if path.endswith('.bin') else b''
    for v6 in (0, 1):
        open(f'{sys.argv[1]}/seed-v{6 if v6 else 4}-{n}', 'wb').write(frame(q, v6, n))
PY
	elif [ $f = fuzz_envelope ]; then
		printf '\001{"v":1,"kid":"0011223344556677","body":"eyJnZW4iOjF9","sig":"%088d"}' 0 > "$corp/seed-env"
		printf '\361{"name":"a.example.test","gen":3}' > "$corp/seed-sealed"
	elif [ $f = fuzz_ctl ]; then   # selector byte (low 3 bits): 0 order, 1 node registration, 2 token, 4 node activation, else gateway
		printf '\000{"image":"nginx@1.25","hostname":"web1.example.test","cpu":2,"ram_mb":512,"cc":"sev-snp","ssh_keys":["ssh-ed25519 AAAA a@b"],"user_data":"#!/bin/sh"}' > "$corp/seed-order"
		printf '\001{"key":"vreg_x","ek_pub":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE","node_pub":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","underlay4":"198.18.1.1","location":"DE","resources":{"cpu":4,"ram_mb":8192,"disk_gb":50,"gpus":["41:00.0"]},"scan":{"cpu":{"count":8,"flags":{"sev":true}},"libvirt":{"launch_security":["sev"]}}}' > "$corp/seed-register"
		printf '\002{"storefront":"shop-a","scopes":["order","read"],"rate":5}' > "$corp/seed-token"
		printf '\004{"secret":"%064d","attest":"AAAAAAAAAAAAAAAAAAAAAAAA","sig":"AAAAAAAAAAAA"}' 0 > "$corp/seed-activate"
		printf '\003{"id":"gw1","public4":"198.18.200.1","underlay6":"2001:db8::1","location":"52.37,4.90"}' > "$corp/seed-gateway"
	else cp -n tests/fixtures/hello-*.bin "$corp/" 2>/dev/null; fi
	max=4096; [ $f = fuzz_diff ] && max=1360; [ $f = fuzz_fastpath ] && max=2049; [ $f = fuzz_node ] && max=2049; [ $f = fuzz_share ] && max=256; [ $f = fuzz_evidence ] && max=1024
	[ $f = fuzz_eventlog ] && max=8192
	log="$BUILD/fuzz/$f.log"
	export VEIL_FUZZ_SEED_DIR="$PWD/$corp"   # fuzz_request writes a challenge with its vendor's EK certificate there
	# fuzz_fastpath and fuzz_node keep state between inputs (connections,
	# tables): the inputs since their last fresh start, to replay with
	# VEIL_FUZZ_REPLAY
	export VEIL_FUZZ_TRACE="$PWD/$BUILD/fuzz/$f.trace"
	case $f in fuzz_fastpath|fuzz_node) ;; *) unset VEIL_FUZZ_TRACE ;; esac
	# veil-dns's query path (ldns under ASan, ~13k runs/s here), the event-log
	# / AK / reference parsers and the validator's request handling: a long
	# campaign (make fuzz) runs each to 1e7 executions whatever the time
	limit="-max_total_time=$secs"
	# these run to 1e7 executions in make fuzz, whatever the time
	case $f in fuzz_dns|fuzz_eventlog|fuzz_request|fuzz_ctl)
		[ "$secs" -ge 300 ] && limit="-runs=10000000 -max_total_time=7200" ;;
	esac
	( cd "$BUILD/fuzz" && "../tests/$f" $limit -max_len=$max -print_final_stats=1 \
		-artifact_prefix="$f-" "$f.corpus" >"$f.log" 2>&1 )
	rc=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
	cov=$(grep -E '^#[0-9]+.*(DONE|pulse|REDUCE|NEW)' "$log" | tail -1 | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
	ft=$(grep -E '^#[0-9]+.*(DONE|pulse|REDUCE|NEW)' "$log" | tail -1 | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
	units=$(ls "$corp" | wc -l)
	if [ $rc = 0 ]; then
		echo "PASS $f ($runs runs in $(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' || echo "$secs") s, coverage $cov edges / $ft features, corpus $units inputs)"
	else
		echo "FAIL $f: exit $rc; $(grep -E 'fuzz_diff:|fuzz_fastpath:|fuzz_node:|ERROR|SUMMARY' "$log" | head -3 | tr '\n' ' ') input kept as $(ls "$BUILD"/fuzz/$f-* 2>/dev/null | head -1)$(case $f in fuzz_fastpath|fuzz_node) echo "; the inputs before it: VEIL_FUZZ_REPLAY=$BUILD/fuzz/$f.trace" ;; esac)"
	fi
}
# libFuzzer runs one thread: as many campaigns at once as there are CPUs
# (each runs its full time; make test's fuzz suite: ~85 s instead of ~170
# on 2 CPUs), their lines printed in the list's order
jobs_max=${FUZZ_JOBS:-$(nproc)}
for f in $FUZZERS; do
	rm -f "$BUILD/fuzz/$f.result"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
	fuzz_one "$f" >"$BUILD/fuzz/$f.result" &
done
wait
for f in $FUZZERS; do
	if [ -s "$BUILD/fuzz/$f.result" ]; then cat "$BUILD/fuzz/$f.result"
	else echo "FAIL $f: its campaign printed no result"; fi
done
