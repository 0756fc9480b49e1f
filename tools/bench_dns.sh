#!/usr/bin/env bash
# veil-dns next to gdnsd 3 (geoip plugin) in the same run, with dnsperf.
#
# Both serve the same zone (veil.test: 100 VM names and a wildcard, nine
# gateways) from one network namespace, one UDP thread each, answering each
# name with the gateway nearest to the client: veil-dns from tor-geoipdb and
# its country centres (answers 1), gdnsd from a geoip map whose nets file is
# built here from the same database and the same centres (each range -> its
# nearest datacenter; no GeoIP2 file ships in the archive).
# The server runs pinned to CPU 0, dnsperf to CPU 1 (on two cores the load
# generator is the bottleneck otherwise).  Per server, without and with an
# ECS option (dnsperf -E): queries/s, p99 latency (from dnsperf -v), and the
# server's CPU seconds per million answered queries (the scheduler's runtime
# of all its threads; utime+stime ticks alongside).  Runs are interleaved
# over DNS_ROUNDS rounds (default 3); the median of each figure is reported.
# Two loads: dnsperf as fast as it goes (64 queries outstanding: there the
# latency is mostly dnsperf's own queue, 64 / its rate), and a fixed rate of
# DNS_RATE queries/s (default 30000, dnsperf -Q) that every server keeps up
# with, where p99 is the server's response time and the CPU per answer
# shows veil-dns below its coalescing threshold (veil-dns, gdnsd, xsk).
# veil-dns keeps a per-worker memo of its answers (the query path is a pure
# function); it is also measured without UDP coalescing and GSO ("plain"),
# with the memo off too ("nomemo", every answer parsed and built by ldns),
# with its AF_XDP answer path ("xsk": xdp_interface on its own veth), and
# that without coalescing ("xsk-plain", on a third veth).
#
# The client (dnsperf) runs in a namespace of its own, the servers in
# another, joined by two veth pairs: one plain (veil-dns, gdnsd, plain,
# nomemo) and one with the dns_xsk XDP program (veil-dns-xsk), so the others'
# packets never meet an XDP program.  On a veth the receive work of a packet
# runs on the sending CPU (softirq, charged to whichever task it interrupts:
# this kernel has no IRQ time accounting): the queries' on CPU 1 (dnsperf),
# the answers' delivery to dnsperf on CPU 0 (the server).  So besides the
# server process's runtime, every run records the busy time of each whole
# core (wall time minus /proc/stat's idle and iowait, which NO_HZ keeps
# exactly; ksoftirqd and softirq included) per million answers; on a
# shared machine that also counts other people's
# work on that core, so the load average is recorded with each run.
#   tools/bench_dns.sh SECONDS OUT.json
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECS=${1:-10}
OUT=${2:-/dev/stdout}
NS="vmdns-$$-bench"
NC="vmdns-$$-bcli"
T=$(mktemp -d /tmp/veil-dns-bench.XXXXXX)
PIDS=()
say() { printf '%s\n' "$*" >&2; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	ip netns del "$NC" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
for t in dnsperf gdnsd dig taskset python3; do
	command -v $t >/dev/null || { say "bench_dns: $t missing"; echo '[]' >"$OUT"; exit 1; }
done

ip netns add "$NS"
ip netns add "$NC"
ip -n "$NS" link set lo up
ip -n "$NC" link set lo up
for a in 1 2 3 4 5 6; do ip -n "$NS" addr add 198.18.53.$a/32 dev lo; done
# veth A (plain): servers .1-.4; veths B and C (each its server's XDP
# program): veil-dns-xsk on .5, veil-dns-xsk-plain on .6
ip link add "vb$$a" netns "$NC" type veth peer name "vb$$s" netns "$NS"
ip link add "vx$$a" netns "$NC" type veth peer name "vx$$s" netns "$NS"
ip link add "vy$$a" netns "$NC" type veth peer name "vy$$s" netns "$NS"
ip -n "$NC" link set "vb$$a" name dnsa; ip -n "$NS" link set "vb$$s" name dnsa
ip -n "$NC" link set "vx$$a" name dnsx; ip -n "$NS" link set "vx$$s" name dnsx
ip -n "$NC" link set "vy$$a" name dnsy; ip -n "$NS" link set "vy$$s" name dnsy
ip -n "$NS" addr add 198.18.55.1/30 dev dnsa; ip -n "$NC" addr add 198.18.55.2/30 dev dnsa
ip -n "$NS" addr add 198.18.55.5/30 dev dnsx; ip -n "$NC" addr add 198.18.55.6/30 dev dnsx
ip -n "$NS" addr add 198.18.55.9/30 dev dnsy; ip -n "$NC" addr add 198.18.55.10/30 dev dnsy
for n in "$NS" "$NC"; do for d in dnsa dnsx dnsy; do ip -n "$n" link set $d up; done; done
ip -n "$NC" route add 198.18.53.0/24 via 198.18.55.1
ip -n "$NC" route add 198.18.53.5/32 via 198.18.55.5
ip -n "$NC" route add 198.18.53.6/32 via 198.18.55.9

# configs for both servers, the nets file and the query list
python3 - "$T" <<'PY'
import ipaddress, math, re, sys, os
T = sys.argv[1]
cent = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r'\{ "(\w\w)", ([-\d.]+), ([-\d.]+) \}', open('controlplane/dns/centroids.inc').read())}
gws = [('fra', 'DE'), ('par', 'FR'), ('nyc', 'US'), ('tyo', 'JP'), ('gru', 'BR'), ('syd', 'AU'), ('jnb', 'ZA'), ('bom', 'IN'), ('sin', 'SG')]
def km(a, b):
    r = math.pi / 180
    dl, dn = (b[0] - a[0]) * r, (b[1] - a[1]) * r
    h = math.sin(dl / 2) ** 2 + math.cos(a[0] * r) * math.cos(b[0] * r) * math.sin(dn / 2) ** 2
    return 2 * 6371 * math.atan2(math.sqrt(h), math.sqrt(1 - h))
