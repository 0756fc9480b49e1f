#!/usr/bin/env bash
# veil-registry worker fed from the cluster store (docs/launch.md, docs/store.md):
# a real nats-server and three validators in a namespace; the controller's
# signed build order in bucket builds; the worker builds the encrypted disk
# (LUKS2, argon2id pinned, with the user's hostname, SSH key and user-data
# inside), the initrd and the signed references with the existing `order`
# and `refs` code, registers the key shares with every validator, serves the
# files over HTTPS and writes a signed buildstatus with URLs and sha256s, and
# the catalog entry of the image it builds.  Forged and replayed orders are
# refused and counted; an order it cannot build fails with its reason.
# No VM boots here (tests/launch.sh boots what this builds, by hand).
# Prints PASS/FAIL lines; removes everything it made.
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-$PWD/build}
BUILD=$(cd "$BUILD" && pwd)
NS=vmreg-$$
W=$(mktemp -d /tmp/vmreg-XXXXXX)
IP=198.18.15.1
PORT=$((20000 + $$ % 10000))
URL="nats://$IP:$PORT"
KVER=${VEIL_KVER:-$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')}
PIDS=()
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# what runs in the namespace (started through the inns function, so not
	# in PIDS as itself): nats-server, the worker, serve, validators
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for c in nats-server cryptsetup mke2fs cpio zstd jq curl openssl; do
	command -v "$c" >/dev/null || { fail registry_setup "$c is missing (tools/deps.sh test)"; exit 1; }
done
[ -e "/boot/vmlinuz-$KVER" ] && [ -d "/lib/modules/$KVER" ] || { fail registry_setup "no kernel $KVER (linux-image-amd64)"; exit 1; }
inns() { nsenter --net="/run/netns/$NS" "$@"; }
sp() { inns "$BUILD/tests/store_put" "$URL" "$@"; }

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$IP/32" dev lo

# ---- keys: controller, registry, someone else; the validators' CA; the registry's VM CA
cd "$W" || exit 1
umask 077
for k in ctl reg evil; do
	openssl genpkey -algorithm ed25519 -out $k.key 2>/dev/null && openssl pkey -in $k.key -pubout -out $k.pub 2>/dev/null
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=test validators CA" \
	-keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=test VM CA" \
	-keyout vmca.key -out vmca.pem 2>/dev/null
tlscert() { # name -> name.crt/name.tls.key for $IP
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" -keyout "$1.tls.key" -out "$1.csr" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile <(echo "subjectAltName=IP:$IP") -out "$1.crt" 2>/dev/null
}
# a stand-in AK (the VM's vTPM is provisioned by the node; no VM boots here)
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out ak.key 2>/dev/null
openssl pkey -in ak.key -pubout -out ak.pub 2>/dev/null
# and a stand-in EK certificate (RSA-2048, as swtpm's) from a stand-in TPM vendor (the
# validators need their vendor CA; the node manufactures the real EK, tests/launch.sh)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test TPM vendor" -keyout vendor.key -out vendor.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=test EK" -keyout ek.key -out ek.csr 2>/dev/null
openssl x509 -req -in ek.csr -CA vendor.pem -CAkey vendor.key -CAcreateserial -days 2 -out ek.pem 2>/dev/null
for i in 1 2 3; do
	tlscert v$i
	openssl genpkey -algorithm ed25519 -out v$i.sign.key 2>/dev/null
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > v$i.storage
	mkdir -p state-v$i
	printf 'id v%s\nlisten %s:%s\ncert %s/v%s.crt\nkey %s/v%s.tls.key\nsigning_key %s/v%s.sign.key\nstorage_key_file %s/v%s.storage\nstate_dir %s/state-v%s\nregistry_pub %s/reg.pub\nek_ca %s/vendor.pem\nworkers 1\n' \
		$i $IP $((8460 + i)) "$W" $i "$W" $i "$W" $i "$W" $i "$W" $i "$W" "$W" > v$i.conf
done
tlscert serve
umask 022
cd "$REPO" || exit 1
for i in 1 2 3; do
	ip netns exec "$NS" "$BUILD/veil-validator" -c "$W/v$i.conf" 2>>"$W/v$i.log" &
	PIDS+=($!)
done
inns nats-server -js -sd "$W/nats" -a "$IP" -p "$PORT" >"$W/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do sp keys builds >/dev/null 2>&1 && break; sleep 0.1; done

cat > "$W/worker.conf" <<EOF
# veil-registry worker for tests/registry.sh
store $URL
controller_pub $W/ctl.pub
registry_key $W/reg.key
validators_ca $W/ca.pem
vm_ca_cert $W/vmca.pem
vm_ca_key $W/vmca.key
ak_pub $W/ak.pub
ek_cert $W/ek.pem
kernel /boot/vmlinuz-$KVER
kver $KVER
veil_attest $BUILD/veil-attest
images_dir $REPO/images
cmdline console=ttyS0 loglevel=4 panic=10
work_dir $W/work
publish_dir $W/pub
listen $IP:8470
tls_cert $W/serve.crt
tls_key $W/serve.tls.key
public_url https://$IP:8470
disk_mb 80
EOF
t=worker_config
printf 'store %s\nbogus 1\n' "$URL" > "$W/bad.conf"
o1=$("$BUILD/veil-registry" worker --config "$W/bad.conf" 2>&1); r1=$?
o2=$("$BUILD/veil-registry" worker --config "$W/worker.conf" --check 2>&1); r2=$?
[ $r1 = 2 ] && grep -q "bad.conf:2: unknown setting 'bogus'" <<<"$o1" && [ $r2 = 0 ] && pass "$t (file:line for a bad setting; --check ok)" ||
	fail $t "$r1 '$o1' / $r2 '$o2'"

inns "$BUILD/veil-registry" worker --config "$W/worker.conf" >>"$W/worker.log" 2>&1 &
WPID=$!
PIDS+=($WPID)
for _ in $(seq 100); do grep -q "event=started" "$W/worker.log" && break; sleep 0.1; done
t=catalog_entry
cat_body=$(sp open catalog nginx.1 "$W/reg.pub" 2>/dev/null)
jq -e '.name == "nginx" and .version == "1" and (.sha256 | length) == 64 and .maintainer != null' <<<"$cat_body" >/dev/null 2>&1 &&
	pass "$t (catalog/nginx.1 signed by the registry: $(jq -c '{name, version, kernel}' <<<"$cat_body"))" || fail $t "'$cat_body' $(tail -3 "$W/worker.log")"

VALS="\"$IP:8461\",\"$IP:8462\",\"$IP:8463\""
SSHKEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMarker7f3aSSHkeyForTheTestOnly0000000000000 user@example"
build_body() { # vm_id gen [image] [t]
	jq -cn --arg vm "$1" --argjson gen "$2" --arg img "${3:-nginx@1}" --argjson t "${4:-2}" --arg key "$SSHKEY" \
		--argjson vals "[$VALS]" \
		'{vm_id: $vm, order: ("ord-" + $vm), gen: $gen, image: $img, hostname: ($vm + ".veil.test"),
		  addr4: "198.18.50.2/24", gateway4: "198.18.50.1",
		  ssh_keys: [$key], user_data: "#!/bin/sh\necho user-data-marker-51c0 > /root/hello\n", validators: $vals, t: $t}'
}
bstatus() { sp open buildstatus "$1" "$W/reg.pub" 2>/dev/null; }
wait_state() { # vm states-regex seconds
	local end=$((SECONDS + $3)) s
	while [ $SECONDS -lt $end ]; do
		s=$(bstatus "$1" | jq -r .state 2>/dev/null)
		[[ "$s" =~ ^($2)$ ]] && return 0
		sleep 0.5
	done
	return 1
}

