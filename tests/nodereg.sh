#!/usr/bin/env bash
# Nodes join only after their TPM attests (issue 17): veil-controller with a
# test-owned TPM vendor CA (swtpm_localca, ../shared/FACTS.md), a private
# nats-server, and swtpm as each node's TPM.  veil-agent --register joins;
# a TPM whose EK certificate another CA signed, an AK without the restricted
# attribute, a wrong credential, a quote over another node key, a replayed
# activation and an expired challenge are refused (4xx JSON, checked against
# docs/api.yaml) and counted.  The refusals are provoked by a TEST DRIVER
# (tests/nodereg_client.c) that plays the node with the same real TPM.
# Loopback only; ports below 32768 derived from $$; everything in a temp dir.
set -u
exec 3>&2; ts() { echo "$((SECONDS)) s: $*" >&3; }
cd "$(dirname "$0")/.."
. tests/lib/ctlkeys.sh
BUILD=${BUILD:-build}
REPO=$PWD
T=$(mktemp -d /tmp/veil-nodereg.$$.XXXX)
base=$((32010 + ($$ % 150) * 5))           # base .. base+4, all below 32768
P_API=$base P_MET=$((base + 1)) P_N=$((base + 2)) P_TPM=$((base + 3)) P_TPMC=$((base + 4))
TCTI="swtpm:host=127.0.0.1,port=$P_TPM"
CTL=$BUILD/veil-controller AGENT=$BUILD/veil-agent CLIENT=$BUILD/tests/nodereg_client
declare -A PID
cleanup() {
	for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null; done
	for k in "${!PID[@]}"; do wait "${PID[$k]}" 2>/dev/null; done
	if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
for t in "$CTL" "$AGENT" "$CLIENT"; do [ -x "$t" ] || { fail "setup: $t is not built"; exit 1; }; done
for t in nats-server swtpm swtpm_setup swtpm_localca tpm2_shutdown tpm2_getcap; do
	command -v $t >/dev/null || { fail "setup: $t missing (tools/deps.sh test)"; exit 1; }
done

# ---------- keys, the vendor CA, TPMs as their manufacturer leaves them ----------
cd "$T" || exit 1
umask 077
ctl_keys
mktpm() { # state-dir ca-dir
	ts "mktpm $1"
	local ca="$T/$2"
	mkdir -p "$T/$1" "$T/$1.ekc" "$ca"
	if [ ! -e "$ca/setup.conf" ]; then
		printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
			"$ca" "$ca" "$ca" "$ca" > "$ca/localca.conf"
		printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s/localca.conf\nactive_pcr_banks = sha256\n' \
			"$ca" > "$ca/setup.conf"
	fi
	swtpm_setup --tpm2 --tpmstate "$T/$1" --createek --create-ek-cert --lock-nvram --overwrite --config "$ca/setup.conf" \
		--write-ek-cert-files "$T/$1.ekc" --vmid "nodereg-$1" >"$T/$1.setup.log" 2>&1 &&
		[ -s "$T/$1.ekc/ek-rsa2048.crt" ] || { fail "setup: swtpm_setup $1: $(tail -3 "$T/$1.setup.log")"; exit 1; }
}
mktpm tpm1 vendor   # makes the vendor CA; then the second TPM and the rogue CA's side by side
mktpm tpm2 vendor & p1=$!
mktpm rogue rogue & p2=$!
wait $p1 && wait $p2 || exit 1
# the controller trusts the vendor's root only; nodes send the intermediate beside their certificate
cp vendor/swtpm-localca-rootca-cert.pem vendor-root.pem
cd "$REPO" || exit 1

tpm_down() {
	[ -n "${PID[tpm]:-}" ] || return 0
	tpm2_shutdown -T "$TCTI" >/dev/null 2>&1   # orderly: the next start's clock stays "safe"
	kill "${PID[tpm]}" 2>/dev/null; wait "${PID[tpm]}" 2>/dev/null
	unset "PID[tpm]"
}
tpm_up() { # state-dir: that TPM on P_TPM
	tpm_down
	swtpm socket --tpm2 --server type=tcp,port=$P_TPM,bindaddr=127.0.0.1 --ctrl type=tcp,port=$P_TPMC,bindaddr=127.0.0.1 \
		--tpmstate dir="$T/$1" --flags not-need-init,startup-clear >>"$T/swtpm.log" 2>&1 &
	PID[tpm]=$!
	for _ in $(seq 50); do tpm2_getcap -T "$TCTI" properties-fixed >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
ek_id() { openssl x509 -inform DER -in "$T/$1.ekc/ek-rsa2048.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
metric() { curl -s "http://127.0.0.1:$P_MET/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
regkey() { curl -s --cacert "$T/ca.pem" -H "Authorization: Bearer $(cat "$T/admin.token")" -X POST \
	"https://127.0.0.1:$P_API/v1/regkeys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$@" 2>/dev/null; }

{
	echo "listen 127.0.0.1:$P_API"
	echo "cert $T/ca.pem"
	echo "key $T/tls.key"
	echo "metrics 127.0.0.1:$P_MET"
	echo "store nats://127.0.0.1:$P_N"
	echo "signing_key $T/controller.pem"
	echo "registry_pub $T/registry.pub.pem"
	echo "admin_token_file $T/admin.token"
	echo "tpm_vendor_ca $T/vendor-root.pem"
	echo "node_challenge_ttl_s 5"
	echo "node_timeout_s 60"
	echo "validator 198.18.3.1:8443"
	echo "validator 198.18.3.2:8443"
} > "$T/ctl.conf"
echo "https://127.0.0.1:$P_API" > "$T/url"
mkdir -p "$T/js"
nats-server -js -sd "$T/js" -a 127.0.0.1 -p "$P_N" >"$T/nats.log" 2>&1 &
PID[nats]=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P_N) 2>/dev/null && break; sleep 0.1; done
out=$("$CTL" --config "$T/ctl.conf" --check 2>&1)
echo "$out" | grep -q "admitted by TPM credential activation" && pass "check_names_tpm_vendor_ca" || fail "check_names_tpm_vendor_ca: $out"
"$CTL" --config "$T/ctl.conf" 2>"$T/ctl.log" &
PID[ctl]=$!
up=0
for _ in $(seq 150); do
	curl -s --cacert "$T/ca.pem" "https://127.0.0.1:$P_API/v1/health" 2>/dev/null | grep -q ok && { up=1; break; }
	sleep 0.2
done
[ $up = 1 ] || { fail "setup: controller did not start: $(tail -3 "$T/ctl.log")"; exit 1; }

# ---------- a node joins: veil-agent --register ----------
printf 'node_key: placeholder-unused\nresources:\n  cpu: 1\n  ram: 256mb\n  disk: 1gb\n' > "$T/agent.yaml"
chmod 600 "$T/agent.yaml"
K1=$(regkey)
tpm_up tpm1 || { fail "setup: swtpm did not start"; exit 1; }
start=$SECONDS
"$AGENT" --config "$T/agent.yaml" --image-dir "$T" --register "https://127.0.0.1:$P_API" --regkey "$K1" --tcti "$TCTI" \
	--ca "$T/ca.pem" --ek-chain "$T/vendor/issuercert.pem" --underlay 198.18.1.10 --location DE --name n1 \
	--store "nats://127.0.0.1:$P_N" --controller-pub "$T/controller.pub.pem" >"$T/reg.out" 2>"$T/reg.err"
rc=$?
ID1=$(ek_id tpm1)
got=$(grep -E '^\s+node_id:' "$T/agent.yaml" | awk '{print $2}')
keyf=$(grep -E '^\s+node_signing_key:' "$T/agent.yaml" | awk '{print $2}')
if [ $rc = 0 ] && [ "$got" = "$ID1" ] && [ "$(cat "$T/reg.out")" = "$ID1" ] && [ "$(stat -c %a "$keyf" 2>/dev/null)" = 600 ]; then
	pass "agent_register_joins ($((SECONDS - start)) s; node id = sha256 of the swtpm EK's SPKI, node key 0600)"
else
	fail "agent_register_joins: rc $rc id '$got' want $ID1 key '$keyf'; $(tail -3 "$T/reg.err")"
fi
# the written config is a whole one: veil-agent --check loads it and both keys
out=$("$AGENT" --config "$T/agent.yaml" --image-dir "$T" --check 2>&1) && echo "$out" | grep -q "orders also from the store" &&
	pass "agent_config_written_loads" || fail "agent_config_written_loads: $out"
# the node's record: attested, up, with the key from the agent's file (GET /v1/nodes schema-checked)
nodes=$(python3 - "$T" <<-'PYEOF'
	import sys; sys.argv = [sys.argv[0], sys.argv[1], "x"]; sys.path.insert(0, "tests"); import ctl_api as c
	s, j, _ = c.call("GET", "/v1/nodes")
	for n in j["nodes"]: print(n["id"], n["state"], n["attested"], n["node_pub"])
	PYEOF
)
pub=$(openssl pkey -in "$keyf" -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0)
echo "$nodes" | grep -qxF "$ID1 up True $pub" && pass "node_attested_up_with_its_key" ||
	fail "node_attested_up_with_its_key: '$nodes' (want $ID1 up True $pub)"

# ---------- refusals (the test driver plays a node with the same swtpm) ----------
drive() { # steps regkey regkey-bound chain -> $T/d/<step>-<request>.{status,json}
	ts "drive $1"
	mkdir -p "$T/d"
	"$CLIENT" "$1" 127.0.0.1 "$P_API" "$T/ca.pem" "$TCTI" "$2" "$3" "$4" "$T/d" 2>>"$T/d/err"
}
st() { cut -d' ' -f1 "$T/d/$1.status" 2>/dev/null; }
code() { field "$T/d/$1.json" error; }
show() { echo "$(st "$1") $(cat "$T/d/$1.json" 2>/dev/null)"; }

# a TPM whose EK certificate another CA signed
tpm_up rogue
drive ok "$(regkey)" - "$T/rogue/issuercert.pem"
[ "$(st ok-register)" = 422 ] && [ "$(code ok-register)" = ek_not_trusted ] && pass "rogue_ca_ek_refused" ||
	fail "rogue_ca_ek_refused: $(show ok-register) $(tail -2 "$T/d/err")"
# the vendor's second TPM, one EK and AK, misbehaving in turn
tpm_up tpm2
K2=$(regkey)
drive ak-unrestricted,wrong-secret,other-node-key,late,bound-key,replay "$K2" "$K1" "$T/vendor/issuercert.pem"
# an AK without the restricted attribute (a genuine EK of the vendor's)
[ "$(st ak-unrestricted-register)" = 422 ] && [ "$(code ak-unrestricted-register)" = bad_ak ] &&
	pass "ak_without_restricted_refused" || fail "ak_without_restricted_refused: $(show ak-unrestricted-register)"
# a wrong credential: refused, and the challenge is spent (the same request again finds none)
[ "$(st wrong-secret-register)" = 202 ] && [ "$(st wrong-secret-activate)" = 403 ] &&
	[ "$(code wrong-secret-activate)" = wrong_secret ] && [ "$(st wrong-secret-activate2)" = 409 ] &&
	pass "wrong_secret_refused_and_challenge_spent" ||
	fail "wrong_secret_refused_and_challenge_spent: $(show wrong-secret-register) | $(show wrong-secret-activate) | $(show wrong-secret-activate2) $(tail -2 "$T/d/err")"
# a quote that commits to another node key than the one registered
[ "$(st other-node-key-activate)" = 403 ] && [ "$(code other-node-key-activate)" = bad_quote ] &&
	pass "quote_over_other_node_key_refused" || fail "quote_over_other_node_key_refused: $(show other-node-key-activate)"
# an expired challenge (node_challenge_ttl_s 5, activation after 6 s)
[ "$(st late-register)" = 202 ] && [ "$(st late-activate)" = 409 ] && [ "$(code late-activate)" = no_challenge ] &&
	pass "expired_challenge_refused" || fail "expired_challenge_refused: $(show late-activate)"
# the first node's registration key serves that node only
[ "$(st bound-key-register)" = 403 ] && [ "$(code bound-key-register)" = bad_registration_key ] &&
	pass "regkey_bound_to_its_node" || fail "regkey_bound_to_its_node: $(show bound-key-register)"
# a good activation, then the same request replayed
[ "$(st replay-activate)" = 200 ] && [ "$(st replay-activate2)" = 409 ] && [ "$(code replay-activate2)" = no_challenge ] &&
	[ "$(field "$T/d/replay-activate.json" id)" = "$(ek_id tpm2)" ] &&
	pass "replayed_activation_refused (the first joined as node $(ek_id tpm2 | cut -c1-12), its EK's id)" ||
	fail "replayed_activation_refused: $(show replay-activate) | $(show replay-activate2)"
tpm_down

# every response the driver got, against docs/api.yaml (tests/ctl_api.py's checker)
ekpub=$(openssl x509 -inform DER -in "$T/tpm1.ekc/ek-rsa2048.crt" -noout -pubkey | openssl pkey -pubin -outform DER | base64 -w0)
out=$(python3 - "$T" "$ekpub" "$(regkey)" <<-'PYEOF' 2>&1
	import glob, json, sys
	env, ekpub, key = sys.argv[1], sys.argv[2], sys.argv[3]
	sys.argv = [sys.argv[0], env, "x"]; sys.path.insert(0, "tests"); import ctl_api as c
	n = 0
	for st in sorted(glob.glob(env + "/d/*.status")):
	    code, path = open(st).read().split()
	    c.check_schema("POST", path, int(code), json.load(open(st[:-len(".status")] + ".json")))
	    n += 1
	# an EK taken as presented is refused when a vendor CA is configured
	s, j, _ = c.call("POST", "/v1/nodes/register", {"key": key, "ek_pub": ekpub,
	    "node_pub": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "underlay4": "198.18.1.1",
	    "resources": {"cpu": 1, "ram_mb": 64, "disk_gb": 1}, "scan": {}}, token=None)
	assert s == 422 and j["error"] == "attestation_required", (s, j)
	# garbage activations: 4xx JSON, never a crash
	for body in ({}, {"secret": "zz", "attest": "AA==", "sig": "AA=="}, {"secret": "00" * 32, "attest": "AAAA" * 10,
	             "sig": "AAAA" * 4, "x": 1}, {"secret": "00" * 32, "attest": "AAAA" * 10, "sig": "AAAA" * 4}):
	    s, j, _ = c.call("POST", "/v1/nodes/" + "ab" * 32 + "/activate", body, token=None)
	    assert 400 <= s < 500, (s, j)
	s, j, _ = c.call("POST", "/v1/nodes/nothex/activate", {}, token=None)
	assert s == 404, (s, j)
	print(n + 6)
	PYEOF
)
[ "${out:-0}" -ge 18 ] 2>/dev/null && pass "responses_match_api_yaml ($out responses checked; ek_pub refused, garbage activations 4xx)" ||
	fail "responses_match_api_yaml: $out"

# counted, and never a secret in a log
m=$(curl -s "http://127.0.0.1:$P_MET/metrics")
ok=1
for r in ek_chain ak_attributes wrong_secret quote no_challenge attestation_required; do
	echo "$m" | grep -q "^veil_controller_node_refused_total{reason=\"$r\"} [1-9]" || ok=0
done
echo "$m" | grep -q '^veil_controller_nodes_attested_total 2$' || ok=0
[ $ok = 1 ] && pass "refusals_counted_by_reason" || fail "refusals_counted_by_reason: $(echo "$m" | grep node_)"
leak=0
for k in "$K1" "$K2"; do grep -qF -- "$k" "$T/ctl.log" "$T/reg.err" "$T/reg.out" && leak=1; done
grep -qE 'secret=|credential=' "$T/ctl.log" && leak=1
[ $leak = 0 ] && pass "no_regkey_or_credential_in_logs" || fail "no_regkey_or_credential_in_logs"
kill -0 "${PID[ctl]}" 2>/dev/null && pass "controller_alive_after_bad_input" || fail "controller_alive_after_bad_input"
exit 0