order = {}
def dcs(cc):
    if cc not in order:
        order[cc] = [g for g, _ in sorted(gws, key=lambda x: (km(cent[cc], cent[x[1]]), gws.index(x)))][:1] if cc in cent else [gws[0][0]]
    return order[cc]
with open(f'{T}/veil.conf', 'w') as f:
    f.write('zone veil.test\nns ns1 198.18.53.1\nlisten 198.18.53.1\nmetrics off\nttl 20\nanswers 1\nthreads 1\nrrl 0 0\n')
    for i, (g, cc) in enumerate(gws):
        f.write(f'gateway {g} {cc} up 198.18.1.{i + 1} 2001:db8:1::{i + 1}\n')
    for i in range(1, 101):
        f.write(f'vm vm{i}\n')
    f.write('vm *.apps\n')
os.makedirs(f'{T}/gdnsd/zones'); os.makedirs(f'{T}/gdnsd/geoip'); os.makedirs(f'{T}/gdnsd/run'); os.makedirs(f'{T}/gdnsd/state')
dcmap = ',\n'.join(f'          {g} => {{ addrs_v4 => 198.18.1.{i + 1}, addrs_v6 => 2001:db8:1::{i + 1} }}' for i, (g, _) in enumerate(gws))
with open(f'{T}/gdnsd/config', 'w') as f:
    f.write(f'''options => {{
  listen => [ 198.18.53.2 ]
  udp_threads => 1
  tcp_threads => 1
  zones_default_ttl => 20
  run_dir => {T}/gdnsd/run
  state_dir => {T}/gdnsd/state
}}
plugins => {{
  geoip => {{
    maps => {{
      near => {{
        datacenters => [ {', '.join(g for g, _ in gws)} ]
        nets => nets.txt
      }}
    }}
    resources => {{
      vm => {{
        map => near
        service_types => up
        dcmap => {{
{dcmap}
        }}
      }}
    }}
  }}
}}
''')
with open(f'{T}/gdnsd/zones/veil.test', 'w') as f:
    f.write('$TTL 20\n@ SOA ns1 hostmaster 1 3600 600 86400 30\n@ NS ns1\nns1 A 198.18.53.2\n')
    for i in range(1, 101):
        f.write(f'vm{i} 20 DYNA geoip!vm\n')
    f.write('*.apps 20 DYNA geoip!vm\n')
