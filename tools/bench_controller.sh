#!/usr/bin/env bash
# Orders per second accepted by veil-controller's API (POST /v1/orders over
# TLS 1.3, keep-alive; each accepted order = an idempotency record, the order
# record and an audit event written to the store), with a private nats-server
# on loopback.  Load: wrk with a Lua script that sends every order with its own
# hostname and Idempotency-Key.  No nodes: the orders stay requested, so this
# measures the API and the store, not the driver.
#   tools/bench_controller.sh [SECONDS] [CONNECTIONS]
# Last line: {"orders_per_s":..,"p50_ms":..,"p99_ms":..,"accepted":..,"refused":..,"connections":..}
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECS=${1:-10}
CONN=${2:-8}
T=$(mktemp -d /tmp/veil-benchctl.$$.XXXX)
base=$((20000 + ($$ % 1000) * 8))   # below 32768
P_API=$base P_NATS=$((base + 1))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
umask 077
openssl genpkey -algorithm ed25519 -out "$T/ctl.pem" 2>/dev/null
openssl pkey -in "$T/ctl.pem" -pubout -out "$T/ctl.pub.pem"
openssl genpkey -algorithm ed25519 -out "$T/reg.pem" 2>/dev/null
openssl pkey -in "$T/reg.pem" -pubout -out "$T/reg.pub.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/tls.key" -out "$T/ca.pem" -days 1 \
	-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
openssl rand -hex 24 > "$T/admin.token"
cat > "$T/ctl.conf" <<CONF
listen 127.0.0.1:$P_API
cert $T/ca.pem
key $T/tls.key
store nats://127.0.0.1:$P_NATS
signing_key $T/ctl.pem
registry_pub $T/reg.pub.pem
admin_token_file $T/admin.token
schedule_timeout_s 86400
tick_ms 1000
validator 198.18.3.1:8443
validator 198.18.3.2:8443
CONF
mkdir -p "$T/js"
nats-server -js -sd "$T/js" -a 127.0.0.1 -p "$P_NATS" >"$T/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P_NATS) 2>/dev/null && break; sleep 0.1; done
"$BUILD/tests/ctl_agents" --store "nats://127.0.0.1:$P_NATS" --controller-pub "$T/ctl.pub.pem" --registry-key "$T/reg.pem" \
	--image nginx@1.25 >"$T/agents.log" 2>&1 &
pids+=($!)
"$BUILD/veil-controller" --config "$T/ctl.conf" 2>"$T/ctl.log" &
pids+=($!)
for _ in $(seq 100); do curl -s --cacert "$T/ca.pem" "https://127.0.0.1:$P_API/v1/health" | grep -q ok && break; sleep 0.1; done
admin=$(cat "$T/admin.token")
tok=$(curl -s --cacert "$T/ca.pem" -H "Authorization: Bearer $admin" -d '{"storefront":"bench","scopes":["order"],"rate":100000}' \
	"https://127.0.0.1:$P_API/v1/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for _ in $(seq 50); do curl -s --cacert "$T/ca.pem" -H "Authorization: Bearer $tok" "https://127.0.0.1:$P_API/v1/images" |
	grep -q nginx && break; sleep 0.1; done
cat > "$T/orders.lua" <<LUA
local n = 0
tid = 0
local nthreads = 0
function setup(thread) nthreads = nthreads + 1; thread:set("tid", nthreads) end
function request()
  n = n + 1
  local key = "b" .. tid .. "-" .. n
  local body = '{"image":"nginx@1.25","hostname":"' .. key .. '.bench.example.test"}'
  return wrk.format("POST", "/v1/orders", {["Authorization"] = "Bearer $tok", ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key}, body)
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\n", summary.requests, bad, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
wrk -t2 -c"$CONN" -d"${SECS}s" -s "$T/orders.lua" "https://127.0.0.1:$P_API" > "$T/wrk.out" 2>&1
read -r _ reqs bad secs p50 p99 < <(grep '^RESULT' "$T/wrk.out")
accepted=$(curl -s "https://127.0.0.1:$P_API/metrics" --cacert "$T/ca.pem" | awk '/^veil_controller_orders_created_total/ {print $2}')
cat "$T/wrk.out" >&2
python3 - "$accepted" "$bad" "$secs" "$p50" "$p99" "$CONN" <<'PY'
import json, sys
acc, bad, secs, p50, p99, conn = int(sys.argv[1] or 0), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(json.dumps({"orders_per_s": round(acc / secs, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "accepted": acc,
                  "refused": bad, "connections": conn, "seconds": round(secs, 1)}))
PY
