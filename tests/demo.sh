#!/usr/bin/env bash
# The demo's flow with one order (tools/demo-flow.sh, VEIL_DEMO_VMS=1): the
# controller's API, the registry worker, the validators, a node agent with a
# real VM (qemu TCG, OVMF + vTPM), veil-gw and veil-dns fed from the store;
# the order's hostname and SSH key seen in the VM; the cancel withdraws the
# name.  Not part of `tests/run.sh all` (one real build and boot: minutes on
# a loaded machine).  `tests/run.sh demo`.
set -u
cd "$(dirname "$0")/.."
out=$(VEIL_DEMO_VMS=1 tools/demo-flow.sh 2>&1); rc=$?
echo "$out" >&2
if [ $rc = 0 ]; then
	echo "PASS demo_flow_one_order ($(echo "$out" | grep -o 'whole demo: [0-9.]* s'))"
else
	echo "FAIL demo_flow_one_order: $(echo "$out" | grep 'FAILED' | tail -1)"
fi
