// SPDX-License-Identifier: Apache-2.0
/*
 * veil-ek: an EK certificate checked against the TPM vendor's CA, and
 * credentials made to it (controlplane/keys/ek.h), from the command line.
 *
 *   veil-ek id --ca VENDOR.pem [--crl VENDOR.crl] --cert EK.crt
 *       verifies the chain and prints the EK's id (sha256 of its
 *       SubjectPublicKeyInfo DER): the value the registry records per VM,
 *       and a node's id
 *   --crl: the vendor's CRLs (PEM); the certificate's issuer must have a
 *       current one, and a revoked certificate is refused
 *   veil-ek makecredential --ca VENDOR.pem --cert EK.crt --name HEX
 *                          --secret FILE --out FILE
 *       TPM2_MakeCredential of the secret (1..32 bytes) for the object with
 *       this name, to that EK; the output is tpm2-tools' credential file
 *       (tpm2_activatecredential -i reads it)
 *
 * Exit codes: 0 done, 1 refused (the reason on stderr), 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keys/attest.h"
#include "keys/ek.h"

/* DER or PEM certificate -> DER bytes */
static int read_cert(const char *path, uint8_t *der, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	int n = -1;
	if (x) {
		uint8_t *p = der;
		n = i2d_X509(x, NULL) <= (int)cap ? i2d_X509(x, &p) : -1;
		X509_free(x);
	} else {
		rewind(f);
		n = (int)fread(der, 1, cap, f);
	}
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "ca", required_argument, NULL, 'c' },
					      { "cert", required_argument, NULL, 'e' },
					      { "name", required_argument, NULL, 'n' },
					      { "secret", required_argument, NULL, 's' },
					      { "out", required_argument, NULL, 'o' },
					      { "crl", required_argument, NULL, 'r' }, { 0 } };
	const char *ca = NULL, *crl = NULL, *cert = NULL, *name = NULL, *secret = NULL, *out = NULL;
	int o;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: veil-ek id --ca VENDOR.pem [--crl VENDOR.crl] --cert EK.crt\n"
		       "       veil-ek makecredential --ca VENDOR.pem [--crl VENDOR.crl] --cert EK.crt --name HEX --secret F --out F\n"
		       "id: checks the EK certificate against the TPM vendor's CA (and CRLs) and prints the EK's id\n"
		       "(sha256 of its SubjectPublicKeyInfo); makecredential: TPM2_MakeCredential to that EK (tpm2-tools'\n"
		       "credential file). Exit codes: 0 done, 1 refused, 2 usage.\n");
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "id") && strcmp(argv[1], "makecredential"))) {
		fprintf(stderr, "usage: veil-ek id|makecredential --ca VENDOR.pem [--crl VENDOR.crl] --cert EK.crt [--name HEX --secret F --out F]\n");
		return 2;
	}
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c': ca = optarg; break;
		case 'e': cert = optarg; break;
		case 'n': name = optarg; break;
		case 's': secret = optarg; break;
		case 'o': out = optarg; break;
		case 'r': crl = optarg; break;
		default: return 2;
		}
	}
	int mk = !strcmp(argv[1], "makecredential");
	if (!ca || !cert || (mk && (!name || !secret || !out))) {
		fprintf(stderr, "veil-ek: --ca and --cert are required (makecredential: --name, --secret, --out too)\n");
		return 2;
	}
	char why[256];
	struct vm_ek_ca *vc = vm_ek_ca_load(ca, why, sizeof(why));
	if (!vc || (crl && vm_ek_ca_load_crl(vc, crl, why, sizeof(why))))
		return fprintf(stderr, "veil-ek: %s\n", why), 1;
	uint8_t der[VM_EK_CERT_MAX], id[32];
	int dl = read_cert(cert, der, sizeof(der));
	EVP_PKEY *ek = NULL;
	if (dl <= 0)
		return fprintf(stderr, "veil-ek: %s: cannot read the certificate\n", cert), 1;
	if (vm_ek_verify(vc, der, dl, &ek, id, why, sizeof(why)))
		return fprintf(stderr, "veil-ek: %s: %s\n", cert, why), 1;
	if (!mk) {
		char hx[65];
		vm_hex(id, 32, hx);
		printf("%s\n", hx);
		return 0;
	}
	uint8_t nm[66], cred[33], blob[256], sec[600];
	size_t nl = strlen(name) / 2, bl = 0, sl = 0;
	if (strlen(name) % 2 || nl < 2 || nl > sizeof(nm) || vm_unhex(name, nm, nl))
		return fprintf(stderr, "veil-ek: --name takes the object's name in hex (e.g. 000b + sha256)\n"), 2;
	FILE *f = fopen(secret, "re");
	size_t cl = f ? fread(cred, 1, sizeof(cred), f) : 0;
	if (f)
		fclose(f);
	if (cl < 1 || cl > 32)
		return fprintf(stderr, "veil-ek: %s: the secret must be 1..32 bytes\n", secret), 2;
	if (vm_make_credential(ek, nm, nl, cred, cl, blob, sizeof(blob), &bl, sec, sizeof(sec), &sl))
		return fprintf(stderr, "veil-ek: cannot make the credential\n"), 1;
	OPENSSL_cleanse(cred, sizeof(cred));
	static const uint8_t hdr[8] = { 0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1 };   /* tpm2-tools' magic, version 1 */
	f = fopen(out, "we");
	int ok = f && fwrite(hdr, 1, 8, f) == 8 && fwrite(blob, 1, bl, f) == bl && fwrite(sec, 1, sl, f) == sl;
	if (f)
		ok &= fclose(f) == 0;
	EVP_PKEY_free(ek);
	vm_ek_ca_free(vc);
	return ok ? 0 : (fprintf(stderr, "veil-ek: cannot write %s\n", out), 1);
}
