#!/usr/bin/env bash
# veil-dns end to end: two network namespaces (a resolver/client and the
# server) on a veth, veil-dns serving the real tor-geoipdb, queried with kdig
# and dig over UDP and TCP, with and without EDNS Client Subnet (v4 and v6
# subnets in several countries); live changes (gateway down and back, VM added
# and removed) through the config file and SIGHUP; the EDNS compliance probes
# (RFC 6891, 7871, 7873, 8482); malformed queries; rate limiting; metrics.
# Prints PASS/FAIL/SKIP lines (tests/run.sh).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/veil-dns
ID="vmdns-$$"
NC="$ID-cli"
NS="$ID-srv"
T=$(mktemp -d /tmp/veil-dns-test.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NC" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
pass() { echo "PASS $*"; [ -n "${DNS_TIMING:-}" ] && echo "   t=$SECONDS" >&2; }
fail() { echo "FAIL $*"; }
check() { # name condition-text; uses $? of the previous command
	if [ "$1" = 0 ]; then pass "$2"; else fail "$2${3:+: $3}"; fi
}

for t in kdig dig python3 curl; do
	command -v $t >/dev/null || { echo "SKIP dns: $t missing (tools/deps.sh test)"; exit 0; }
done
[ -r /usr/share/tor/geoip ] || { echo "SKIP dns: tor-geoipdb missing (tools/deps.sh test)"; exit 0; }
[ -x "$BIN" ] || { echo "FAIL dns: $BIN not built"; exit 1; }

# ---------- config checks (--check, file:line errors, exit 2) ----------
bad_conf() { # name expected-substring config-text
	printf '%s\n' "$3" >"$T/bad.conf"
	local out rc
	out=$("$BIN" --check --config "$T/bad.conf" 2>&1); rc=$?
	if [ $rc = 2 ] && echo "$out" | grep -q -- "$2"; then pass "check_rejects_$1"; else fail "check_rejects_$1: rc=$rc: $out"; fi
}
base='zone veil.test
ns ns1 198.18.53.1
listen 198.18.53.1
gateway fra DE up 198.18.1.1'
bad_conf unknown_key "bad.conf:5: unknown setting" "$base
colour blue"
bad_conf bad_location "bad.conf:5: gateway location" "$base
gateway x ZZ up 198.18.1.2"
bad_conf bad_health "bad.conf:5: gateway health" "$base
gateway x DE sideways 198.18.1.2"
bad_conf bad_vm_name "bad.conf:5: bad VM name" "$base
vm a..b"
bad_conf bad_override "bad.conf:5: override: bad prefix" "$base
override 198.18.0.0/40 DE"
bad_conf no_gateway "no 'gateway'" 'zone veil.test
ns ns1 198.18.53.1
listen 198.18.53.1'
bad_conf dup_vm "defined twice" "$base
vm a
vm A"
printf 'zone veil.test\nns ns1 198.18.53.1\nlisten 198.18.53.1\ngateway a DE up 198.18.1.1\ngeoip4 %s/nope\n' "$T" >"$T/bad.conf"
out=$("$BIN" --check -c "$T/bad.conf" 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "tor-geoipdb"; check $? check_rejects_missing_geoip "$out"
"$BIN" --help | grep -q "usage: veil-dns"; check $? help
"$BIN" --bogus >/dev/null 2>&1; [ $? = 2 ]; check $? bad_option_exit_2

# ---------- the lab ----------
ip netns add "$NC" && ip netns add "$NS" || { echo "FAIL dns_lab: netns"; exit 1; }
ip -n "$NC" link set lo up
ip -n "$NS" link set lo up
ip link add "vd$$a" netns "$NC" type veth peer name "vd$$b" netns "$NS"
ip -n "$NC" link set "vd$$a" name eth0
ip -n "$NS" link set "vd$$b" name eth0
ip -n "$NC" addr add 198.18.54.2/24 dev eth0
ip -n "$NS" addr add 198.18.54.1/24 dev eth0
ip -n "$NC" addr add 2001:db8:54::2/64 dev eth0 nodad
ip -n "$NS" addr add 2001:db8:54::1/64 dev eth0 nodad
ip -n "$NC" link set eth0 up
ip -n "$NS" link set eth0 up
ip -n "$NS" addr add 198.18.53.1/32 dev lo
ip -n "$NS" addr add 198.18.53.2/32 dev lo
ip -n "$NS" addr add 2001:db8:53::1/128 dev lo nodad
ip -n "$NC" route add 198.18.53.0/24 via 198.18.54.1
ip -n "$NC" route add 2001:db8:53::/64 via 2001:db8:54::1

# gateways: one per country centre; the resolver's own networks are
# overridden to JP (v4) and BR (v6)
gateways='gateway fra DE up 198.18.1.1 2001:db8:1::1
gateway par FR up 198.18.2.1 2001:db8:2::1
gateway nyc US up 198.18.3.1 2001:db8:3::1
gateway tyo JP up 198.18.4.1 2001:db8:4::1
gateway gru BR up 198.18.5.1 2001:db8:5::1
gateway syd AU up 198.18.6.1 2001:db8:6::1
gateway jnb ZA up 198.18.7.1 2001:db8:7::1
gateway bom IN up 198.18.8.1 2001:db8:8::1
gateway v4only 40.4,-3.7 up 198.18.9.1'
conf() { # extra lines...
	cat <<EOF
zone veil.test
soa ns1 hostmaster 3600 600 86400 30
ns ns1 198.18.53.1 2001:db8:53::1
ttl 20
answers 2
listen 198.18.53.1
listen 2001:db8:53::1
metrics 198.18.54.1:9433
pidfile $T/dns.pid
override 198.18.54.0/24 JP
override 2001:db8:54::/48 BR
$gateways
vm vm1
vm vm2
vm *.apps
EOF
	for l in "$@"; do echo "$l"; done
}
put() { cat >"$T/dns.conf.tmp" && mv "$T/dns.conf.tmp" "$T/dns.conf"; }  # whole files only
conf | put
"$BIN" --check --config "$T/dns.conf" >"$T/check.out" 2>&1; check $? check_ok "$(cat "$T/check.out")"
ip netns exec "$NS" "$BIN" --config "$T/dns.conf" >"$T/dns.log" 2>&1 &
PIDS+=($!)
DPID=$!
for _ in $(seq 50); do
	ip netns exec "$NC" dig +short +tries=1 +time=1 @198.18.53.1 veil.test SOA 2>/dev/null | grep -q hostmaster && break
	sleep 0.2
done

K() { ip netns exec "$NC" kdig +norec +retry=0 +time=2 "$@" 2>&1; }
D() { ip netns exec "$NC" dig +norec +tries=1 +time=2 "$@" 2>&1; }
serial() { D @198.18.53.1 veil.test SOA +short | awk '{print $3}'; }

# ---------- nearest gateways, ECS, scopes ----------
# each country's first big range in the database, and the two gateways
# nearest to its centre (computed here, independently, from centroids.inc)
python3 - "$T" <<'PY' >"$T/cases"
import ipaddress, math, re, sys
cent = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r'\{ "(\w\w)", ([-\d.]+), ([-\d.]+) \}', open('controlplane/dns/centroids.inc').read())}
gws = [('fra', 'DE'), ('par', 'FR'), ('nyc', 'US'), ('tyo', 'JP'), ('gru', 'BR'), ('syd', 'AU'), ('jnb', 'ZA'), ('bom', 'IN')]
pos = {g: cent[c] for g, c in gws}
pos4 = dict(pos, v4only=(40.4, -3.7))
def km(a, b):
    r = math.pi / 180
    dl, dn = (b[0] - a[0]) * r, (b[1] - a[1]) * r
    h = math.sin(dl / 2) ** 2 + math.cos(a[0] * r) * math.cos(b[0] * r) * math.sin(dn / 2) ** 2
    return 2 * 6371 * math.atan2(math.sqrt(h), math.sqrt(1 - h))
