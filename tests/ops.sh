#!/usr/bin/env bash
# The operator's side (issue 13): make install and make -j2 on a fresh
# machine, what veil-gw --check and the daemons refuse, veilctl finding the
# running daemon (veil-gw, veil-node, veil-gw-dpdk) without flags, status and
# stats edges, restarts without libbpf noise, replay's SNI and link types,
# man pages that document every flag.  Prints PASS/FAIL/SKIP lines; the lab
# and every file made here are removed on exit, whatever happens.
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-$TOP/build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
export BUILD
ID="ops$$"
export VEIL_LAB_DIR="/tmp/veilmesh-$ID"
LAB="tools/lab.sh"
P="vml-$ID"
DIR=$VEIL_LAB_DIR
PIN="/sys/fs/bpf/veilmesh-$ID"
T=$(mktemp -d "/tmp/veil-$ID.XXXXXX")
RUN="$DIR/run"          # where the restarted gateway keeps its socket and runtime file
unset VEIL_RUN_DIR

cleanup() {
	$LAB down "$ID" >/dev/null 2>&1
	ip netns del "$P-x" 2>/dev/null
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
	ip netns del "$P-d" 2>/dev/null
	rm -rf "$DIR" "$T" "$PIN"
}
trap cleanup EXIT INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
ccurl() { # name address
	nsx cli curl -sS --max-time 20 --cacert "$DIR/pki/ca.pem" --resolve "$1:443:$2" "https://$1/"
}
newkey() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; chmod 600 "$1"; }
tai() { python3 -c 'import time; print(int(time.clock_gettime(time.CLOCK_TAI)))'; }
wait_log() { # file pattern [tenths]
	for _ in $(seq "${3:-100}"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
wait_more() { # file pattern count [tenths]: until pattern is in file more than count times (a restart's log appended)
	for _ in $(seq "${4:-100}"); do [ "$(grep -c "$2" "$1" 2>/dev/null)" -gt "$3" ] && return 0; sleep 0.1; done
	return 1
}
stop_pid() { # pidfile: stop the daemon we started and wait for it
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}
node_restart() { # [fresh]: the lab's node1 stopped and started again (fresh: its log emptied between)
	local vmif
	vmif=$(awk '$1 == "vm" { print $3; exit }' "$DIR/n1.conf")
	nsenter --net="/run/netns/$P-n1" tc filter del dev "$vmif" ingress 2>/dev/null   # gone before the node stops
	stop_pid "$DIR/n1.pid"
	[ "${1:-}" = fresh ] && : >"$DIR/n1.log"
	nsenter --net="/run/netns/$P-n1" "$BUILD/veil-node" --config "$DIR/n1.conf" >>"$DIR/n1.log" 2>&1 &
	echo $! >"$DIR/n1.pid"
}

# ---------- the build ----------

# make -j2 on a fresh machine: nothing that needs an installed tool runs before
# deps-build.  A deps.sh that takes its time, a bpftool that fails when run first.
t=make_j2_waits_for_deps
cat >"$T/deps.sh" <<'EOF'
#!/bin/sh
sleep 1; touch "$(dirname "$0")/installed"
EOF
cat >"$T/bpftool" <<'EOF'
#!/bin/sh
[ -f "$(dirname "$0")/installed" ] || { echo "bpftool ran before deps-build" >&2; exit 1; }
exec bpftool "$@"
EOF
chmod +x "$T/deps.sh" "$T/bpftool"
out=$(make -j2 BUILD="$T/b" DEPS_SH="$T/deps.sh" BPFTOOL="$T/bpftool" "$T/b/vmlinux.h" "$T/b/veil-hellogen" 2>&1); rc=$?
# and every rule of the Makefile that compiles, links or runs bpftool waits
# for deps-build (order-only), not only the one that failed once
missing=$(awk '
	/^[^\t#][^=]*:([^=]|$)/ { hdr = $0; next }
	/^\t/ && hdr != "" && /\$\((CC|CLANG|BPFTOOL)\)|^\tar / { if (hdr !~ /\| *deps-build/) print hdr; hdr = "" }
	/^$/ { hdr = "" }' Makefile | cut -d: -f1 | tr '\n' ' ')
[ $rc = 0 ] && [ -s "$T/b/vmlinux.h" ] && [ -z "$missing" ] && pass $t ||
	fail $t "rc=$rc $(echo "$out" | tail -2 | tr '\n' ' ') rules without | deps-build: $missing"

t=make_install
out=$(make install DESTDIR="$T/inst" PREFIX=/usr 2>&1); rc=$?
bad=""
for f in sbin/veil-gw sbin/veil-node sbin/veil-gw-dpdk sbin/veil-validator sbin/veilctl \
	share/man/man8/veilctl.8 share/man/man8/veil-gw.8 share/man/man8/veil-node.8 share/man/man8/veil-gw-dpdk.8 \
	share/man/man8/veil-validator.8 share/doc/veilmesh/veil-gw.conf.example \
	share/man/man5/veil-gw.conf.5 share/man/man5/veil-node.conf.5 share/man/man5/veil-dns.conf.5 \
	share/man/man5/veil-validator.conf.5 share/man/man5/veil-controller.conf.5 \
	share/man/man5/veil-registry-worker.conf.5 share/man/man5/leea-config.5 share/man/man5/veil-vm-spec.5 \
	lib/systemd/system/veil-gw.service lib/systemd/system/veil-node.service \
	lib/systemd/system/veil-gw-dpdk.service lib/systemd/system/veil-validator.service; do
	[ -s "$T/inst/usr/$f" ] || bad="$bad missing:$f"
done
for u in "$T"/inst/usr/lib/systemd/system/*.service; do
	grep -q '@' "$u" && bad="$bad unsubstituted:$(basename "$u")"
	exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
	[ -x "$T/inst$exe" ] || bad="$bad $(basename "$u"):ExecStart=$exe"
done
if command -v systemd-analyze >/dev/null; then
	# the units' syntax (the binaries are under DESTDIR, not where the units say)
	v=$(systemd-analyze verify "$T"/inst/usr/lib/systemd/system/*.service 2>&1 |
		grep -v -e 'is not executable' -e "Command 'man " -e 'EnvironmentFile' -e 'No such file' || true)
	[ -n "$v" ] && bad="$bad verify:$(echo "$v" | head -2 | tr '\n' ' ')"
fi
"$T/inst/usr/sbin/veilctl" --help | grep -q -- '--daemon' || bad="$bad veilctl-help"
# every man page in its section, and every program installed has its page there
for m in docs/man/*.[158]; do
	[ -s "$T/inst/usr/share/man/man${m##*.}/$(basename "$m")" ] || bad="$bad missing:man${m##*.}/$(basename "$m")"
done
for b in "$T"/inst/usr/bin/* "$T"/inst/usr/sbin/*; do
	[ -e "$b" ] || continue
	n=$(basename "$b")
	[ -s "$T/inst/usr/share/man/man1/$n.1" ] || [ -s "$T/inst/usr/share/man/man8/$n.8" ] || bad="$bad no-page:$n"
done
[ -x "$T/inst/usr/bin/veil-hellogen" ] || bad="$bad missing:bin/veil-hellogen"
[ $rc = 0 ] && [ -z "$bad" ] && pass "$t ($(find "$T/inst" -type f | wc -l) files)" ||
	fail $t "rc=$rc$bad $(echo "$out" | tail -2 | tr '\n' ' ')"
CTL="$T/inst/usr/sbin/veilctl"     # the installed veilctl, from here on

# ---------- what the daemons refuse: file:line and exit 2 ----------

newkey "$T/key"
gwconf() { # file client_if secret
	printf '# veil-gw --check cases\nclient_interface %s\nunderlay4 198.19.0.1\ncookie_secret_file %s\ncontrol_socket %s/chk.sock\nmetrics off\nvip 198.18.100.1 443\n' \
		"$2" "$3" "$T" >"$1"
}
check_case() { # name expected-rc message-regex config [binary args]
	local name=$1 want=$2 msg=$3 conf=$4 out rc
	shift 4
	out=$(timeout 20 "${@:-$BUILD/veil-gw}" --check --config "$conf" 2>&1); rc=$?
	[ "$rc" = "$want" ] && grep -Eq -- "$msg" <<<"$out" && pass "$name" || fail "$name" "rc=$rc (want $want): $out"
}
gwconf "$T/ok.conf" lo "$T/key"
check_case check_ok 0 "ok \(0 routes, 1 VIPs\)" "$T/ok.conf"
gwconf "$T/c1.conf" lo "$T/nokey"
check_case check_secret_missing 2 "^veil-gw: $T/c1.conf:4: cookie_secret_file $T/nokey: No such file" "$T/c1.conf"
echo 0123456789abcdef >"$T/short.key"; chmod 600 "$T/short.key"
gwconf "$T/c2.conf" lo "$T/short.key"
check_case check_secret_short 2 "^veil-gw: $T/c2.conf:4: .*at least 16 bytes" "$T/c2.conf"
cp "$T/key" "$T/world.key"; chmod 644 "$T/world.key"
gwconf "$T/c3.conf" lo "$T/world.key"
check_case check_secret_world_readable 2 "^veil-gw: $T/c3.conf:4: .*readable by everyone \(mode 0644\).*chmod 600" "$T/c3.conf"
cp "$T/key" "$T/group.key"; chmod 640 "$T/group.key"
gwconf "$T/c4.conf" lo "$T/group.key"
check_case check_secret_group_readable 2 "^veil-gw: $T/c4.conf:4: .*readable by its group \(mode 0640\)" "$T/c4.conf"
mkdir -p "$T/confdir"
check_case check_config_is_directory 2 "^veil-gw: $T/confdir: a directory, not a config file" "$T/confdir"
gwconf "$T/c5.conf" veilnosuch0 "$T/key"
check_case check_interface_missing 2 "^veil-gw: $T/c5.conf:2: client_interface 'veilnosuch0' does not exist" "$T/c5.conf"
# not only --check: the daemon itself refuses at start, before it attaches anything
t=start_refuses_readable_secret
out=$(timeout 20 "$BUILD/veil-gw" --config "$T/c3.conf" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "c3.conf:4: .*readable by everyone" <<<"$out" && ! grep -q "$(cat "$T/key")" <<<"$out" &&
	pass $t || fail $t "rc=$rc: $out"
# veil-gw-dpdk: the same secret, the same refusal
t=dpdk_check_secret
if [ -x "$BUILD/veil-gw-dpdk" ]; then
	D=("$BUILD/veil-gw-dpdk" --no-huge -m 256 --no-pci --file-prefix "veil-$ID-chk" -l 0 --log-level=lib.eal:error --)
	out=$(timeout 30 "${D[@]}" --check --config "$T/c3.conf" 2>&1); rc=$?
	out2=$(timeout 30 "${D[@]}" --check --config "$T/ok.conf" 2>&1); rc2=$?
	rm -rf "/var/run/dpdk/veil-$ID-chk"
	[ $rc = 2 ] && grep -q "c3.conf:4: .*readable by everyone" <<<"$out" && [ $rc2 = 0 ] && pass $t ||
		fail $t "rc=$rc '$(tail -1 <<<"$out")' ok-config rc=$rc2 '$(tail -1 <<<"$out2")'"
else
	skip $t "no veil-gw-dpdk built"
fi

# ---------- veilctl's edges that need no daemon ----------

t=stats_watch_needs_whole_seconds
bad=""
for w in 0 -1 1.5 abc 999999; do
	out=$("$CTL" -p "$T" -s "$T/none.sock" stats --watch "$w" 2>&1); rc=$?
	[ $rc = 2 ] && grep -q "whole number of seconds from 1 to 86400, not '$w'" <<<"$out" || bad="$bad [$w: rc=$rc $out]"
done
[ -z "$bad" ] && pass $t || fail $t "$bad"

# --help: usage on stdout, exit 0, for every program built
t=help_on_stdout_exit_0
bad=""
for b in "$BUILD"/veil-* "$BUILD"/veilctl; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	out=$(timeout 10 "$b" --help 2>/dev/null); rc=$?
	{ [ $rc = 0 ] && [ -n "$out" ]; } || bad="$bad $(basename "$b"):rc=$rc"
done
[ -z "$bad" ] && pass $t || fail $t "$bad"

# tools/bench_prof.sh: the syn case's program profiled by source line (perf's
# samples joined with the line tables veil-bench-micro --lines writes): the
# program and lines of the library's files come out, or the join broke
t=bench_prof_names_source_lines
if command -v perf >/dev/null && [ -x "$BUILD/veil-bench-micro" ]; then
	out=$(VEIL_BENCH="$BUILD/veil-bench-micro" timeout 180 tools/bench_prof.sh syn 200000 2 2>&1); rc=$?
	if [ $rc = 0 ] && grep -q "^gw_ingress: [1-9][0-9]* samples" <<<"$out" &&
		grep -Eq "^ +[0-9.]+%  [a-z_]+(\.bpf)?\.[ch]:[0-9]+ " <<<"$out"; then
		pass "$t ($(grep -m1 "^gw_ingress:" <<<"$out" | sed 's/ (.*//'))"
	else
		fail $t "rc=$rc: $(head -c 800 <<<"$out" | tr '\n' '|')"
	fi
else
	skip $t "perf or veil-bench-micro missing"
fi

# every program built has a man page (section 1 for tools, 8 for daemons and
# operator commands), and every flag of its --help is in that page
t=man_pages_document_every_flag
bad=""
flags() { grep -o -- '--[a-z][a-z0-9-]*' | grep -v -- '--$' | sort -u; }
manflags() { sed 's/\\-/-/g; s/\\f[BIRP]//g' "$1"; }
npages=0
for b in "$BUILD"/veil-* "$BUILD"/veilctl; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	ls docs/man/"$(basename "$b")".[18] >/dev/null 2>&1 || bad="$bad $(basename "$b"):no-page"
done
for man in docs/man/*.1 docs/man/*.8; do
	bin=$(basename "${man%.*}")
	[ -x "$BUILD/$bin" ] || continue
	npages=$((npages + 1))
	for f in $(timeout 10 "$BUILD/$bin" --help 2>&1 | sed -n '1,/EAL options:/p' | flags); do
		manflags "$man" | grep -q -- "$f" || bad="$bad $bin:$f"
	done
done
for f in --routes --secret --watch --count --vm --name --client; do
	manflags docs/man/veilctl.8 | grep -q -- "$f" || bad="$bad veilctl:$f"
done
for m in docs/man/*.1 docs/man/*.8 docs/man/*.5; do
	for w in 80 100; do
		out=$(LC_ALL=C.UTF-8 MANWIDTH=$w man --warnings=all -l "$m" 2>&1 >/dev/null)
		[ -n "$out" ] && bad="$bad $m(width $w):$(echo "$out" | head -1)"
	done
	grep -q '^\.SH "\?EXIT STATUS' "$m" || [ "${m##*.}" = 5 ] || bad="$bad $m:no-EXIT-STATUS"
	# every program's page (sections 1 and 8) shows how to run it
	[ "${m##*.}" != 5 ] && ! grep -q '^\.SH "\?EXAMPLES"\?$' "$m" && bad="$bad $m:no-EXAMPLES"
done
[ -z "$bad" ] && pass "$t ($npages programs)" || fail $t "not documented:$bad"

# every setting a config parser accepts is in its section 5 page: the names are
# read from the parser's code (the names it compares a line's first word or a
# YAML key with, its S1/I1/F tables), the page's from its .TP/.TQ tags (the tag's
# first word; "a.b:" counts as b)
t=man5_documents_every_config_key
parser_keys() { # file [function...]
	local file=$1; shift
	{ if [ $# = 0 ]; then cat "$file"; else
		for fn in "$@"; do
			awk -v f="$fn" '!on && $0 ~ ("^[a-z].*[ *]" f "\\(") && $0 !~ /;$/ { on = 1 } on { print } on && /^}/ { exit }' "$file"
		done
	fi; } | grep -v '#define' |
		grep -oE 'strcmp\((w\[0\]|k|key), "[a-z0-9_]+"\)|\<[SI]1\("[a-z0-9_]+"|\<F\([a-z0-9_]+\)|\{ "[a-z0-9_]+", (offsetof|s->)' |
		grep -oE '"[a-z0-9_]+"|\([a-z0-9_]+\)' | tr -d '"()' | sort -u
}
page_keys() { # man page
	awk '/^\.(TP|TQ)/ { tag = 1; next } tag { print; tag = 0 }' "$1" |
		sed -E 's/\\f[BIRP]//g; s/^\.(B|BI|BR|I|IR|IB) +//; s/^"//; s/[ "].*//; s/:$//; s/.*\.//' | sort -u
}
bad=""; nkeys=0
for spec in "veil-gw.conf:dataplane/config.c:common_line gw_line" "veil-node.conf:dataplane/config.c:common_line node_line" \
	"veil-dns.conf:controlplane/dns/zone.c:dns_cfg_load" "veil-validator.conf:controlplane/veil-validator.c:load_config" \
	"veil-controller.conf:controlplane/ctl/veil-controller.c:load_config" \
	"veil-registry-worker.conf:controlplane/registry_worker.c:load_cfg" \
	"leea-config:controlplane/agent/config.c:" "veil-vm-spec:controlplane/agent/spec.c:"; do
	IFS=: read -r page src fns <<<"$spec"
	# shellcheck disable=SC2086
	keys=$(parser_keys "$src" $fns); have=$(page_keys "docs/man/$page.5")
	[ -n "$keys" ] || bad="$bad $page:no-keys-found-in-$src"
	for k in $keys; do
		nkeys=$((nkeys + 1))
		grep -qx -- "$k" <<<"$have" || bad="$bad $page:$k"
	done
done
# and each daemon's section 8 page points at its file's page
for pair in veil-gw:veil-gw.conf veil-gw-dpdk:veil-gw.conf veil-node:veil-node.conf veil-dns:veil-dns.conf \
	veil-validator:veil-validator.conf veil-controller:veil-controller.conf veil-registry:veil-registry-worker.conf \
	veil-agent:leea-config veil-agent:veil-vm-spec; do
	sed -En '/^\.SH "?SEE ALSO/,$p' "docs/man/${pair%%:*}.8" | grep -q "^\.BR ${pair#*:} (5)" || bad="$bad ${pair%%:*}.8:see-also-${pair#*:}"
done
[ -z "$bad" ] && pass "$t ($nkeys settings of 8 formats)" || fail $t "not documented:$bad"

# ---------- the daemons' skeleton (controlplane/common/daemon.c) ----------

# --pidfile: written once the daemon runs, holding its pid; SIGHUP does not
# stop a daemon that has nothing to reload; SIGTERM stops it at once (serve
# waits on the listener and the signal pipe together), logs event=stopped and
# removes the pidfile.  veil-registry serve in a namespace of its own.
t=skeleton_pidfile_and_signals
mkdir -p "$T/srv" && echo hello >"$T/srv/a.txt"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" -out "$T/srv.crt" \
	-days 1 -subj /CN=ops >/dev/null 2>&1; then
	fail $t "openssl could not make a certificate"
elif ! ip netns add "$P-d" 2>/dev/null || ! ip -n "$P-d" link set lo up; then
	fail $t "cannot make the namespace $P-d"
else
	# (ip netns exec execs the daemon: $! is its pid)
	ip netns exec "$P-d" "$BUILD/veil-registry" serve --dir "$T/srv" --listen 127.0.0.1:8471 --cert "$T/srv.crt" \
		--key "$T/srv.key" --pidfile "$T/serve.pid" 2>"$T/serve.log" &
	SPID=$!
	bad=""
	for _ in $(seq 50); do [ -s "$T/serve.pid" ] && break; sleep 0.1; done
	[ "$(cat "$T/serve.pid" 2>/dev/null)" = "$SPID" ] || bad="$bad pidfile='$(cat "$T/serve.pid" 2>/dev/null)'(pid $SPID)"
	ip netns exec "$P-d" curl -sk --max-time 5 https://127.0.0.1:8471/v1/manifest | grep -q '"a.txt"' ||
		bad="$bad no-manifest"
	kill -HUP "$SPID"; sleep 0.3
	kill -0 "$SPID" 2>/dev/null || bad="$bad gone-after-SIGHUP"
	kill -TERM "$SPID"
	for _ in $(seq 20); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$SPID" 2>/dev/null && bad="$bad still-running-1s-after-SIGTERM"
	wait "$SPID"; rc=$?; SPID=""
	[ $rc = 0 ] || bad="$bad rc=$rc"
	[ -e "$T/serve.pid" ] && bad="$bad pidfile-left"
	grep -q "veil-registry: event=stopped signal=15" "$T/serve.log" || bad="$bad no-stopped-line"
	# a pidfile that cannot be written: said so, exit 1, nothing served
	out=$(ip netns exec "$P-d" timeout 10 "$BUILD/veil-registry" serve --dir "$T/srv" --listen 127.0.0.1:8472 \
		--cert "$T/srv.crt" --key "$T/srv.key" --pidfile "$T/nodir/serve.pid" 2>&1); rc=$?
	[ $rc = 1 ] && grep -q "event=error what=pidfile" <<<"$out" || bad="$bad unwritable-pidfile:rc=$rc"
	ip netns del "$P-d"
	[ -z "$bad" ] && pass $t || fail $t "$bad; log: $(tail -3 "$T/serve.log" | tr '\n' ' ')"
fi

# --check for the daemons that had none (veil-validator): the file's line, exit 2
t=validator_check_names_the_line
printf 'id v1\nlisten 127.0.0.1:7401\nworkers 0\n' >"$T/val.conf"
out=$(timeout 10 "$BUILD/veil-validator" --check --config "$T/val.conf" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "val.conf:3: unknown or malformed setting 'workers'" <<<"$out" && pass $t || fail $t "rc=$rc: $out"

# a libevent daemon on the skeleton's self-pipe (veil-validator): SIGHUP
# applies nonce_ttl_s, a bad file changes nothing, /metrics counts both,
# SIGTERM stops it and removes its pidfile
t=validator_reload_metrics_stop
V="$T/val"; mkdir -p "$V"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$V/tls.key" -out "$V/tls.crt" \
	-days 1 -subj /CN=v1 >/dev/null 2>&1
openssl genpkey -algorithm ed25519 -out "$V/sign.key" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$V/reg.key" 2>/dev/null
openssl pkey -in "$V/reg.key" -pubout -out "$V/reg.pub" 2>/dev/null
newkey "$V/storage.key"
chmod 600 "$V"/*.key
vconf() { # nonce_ttl_s
	printf 'id v1\nlisten 127.0.0.1:7401\ncert %s/tls.crt\nkey %s/tls.key\nsigning_key %s/sign.key\nstorage_key_file %s/storage.key\nstate_dir %s/state\nregistry_pub %s/reg.pub\nek_ca %s/tls.crt\nmetrics 127.0.0.1:9438\npidfile %s/v.pid\nnonce_ttl_s %s\n' \
		"$V" "$V" "$V" "$V" "$V" "$V" "$V" "$V" "$1" >"$V/v.conf"
}
vconf 60
if ! ip netns add "$P-d" 2>/dev/null || ! ip -n "$P-d" link set lo up; then
	fail $t "cannot make the namespace $P-d"
else
	ip netns exec "$P-d" "$BUILD/veil-validator" --config "$V/v.conf" 2>"$V/v.log" &
	SPID=$!
	bad=""
	wait_log "$V/v.log" "event=started" || bad="$bad not-started"
	[ "$(cat "$V/v.pid" 2>/dev/null)" = "$SPID" ] || bad="$bad pidfile"
	vconf 30; kill -HUP "$SPID"
	wait_log "$V/v.log" "event=reloaded nonce_ttl_s=30" 50 || bad="$bad no-reload"
	echo "bogus 1" >>"$V/v.conf"; kill -HUP "$SPID"
	wait_log "$V/v.log" "event=reload_rejected reason=.*v.conf:13: unknown or malformed setting 'bogus'" 50 ||
		bad="$bad no-reject"
	m=$(ip netns exec "$P-d" curl -s --max-time 5 http://127.0.0.1:9438/metrics)
	grep -q '^veilmesh_config_reloads_total{result="ok"} 1$' <<<"$m" &&
		grep -q '^veilmesh_config_reloads_total{result="rejected"} 1$' <<<"$m" &&
		grep -q '^veilmesh_validator_requests_total{result="refused"} 0$' <<<"$m" || bad="$bad metrics:'$(echo "$m" | grep -v '^#' | tr '\n' ' ')'"
	kill -0 "$SPID" 2>/dev/null || bad="$bad gone-after-SIGHUP"
	kill -TERM "$SPID"
	for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$SPID" 2>/dev/null && bad="$bad still-running-5s-after-SIGTERM"
	wait "$SPID"; rc=$?; SPID=""
	[ $rc = 0 ] && grep -q "veil-validator\[v1\]: event=stopped" "$V/v.log" || bad="$bad rc=$rc-or-no-stopped-line"
	[ -e "$V/v.pid" ] && bad="$bad pidfile-left"
	ip netns del "$P-d"
	[ -z "$bad" ] && pass $t || fail $t "$bad; log: $(tail -3 "$V/v.log" | tr '\n' ' ')"
fi

# ---------- the lab ----------

mkdir -p "$BUILD/tests/logs"
if ! $LAB up "$ID" >"$BUILD/tests/logs/ops-lab-up.log" 2>&1; then
	fail lab_up "$(tail -5 "$BUILD/tests/logs/ops-lab-up.log")"
	exit 1
fi
pass lab_up

# Restart the gateway (its socket, hence its runtime file, in a folder of its
# own) and a node: no libbpf/libxdp lines for what is expected (the clsact
# qdisc is there, a TC filter is already gone at stop).
t=restart_without_libbpf_noise
stop_pid "$DIR/gw.pid"
mkdir -p "$RUN"
sed -i "s|^control_socket .*|control_socket $RUN/gw.sock|" "$DIR/gw.conf"
echo "cookie_rotate_s 60" >>"$DIR/gw.conf"    # an epoch boundary while the tests below run
: >"$DIR/gw.log"
nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw" --config "$DIR/gw.conf" >>"$DIR/gw.log" 2>&1 &
echo $! >"$DIR/gw.pid"
started_tai=$(tai)
wait_log "$DIR/gw.log" "event=started"; up1=$?
# cookie_age from the first second: asked as soon as the daemon answers
age_json=""
for _ in $(seq 50); do age_json=$("$CTL" -j -p "$PIN/gw" -s "$RUN/gw.sock" status 2>/dev/null) && break; sleep 0.1; done
now_tai=$(tai)
node_restart fresh
wait_log "$DIR/n1.log" "event=started"; up2=$?
noise=$(grep -h -E 'event=lib(bpf|xdp)' "$DIR/gw.log" "$DIR/n1.log")
[ $up1 = 0 ] && [ $up2 = 0 ] && [ -z "$noise" ] && pass $t || fail $t "started=$up1/$up2 noise: $noise"

# and across every epoch boundary while the tests below run: asked every 0.1 s
# from 1 s before it to 3 s after, from the side; each answer must be the
# epoch in progress and its age (a key pushed late shows the old epoch)
rot_probe() {
	python3 - "$CTL" "$PIN/gw" "$RUN/gw.sock" "$T/rot.stop" >"$T/rot.txt" 2>&1 <<'EOF'
import json, os, subprocess, sys, time
ctl, pin, sock, stop = sys.argv[1:5]
tai = lambda: time.clock_gettime(time.CLOCK_TAI)
while not os.path.exists(stop):
    if 1 < 60 - tai() % 60 < 57:
        time.sleep(0.2)
        continue
    b = tai()
    out = subprocess.run([ctl, '-j', '-p', pin, '-s', sock, 'status'], capture_output=True, text=True).stdout
    a = tai()
    try:
        d = json.loads(out)
        print(int(b), int(a), d['cookie_epoch'], d['cookie_rotate_s'], d['cookie_age_s'])
    except Exception as e:
        print('bad', int(b), int(a), repr(out[:100]))
    time.sleep(0.1)
EOF
}
rot_probe &
rotpid=$!

t=cookie_age_right_from_first_second
read -r epoch rot age < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["cookie_epoch"], d["cookie_rotate_s"], d["cookie_age_s"])' "$age_json" 2>/dev/null)
if [ -n "${age:-}" ] && [ "$age" != None ]; then
	lo=$((started_tai - epoch * rot - 1)); hi=$((now_tai - epoch * rot + 1))
	[ "$age" -ge "$lo" ] && [ "$age" -le "$hi" ] && [ "$age" -lt "$rot" ] && pass "$t (age $age s of $rot)" ||
		fail $t "age $age not in [$lo, $hi] (epoch $epoch, rotate $rot)"
else
	fail $t "no cookie_age_s in '$age_json'"
fi

# A pinned map of another shape (an upgrade changed the layout, or flows_max
# changed): replaced, with a log line saying what changed, and the gateway
# starts.  Then a real libbpf error still gets through: a program pinned
# where a map belongs is not ours to remove.
t=stale_pinned_map_replaced
ip netns add "$P-x"
ip -n "$P-x" link add x0 type veth peer name x1 && ip -n "$P-x" link set x0 up && ip -n "$P-x" link set x1 up
mkdir -p "$PIN/x"
bpftool map create "$PIN/x/routes" type array key 4 value 4 entries 1 name routes
bpftool map create "$PIN/x/flows" type lru_hash key 40 value 8 entries 64 name flows
printf 'pin_root %s\nclient_interface x0\nmesh_interface x1\nunderlay4 198.19.0.1\ncookie_secret_file %s\ncontrol_socket %s/x.sock\nmetrics off\nvip 198.18.100.1 443\n' \
	"$PIN/x" "$T/key" "$T" >"$T/x.conf"
: >"$T/x.log"
nsenter --net="/run/netns/$P-x" "$BUILD/veil-gw" --config "$T/x.conf" >>"$T/x.log" 2>&1 &
echo $! >"$T/x.pid"
wait_log "$T/x.log" "event=started"; up=$?
rk=$(bpftool -j map show pinned "$PIN/x/routes" 2>&1)
fk=$(bpftool -j map show pinned "$PIN/x/flows" 2>&1)
stop_pid "$T/x.pid"
[ $up = 0 ] && grep -q 'event=pinned_map_replaced map=routes .*type 2 -> 1, key bytes 4 -> 8' "$T/x.log" &&
	grep -q 'event=pinned_map_replaced map=flows .*value bytes 8 -> ' "$T/x.log" &&
	grep -q '"type":"hash"' <<<"$rk" && grep -q '"bytes_key":8' <<<"$rk" && ! grep -q '"bytes_value":8,' <<<"$fk" &&
	! grep -q 'event=libbpf' "$T/x.log" && pass $t || fail $t "started=$up log: $(tr '\n' '|' <"$T/x.log" | head -c 600) routes: $rk"

t=real_libbpf_errors_kept
rm -rf "${PIN:?}/x"; mkdir -p "$PIN/x"
bpftool prog load "$BUILD/lab_pass.bpf.o" "$PIN/x/routes" type xdp
out=$(timeout 20 nsenter --net="/run/netns/$P-x" "$BUILD/veil-gw" --config "$T/x.conf" 2>&1); rc=$?
ip netns del "$P-x"
[ $rc = 1 ] && grep -q "event=libbpf .*couldn't reuse pinned map" <<<"$out" && [ -e "$PIN/x/routes" ] && pass $t || fail $t "rc=$rc: $out"

# A restart with another flows_max and hellos_max replaces those pins (their
# size differs): what they hold is copied into the new maps, through the
# attach path veil-gw loads by (gw_asm's maps before the seed's re-keying,
# the XDP objects' after libxdp loaded them).  A flow put in by hand lives
# across it (the flow table's buckets: 768 for 4096 flows, 1536 for 8192);
# hello_asm comes back mappable.
t=resized_maps_copied
rm -rf "${PIN:?}/x"; mkdir -p "$PIN/x"
ip netns add "$P-x"
ip -n "$P-x" link add x0 type veth peer name x1 && ip -n "$P-x" link set x0 up && ip -n "$P-x" link set x1 up
cp "$T/x.conf" "$T/y.conf"
echo "flows_max 4096" >>"$T/y.conf"
: >"$T/x.log"
nsenter --net="/run/netns/$P-x" "$BUILD/veil-gw" --config "$T/y.conf" >>"$T/x.log" 2>&1 &
echo $! >"$T/x.pid"
wait_log "$T/x.log" "event=started"; up1=$?
stop_pid "$T/x.pid"
# a flow of 198.18.7.7:40000 -> the VIP, its other bytes 0x11, put where the programs would look
"$BUILD/tests/mapcount" --flow-put "$PIN/x" 198.18.7.7 40000 198.18.100.1 443
sed -i 's/^flows_max 4096$/flows_max 8192/' "$T/y.conf"
echo "hellos_max 2048" >>"$T/y.conf"
nsenter --net="/run/netns/$P-x" "$BUILD/veil-gw" --config "$T/y.conf" >>"$T/x.log" 2>&1 &
echo $! >"$T/x.pid"
wait_more "$T/x.log" "event=started" 1 100; up2=$?   # the first start's line is in the log too
sleep 0.5
fm=$(bpftool -j map show pinned "$PIN/x/flows" 2>&1)
am=$(bpftool -j map show pinned "$PIN/x/hello_asm" 2>&1)
stop_pid "$T/x.pid"
ip netns del "$P-x"
[ $up1 = 0 ] && [ $up2 = 0 ] && grep -q 'event=pinned_map_replaced map=flows .*max_entries 768 -> 1536.*copied into it' "$T/x.log" &&
	grep -q 'event=pinned_map_copied map=flows .*moved=1 lost=0 entries_max=768->1536' "$T/x.log" &&
	grep -q 'event=pinned_map_copied map=hello_asm .*entries_max=1024->2048' "$T/x.log" &&
	grep -q '"max_entries":1536' <<<"$fm" && grep -q '"max_entries":2048' <<<"$am" &&
	python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["flags"] & 1024 else 1)' "$am" &&
	! grep -q 'event=pinned_map_not_copied' "$T/x.log" && pass $t ||
	fail $t "started=$up1/$up2 log: $(grep -E 'pinned|error|warn' "$T/x.log" | tr '\n' '|' | head -c 900) flows: $fm hello_asm: $am"

# veil-node restarted with another conns_max while a TLS connection through
# it is open: conns and conn_rev are copied into the new maps, and the
# request the client sends after the restart, on the same connection, is
# served (the VM's TCP never noticed).  Then back to the default size.
t=node_resize_keeps_connection
(sleep 4; printf 'GET / HTTP/1.1\r\nHost: vm1.veil.test\r\nConnection: close\r\n\r\n'; sleep 4) |
	nsx cli timeout 20 openssl s_client -connect 198.18.100.1:443 -servername vm1.veil.test \
		-CAfile "$DIR/pki/ca.pem" -verify_return_error -quiet >"$T/keep.out" 2>&1 &
kp=$!
for _ in $(seq 30); do grep -q "verify return:1" "$T/keep.out" 2>/dev/null && break; sleep 0.1; done
cm0=$(grep -c "event=pinned_map_copied map=conns " "$DIR/n1.log")
echo "conns_max 8192" >>"$DIR/n1.conf"
st0=$(grep -c "event=started" "$DIR/n1.log")
node_restart
wait_more "$DIR/n1.log" "event=started" "$st0" 100; up1=$?
wait $kp; krc=$?
cp_line=$(grep "event=pinned_map_copied map=conns " "$DIR/n1.log" | tail -n +$((cm0 + 1)) | head -1)
rev_line=$(grep "event=pinned_map_copied map=conn_rev " "$DIR/n1.log" | tail -1)
sed -i '/^conns_max 8192$/d' "$DIR/n1.conf"
node_restart fresh
wait_log "$DIR/n1.log" "event=started" 100; up2=$?
back=$(ccurl vm1.veil.test 198.18.100.1 2>&1)
[ $up1 = 0 ] && [ $up2 = 0 ] && grep -q "HTTP/1.1 200" "$T/keep.out" &&
	grep -q "moved=[1-9][0-9]* lost=0 entries_max=49152->1536" <<<"$cp_line" &&
	grep -q "lost=0 entries_max=262144->8192" <<<"$rev_line" &&
	grep -q 'event=pinned_map_copied map=conns .*lost=0 entries_max=1536->49152' "$DIR/n1.log" &&
	grep -q "vm1" <<<"$back" && pass "$t (${cp_line#*event=})" ||
	fail $t "started=$up1/$up2 s_client=$krc '$(grep -v '^depth\|^verify' "$T/keep.out" | head -3 | tr '\n' '|')' copy: '$cp_line' '$rev_line' after: '$(head -c 200 <<<"$back")' log: $(grep -E 'pinned|error|warn' "$DIR/n1.log" | tr '\n' '|' | head -c 600)"

# veilctl without -p/-s: the runtime file beside the socket
t=veilctl_finds_the_daemon
export VEIL_RUN_DIR="$RUN"
echo '{"daemon": "veil-gw", "pid": 999999999, "pin_root": "/nowhere", "control_socket": "/nowhere.sock"}' >"$RUN/stale.json"
ccurl vm1.veil.test 198.18.100.1 >/dev/null 2>&1
s=$("$CTL" status 2>&1); c1=$?
r=$("$CTL" routes 2>&1); c2=$?
f=$("$CTL" flows --name vm1.veil.test 2>&1); c3=$?
st=$("$CTL" stats 2>&1); c4=$?
[ $c1 = 0 ] && grep -q "^daemon: veil-gw" <<<"$s" && grep -q "daemon: up (answered on $RUN/gw.sock)" <<<"$s" &&
	[ $c2 = 0 ] && grep -q "^\*.apps.veil.test .* 3  198.19.0.12" <<<"$r" &&
	[ $c3 = 0 ] && grep -q "^198.18.0.2 .* 198.18.100.1 .*443 .* 1  198.19.0.11" <<<"$f" &&
	[ $c4 = 0 ] && grep -q "^hello_routed" <<<"$st" && pass $t ||
	fail $t "status=$c1 routes=$c2 flows=$c3 stats=$c4: $(echo "$s$r$f" | head -8 | tr '\n' '|')"

t=veilctl_several_daemons_choose
out=$(VEIL_RUN_DIR="$DIR" "$CTL" status 2>&1); c1=$?
n=$(VEIL_RUN_DIR="$DIR" "$CTL" --daemon n1 stats 2>&1); c2=$?
g=$("$CTL" --run-dir "$DIR" -d veil-gw status 2>&1); c3=$?   # gw's runtime file is in $RUN now: none in $DIR
[ $c1 = 2 ] && grep -q "2 daemons run here" <<<"$out" && grep -q "choose one with --daemon" <<<"$out" &&
	[ $c2 = 0 ] && grep -q "^vm_pass\|^handoff_replayed\|^COUNTER" <<<"$n" && [ $c3 = 1 ] &&
	grep -q "no daemon 'veil-gw' runs here" <<<"$g" && pass $t || fail $t "several=$c1 '$out' n1=$c2 '$n' gw=$c3 '$g'"

# SIGHUP with a secret others can read: refused with file:line, the daemon keeps running
t=reload_refuses_readable_secret
chmod 644 "$DIR/cookie.key"
kill -HUP "$(cat "$DIR/gw.pid")"
wait_log "$DIR/gw.log" "event=reload_rejected reason=\"$DIR/gw.conf:[0-9]*: cookie_secret_file $DIR/cookie.key: readable by everyone" 50; r1=$?
chmod 600 "$DIR/cookie.key"
kill -HUP "$(cat "$DIR/gw.pid")"
wait_log "$DIR/gw.log" "event=config_reloaded" 50; r2=$?
got=$(ccurl vm2.veil.test 198.18.100.1 2>&1)
[ $r1 = 0 ] && [ $r2 = 0 ] && [ "$got" = "hello from vm2" ] && ! grep -q "$(cat "$DIR/cookie.key")" "$DIR/gw.log" &&
	pass $t || fail $t "rejected=$r1 reloaded=$r2 curl='$got': $(grep reload "$DIR/gw.log" | tail -2)"

# the capture: a packet socket on the client's veth, TCP port 443 both ways,
# as tshark would write it (Ethernet pcap); quicker to start on a busy machine
capture_start() { # file: until capture_stop
	rm -f "$1.ready" "$1.stop"
	nsx cli python3 - cli-gw "$1" "$1.ready" "$1.stop" <<'EOF' &
import os, select, socket, struct, sys, time
iface, out, ready, stop = sys.argv[1:5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
w = open(out, 'wb')
w.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
open(ready, 'w').close()
end = time.time() + 60
while time.time() < end and not os.path.exists(stop):
    if not select.select([s], [], [], 0.1)[0]:
        continue
    f = s.recv(65535)
    et = f[12:14]
    if et == b'\x08\x00' and len(f) > 34 and f[23] == 6:
        l4 = 14 + (f[14] & 15) * 4
    elif et == b'\x86\xdd' and len(f) > 54 and f[20] == 6:
        l4 = 54
    else:
        continue
    if 443 not in struct.unpack_from('>HH', f, l4):
        continue
    t = time.time()
    w.write(struct.pack('<IIII', int(t), int((t % 1) * 1e6), len(f), len(f)) + f)
w.close()
EOF
	capid=$!
	for _ in $(seq 300); do [ -e "$1.ready" ] && break; sleep 0.1; done
}
capture_stop() { touch "$1.stop"; wait $capid 2>/dev/null; }

# ---------- replay: the SNI the client sent, every link type ----------
t=replay_sni_is_the_hellos
capture_start "$T/cap.pcap"
ccurl vm1.veil.test 198.18.100.1 >/dev/null 2>&1
ccurl shop.apps.veil.test 198.18.100.1 >/dev/null 2>&1     # routed by the wildcard *.apps.veil.test
ccurl nope.veil.test 198.18.100.1 >/dev/null 2>&1
nsx cli "$BUILD/veil-hellogen" --connect "[2001:db8:100::1]:443" --name vm3.veil.test --cafile "$DIR/pki/ca.pem" \
	--size 1800 --quiet >/dev/null 2>&1
sleep 0.5
capture_stop "$T/cap.pcap"
"$CTL" replay "$T/cap.pcap" --routes "$DIR/gw.conf" >"$T/replay.txt" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "hello_routed  sni=vm1.veil.test route: vm 1 via 198.19.0.11" "$T/replay.txt" &&
	grep -q "hello_routed  sni=shop.apps.veil.test route: vm 3 via 198.19.0.12" "$T/replay.txt" &&
	grep -q "sni=nope.veil.test (no route)" "$T/replay.txt" &&
	grep -q "asm_routed.*sni=vm3.veil.test route: vm 3 via 2001:db8:ff::12" "$T/replay.txt" &&
	! grep -q 'sni=\*' "$T/replay.txt" && pass $t || fail $t "rc=$rc: $(grep -E 'sni|rror' "$T/replay.txt" | head -6)"

# the README's `veilctl replay capture.pcapng`: no flags, the running gateway's routes and VIPs
t=replay_uses_the_running_daemons_maps
out=$("$CTL" replay "$T/cap.pcap" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "hello_routed  sni=shop.apps.veil.test route: vm 3 via 198.19.0.12" <<<"$out" && pass $t ||
	fail $t "rc=$rc: $(echo "$out" | grep -E 'sni|veilctl' | head -3)"

# The same packets as other link types, in pcap and in pcapng
python3 - "$T/cap.pcap" "$T" <<'EOF'
import struct, sys
src, out = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
pk, off, e, res = [], 0, '<', [1e-6]
if data[:4] == b'\xd4\xc3\xb2\xa1':     # pcap (little-endian, microseconds)
    off = 24
    while off + 16 <= len(data):
        s, us, cap, orig = struct.unpack_from('<IIII', data, off)
        pk.append((s + us / 1e6, data[off + 16:off + 16 + cap], orig))
        off += 16 + cap
    data = b''
while off + 12 <= len(data):
    btype = struct.unpack_from('<I', data, off)[0]
    if btype == 0x0A0D0D0A:
        e = '<' if struct.unpack_from('<I', data, off + 8)[0] == 0x1A2B3C4D else '>'
    btype, blen = struct.unpack_from(e + 'II', data, off)
    body = data[off + 8:off + blen - 4]
    if btype == 1:                         # IDB: if_tsresol (option 9)
        o = 8
        while o + 4 <= len(body):
            code, ln = struct.unpack_from(e + 'HH', body, o)
            if code == 0:
                break
            if code == 9:
                v = body[o + 4]
                res.append(2.0 ** -(v & 0x7f) if v & 0x80 else 10.0 ** -v)
            o += 4 + (ln + 3) // 4 * 4
    elif btype == 6:                       # EPB
        _, hi, lo, cap, orig = struct.unpack_from(e + 'IIIII', body, 0)
        t = ((hi << 32) | lo) * res[-1]
        pk.append((t, body[20:20 + cap], orig))
    off += blen
def mac(f): return f[6:12]
def conv(lt, f):
    et, ip = f[12:14], f[14:]
    v6 = et == b'\x86\xdd'
    if lt == 1: return f
    if lt == 101: return ip
    if lt == 228: return None if v6 else ip
    if lt == 229: return ip if v6 else None
    if lt == 113: return struct.pack('>HHH', 0, 1, 6) + mac(f) + b'\0\0' + et + ip
    if lt == 276: return et + b'\0\0' + struct.pack('>IHBB', 2, 1, 0, 6) + mac(f) + b'\0\0' + ip
    if lt == 0: return struct.pack('<I', 30 if v6 else 2) + ip          # Darwin's AF_INET6, host order
    if lt == 108: return struct.pack('>I', 24 if v6 else 2) + ip        # OpenBSD's, network order
    if lt == 105: return f
def pcap(lt, name):
    with open(f'{out}/{name}.pcap', 'wb') as w:
        w.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, lt))
        for t, f, orig in pk:
            g = conv(lt, f)
            if g is None: continue
            s = int(t); us = int(round((t - s) * 1e6))
            w.write(struct.pack('<IIII', s, us, len(g), len(g) + orig - len(f)) + g)
def pcapng(lt, name):
    def blk(t, b): return struct.pack('<II', t, len(b) + 12) + b + struct.pack('<I', len(b) + 12)
    with open(f'{out}/{name}.pcapng', 'wb') as w:
        w.write(blk(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1)))
        w.write(blk(1, struct.pack('<HHI', lt, 0, 262144)))
        for t, f, orig in pk:
            g = conv(lt, f)
            if g is None: continue
            ts = int(round(t * 1e6))
            pad = b'\0' * ((4 - len(g) % 4) % 4)
            w.write(blk(6, struct.pack('<IIIII', 0, ts >> 32, ts & 0xffffffff, len(g), len(g) + orig - len(f)) + g + pad))
for lt, name in [(1, 'ether'), (101, 'raw'), (228, 'ipv4'), (229, 'ipv6'), (113, 'sll'), (276, 'sll2'),
                 (0, 'null'), (108, 'loop'), (105, 'wifi')]:
    pcap(lt, name); pcapng(lt, name)
EOF
t=replay_link_types
bad=""
n=0
for f in "$T"/{ether,raw,ipv4,ipv6,sll,sll2,null,loop}.pcap "$T"/{ether,raw,sll2,loop}.pcapng; do
	name=$(basename "${f%.*}"); fmt=${f##*.}
	out=$("$CTL" replay "$f" --routes "$DIR/gw.conf" 2>&1); rc=$?
	n=$((n + 1))
	[ $rc = 0 ] || { bad="$bad [$name.$fmt rc=$rc $(echo "$out" | tail -1)]"; continue; }
	grep -q "not IP" <<<"$out" && bad="$bad [$name.$fmt: a packet not read as IP]"
	if [ $name != ipv6 ]; then
		grep -q "hello_routed  sni=vm1.veil.test route: vm 1 via 198.19.0.11" <<<"$out" || bad="$bad [$name.$fmt: no vm1]"
	fi
	if [ $name != ipv4 ]; then
		grep -q "asm_routed.*sni=vm3.veil.test route: vm 3 via 2001:db8:ff::12" <<<"$out" || bad="$bad [$name.$fmt: no vm3]"
	fi
done
[ -z "$bad" ] && pass "$t ($n captures)" || fail $t "$bad"

t=replay_names_a_link_type_it_cannot_read
out=$("$CTL" replay "$T/wifi.pcap" --routes "$DIR/gw.conf" 2>&1); c1=$?
out2=$("$CTL" replay "$T/wifi.pcapng" --routes "$DIR/gw.conf" 2>&1); c2=$?
[ $c1 = 1 ] && grep -q "cannot read link type IEEE802_11 (.*DLT 105)" <<<"$out" && [ $c2 = 1 ] &&
	grep -q "cannot read link type IEEE802_11" <<<"$out2" && pass $t || fail $t "pcap rc=$c1 '$out' pcapng rc=$c2 '$out2'"

t=replay_secret_checks_the_cookies
newkey "$T/other.key"
# (the refused connection's FIN has no valid cookie whatever the key: as many bad_cookie as without --secret)
# a fresh capture: a cookie is valid for a window or two (cookie_window_s), and --secret checks it as the gateway would now
capture_start "$T/fresh.pcap"
ccurl vm1.veil.test 198.18.100.1 >/dev/null 2>&1
ccurl nope.veil.test 198.18.100.1 >/dev/null 2>&1
sleep 0.3
capture_stop "$T/fresh.pcap"
b0=$("$CTL" replay "$T/fresh.pcap" --routes "$DIR/gw.conf" 2>&1 | grep -c bad_cookie)
good=$("$CTL" replay "$T/fresh.pcap" --routes "$DIR/gw.conf" --secret "$DIR/cookie.key" 2>&1); c1=$?
other=$("$CTL" replay "$T/fresh.pcap" --routes "$DIR/gw.conf" --secret "$T/other.key" 2>&1); c2=$?
b1=$(grep -c bad_cookie <<<"$good"); b2=$(grep -c bad_cookie <<<"$other")
[ $c1 = 0 ] && grep -q "DROP *cookie_ack" <<<"$good" && grep -q "hello_routed  sni=vm1.veil.test" <<<"$good" &&
	[ "$b1" = "$b0" ] && [ $c2 = 0 ] && [ "$b2" -gt "$b0" ] && ! grep -q hello_routed <<<"$other" &&
	! grep -q "$(cat "$DIR/cookie.key")" <<<"$good" && pass $t ||
	fail $t "right key rc=$c1 $(grep -c cookie_ack <<<"$good") cookie_ack, bad_cookie $b1 (without --secret $b0); other key rc=$c2 bad_cookie $b2"

t=cookie_age_right_across_an_epoch_boundary
# no answer yet in an epoch's first second (the tests above ran between two
# boundaries): the prober goes on to the next one (at most a minute more)
if ! awk '$1 != "bad" && $1 % $4 == 0 && int($1 / $4) == int($2 / $4) { f = 1 } END { exit !f }' "$T/rot.txt" 2>/dev/null; then
	sleep "$(python3 -c 'import time; print(60 - time.clock_gettime(time.CLOCK_TAI) % 60 + 3.5)')"
fi
touch "$T/rot.stop"
wait $rotpid
res=$(awk '
	$1 == "bad" { bad = bad " [" $0 "]"; next }
	{ n++; b = $1; a = $2; ep = $3; rot = $4; age = $5
	  if (int(b / rot) != int(a / rot)) next          # asked across the boundary: either is right
	  k++
	  if (b % rot == 0) first++
	  if (ep != int(b / rot) || age < b % rot - 1 || age > a % rot + 1 || age >= rot)
		bad = bad " [asked " b ".." a ": epoch " ep " age " age "]" }
	END { printf "%d %d %d%s", n, k, first, bad }' "$T/rot.txt")
read -r n k first rest <<<"$res"
if [ -n "$rest" ]; then
	fail $t "$rest"
elif [ "${first:-0}" -gt 0 ]; then
	pass "$t ($k answers, $first in an epoch's first second)"
else
	skip $t "no answer came in an epoch's first second ($n answers: no boundary while the gateway ran, or a loaded machine)"
fi

# ---------- the daemon down; then veil-gw-dpdk in its place ----------
t=status_exits_3_when_down
stop_pid "$DIR/gw.pid"
s=$("$CTL" -p "$PIN/gw" -s "$RUN/gw.sock" status 2>&1); c1=$?
j=$("$CTL" -j -p "$PIN/gw" -s "$RUN/gw.sock" status 2>&1); c2=$?
[ $c1 = 3 ] && grep -q "daemon: down" <<<"$s" && [ $c2 = 3 ] && grep -q '"daemon": "down"' <<<"$j" &&
	[ ! -e "$RUN/gw.json" ] && pass $t || fail $t "status rc=$c1 '$s' json rc=$c2 runtime file: $(ls "$RUN")"

t=veilctl_reads_veil_gw_dpdk
if [ ! -x "$BUILD/veil-gw-dpdk" ]; then
	skip $t "no veil-gw-dpdk built"
else
	# as tools/lab.sh runs it (af_packet on the gateway's veths; the kernel kept off the VIP's TCP)
	nsx gw nft -f - <<EOF
table netdev veil_dpdk_ops {
	chain client { type filter hook ingress device gw-cli priority 0; ip daddr 198.18.100.1 tcp dport 443 drop; ip6 daddr 2001:db8:100::1 tcp dport 443 drop; }
	chain mesh { type filter hook ingress device gw-mesh priority 0; udp dport 6081 drop; }
}
EOF
	nsx gw ethtool -K gw-cli gro off >/dev/null 2>&1
	nsx gw ethtool -K gw-mesh gro off >/dev/null 2>&1
	: >"$DIR/gw.log"
	nsenter --net="/run/netns/$P-gw" "$BUILD/veil-gw-dpdk" --no-huge -m 512 --no-pci --file-prefix "veil-$ID" \
		--lcores 0@0,1@1 --vdev net_af_packet0,iface=gw-cli,qpairs=1 --vdev net_af_packet1,iface=gw-mesh,qpairs=1 \
		-- --config "$DIR/gw.conf" --idle-us 50 --pidfile "$DIR/gw-dpdk.pid" >>"$DIR/gw.log" 2>&1 &
	DPID=$!
	echo $DPID >"$DIR/gw.pid"
	if ! wait_log "$DIR/gw.log" "event=started" 300; then
		fail $t "veil-gw-dpdk did not start: $(tail -3 "$DIR/gw.log")"
	else
		got=$(ccurl vm1.veil.test 198.18.100.1 2>&1)
		s=$("$CTL" status 2>&1); c1=$?
		r=$("$CTL" routes 2>&1); c2=$?
		f=$("$CTL" flows --name vm1.veil.test 2>&1); c3=$?
		fc=$("$CTL" -j flows --count 2>&1)
		st=$("$CTL" stats 2>&1); c4=$?
		sj=$("$CTL" -j status 2>&1)
		age=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cookie_age_s"])' "$sj" 2>&1)
		[ "$got" = "hello from vm1" ] && [ $c1 = 0 ] && grep -q "^daemon: veil-gw-dpdk" <<<"$s" &&
			[ $c2 = 0 ] && grep -q "^vm2.veil.test .* 2  2001:db8:ff::11" <<<"$r" &&
			[ $c3 = 0 ] && grep -q "^198.18.0.2 .* 198.18.100.1 .*443 .* 1  198.19.0.11" <<<"$f" &&
			grep -q '"flows": [1-9]' <<<"$fc" && [ $c4 = 0 ] && grep -q "^hello_routed  *[1-9]" <<<"$st" &&
			[ "$age" -ge 0 ] 2>/dev/null && pass $t ||
			fail $t "curl='$got' status=$c1 routes=$c2 flows=$c3 '$f' count='$fc' stats=$c4 age='$age' $(echo "$s" | head -3 | tr '\n' '|')"
		# the skeleton's pidfile and signals (common/daemon.h): the pidfile
		# holds the daemon's pid (nsenter execs it: $! is its pid); SIGHUP
		# reloads, whichever lcore takes it; SIGTERM stops it, logs
		# event=stopped and removes the pidfile
		t=dpdk_pidfile_and_signals
		bad=""
		[ "$(cat "$DIR/gw-dpdk.pid" 2>/dev/null)" = "$DPID" ] ||
			bad="$bad pidfile='$(cat "$DIR/gw-dpdk.pid" 2>/dev/null)'(pid $DPID)"
		kill -HUP "$DPID"
		wait_log "$DIR/gw.log" "event=config_reloaded" 50 || bad="$bad no-reload-after-SIGHUP"
		kill -0 "$DPID" 2>/dev/null || bad="$bad gone-after-SIGHUP"
		t0=$(date +%s%N)
		rt=$(cat "$RUN/gw.json" 2>&1)
		stop_pid "$DIR/gw.pid"
		ms=$(( ($(date +%s%N) - t0) / 1000000 ))
		kill -0 "$DPID" 2>/dev/null && bad="$bad still-running"
		[ -e "$DIR/gw-dpdk.pid" ] && bad="$bad pidfile-left"
		grep -q "veil-gw-dpdk: event=stopped signal=15" "$DIR/gw.log" || bad="$bad no-stopped-line"
		[ -z "$bad" ] && pass "$t (stopped ${ms} ms after SIGTERM)" || fail $t "$bad; log: $(tail -3 "$DIR/gw.log" | tr '\n' ' ')"
		t=dpdk_runtime_file
		s=$("$CTL" status 2>&1); c1=$?
		grep -q '"daemon": "veil-gw-dpdk"' <<<"$rt" && grep -q "\"control_socket\": \"$RUN/gw.sock\"" <<<"$rt" &&
			[ ! -e "$RUN/gw.json" ] && [ $c1 = 3 ] && pass $t || fail $t "runtime file '$rt', after stop: $(ls "$RUN"), status rc=$c1"
	fi
fi
exit 0