# ---- forged and garbled orders: refused, counted, nothing built
t=forged_build_refused
sp put builds evil1 "$W/evil.key" "$(build_body evil1 5)"
sp raw builds evil2 'not an envelope'
sleep 2
if grep -q "key=evil1 reason=signature" "$W/worker.log" && grep -q "key=evil2 reason=signature" "$W/worker.log" &&
	! bstatus evil1 >/dev/null && ! ls "$W/pub" | grep -q evil; then
	pass "$t (another key and not an envelope: counted, no build, no status)"
else
	fail $t "$(grep -E 'evil' "$W/worker.log" | tail -3)"
fi

# ---- the build
t=build_done
s0=$SECONDS
sp put builds web1 "$W/ctl.key" "$(build_body web1 10)"
sp get builds web1 > "$W/env-web1"
if wait_state web1 "done|failed" 240 && [ "$(bstatus web1 | jq -r .state)" = done ]; then
	pass "$t (building -> done in $((SECONDS - s0)) s: $(grep -o 'event=build_time.*' "$W/worker.log" | tail -1))"
else
	fail $t "$(bstatus web1) $(tail -5 "$W/worker.log")"; exit 1
fi
st=$(bstatus web1)
get() { inns curl -sf --tlsv1.3 --max-time 60 --cacert "$W/ca.pem" "$1" -o "$2"; }
t=files_served_by_digest
ok=1 why=""
for f in disk initrd kernel; do
	u=$(jq -r ".${f}_url" <<<"$st"); h=$(jq -r ".${f}_sha256" <<<"$st")
	if ! get "$u" "$W/got-$f" || [ "$(sha256sum "$W/got-$f" | cut -d' ' -f1)" != "$h" ] || [ "${u##*sha256:}" != "$h" ]; then
		ok=0 why="$why $f"
	fi
