#!/usr/bin/env bash
# Runs every veilmesh test and ends with one line: "N passed, N failed".
# Each suite prints "PASS name" / "FAIL name: why" / "SKIP name: why" lines.
#   tests/run.sh            everything
#   tests/run.sh unit|bpf|fuzz|e2e|reliability|dpdk|ops|gwstore|agent|agentstore|registry|attest|launch|dns|controller|nodereg|bench|demo (demo: not in all)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
what=${1:-all}
pass=0 fail=0 skip=0
log=$BUILD/tests/logs
mkdir -p "$log"

suite() { # name command...
	local name=$1; shift
	local start=$SECONDS out="$log/$name.out" err="$log/$name.err"
	echo "== $name"
	"$@" >"$out" 2>"$err"
	local rc=$?
	cat "$out"
	local p f s
	p=$(grep -c '^PASS ' "$out"); f=$(grep -c '^FAIL ' "$out"); s=$(grep -c '^SKIP ' "$out")
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "FAIL $name: exited $rc without saying why; stderr follows"
		f=1
	fi
	if [ "$f" != 0 ]; then
		echo "-- stderr of $name (last 30 lines):"
		tail -30 "$err"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	echo "   ($name: $p passed, $f failed, $s skipped in $((SECONDS - start)) s)"
}

case $what in all|unit)
	suite hello "$BUILD/tests/test_hello"
	suite cookie "$BUILD/tests/test_cookie"
	suite flowtab "$BUILD/tests/test_flowtab"
	suite config "$BUILD/tests/test_config"
	suite shamir "$BUILD/tests/test_shamir"
	suite evidence "$BUILD/tests/test_evidence"
	suite dns_core "$BUILD/tests/test_dns"
	suite store "$BUILD/tests/test_store"
	suite ctl_unit "$BUILD/tests/test_ctl"
esac
case $what in all|unit|agent)
	suite agent_unit "$BUILD/tests/test_agent"
	suite agent_xml "$BUILD/tests/test_agent_xml"
esac
case $what in all|bpf)
	suite bpf "$BUILD/tests/test_bpf"
	suite fastpath "$BUILD/tests/test_fastpath"
esac
case $what in all|fuzz)
	suite fuzz tests/fuzz.sh "${FUZZ_SECONDS:-15}"
esac
case $what in all|e2e)
	suite e2e tests/e2e.sh
esac
case $what in all|reliability)
	suite reliability tests/reliability.sh
esac
case $what in all|e2e|dpdk)
	suite dpdk tests/dpdk.sh
esac
case $what in all|ops)
	suite ops tests/ops.sh
esac
case $what in all|gwstore)
	suite gwstore tests/gwstore.sh
esac
case $what in all|agent)
	suite agent tests/agent.sh
esac
case $what in all|agent|agentstore)
	suite agentstore tests/agentstore.sh
esac
case $what in all|attest)
	suite attest tests/attest.sh
esac
case $what in all|launch)
	suite launch tests/launch.sh
esac
case $what in all|launch|registry)
	suite registry tests/registry.sh
esac
case $what in all|dns)
	suite dns tests/dns.sh
esac
case $what in all|controller)
	suite controller tests/controller.sh
esac
case $what in all|controller|nodereg)
	suite nodereg tests/nodereg.sh
esac
case $what in demo)   # not in all: tools/demo-flow.sh with one order
	suite demo tests/demo.sh
esac
case $what in all|bench)
	suite bench_quick tools/bench.sh quick
esac

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
