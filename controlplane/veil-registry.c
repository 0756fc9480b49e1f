// SPDX-License-Identifier: Apache-2.0
/*
 * veil-registry order: the key part of building a VM's disk.
 *
 *   veil-registry order --vm ID --t T --validators ADDR:PORT,... --ca FILE
 *                       --key REGISTRY_KEY --ak-pub FILE --disk PATH [--disk-mb N]
 *                       --measure kernel=P --measure initrd=P --measure cmdline=P --measure config=P
 *                       [--pcr N=HEX ...]
 *
 * Generates the disk key, formats PATH as a LUKS2 container with it
 * (cryptsetup on the file: no device-mapper needed), splits the key into one
 * share per validator (t rebuild it), signs every share and registers it with
 * its validator together with the VM's reference values (hashes of kernel,
 * initrd, command line and config; expected PCRs; the VM's attestation key),
 * each registration signed with the registry's key over TLS 1.3.  The key
 * only ever travels through a pipe to cryptsetup and is wiped; it is never
 * written anywhere.  Exit: 0 done, 1 failed (nothing is left half-registered
 * without saying so), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "keys/attest.h"
#include "keys/shamir.h"

static int rnd(uint8_t *b, size_t n)
{
	return RAND_priv_bytes(b, n) == 1 ? 0 : -1;
}


int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' }, { "t", required_argument, NULL, 't' },
		{ "validators", required_argument, NULL, 'V' }, { "ca", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' }, { "ak-pub", required_argument, NULL, 'a' },
		{ "disk", required_argument, NULL, 'd' }, { "disk-mb", required_argument, NULL, 's' },
		{ "measure", required_argument, NULL, 'm' }, { "pcr", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	static const char *names[] = VM_REF_NAMES;
	const char *vm = NULL, *vals = NULL, *ca = NULL, *keyf = NULL, *akf = NULL, *disk = NULL;
	const char *measure[VM_REF_COUNT] = { 0 };
	char pcrhex[24][65] = { { 0 } };
	int t = 0, mb = 32, o;

	if (argc < 2 || strcmp(argv[1], "order")) {
		fprintf(stderr, "usage: veil-registry order --vm ID --t T --validators A:P,... --ca F --key F --ak-pub F "
				"--disk PATH --measure NAME=PATH ... (see controlplane/veil-registry.c)\n");
		return 2;
	}
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'v': vm = optarg; break;
		case 't': t = atoi(optarg); break;
		case 'V': vals = optarg; break;
		case 'c': ca = optarg; break;
		case 'k': keyf = optarg; break;
		case 'a': akf = optarg; break;
		case 'd': disk = optarg; break;
		case 's': mb = atoi(optarg); break;
		case 'm': {
			const char *eq = strchr(optarg, '=');
			int done = 0;
			for (int i = 0; eq && i < VM_REF_COUNT; i++)
				if (strlen(names[i]) == (size_t)(eq - optarg) && !strncmp(optarg, names[i], eq - optarg)) {
					measure[i] = eq + 1;
					done = 1;
				}
			if (!done)
				return fprintf(stderr, "veil-registry: --measure takes kernel=, initrd=, cmdline= or config=PATH\n"), 2;
			break;
		}
		case 'p': {
			int n = atoi(optarg);
			const char *eq = strchr(optarg, '=');
			if (!eq || n < 0 || n > 23 || n == VM_MEASURE_PCR || strlen(eq + 1) != 64)
				return fprintf(stderr, "veil-registry: --pcr takes N=64 hex digits (N 0..23, not %d)\n", VM_MEASURE_PCR), 2;
			snprintf(pcrhex[n], 65, "%s", eq + 1);
			break;
		}
		default:
			return 2;
		}
	}
	for (int i = 0; i < VM_REF_COUNT - 1; i++)
		if (!measure[i])
			return fprintf(stderr, "veil-registry: --measure %s=PATH is required\n", names[i]), 2;
	if (!vm || !vals || !ca || !keyf || !akf || !disk || t < 1 || mb < 16)
		return fprintf(stderr, "veil-registry: --vm, --t, --validators, --ca, --key, --ak-pub and --disk are required\n"), 2;

	char vcopy[1024], *save, *addrs[32];
	int n = 0;
	snprintf(vcopy, sizeof(vcopy), "%s", vals);
	for (char *s = strtok_r(vcopy, ",", &save); s && n < 32; s = strtok_r(NULL, ",", &save))
		addrs[n++] = s;
	if (t > n)
		return fprintf(stderr, "veil-registry: t = %d but only %d validators\n", t, n), 2;
	EVP_PKEY *reg = vm_load_priv(keyf);
	if (!reg)
		return fprintf(stderr, "veil-registry: cannot read %s\n", keyf), 1;
	FILE *af = fopen(akf, "re");
	char akpem[4096] = "";
	size_t al = af ? fread(akpem, 1, sizeof(akpem) - 1, af) : 0;
	if (af)
		fclose(af);
	akpem[al] = 0;
	if (!al)
		return fprintf(stderr, "veil-registry: cannot read %s\n", akf), 1;

	/* reference values */
	char hx[VM_REF_COUNT][65];
	for (int i = 0; i < VM_REF_COUNT - 1; i++) {
		uint8_t h[32];
		if (vm_sha256_file(measure[i], 0, h))
			return fprintf(stderr, "veil-registry: cannot read %s\n", measure[i]), 1;
		vm_hex(h, 32, hx[i]);
	}

	/* the key, the container */
	uint8_t key[32];
	if (RAND_priv_bytes(key, sizeof(key)) != 1)
		return fprintf(stderr, "veil-registry: no randomness\n"), 1;
	FILE *df = fopen(disk, "we");
	if (!df || ftruncate(fileno(df), (off_t)mb << 20)) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: %s: %s\n", disk, strerror(errno)), 1;
	}
	fclose(df);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 "
		 "--pbkdf-force-iterations 1000 --key-file - '%s' 2>&1", disk);
	FILE *cs = popen(cmd, "w");
	int ok = cs && fwrite(key, 1, sizeof(key), cs) == sizeof(key);
	ok &= cs && pclose(cs) == 0;
	if (!ok) {
		OPENSSL_cleanse(key, sizeof(key));
		unlink(disk);
		return fprintf(stderr, "veil-registry: cryptsetup luksFormat failed on %s\n", disk), 1;
	}

	/* the disk's header region is a reference too: a swapped disk is refused */
	{
		uint8_t h[32];
		if (vm_sha256_file(disk, VM_DISK_HEADER_BYTES, h)) {
			OPENSSL_cleanse(key, sizeof(key));
			return fprintf(stderr, "veil-registry: cannot hash the header of %s\n", disk), 1;
		}
		vm_hex(h, 32, hx[4]);
	}

	/* shares, one a validator */
	struct vm_share sh[32];
	if (vm_shamir_split(key, sizeof(key), t, n, rnd, sh)) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: split failed\n"), 1;
	}
	OPENSSL_cleanse(key, sizeof(key));
	int failed = 0;
	for (int i = 0; i < n; i++) {
		uint8_t wire[VM_SHARE_MAX], bsig[64];
		char w64[VM_SHARE_MAX * 2], s64[128], body[16384], hdr[200], resp[4096], why[256], host[64];
		size_t bl = sizeof(bsig);
		snprintf(sh[i].vmid, sizeof(sh[i].vmid), "%s", vm);
		sh[i].vmid_len = strlen(vm);
		int wl = vm_share_sign(&sh[i], reg) ? -1 : vm_share_encode(&sh[i], wire, sizeof(wire));
		vm_share_wipe(&sh[i]);
		if (wl < 0) {
			failed = 1;
			break;
		}
		vm_b64_encode(wire, wl, w64, sizeof(w64));
		OPENSSL_cleanse(wire, sizeof(wire));
		FILE *m = fmemopen(body, sizeof(body), "w");
		fprintf(m, "{\"vm\":\"%s\",\"share\":\"%s\",\"refs\":{\"kernel\":\"%s\",\"initrd\":\"%s\",\"cmdline\":\"%s\","
			   "\"config\":\"%s\",\"disk\":\"%s\"},\"pcrs\":{", vm, w64, hx[0], hx[1], hx[2], hx[3], hx[4]);
		int first = 1;
		for (int p = 0; p < 24; p++) {
			if (!(VM_PCR_MASK & (1u << p)) || p == VM_MEASURE_PCR)
				continue;
			fprintf(m, "%s\"%d\":\"%s\"", first ? "" : ",", p,
				pcrhex[p][0] ? pcrhex[p] : "0000000000000000000000000000000000000000000000000000000000000000");
			first = 0;
		}
		fputs("},\"ak_pub\":", m);
		fputc('"', m);
		for (char *c = akpem; *c; c++)
			fputs(*c == '\n' ? "\\n" : (char[]){ *c, 0 }, m);
		fputs("\"}", m);
		fputc(0, m);
		fclose(m);
		OPENSSL_cleanse(w64, sizeof(w64));
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int sok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, reg) == 1 &&
			  EVP_DigestSign(md, bsig, &bl, (uint8_t *)body, strlen(body)) == 1;
		EVP_MD_CTX_free(md);
		vm_b64_encode(bsig, bl, s64, sizeof(s64));
		snprintf(hdr, sizeof(hdr), "X-Veil-Signature: %s\r\n", s64);
		const char *c = strrchr(addrs[i], ':');
		snprintf(host, sizeof(host), "%.*s", (int)(c ? c - addrs[i] : 0), addrs[i]);
		int st = sok && c ? vm_https_post(host, atoi(c + 1), ca, "/v1/register", body, hdr, resp, sizeof(resp), why,
						  sizeof(why)) : -1;
		OPENSSL_cleanse(body, sizeof(body));
		if (st != 200) {
			fprintf(stderr, "veil-registry: %s: registration failed: %s\n", addrs[i], st < 0 ? why : resp);
			failed = 1;
		}
	}
	for (int i = 0; i < n; i++)
		vm_share_wipe(&sh[i]);
	if (failed)
		return fprintf(stderr, "veil-registry: order %s incomplete: re-run it (a new key replaces the old "
				       "registrations)\n", vm), 1;
	printf("order %s: %s formatted (LUKS2), key split %d of %d, registered with every validator; key wiped\n", vm,
	       disk, t, n);
	return 0;
}