done
get "$(jq -r .refs_url <<<"$st")" "$W/got-refs.json" || { ok=0; why="$why refs"; }
[ $ok = 1 ] && cmp -s "$W/got-kernel" "/boot/vmlinuz-$KVER" && pass "$t (disk, initrd, kernel and refs over HTTPS, each sha256 as in the signed buildstatus)" ||
	fail $t "bad:$why"
t=refs_signed_and_match
get "https://$IP:8470/v1/manifest" "$W/manifest.json"
su=$(jq -r '.files[] | select(.name == "web1-refs.json.sig") | .url' "$W/manifest.json")
get "https://$IP:8470$su" "$W/got-refs.sig"
ih=$(sha256sum "$W/got-initrd" | cut -d' ' -f1)
if openssl pkeyutl -verify -pubin -inkey "$W/reg.pub" -rawin -in "$W/got-refs.json" -sigfile "$W/got-refs.sig" >/dev/null 2>&1 &&
	jq -e --arg ih "$ih" --arg c "$(jq -r .cmdline <<<"$st") veil.ip4=198.18.50.2/24,198.18.50.1" \
		'.initrd_sha256 == $ih and .cmdline == $c' "$W/got-refs.json" >/dev/null; then
	pass "$t (the registry's signature verifies; the served initrd's digest; the command line the agent will boot: the published one + veil.ip4)"
else
	fail $t "$(head -c 300 "$W/got-refs.json")"
fi
t=manifest_follows_publish_dir
printf 'published for a moment\n' > "$W/pub/gone-soon.txt"
get "https://$IP:8470/v1/manifest" "$W/m1.json"
rm -f "$W/pub/gone-soon.txt"
get "https://$IP:8470/v1/manifest" "$W/m2.json"
jq -e '[.files[].name] | index("gone-soon.txt") != null' "$W/m1.json" >/dev/null &&
	jq -e '[.files[].name] | index("gone-soon.txt") == null and index("web1-refs.json.sig") != null' "$W/m2.json" >/dev/null &&
	pass "$t (a file added to publish_dir is listed, and gone from the manifest once removed)" ||
	fail $t "$(jq -c '[.files[].name]' "$W/m1.json" "$W/m2.json" 2>&1 | head -c 300)"
t=disk_encrypted_with_provisioning_inside
dump=$(cryptsetup luksDump "$W/got-disk" 2>/dev/null)
if echo "$dump" | grep -q "^Version:.*2" && echo "$dump" | grep -q "PBKDF:.*argon2id" && echo "$dump" | grep -q "Memory:.*65536" &&
	! grep -aq "Marker7f3aSSHkey" "$W/got-disk" && ! grep -aq "user-data-marker-51c0" "$W/got-disk" &&
	! grep -aq "rootfs-marker-7f3a9c" "$W/got-disk" && ! grep -aq "web1.veil.test" "$W/got-disk"; then
	pass "$t (LUKS2 argon2id 64 MiB; grep -a finds neither the SSH key, the user-data, the hostname nor the page)"
else
	fail $t "$(echo "$dump" | head -5)"