# the nets file: tor-geoipdb ranges, neighbours with the same list merged,
# as CIDRs; the spaces gdnsd refuses (v4-mapped, v4-compat, Teredo, 6to4) left out
skip6 = [ipaddress.ip_network(n) for n in ('::/96', '::ffff:0:0/96', '2001::/32', '2002::/16')]
n = 0
with open(f'{T}/gdnsd/geoip/nets.txt', 'w') as f:
    for path, fam in (('/usr/share/tor/geoip', 4), ('/usr/share/tor/geoip6', 6)):
        runs = []
        for l in open(path):
            if l[0] == '#':
                continue
            s, e, cc = l.strip().split(',')
            if cc == '??':
                continue
            s, e = (int(s), int(e)) if fam == 4 else (int(ipaddress.ip_address(s)), int(ipaddress.ip_address(e)))
            d = tuple(dcs(cc))
            if runs and runs[-1][2] == d and runs[-1][1] + 1 == s:
                runs[-1][1] = e
            else:
                runs.append([s, e, d])
        A = ipaddress.IPv4Address if fam == 4 else ipaddress.IPv6Address
        for s, e, d in runs:
            for net in ipaddress.summarize_address_range(A(s), A(e)):
                if fam == 6 and any(net.overlaps(x) for x in skip6):
                    continue
                f.write(f'{net} => [ {", ".join(d)} ]\n')
                n += 1
print(n, file=open(f'{T}/nets.count', 'w'))
with open(f'{T}/queries', 'w') as f:
    for i in range(1, 101):
        f.write(f'vm{i}.veil.test A\nvm{i}.veil.test AAAA\n')
PY
say "bench_dns: gdnsd nets file: $(cat "$T/nets.count") CIDRs from tor-geoipdb"

# the servers, pinned to CPU 0: veil-dns as configured by default (UDP
# coalescing 250 us, GSO on), the same with both off ("plain": one read and
# one send call per wake-up, as before), the same with the answer memo off
# too ("nomemo": every answer parsed and built by ldns), and gdnsd.  All run
# at once; each is idle (blocked in its receive call) while another is measured.
sed 's/^listen .*/listen 198.18.53.3/' "$T/veil.conf" >"$T/plain.conf"
printf 'udp_coalesce_us 0\nudp_gso off\n' >>"$T/plain.conf"
sed 's/^listen .*/listen 198.18.53.4/' "$T/plain.conf" >"$T/nomemo.conf"
ip netns exec "$NS" taskset -c 0 "$BUILD/veil-dns" --config "$T/veil.conf" >"$T/veil.log" 2>&1 &
VEIL=$!; PIDS+=($VEIL)
ip netns exec "$NS" taskset -c 0 "$BUILD/veil-dns" --config "$T/plain.conf" >>"$T/veil.log" 2>&1 &
PLAIN=$!; PIDS+=($PLAIN)
VEIL_DNS_NOCACHE=1 ip netns exec "$NS" taskset -c 0 "$BUILD/veil-dns" --config "$T/nomemo.conf" >>"$T/veil.log" 2>&1 &
NOMEMO=$!; PIDS+=($NOMEMO)
# the AF_XDP path: veil-dns as configured by default plus xdp_interface
sed 's/^listen .*/listen 198.18.53.5/' "$T/veil.conf" >"$T/xsk.conf"
echo 'xdp_interface dnsx' >>"$T/xsk.conf"
ip netns exec "$NS" taskset -c 0 "$BUILD/veil-dns" --config "$T/xsk.conf" >>"$T/veil.log" 2>&1 &
XSK=$!; PIDS+=($XSK)
# and without coalescing: each wake-up answers what is there at once
sed -e 's/^listen .*/listen 198.18.53.6/' -e 's/^xdp_interface .*/xdp_interface dnsy/' "$T/xsk.conf" >"$T/xskplain.conf"
echo 'udp_coalesce_us 0' >>"$T/xskplain.conf"
ip netns exec "$NS" taskset -c 0 "$BUILD/veil-dns" --config "$T/xskplain.conf" >>"$T/veil.log" 2>&1 &
XSKPLAIN=$!; PIDS+=($XSKPLAIN)
ip netns exec "$NS" taskset -c 0 gdnsd -c "$T/gdnsd" start >"$T/gdnsd.log" 2>&1 &
GDNSD=$!; PIDS+=($GDNSD)
ready() { for _ in $(seq 150); do ip netns exec "$NC" dig +short +tries=1 +time=1 @"$1" vm1.veil.test A | grep -q '^198' && return 0; sleep 0.2; done; return 1; }
for a in 198.18.53.1 198.18.53.3 198.18.53.4 198.18.53.5 198.18.53.6; do
	ready $a || { say "bench_dns: veil-dns ($a) did not answer: $(tail -3 "$T/veil.log")"; echo '[]' >"$OUT"; exit 1; }
