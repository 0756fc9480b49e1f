# The control plane's keys for tests/controller.sh and tests/nodereg.sh
# (sourced; run in the suite's scratch folder, umask 077): the controller's and
# the registry's Ed25519 signing keys, a TLS key + self-signed certificate for
# 127.0.0.1 (ca.pem, the clients' trust anchor) and an admin token.
ctl_keys() {
	openssl genpkey -algorithm ed25519 -out controller.pem 2>/dev/null
	openssl pkey -in controller.pem -pubout -out controller.pub.pem
	openssl genpkey -algorithm ed25519 -out registry.pem 2>/dev/null
	openssl pkey -in registry.pem -pubout -out registry.pub.pem
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out ca.pem -days 2 \
		-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
	openssl rand -hex 24 > admin.token
}