fi
t=initrd_names_validators
# the VM's own files are in the uncompressed cpio after the zstd one (images/mkinitrd.sh)
list=$(python3 -c 'import re, sys
d = open(sys.argv[1], "rb").read()
m = [x.start() for x in re.finditer(rb"070701[0-9A-Fa-f]{104}etc\x00", d)]
sys.stdout.buffer.write(d[m[-1]:] if m else b"")' "$W/got-initrd" | cpio -i --to-stdout etc/veil/vm.conf 2>/dev/null)
grep -q "^VM=web1$" <<<"$list" && grep -q "^VALIDATORS=$IP:8461,$IP:8462,$IP:8463$" <<<"$list" && grep -q "^T=2$" <<<"$list" &&
	pass "$t" || fail $t "'$list'"
t=shares_registered
n=$(cat "$W"/v*.log | grep -c "event=register vm=web1 result=ok")
[ "$n" = 3 ] && pass "$t (every validator took its share of web1)" || fail $t "$n registrations: $(tail -2 "$W"/v1.log)"
t=plaintext_wiped
# the shared parts every build reuses (image_cache, default work_dir/cache) hold nothing of the order
# (no order's marker, name or vm.conf; no TLS key or certificate in the base tree)
cachehit=$( { find "$W/work/cache" -type f ! -name '*.zst' -exec cat {} +; for z in "$W"/work/cache/*.zst; do zstdcat "$z"; done; } 2>/dev/null |
	python3 -c 'import re, sys
d = sys.stdin.buffer.read()
for p in (rb"Marker7f3aSSHkey", rb"user-data-marker-51c0", rb"rootfs-marker-7f3a9c", rb"web1\.veil\.test", rb"VM=web1"):
    if re.search(p, d): print(p.decode())'; ls -A "$W"/work/cache/rootfs-base-*/etc/nginx/tls)
[ -z "$(ls -A "$W/work" 2>/dev/null | grep -v '\.log$' | grep -vx cache | grep -vx builds.gens)" ] && [ -d "$W/work/cache" ] && [ -z "$cachehit" ] &&
	pass "$t (nothing of the build left in the work folder; the shared cache holds nothing of the order)" ||
	fail $t "$(ls -R "$W/work" | head) cache: $cachehit"

# ---- replay; orders the registry cannot build
t=replayed_build_refused
sp raw builds web1 "$(cat "$W/env-web1")"
sleep 2
grep -q "key=web1 reason=replay" "$W/worker.log" && [ "$(grep -c 'event=build_queued vm=web1' "$W/worker.log")" = 1 ] &&
	pass "$t (the same envelope again: counted, not rebuilt)" || fail $t "$(grep web1 "$W/worker.log" | tail -3)"
t=unbuildable_orders_fail_with_reason
sp put builds web2 "$W/ctl.key" "$(build_body web2 11 windows@11)"
sp put builds web3 "$W/ctl.key" "$(build_body web3 12 nginx@1 1)"
if wait_state web2 failed 20 && wait_state web3 failed 20; then
	r2=$(bstatus web2 | jq -r .reason); r3=$(bstatus web3 | jq -r .reason)
	grep -q "not in this registry's catalog" <<<"$r2" && grep -q "t = 1" <<<"$r3" && pass "$t ('$r2'; '$r3')" || fail $t "'$r2' '$r3'"
else
	fail $t "$(bstatus web2) $(bstatus web3)"
fi
t=worker_stops_on_sigterm
# whichever of its threads the signal lands on (builders, the store's), it stops
wp=$(pgrep -f -x "$BUILD/veil-registry worker --config $W/worker.conf" | head -1)
[ -n "$wp" ] && kill -TERM "$wp"
for _ in $(seq 50); do [ -n "$wp" ] && kill -0 "$wp" 2>/dev/null || break; sleep 0.1; done
if [ -n "$wp" ] && ! kill -0 "$wp" 2>/dev/null && grep -q "event=stopped" "$W/worker.log"; then
	pass "$t (gone within 5 s, event=stopped logged)"
else
	fail $t "pid '${wp:-none}' still running or no event=stopped: $(tail -2 "$W/worker.log")"
fi
kill "$WPID" 2>/dev/null || true   # (gone already after worker_stops_on_sigterm)