done
ready 198.18.53.2 || { say "bench_dns: gdnsd did not answer: $(tail -5 "$T/gdnsd.log")"; echo '[]' >"$OUT"; exit 1; }
# the same answer from both for a few subnets
for sn in 81.169.10.0/24 8.8.8.0/24 1.5.1.0/24 177.0.0.0/12 2001:638:1::/48; do
	a=$(ip netns exec "$NC" dig +short @198.18.53.1 vm7.veil.test A +subnet=$sn | sort | tr '\n' ' ')
	b=$(ip netns exec "$NC" dig +short @198.18.53.2 vm7.veil.test A +subnet=$sn | sort | tr '\n' ' ')
	x=$(ip netns exec "$NC" dig +short @198.18.53.5 vm7.veil.test A +subnet=$sn | sort | tr '\n' ' ')
	[ "$a" = "$b" ] || say "bench_dns: note: $sn: veil-dns $a, gdnsd $b"
	[ "$a" = "$x" ] || say "bench_dns: note: $sn: veil-dns $a, veil-dns-xsk $x"
done

ticks=$(getconf CLK_TCK)
# CPU time of every thread of a process: the scheduler's runtime in ns
# (/proc/PID/task/*/schedstat, exact), and utime+stime in ticks (sampled)
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# a whole core's idle jiffies (idle + iowait): on this NO_HZ kernel the idle
# time is kept exactly (the busy fields are sampled at the tick, and a server
# that sleeps tens of microseconds at a time is on the CPU at the ticks less
# often than its share: they undercounted veil-dns's pacing below its own
# runtime), so a core's busy time = wall time - idle
core_idle() { awk -v c="cpu$1" '$1 == c {print $5 + $6}' /proc/stat; }
ROUNDS=${DNS_ROUNDS:-3}
: >"$T/runs"
RATE=${DNS_RATE:-30000}
run() { # name addr pid ecs(0/1) [rate: queries/s, 0 or none: as fast as dnsperf goes]
	local name=$1 addr=$2 pid=$3 ecs=$4 rate=${5:-0} e=() q=() c0 c1 t0 t1 out
	[ "$rate" -gt 0 ] && q=(-Q "$rate")
	# ECS: 81.169.10.0/24 (family 1, source 24, scope 0)
	[ "$ecs" = 1 ] && e=(-E 8:0001180051a90a)
	local b00 b01 b10 b11 w0 w1 load
	load=$(cut -d' ' -f1 /proc/loadavg)
	c0=$(cpu_ns "$pid"); t0=$(cpu_ticks "$pid"); b00=$(core_idle 0); b10=$(core_idle 1); w0=$(date +%s%N)
	ip netns exec "$NC" taskset -c 1 dnsperf -s "$addr" -d "$T/queries" -l "$SECS" -c 1 -T 1 -q 64 "${q[@]}" -v "${e[@]}" \
		>"$T/perf.out" 2>&1
	c1=$(cpu_ns "$pid"); t1=$(cpu_ticks "$pid"); b01=$(core_idle 0); b11=$(core_idle 1); w1=$(date +%s%N)
	local done qps lost p99 cpum cput core0 core1
	done=$(awk '/Queries completed:/ {print $3}' "$T/perf.out")
	lost=$(awk '/Queries lost:/ {print $3}' "$T/perf.out")
	qps=$(awk '/Queries per second:/ {print $4}' "$T/perf.out")
	# -v: one line per answer, the latency last (seconds)
	p99=$(awk '$1 == ">" {print $NF}' "$T/perf.out" | sort -g | awk '{a[NR] = $1} END {if (NR) printf "%.3f", a[int(NR * 0.99)] * 1000; else print 0}')
	cpum=$(awk -v d=$((c1 - c0)) -v n="${done:-0}" 'BEGIN {if (n > 0) printf "%.3f", d / 1e9 / (n / 1e6); else print 0}')
	cput=$(awk -v d=$((t1 - t0)) -v t="$ticks" -v n="${done:-0}" 'BEGIN {if (n > 0) printf "%.3f", d / t / (n / 1e6); else print 0}')
	core0=$(awk -v i=$((b01 - b00)) -v w=$((w1 - w0)) -v t="$ticks" -v n="${done:-0}" 'BEGIN {if (n > 0) printf "%.3f", (w / 1e9 - i / t) / (n / 1e6); else print 0}')
	core1=$(awk -v i=$((b11 - b10)) -v w=$((w1 - w0)) -v t="$ticks" -v n="${done:-0}" 'BEGIN {if (n > 0) printf "%.3f", (w / 1e9 - i / t) / (n / 1e6); else print 0}')
	say "bench_dns: $name ecs=$ecs rate=$([ "$rate" -gt 0 ] && echo "$rate/s" || echo max): ${qps:-0} q/s, p99 ${p99} ms, ${cpum} CPU s per 1M answered (ticks: ${cput}; core 0: ${core0}, core 1: ${core1}), lost ${lost:-?}, load ${load}"
	echo "$name $ecs ${qps:-0} ${p99:-0} ${cpum:-0} ${cput:-0} ${done:-0} ${lost:-0} ${core0:-0} ${core1:-0} ${load:-0} $rate" >>"$T/runs"
}
# interleaved: each round runs every server with and without ECS
for r in $(seq "$ROUNDS"); do
	for ecs in 0 1; do
		run veil-dns 198.18.53.1 $VEIL $ecs
		run gdnsd 198.18.53.2 $GDNSD $ecs
		run veil-dns-plain 198.18.53.3 $PLAIN $ecs
		run veil-dns-xsk 198.18.53.5 $XSK $ecs
		run veil-dns-xsk-plain 198.18.53.6 $XSKPLAIN $ecs
		run veil-dns 198.18.53.1 $VEIL $ecs "$RATE"
		run gdnsd 198.18.53.2 $GDNSD $ecs "$RATE"
		run veil-dns-xsk 198.18.53.5 $XSK $ecs "$RATE"
	done