def near(cc, p):
    return sorted(p, key=lambda g: km(cent[cc], p[g]))[:2]
for fam, path, size in ((4, '/usr/share/tor/geoip', 2 ** 16), (6, '/usr/share/tor/geoip6', 2 ** 96)):
    seen = set()
    for l in open(path):
        if l[0] == '#':
            continue
        s, e, c = l.strip().split(',')
        s, e = (int(s), int(e)) if fam == 4 else (int(ipaddress.ip_address(s)), int(ipaddress.ip_address(e)))
        if c in ('DE', 'US', 'JP', 'BR', 'AU', 'ZA') and c not in seen and e - s + 1 >= size:
            seen.add(c)
            a = ipaddress.ip_address(s + (e - s) // 2)
            plen = 24 if fam == 4 else 48
            net = ipaddress.ip_network(f'{a}/{plen}', strict=False)
            print(fam, c, net, ','.join(near(c, pos4)), ','.join(near(c, pos)))
PY
# blocks() splits dig/kdig output of several queries: "N answer..." and "N ecs X"
blocks() { awk '/->>HEADER<<-/ {n++} /\tIN\t(A|AAAA)\t/ {print n, $NF} /CLIENT-SUBNET:/ {print n, "ecs", $3}'; }
n=0
while read -r fam cc net want4 want6; do
	n=$((n + 1))
	addrs=$(for g in ${want4//,/ }; do grep "^gateway $g " <<<"$gateways" | awk '{print $5}'; done | sort | tr '\n' ' ')
	addrs6=$(for g in ${want6//,/ }; do grep "^gateway $g " <<<"$gateways" | awk '{print $6}'; done | sort | tr '\n' ' ')
	# dig: A (over v4) and AAAA in one run
	D @198.18.53.1 vm1.veil.test A +subnet="$net" vm1.veil.test AAAA +subnet="$net" | blocks >"$T/b"
	got=$(awk '$1 == 1 && $2 != "ecs" {print $2}' "$T/b" | sort | tr '\n' ' ')
	[ "$got" = "$addrs" ]; check $? "ecs_v${fam}_${cc}_A_dig ($net -> $want4)" "got $got want $addrs"
	got=$(awk '$1 == 2 && $2 != "ecs" {print $2}' "$T/b" | sort | tr '\n' ' ')
	[ "$got" = "$addrs6" ]; check $? "ecs_v${fam}_${cc}_AAAA_dig ($net -> $want6)" "got $got want $addrs6"
	# the scope: family and source echoed; the first and the last address
	# of the scope block get the same answer (kdig, over v6)
	line=$(awk '$1 == 1 && $2 == "ecs" {print $3}' "$T/b")
	echo "$line" >>"$T/scopes"
	echoed=${line%/*}
	scope=${line##*/}
	ends=$(python3 -c "import ipaddress; n=ipaddress.ip_network('$net'); b=ipaddress.ip_network(f'{n.network_address}/$scope', strict=False); print(b.network_address, b.broadcast_address)")
	bits=$([ $fam = 4 ] && echo 32 || echo 128)
	set -- $ends
	K @2001:db8:53::1 vm1.veil.test A +subnet="$1/$bits" vm1.veil.test A +subnet="$2/$bits" | blocks >"$T/b2"
	g1=$(awk '$1 == 1 && $2 != "ecs" {print $2}' "$T/b2" | sort | tr '\n' ' ')
	g2=$(awk '$1 == 2 && $2 != "ecs" {print $2}' "$T/b2" | sort | tr '\n' ' ')
	[ "$echoed" = "$net" ] && [ "$g1" = "$addrs" ] && [ "$g2" = "$addrs" ]
	check $? "ecs_v${fam}_${cc}_scope ($line; block $1 .. $2 answered alike, kdig)" "ends: $g1 / $g2"
done <"$T/cases"
[ "$n" -ge 10 ]; check $? "ecs_countries ($n subnets, v4 and v6)"

# the resolver's own address when there is no ECS: v4 overridden to JP, v6 to BR
got=$(K @198.18.53.1 vm2.veil.test A +short | head -1)
[ "$got" = 198.18.4.1 ]; check $? "resolver_v4_override_JP_nearest_tyo" "got $got"
got=$(K @2001:db8:53::1 vm2.veil.test AAAA +short | head -1)
[ "$got" = 2001:db8:5::1 ]; check $? "resolver_v6_override_BR_nearest_gru" "got $got"
out=$(D @198.18.53.1 vm2.veil.test A)
! echo "$out" | grep -q CLIENT-SUBNET; check $? "no_ecs_in_answer_without_ecs_in_query"
got=$(K @198.18.53.1 vm2.veil.test A +subnet=0.0.0.0/0 | grep -o 'CLIENT-SUBNET: [^ ]*' | head -1)
echo "$got" | grep -q '0.0.0.0/0/0'; check $? "ecs_source_0_scope_0" "$got"
got=$(K @198.18.53.1 vm1.veil.test MX +subnet=2.28.1.0/24 | grep -o 'CLIENT-SUBNET: [^ ]*' | head -1)
echo "$got" | grep -q '2.28.1.0/24/0'; check $? "ecs_scope_0_when_the_answer_does_not_depend_on_it" "$got"

# ---------- names: wildcard, NXDOMAIN, NODATA, ANY, SOA/NS, refused ----------
got=$(D @198.18.53.1 shop.apps.veil.test A +short | wc -l)
[ "$got" = 2 ]; check $? "wildcard_one_label" "$got answers"
out=$(D @198.18.53.1 a.b.apps.veil.test A)
echo "$out" | grep -q 'status: NXDOMAIN' && echo "$out" | grep -A1 'AUTHORITY SECTION' | grep -q SOA; check $? "wildcard_two_labels_nxdomain_with_soa"
out=$(D @198.18.53.1 nosuch.veil.test A)
echo "$out" | grep -q 'status: NXDOMAIN' && echo "$out" | grep -q 'flags: qr aa' && echo "$out" | grep -A1 'AUTHORITY SECTION' | grep -q 'veil.test.*30.*SOA'
check $? "nxdomain_aa_soa_in_authority_ttl_minimum"
out=$(D @198.18.53.1 vm1.veil.test MX)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'ANSWER: 0' && echo "$out" | grep -A1 'AUTHORITY SECTION' | grep -q SOA
check $? "nodata_with_soa"
out=$(D @198.18.53.1 apps.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'ANSWER: 0'; check $? "empty_non_terminal_nodata"
got=$(D @198.18.53.1 veil.test NS +short)
[ "$got" = ns1.veil.test. ]; check $? "ns" "$got"
out=$(D @198.18.53.1 veil.test NS)
echo "$out" | grep -A3 'ADDITIONAL SECTION' | grep -q '198.18.53.1'; check $? "ns_glue"
got=$(D @198.18.53.1 ns1.veil.test AAAA +short)
[ "$got" = 2001:db8:53::1 ]; check $? "ns_host_address" "$got"
out=$(D @198.18.53.1 vm1.veil.test ANY)
echo "$out" | grep -q 'HINFO.*"RFC8482"' && echo "$out" | grep -q 'ANSWER: 1'; check $? "any_minimal_rfc8482"
out=$(D @198.18.53.1 example.com A)
echo "$out" | grep -q 'status: REFUSED'; check $? "outside_zone_refused"
got=$(D @198.18.53.1 VM1.Veil.TEST A +short | wc -l)
[ "$got" = 2 ]; check $? "case_insensitive"
[ "$(D @198.18.53.1 vm1.veil.test A | grep -c 'IN	A	')" = 2 ]; check $? "answers_N_2"
ttl=$(D @198.18.53.1 vm1.veil.test A | awk '/^vm1.veil.test.*IN\tA/ {print $2; exit}')
[ "$ttl" = 20 ]; check $? "answer_ttl_20" "$ttl"

# ---------- TCP ----------
got=$(K @198.18.53.1 +tcp vm1.veil.test A +subnet=2.28.1.0/24 +short | sort | tr '\n' ' ')
[ -n "$got" ]; check $? "tcp_kdig" "$got"
got=$(D @2001:db8:53::1 +tcp vm1.veil.test AAAA +short | wc -l)
[ "$got" = 2 ]; check $? "tcp_dig_v6" "$got"
out=$(K @198.18.53.1 +tcp +keepopen vm1.veil.test A vm2.veil.test AAAA 2>&1 | grep -c 'status: NOERROR')
[ "$out" = 2 ]; check $? "tcp_two_queries_one_connection" "$out"

# ---------- EDNS compliance (RFC 6891 / 7871 / 7873) ----------
out=$(D @198.18.53.1 +edns=1 +noednsneg vm1.veil.test A)
echo "$out" | grep -q 'status: BADVERS' && echo "$out" | grep -q 'EDNS: version: 0'; check $? "edns1_badvers_version0"
out=$(D @198.18.53.1 +edns=0 +ednsopt=65001:abcd vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && ! echo "$out" | grep -q 'OPT=65001'; check $? "unknown_option_ignored_not_echoed"
out=$(D @198.18.53.1 +edns=0 +ednsflags=0x80 vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && ! echo "$out" | grep -q 'MBZ'; check $? "unknown_edns_flags_ignored_not_echoed"
out=$(D @198.18.53.1 +noedns vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && ! echo "$out" | grep -q 'OPT PSEUDOSECTION'; check $? "no_edns_no_opt"
out=$(D @198.18.53.1 +nocookie vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && ! echo "$out" | grep -q COOKIE; check $? "nocookie"
out=$(D @198.18.53.1 +cookie vm1.veil.test A)
ck=$(echo "$out" | awk '/COOKIE:/ {print $3}')
[ ${#ck} = 48 ] && echo "$out" | grep -q 'COOKIE:.*(good)'; check $? "cookie_answered_rfc9018_length" "$ck"
out=$(D @198.18.53.1 +cookie="$ck" vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'COOKIE:.*good'; check $? "cookie_returned_accepted"
out=$(D @198.18.53.1 +ednsopt=10:0102 vm1.veil.test A)
echo "$out" | grep -q 'status: FORMERR'; check $? "cookie_malformed_formerr"
out=$(D @198.18.53.1 +tcp +edns=0 vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'udp: 1232'; check $? "tcp_edns_buffer_1232"
out=$(D @198.18.53.1 +ednsopt=8:00011700010203 vm1.veil.test A)
echo "$out" | grep -q 'status: FORMERR'; check $? "ecs_bits_past_prefix_formerr"
out=$(D @198.18.53.1 +ednsopt=8:0003180001020304 vm1.veil.test A)
echo "$out" | grep -q 'status: FORMERR'; check $? "ecs_bad_family_formerr"
out=$(D @198.18.53.1 +ednsopt=8:000118000102 vm1.veil.test A)
echo "$out" | grep -q 'status: FORMERR'; check $? "ecs_short_address_formerr"
out=$(D @198.18.53.1 +ednsopt=8:0001210001020304 vm1.veil.test A)
echo "$out" | grep -q 'status: FORMERR'; check $? "ecs_source_over_32_formerr"
out=$(D @198.18.53.1 +edns=1 +noednsneg +ednsopt=65001:abcd vm1.veil.test A)
echo "$out" | grep -q 'status: BADVERS' && echo "$out" | grep -q 'EDNS: version: 0' && ! echo "$out" | grep -q 'OPT=65001' &&
	echo "$out" | grep -q 'ANSWER: 0'; check $? "edns1_unknown_option_badvers_no_answer"
out=$(D @198.18.53.1 +edns=0 +dnssec vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'flags: do'; check $? "edns_do_bit_echoed"
out=$(D @198.18.53.1 +edns=0 +bufsize=512 +dnssec +ignore veil.test NS)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'udp: 1232' && ! echo "$out" | grep -q 'flags:.* tc'
check $? "edns_512_fits"
out=$(D @198.18.53.1 +tcp +edns=1 +noednsneg vm1.veil.test A)
echo "$out" | grep -q 'status: BADVERS'; check $? "edns1_badvers_over_tcp"
out=$(D @198.18.53.1 +tcp +cookie vm1.veil.test A)
echo "$out" | grep -q 'status: NOERROR' && echo "$out" | grep -q 'COOKIE:'; check $? "cookie_over_tcp"
out=$(D @198.18.53.1 +opcode=2 vm1.veil.test A)
echo "$out" | grep -q 'status: NOTIMP'; check $? "opcode_status_notimp"
out=$(D @198.18.53.1 veil.test AXFR +tcp 2>&1)
echo "$out" | grep -qi 'refused\|Transfer failed'; check $? "axfr_refused"

# ---------- malformed queries: FORMERR or a counted drop, never a crash ----------
cat >"$T/mal.py" <<'PY'
import socket, struct, sys
def send(pkt, fam=socket.AF_INET, addr=sys.argv[1]):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(0.5)
    s.sendto(pkt, (addr, 53))
    try:
        r = s.recv(65535); return r
    except socket.timeout:
        return None
def hdr(qd=1, ar=0, flags=0): return struct.pack('>HHHHHH', 0xbeef, flags, qd, 0, 0, ar)
q = b'\x03vm1\x04veil\x04test\x00' + struct.pack('>HH', 1, 1)
cases = {
 'short_header': b'\x12\x34\x00',
 'response_bit': hdr(flags=0x8000) + q,
 'compression_loop': hdr() + b'\xc0\x0c' + struct.pack('>HH', 1, 1),
 'label_past_end': hdr() + b'\x3f' + b'a' * 10,
 'label_too_long': hdr() + b'\x40' + b'a' * 64 + b'\x00' + struct.pack('>HH', 1, 1),
 'truncated_question': hdr() + b'\x03vm1\x04veil',
 'oversized': hdr() + q + b'\x00' * 4000,  # 4 KB of zeros after the question
 'trailing_junk': hdr() + q + b'junk',
 'trailing_after_opt': hdr(ar=1) + q + b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 0) + b'\x01',
 'opt_in_answer': struct.pack('>HHHHHH', 0xbeef, 0, 1, 1, 0, 0) + q + b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 0),
 'opt_owner_not_root': hdr(ar=1) + q + b'\x01x\x00' + struct.pack('>HHIH', 41, 1232, 0, 0),
 'arcount_past_end': hdr(ar=1) + q,
 'qdcount_2': hdr(qd=2) + q + q,
 'qdcount_0': hdr(qd=0),
 'two_opt': hdr(ar=2) + q + (b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 0)) * 2,
 'opt_bad_option_len': hdr(ar=1) + q + b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 6) + struct.pack('>HH', 8, 40) + b'\x00\x01',
 'ecs_twice': hdr(ar=1) + q + b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 16) + (struct.pack('>HHHBB', 8, 4, 1, 0, 0)) * 2,
 'ecs_truncated': hdr(ar=1) + q + b'\x00' + struct.pack('>HHIH', 41, 1232, 0, 6) + struct.pack('>HH', 8, 2) + b'\x00\x01',
 'garbage': bytes(range(256)) * 4,
}
for k, p in cases.items():
    r = send(p)
    rc = None if r is None else (r[3] & 15)
    print(k, 'drop' if r is None else f'rcode={rc} id={"ok" if r[:2] == p[:2] else "bad"}')
PY
ip netns exec "$NC" python3 "$T/mal.py" 198.18.53.1 >"$T/mal.out" 2>&1
cat "$T/mal.out" | sed 's/^/   /'
ok=0
while read -r k res rest; do
	case $k in
	short_header|response_bit) [ "$res" = drop ] || ok=1 ;;
	*) [ "$res" = "rcode=1" ] && [ "$rest" = "id=ok" ] || { echo "   $k: $res $rest"; ok=1; } ;;
	esac
done <"$T/mal.out"
[ $ok = 0 ]; check $? "malformed_formerr_or_drop"
kill -0 $DPID 2>/dev/null; check $? "alive_after_malformed"
m=$(ip netns exec "$NC" curl -s http://198.18.54.1:9433/metrics)
echo "$m" | grep -q 'veildns_dropped_total{reason="short"} [1-9]' && echo "$m" | grep -q 'veildns_dropped_total{reason="response"} [1-9]'
check $? "malformed_drops_counted"

# ---------- live changes: gateway down and back, VM added and removed ----------
s0=$(serial)
conf | sed 's/^gateway tyo JP up/gateway tyo JP down/' | put
for _ in $(seq 30); do [ "$(serial)" != "$s0" ] && break; sleep 0.1; done
s1=$(serial)
got=$(K @198.18.53.1 vm1.veil.test A +short | tr '\n' ' ')
! echo "$got" | grep -q 198.18.4.1 && [ "$(echo $got | wc -w)" = 2 ]; check $? "gateway_down_gone_from_answers ($got)"
[ "$s1" -gt "$s0" ] 2>/dev/null; check $? "serial_moves_on_change ($s0 -> $s1)"
# while the server reloads, no query is lost
( for _ in $(seq 5); do kill -HUP $DPID; sleep 0.05; done ) &
lost=0
for i in $(seq 20); do
	D @198.18.53.1 vm1.veil.test A +short | grep -q . || lost=$((lost + 1))
done
wait $!
[ $lost = 0 ]; check $? "no_query_lost_during_reloads" "$lost lost"
conf | put
kill -HUP $DPID
for _ in $(seq 30); do K @198.18.53.1 vm1.veil.test A +short | head -1 | grep -q 198.18.4.1 && break; sleep 0.1; done
got=$(K @198.18.53.1 vm1.veil.test A +short | head -1)
[ "$got" = 198.18.4.1 ]; check $? "gateway_back_in_answers" "$got"
s2=$(serial)
conf "vm vm3" | put
for _ in $(seq 30); do [ "$(serial)" != "$s2" ] && break; sleep 0.1; done
got=$(D @198.18.53.1 vm3.veil.test A +short | wc -l)
[ "$got" = 2 ]; check $? "vm_added_answered" "$got"
conf | put
for _ in $(seq 30); do D @198.18.53.1 vm3.veil.test A | grep -q NXDOMAIN && break; sleep 0.1; done
D @198.18.53.1 vm3.veil.test A | grep -q 'status: NXDOMAIN'; check $? "vm_removed_nxdomain"
conf "colour blue" | put
sleep 0.6
D @198.18.53.1 vm1.veil.test A +short | grep -q .; check $? "bad_file_keeps_serving"
grep -q 'event=reload_rejected.*dns.conf:[0-9]*: unknown setting' "$T/dns.log"; check $? "bad_file_logged_with_line" "$(grep reload_rejected "$T/dns.log" | tail -1)"
conf | put

# ---------- metrics ----------
m=$(ip netns exec "$NC" curl -s http://198.18.54.1:9433/metrics)
echo "$m" | grep -q 'veildns_queries_total{qtype="A",rcode="NOERROR"} [1-9]' &&
	echo "$m" | grep -q 'veildns_queries_total{qtype="A",rcode="NXDOMAIN"} [1-9]' &&
	echo "$m" | grep -q 'veildns_answers_total{gateway="tyo"} [1-9]' &&
	echo "$m" | grep -q 'veildns_ecs_total [1-9]' && echo "$m" | grep -q 'veildns_zone_serial [1-9]'
check $? "metrics_by_type_rcode_gateway_ecs"

# ---------- a second server: truncation, ties spread, rate limiting ----------
{
	echo 'zone big.test'
	echo 'ns ns1 198.18.53.2'
	echo 'listen 198.18.53.2'
	echo 'metrics off'
	echo 'answers 30'
	echo 'rrl 20 2'
	for i in $(seq 40); do echo "gateway g$i 10.0,10.0 up 198.18.60.$i 2001:db8:60::$i"; done
	echo 'vm many'
} >"$T/big.conf"
ip netns exec "$NS" "$BIN" --config "$T/big.conf" >"$T/big.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do D @198.18.53.2 big.test SOA +short | grep -q 'ns1.big.test' && break; sleep 0.2; done
out=$(D @198.18.53.2 +noedns +ignore many.big.test AAAA)
echo "$out" | grep -q 'flags: qr tc aa\|flags: qr aa tc' && echo "$out" | grep -q 'ANSWER: 0'; check $? "udp_512_truncated"
got=$(D @198.18.53.2 +noedns many.big.test AAAA +short | wc -l)
[ "$got" = 30 ]; check $? "tc_retry_over_tcp_gets_all" "$got"
out=$(D @198.18.53.2 +bufsize=1232 many.big.test AAAA)
echo "$out" | grep -q 'ANSWER: 30' && ! echo "$out" | grep -q ' tc'; check $? "edns_buffer_fits"
sets=$(for i in $(seq 1 12); do K @198.18.53.2 many.big.test A +subnet=2.$((i * 16)).0.0/16 +short | sort | md5sum; done | sort -u | wc -l)
[ "$sets" -ge 2 ]; check $? "ties_spread ($sets different sets of 30 from 40 equidistant gateways)"
ip netns exec "$NC" python3 - <<'PY' >"$T/rrl.out"
import socket, struct, time
s = socket.socket(); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)
q = lambda i: struct.pack('>HHHHHH', i, 0, 1, 0, 0, 0) + b'\x04many\x03big\x04test\x00' + struct.pack('>HH', 1, 1)
for i in range(200):
    s.sendto(q(i), ('198.18.53.2', 53))
full = tc = 0
try:
    while True:
        r = s.recv(4096)
        if r[2] & 2: tc += 1
        else: full += 1
except socket.timeout:
    pass
print(full, tc)
PY
read -r full tc <"$T/rrl.out"
[ "$full" -le 40 ] && [ "$tc" -ge 20 ]; check $? "rrl_limits_and_slips ($full full answers, $tc truncated of 200 in one second)"
got=$(D @198.18.53.2 +tcp many.big.test A +short | wc -l)
[ "$got" = 30 ]; check $? "rrl_not_on_tcp"

# ---------- coalescing: no wait for queries one at a time, waits under a burst ----------
# (udp_coalesce_us 1000: the waits begin at 16 queries per ms, 16k/s, which
# the burst below passes on any machine)
ip -n "$NS" addr add 198.18.53.7/32 dev lo
printf '%s\n' 'zone co.test' 'ns ns1 198.18.53.7' 'listen 198.18.53.7' 'metrics 198.18.54.1:9436' \
	'udp_coalesce_batch 8' 'udp_coalesce_us 1000' 'gateway g1 10.0,10.0 up 198.18.60.1' 'vm a' >"$T/co.conf"
ip netns exec "$NS" "$BIN" --config "$T/co.conf" >"$T/co.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do D @198.18.53.7 a.co.test A +short | grep -q 198.18.60.1 && break; sleep 0.2; done
CW() { ip netns exec "$NC" curl -s http://198.18.54.1:9436/metrics | awk '$1 == "veildns_coalesce_waits_total" {print $2}'; }
for _ in $(seq 20); do D @198.18.53.7 a.co.test A +short >/dev/null; done
w0=$(CW)
[ "$w0" = 0 ]; check $? "coalesce_no_wait_for_queries_one_at_a_time" "waits: $w0"
ip netns exec "$NC" python3 - <<'PY' >"$T/co.out"
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: every answer fits
q = lambda i: struct.pack('>HHHHHH', i, 0, 1, 0, 0, 0) + b'\x01a\x02co\x04test\x00' + struct.pack('>HH', 1, 1)
N, ids = 4000, set()
for i in range(N):
    s.sendto(q(i), ('198.18.53.7', 53))
    if i % 64 == 63:
        time.sleep(0.0002)  # bursts of 64, well under what one worker answers
s.settimeout(1.0)
try:
    while len(ids) < N:
        r = s.recv(4096)
        if r[3] & 15 == 0 and struct.unpack('>H', r[6:8])[0] == 1:
            ids.add(struct.unpack('>H', r[:2])[0])
except socket.timeout:
    pass
print(len(ids), N)
PY
read -r got sent <"$T/co.out"
w1=$(CW)
[ "${w1:-0}" -gt 0 ] && [ "$got" = "$sent" ]; check $? "coalesce_waits_under_a_burst_no_query_lost" \
	"waits $w0 -> $w1, $got of $sent answered"

# ---------- the cluster store feed (a real nats-server in the server's namespace) ----------
store_tests() {
	local SBIN=$PWD/$BUILD/veil-storectl SP=$((10000 + $$ % 20000)) KP=$T/ctl.pem PUB=$T/ctl.pub.pem
	[ -x "$SBIN" ] || { fail "store_feed: $SBIN not built"; return; }
	command -v nats-server >/dev/null || { echo "SKIP store_feed: nats-server missing (tools/deps.sh test)"; return; }
	openssl genpkey -algorithm ed25519 -out "$KP" 2>/dev/null && openssl pkey -in "$KP" -pubout -out "$PUB" 2>/dev/null
	openssl genpkey -algorithm ed25519 -out "$T/evil.pem" 2>/dev/null
	SC() { ip netns exec "$NS" "$SBIN" -s "nats://127.0.0.1:$SP" "$@"; }
	seal_put() { SC -k "$KP" seal-put dns "$("$SBIN" name-key "$1")" "{\"name\":\"$1\",\"gen\":$2,\"vm_id\":$3}"; }
	peer() { # id cc health addr4 addr6
		SC put peers "gw.$1" "{\"kind\":\"gateway\",\"id\":\"$1\",\"public4\":\"$4\",\"public6\":\"$5\",\"location\":\"$2\",\"health\":\"$3\",\"ts\":$SECONDS}"
	}
	start_nats() {
		ip netns exec "$NS" nats-server -js -sd "$T/js" -a 127.0.0.1 -p "$SP" >>"$T/nats.log" 2>&1 &
		SPID=$!; PIDS+=($SPID)
		for _ in $(seq 50); do SC put dns ready.__ '{}' >/dev/null 2>&1 && return 0; sleep 0.1; done
		return 1
	}
	start_nats || { fail "store_feed: nats-server did not start: $(tail -3 "$T/nats.log")"; return; }
	[ "$("$SBIN" name-key '*.Shop.veil.test.')" = '=.shop.veil.test' ]; check $? storectl_name_key
	# the store before the server starts: two gateways, two names, a wildcard
	peer lon GB up 198.18.10.1 2001:db8:10::1
	peer ams NL up 198.18.11.1 2001:db8:11::1
	SC put peers node.n1 '{"kind":"node","id":"n1","underlay4":"198.18.20.1","location":"DE","health":"up"}'
	seal_put svc1.veil.test 1 1; seal_put svc2.veil.test 1 2; seal_put '*.shop.veil.test' 1 3
	SC -k "$KP" seal dns svc1.veil.test '{"name":"svc1.veil.test","gen":1,"vm_id":1}' >"$T/svc1.gen1"
	printf '%s\n' 'zone veil.test' 'ns ns1 198.18.53.3' 'listen 198.18.53.3' 'metrics 198.18.54.1:9434' 'answers 1' \
		'ttl 20' 'override 198.18.54.0/24 GB' 'gateway fra DE up 198.18.1.1 2001:db8:1::1' 'vm filea' \
		"store nats://127.0.0.1:$SP" "store_pub $PUB" >"$T/store.conf"
	ip -n "$NS" addr add 198.18.53.3/32 dev lo
	ip -n "$NC" route add 198.18.53.3/32 via 198.18.54.1 2>/dev/null
	"$BIN" --check -c "$T/store.conf" >"$T/scheck.out" 2>&1; check $? store_config_check "$(cat "$T/scheck.out")"
	start_store_dns() {
		ip netns exec "$NS" "$BIN" --config "$T/store.conf" >>"$T/store-dns.log" 2>&1 &
		SDPID=$!; PIDS+=($SDPID)
		for _ in $(seq 100); do D @198.18.53.3 veil.test SOA +short | grep -q hostmaster && return 0; sleep 0.1; done
		return 1
	}
	Q() { D @198.18.53.3 "$@"; }
	A1() { K @198.18.53.3 "$@" +short | head -1; }  # answers with kdig, statuses with dig
	st() { Q "$@" | awk '/status:/ {sub(",", "", $6); print $6}'; }
	sserial() { Q veil.test SOA +short | awk '{print $3}'; }
	M() { ip netns exec "$NC" curl -s http://198.18.54.1:9434/metrics; }
	# waits up to one TTL (20 s) for the condition; prints the seconds it took
	within_ttl() { local t0=$SECONDS; for _ in $(seq 200); do eval "$1" && { echo $((SECONDS - t0)); return 0; }; sleep 0.1; done; return 1; }
	start_store_dns || { fail "store_feed: veil-dns with a store did not answer: $(tail -3 "$T/store-dns.log")"; return; }
	[ "$(A1 svc1.veil.test A)" = 198.18.10.1 ] && [ "$(A1 svc2.veil.test AAAA)" = 2001:db8:10::1 ]
	check $? "store_names_answered_with_store_gateway (GB client -> lon)"
	[ "$(A1 x.shop.veil.test A)" = 198.18.10.1 ]; check $? "store_wildcard_name"
	[ "$(A1 filea.veil.test A)" = 198.18.10.1 ]; check $? "file_and_store_names_merged"
	# 2.160.0.0/12 is DE in tor-geoipdb
	[ "$(A1 svc1.veil.test A +subnet=2.160.1.0/24)" = 198.18.1.1 ]; check $? "file_gateway_still_nearest_for_DE"
	[ "$(st n1.veil.test A)" = NXDOMAIN ]; check $? "node_peers_not_gateways"
	# live: a name added, the serial moves, no restart
	local s0 s1 t lost m
	s0=$(sserial)
	seal_put svc3.veil.test 1 4
	t=$(within_ttl '[ "$(A1 svc3.veil.test A)" = 198.18.10.1 ]'); check $? "store_name_added_live (${t:-?} s)"
	s1=$(sserial); [ "$s1" -gt "$s0" ] 2>/dev/null; check $? "store_change_moves_serial ($s0 -> $s1)"
	SC del dns svc3.veil.test
	t=$(within_ttl '[ "$(st svc3.veil.test A)" = NXDOMAIN ]'); check $? "store_name_removed_live (${t:-?} s)"
	# a gateway down and back through the store
	peer lon GB down 198.18.10.1 2001:db8:10::1
	t=$(within_ttl '[ "$(A1 svc1.veil.test A)" = 198.18.11.1 ]'); check $? "store_gateway_down_gone (${t:-?} s, ams next)"
	peer lon GB up 198.18.10.1 2001:db8:10::1
	t=$(within_ttl '[ "$(A1 svc1.veil.test A)" = 198.18.10.1 ]'); check $? "store_gateway_back (${t:-?} s)"
	# no query lost while the store changes
	( for i in $(seq 6); do peer ams NL "$([ $((i % 2)) = 0 ] && echo up || echo down)" 198.18.11.1 2001:db8:11::1; sleep 0.1; done ) &
	lost=0
	for _ in $(seq 30); do Q svc2.veil.test A +short | grep -q . || lost=$((lost + 1)); done
	wait $!
	[ $lost = 0 ]; check $? "store_no_query_lost_during_changes" "$lost lost"
	# forged (another key), moved (svc1's envelope under another key), replayed (an older gen)
	SC -k "$T/evil.pem" seal-put dns evil.veil.test '{"name":"evil.veil.test","gen":9,"vm_id":9}'
	SC put dns moved.veil.test "$(cat "$T/svc1.gen1")"
	seal_put svc1.veil.test 2 1
	SC put dns svc1.veil.test "$(cat "$T/svc1.gen1")"
	within_ttl 'M | grep -q "veildns_store_rejected_total{reason=\"replay\"} [1-9]"' >/dev/null
	[ "$(st evil.veil.test A)" = NXDOMAIN ] && [ "$(st moved.veil.test A)" = NXDOMAIN ]
	check $? "store_forged_and_moved_envelopes_refused"
	m=$(M)
	echo "$m" | grep -q 'veildns_store_rejected_total{reason="bad_signature"} [2-9]' &&
		echo "$m" | grep -q 'veildns_store_rejected_total{reason="replay"} 1'
	check $? "store_refusals_counted ($(echo "$m" | grep '^veildns_store_rejected' | tr '\n' ' '))"
	[ "$(A1 svc1.veil.test A)" = 198.18.10.1 ]; check $? "store_replay_keeps_the_applied_record"
	grep -q 'event=store_rejected bucket=dns key=svc1.veil.test reason=replay' "$T/store-dns.log"; check $? "store_replay_logged"
	# restarted while the store changed: nothing missed from the first answer on
	kill "$SDPID"; wait "$SDPID" 2>/dev/null
	seal_put svc4.veil.test 1 5
	SC del dns svc2.veil.test
	peer lon GB down 198.18.10.1 2001:db8:10::1
	start_store_dns
	[ "$(A1 svc4.veil.test A)" = 198.18.11.1 ] && [ "$(st svc2.veil.test A)" = NXDOMAIN ] && [ "$(A1 svc1.veil.test A)" = 198.18.11.1 ]
	check $? "store_restart_misses_nothing (added, removed, gateway down while stopped)"
	# the store unreachable at start: the file's names are served, the
	# store's follow when it comes back
	kill "$SDPID"; wait "$SDPID" 2>/dev/null
	kill "$SPID"; wait "$SPID" 2>/dev/null
	echo 'store_wait 1' >>"$T/store.conf"
	start_store_dns
	[ "$(A1 filea.veil.test A)" = 198.18.1.1 ] && [ "$(st svc4.veil.test A)" = NXDOMAIN ]; check $? "store_down_at_start_file_served"
	start_nats
	t=$(within_ttl '[ "$(A1 svc4.veil.test A)" = 198.18.11.1 ]'); check $? "store_back_names_follow (${t:-?} s)"
	kill "$SDPID" "$SPID" 2>/dev/null
}
# ---------- the AF_XDP answer path (xdp_interface) ----------
# A third server with xdp_interface on the server's end of the veth, the
# same zone as the first: its answers must equal the UDP path's; TCP,
# fragments and IPv4 options go to the kernel's sockets; broken frames are
# counted and dropped; the program leaves with the server.
xsk_tests() {
	local XP m out a b bad=0 n=0 t0 t1
	ip -n "$NS" addr add 198.18.53.4/32 dev lo
	ip -n "$NS" addr add 2001:db8:53::4/128 dev lo nodad
	conf | sed -e 's/^listen 198.18.53.1$/listen 198.18.53.4/' -e 's/^listen 2001:db8:53::1$/listen 2001:db8:53::4/' \
		-e 's/^metrics .*/metrics 198.18.54.1:9435/' -e "s|^pidfile .*|pidfile $T/xsk.pid|" >"$T/xsk.conf"
	echo 'xdp_interface eth0' >>"$T/xsk.conf"
	"$BIN" --check -c "$T/xsk.conf" >/dev/null 2>&1; check $? xsk_config_check
	ip netns exec "$NS" "$BIN" --config "$T/xsk.conf" >"$T/xsk.log" 2>&1 &
	XP=$!; PIDS+=($XP)
	# (a query before the program is on goes to the kernel's socket: wait for the start first)
	for _ in $(seq 100); do grep -q 'event=\(started\|error\)' "$T/xsk.log" && break; sleep 0.1; done
	for _ in $(seq 50); do D @198.18.53.4 veil.test SOA +short | grep -q hostmaster && break; sleep 0.2; done
	grep -q 'event=started.*xdp_interface=eth0.*bind=copy' "$T/xsk.log" && ip -n "$NS" link show eth0 | grep -q 'prog/xdp.*name dns_xsk'
	check $? "xsk_started_program_attached" "$(grep -E 'event=(started|error)' "$T/xsk.log" | tail -1)"
	XM() { ip netns exec "$NC" curl -s http://198.18.54.1:9435/metrics; }
	# the same answers as the UDP path: every ECS case, without ECS, names
	# and statuses, v4 and v6 transports, dig and kdig (cookies differ: each
	# server has its own secret; the query ID differs per query)
	norm() { grep -vE 'COOKIE|Query time|WHEN|SERVER|MSG SIZE|^;; global|^; <<>>|^;; Got answer|^$' | sed -E 's/id: [0-9]+/id: X/; s/^;; ->>HEADER.*status: ([A-Z]+).*/status \1/' | serialx; }
	serialx() { sed -E 's/(hostmaster\.veil\.test\.) [0-9]+/\1 SERIAL/'; }  # each server's own load time
	{
		while read -r fam cc net _; do
			echo "vm1.veil.test A +subnet=$net"; echo "vm2.veil.test AAAA +subnet=$net"
		done <"$T/cases"
		printf '%s\n' 'vm1.veil.test A' 'vm2.veil.test AAAA' 'shop.apps.veil.test A' 'a.b.apps.veil.test A' \
			'nosuch.veil.test A' 'vm1.veil.test MX' 'veil.test NS' 'vm1.veil.test ANY' 'example.com A' \
			'vm1.veil.test A +subnet=0.0.0.0/0' 'vm1.veil.test MX +subnet=2.28.1.0/24' \
			'vm1.veil.test A +edns=1 +noednsneg' 'vm1.veil.test A +ednsopt=8:00011700010203' \
			'vm1.veil.test A +noedns' 'vm1.veil.test A +dnssec' 'veil.test SOA'
	} >"$T/xsk.queries"
	while read -r -a q; do
		for pair in "198.18.53.1 198.18.53.4" "2001:db8:53::1 2001:db8:53::4"; do
			set -- $pair
			n=$((n + 1))
			a=$(D @"$1" "${q[@]}" | norm); b=$(D @"$2" "${q[@]}" | norm)
			if [ "$a" != "$b" ] || ! grep -q '^status' <<<"$b"; then bad=$((bad + 1)); echo "   differs: @$2 ${q[*]}"; diff <(echo "$a") <(echo "$b") | head -6 | sed 's/^/     /'; fi
		done
		a=$(K @198.18.53.1 "${q[@]}" +short 2>&1 | serialx | sort); b=$(K @198.18.53.4 "${q[@]}" +short 2>&1 | serialx | sort)
		[ "$a" = "$b" ] || { bad=$((bad + 1)); echo "   kdig differs: ${q[*]}: $a / $b"; }
	done <"$T/xsk.queries"
	[ $bad = 0 ] && [ $n -ge 40 ]; check $? "xsk_answers_equal_udp_path ($n dig queries v4+v6, ECS scopes, statuses; kdig)" "$bad differ"
	m=$(XM)
	echo "$m" | grep -q 'veildns_xsk_frames_total{dir="tx"} [1-9]' && echo "$m" | grep -q 'veildns_xdp_frames_total{action="redirect",reason="query"} [1-9]' &&
		echo "$m" | grep -q 'veildns_received_total{transport="udp"} 0$'
	check $? "xsk_answered_by_the_xsk_worker ($(echo "$m" | grep -E '^veildns_(xsk_frames|received)_total' | tr '\n' ' '))"
	# TCP goes to the kernel; so do fragments (the 4 KB query of the
	# malformed set) and IPv4 options; ARP/ND keep working
	got=$(K @198.18.53.4 +tcp vm1.veil.test A +short | wc -l)
	[ "$got" = 2 ]; check $? "xsk_tcp_to_the_kernel" "$got"
	got=$(D @2001:db8:53::4 +tcp vm1.veil.test AAAA +short | wc -l)
	[ "$got" = 2 ]; check $? "xsk_tcp_v6_to_the_kernel" "$got"
	# malformed queries: the same outcome, query by query, as the UDP path
	ip netns exec "$NC" python3 "$T/mal.py" 198.18.53.4 >"$T/mal4.out" 2>&1
	diff "$T/mal.out" "$T/mal4.out" >"$T/mal.diff"; check $? "xsk_malformed_queries_as_udp_path" "$(head -5 "$T/mal.diff")"
	kill -0 $XP 2>/dev/null; check $? "xsk_alive_after_malformed"
	# frames: a UDP length past the datagram (dropped and counted, as the
	# kernel drops it), a short IP length, IPv4 options (answered by the
	# kernel's socket): raw packets from the client
	ip netns exec "$NC" python3 - <<'PY' >"$T/raw.out" 2>&1
import socket, struct
q = struct.pack('>HHHHHH', 0x4242, 0, 1, 0, 0, 0) + b'\x03vm1\x04veil\x04test\x00' + struct.pack('>HH', 1, 1)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('>%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ip4(payload, opts=b''):
    ihl = 5 + len(opts) // 4
    h = struct.pack('>BBHHHBBH4s4s', 0x40 | ihl, 0, 4 * ihl + len(payload), 7, 0x4000, 64, 17, 0,
                    socket.inet_aton('198.18.54.2'), socket.inet_aton('198.18.53.4')) + opts
    return h[:10] + struct.pack('>H', csum(h)) + h[12:] + payload
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(('198.18.54.2', 0)); rx.settimeout(0.7)
port = rx.getsockname()[1]
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def udp(payload, ulen=None):
    return struct.pack('>HHHH', port, 53, ulen if ulen is not None else 8 + len(payload), 0) + payload
def answered(pkt):
    raw.sendto(pkt, ('198.18.53.4', 0))
    try:
        r = rx.recv(4096); return 'answer' if r[:2] == b'\x42\x42' else 'other'
    except socket.timeout:
        return 'none'
print('udp_len_past_end', answered(ip4(udp(q, 8 + len(q) + 40))))
print('udp_len_short', answered(ip4(udp(q, 4))))
print('ip_options', answered(ip4(udp(q), opts=b'\x01\x01\x01\x00')))
PY
	sed 's/^/   /' "$T/raw.out"
	m=$(XM)
	grep -q '^udp_len_past_end none' "$T/raw.out" && grep -q '^udp_len_short none' "$T/raw.out" &&
		echo "$m" | grep -q 'veildns_xsk_dropped_total{reason="bad_length"} [2-9]'
	check $? "xsk_bad_udp_length_dropped_and_counted" "$(echo "$m" | grep 'bad_length')"
	grep -q '^ip_options answer' "$T/raw.out" && echo "$m" | grep -q 'veildns_xdp_frames_total{action="pass",reason="ip_options"} [1-9]' &&
		echo "$m" | grep -q 'veildns_received_total{transport="udp"} [1-9]'
	check $? "xsk_ipv4_options_passed_to_the_kernel_socket"
	echo "$m" | grep -q 'veildns_xdp_frames_total{action="pass",reason="fragment"} [1-9]'
	check $? "xsk_fragments_passed_to_the_kernel" "$(echo "$m" | grep 'reason="fragment"')"
	# checksums as a capture sees them on the client: every answer good
	if command -v tshark >/dev/null; then
		ip netns exec "$NC" timeout 60 tshark -i eth0 -w "$T/xsk.pcap" -f 'udp src port 53' 2>"$T/tshark.err" &
		local CP=$!
		for _ in $(seq 300); do grep -q "Capturing on" "$T/tshark.err" 2>/dev/null && break; sleep 0.1; done
		sleep 2  # capturing a while after it says so
		for sn in 2.28.1.0/24 81.169.10.0/24 2001:638:1::/48; do
			K @198.18.53.4 vm1.veil.test A +subnet=$sn >/dev/null; K @2001:db8:53::4 vm2.veil.test AAAA +subnet=$sn >/dev/null
		done
		D @198.18.53.4 +noedns vm1.veil.test A >/dev/null; D @2001:db8:53::4 vm1.veil.test ANY >/dev/null
		local s0 s1
		for _ in $(seq 40); do s0=$(stat -c %s "$T/xsk.pcap" 2>/dev/null); sleep 0.5; s1=$(stat -c %s "$T/xsk.pcap" 2>/dev/null); [ -n "$s0" ] && [ "$s0" = "$s1" ] && [ "$s0" -gt 1000 ] && break; done
		kill $CP 2>/dev/null; wait $CP 2>/dev/null
		tshark -r "$T/xsk.pcap" -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE -Y 'ip.src == 198.18.53.4 || ipv6.src == 2001:db8:53::4' \
			-T fields -e udp.checksum.status -e ip.checksum.status -e dns.flags.rcode 2>/dev/null >"$T/xsk.cs"
		# fields: UDP checksum status, IPv4 header checksum status (none for IPv6), rcode; 1 = good
		good=$(awk -F'\t' '$1 == 1 && ($2 == "" || $2 == 1)' "$T/xsk.cs" | wc -l)
		[ "$good" -ge 6 ] && [ "$good" = "$(wc -l <"$T/xsk.cs")" ] && awk -F'\t' '$2 == ""' "$T/xsk.cs" | grep -q . &&
			awk -F'\t' '$2 == 1' "$T/xsk.cs" | grep -q .
		check $? "xsk_checksums_good_in_tshark ($good answers, IPv4 and IPv6)" "$(sort "$T/xsk.cs" | uniq -c | tr '\n' ' ')"
	else
		echo "SKIP xsk_checksums_good_in_tshark: tshark missing"
	fi
	# idle: blocked in poll(), not spinning (well under a tenth of a core)
	t0=$(awk '{print $14 + $15}' /proc/$XP/stat); sleep 3; t1=$(awk '{print $14 + $15}' /proc/$XP/stat)
	[ $((t1 - t0)) -le 30 ]; check $? "xsk_idle_server_does_not_spin ($((t1 - t0)) ticks in 3 s)"
	# a stop takes the program off the interface; the kernel's sockets
	# are what remained (nothing left to redirect to)
	kill $XP
	for _ in $(seq 50); do kill -0 $XP 2>/dev/null || break; sleep 0.1; done
	! kill -0 $XP 2>/dev/null && grep -q 'event=xdp_detached ifname=eth0' "$T/xsk.log" && ! ip -n "$NS" link show eth0 | grep -q 'xdp'
	check $? "xsk_stop_detaches_the_program"
	D @198.18.53.1 vm1.veil.test A +short | grep -q .; check $? "xsk_udp_server_unaffected_after_stop"
	# a server killed hard leaves its program; the next start replaces it
	ip netns exec "$NS" "$BIN" --config "$T/xsk.conf" >"$T/xsk2.log" 2>&1 &
	XP=$!; PIDS+=($XP)
	for _ in $(seq 50); do grep -q 'event=started' "$T/xsk2.log" && break; sleep 0.2; done
	kill -9 $XP; wait $XP 2>/dev/null
	ip -n "$NS" link show eth0 | grep -q 'prog/xdp'; a=$?
	ip netns exec "$NS" "$BIN" --config "$T/xsk.conf" >"$T/xsk3.log" 2>&1 &
	XP=$!; PIDS+=($XP)
	for _ in $(seq 50); do grep -q 'event=started' "$T/xsk3.log" && break; sleep 0.2; done
	for _ in $(seq 50); do D @198.18.53.4 vm1.veil.test A +short | grep -q . && break; sleep 0.2; done
	got=$(K @198.18.53.4 vm1.veil.test A +short | wc -l)
	progs=$(ip -n "$NS" link show eth0 | grep -c 'prog/xdp')
	[ $a = 0 ] && [ "$got" = 2 ] && [ "$progs" = 1 ] && grep -q 'event=started' "$T/xsk3.log"
	check $? "xsk_restart_after_kill_replaces_the_stale_program" \
		"left after kill -9: $([ $a = 0 ] && echo yes || echo no), answers $got, programs $progs, log: $(tr '\n' '|' <"$T/xsk3.log" | head -c 400)"
	kill $XP; wait $XP 2>/dev/null
	! ip -n "$NS" link show eth0 | grep -q 'xdp'; check $? "xsk_no_program_left"
	# two queues: a veth pair with two queues each way, a socket and a
	# worker per queue; queries from many client ports spread over both
	# (the client's transmit queue is the server's receive queue)
	ip link add dnsmq0 numtxqueues 2 numrxqueues 2 netns "$NC" type veth peer dnsmq1 numtxqueues 2 numrxqueues 2 netns "$NS"
	ip -n "$NC" addr add 198.18.56.2/30 dev dnsmq0
	ip -n "$NS" addr add 198.18.56.1/30 dev dnsmq1
	ip -n "$NC" link set dnsmq0 up
	ip -n "$NS" link set dnsmq1 up
	ip -n "$NS" addr add 198.18.53.8/32 dev lo
	ip -n "$NC" route add 198.18.53.8/32 via 198.18.56.1
	conf | sed -e 's/^listen 198.18.53.1$/listen 198.18.53.8/' -e '/^listen 2001/d' \
		-e 's/^metrics .*/metrics 198.18.54.1:9437/' -e "s|^pidfile .*|pidfile $T/mq.pid|" >"$T/mq.conf"
	printf '%s\n' 'xdp_interface dnsmq1' 'xdp_queues 2' >>"$T/mq.conf"
	ip netns exec "$NS" "$BIN" --config "$T/mq.conf" >"$T/mq.log" 2>&1 &
	XP=$!; PIDS+=($XP)
	for _ in $(seq 100); do grep -q 'event=\(started\|error\)' "$T/mq.log" && break; sleep 0.1; done
	for _ in $(seq 50); do D @198.18.53.8 vm1.veil.test A +short | grep -q . && break; sleep 0.2; done
	ip netns exec "$NC" python3 - <<'PY' >"$T/mq.out"
import socket, struct
q = lambda i: struct.pack('>HHHHHH', i, 0, 1, 0, 0, 0) + b'\x03vm1\x04veil\x04test\x00' + struct.pack('>HH', 1, 1)
socks, got = [], 0
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q(i), ('198.18.53.8', 53))
    socks.append(s)
for i, s in enumerate(socks):
    try:
        r = s.recv(4096)
        got += r[:2] == struct.pack('>H', i) and r[3] & 15 == 0 and struct.unpack('>H', r[6:8])[0] >= 1
    except socket.timeout:
        pass
print(got)
PY
	got=$(cat "$T/mq.out")
	m=$(ip netns exec "$NC" curl -s http://198.18.54.1:9437/metrics)
	q0=$(echo "$m" | awk '$1 == "veildns_xsk_queue_frames_total{queue=\"0\",dir=\"tx\"}" {print $2}')
	q1=$(echo "$m" | awk '$1 == "veildns_xsk_queue_frames_total{queue=\"1\",dir=\"tx\"}" {print $2}')
	grep -q 'event=started.*xdp_interface=dnsmq1.*queues=2' "$T/mq.log" && [ "$got" = 64 ] &&
		[ "${q0:-0}" -ge 1 ] && [ "${q1:-0}" -ge 1 ] && echo "$m" | grep -q 'veildns_received_total{transport="udp"} 0$'
	check $? "xsk_two_queues_both_answer" "answered $got of 64, queue 0: ${q0:-?}, queue 1: ${q1:-?}; $(grep -E 'event=(started|error)' "$T/mq.log" | tail -1)"
	kill $XP; wait $XP 2>/dev/null
	! ip -n "$NS" link show dnsmq1 | grep -q 'xdp'; check $? "xsk_two_queues_program_detached"
}
xsk_tests

store_tests

kill $DPID
for _ in $(seq 30); do kill -0 $DPID 2>/dev/null || break; sleep 0.1; done
! kill -0 $DPID 2>/dev/null && grep -q 'event=stopped' "$T/dns.log"; check $? "sigterm_stops"
exit 0