done
run veil-dns-nomemo 198.18.53.4 $NOMEMO 0
run veil-dns-nomemo 198.18.53.4 $NOMEMO 1
# per server and ECS: the median over the rounds of each figure
python3 - "$T/runs" "$OUT" <<'PY'
import sys, json, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
out, seen = [], []
for r in rows:
    k = (r[0], r[1], int(r[11]) if len(r) > 11 else 0)
    if k not in seen:
        seen.append(k)
for k in seen:
    rs = [r for r in rows if (r[0], r[1], int(r[11]) if len(r) > 11 else 0) == k]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    out.append({"server": k[0], "ecs": k[1] == "1", "rate": k[2], "qps": med(2), "p99_ms": med(3),
                "cpu_s_per_m": med(4), "cpu_s_per_m_ticks": med(5), "completed": sum(int(r[6]) for r in rs),
                "lost": sum(int(r[7]) for r in rs), "rounds": len(rs), "cpu_s_per_m_all": [float(r[4]) for r in rs],
                "p99_ms_all": [float(r[3]) for r in rs],
                # the whole cores' busy time per 1M answers: core 0 the server's, core 1 dnsperf's
                "core0_s_per_m": med(8), "core1_s_per_m": med(9),
                "core0_s_per_m_all": [float(r[8]) for r in rs], "core1_s_per_m_all": [float(r[9]) for r in rs],
                "loadavg_all": [float(r[10]) for r in rs]})
json.dump(out, open(sys.argv[2], 'w') if sys.argv[2] != '/dev/stdout' else sys.stdout, indent=4)
PY
