// SPDX-License-Identifier: Apache-2.0
/*
 * veil-registry order: the key part of building a VM's disk.
 *
 *   veil-registry order --vm ID --t T --validators ADDR:PORT,... --ca FILE
 *                       --key REGISTRY_KEY --ak-pub FILE --disk PATH [--disk-mb N]
 *                       --measure cmdline=P --measure initrd=P [--measure kernel=P --measure config=P]
 *                       [--pcr 0=HEX --pcr 7=HEX] [--pcr9-event HEX ...] [--epoch N]
 *
 * Generates the disk key, formats PATH as a LUKS2 container with it
 * (cryptsetup on the file, key through a pipe, no shell), splits the key into
 * one share per validator (t >= 2 rebuild it), signs every share, and
 * registers each with its validator together with the signed reference
 * document of protocol v2 (docs/attestation.md): expected PCR 0 and 7 (from a
 * reference boot; zero by default), every EFI-stub event of PCR 9 (command
 * line digest sha256(UTF-16LE(cmdline + " initrd=initrd") + 00 00) and
 * sha256(initrd), computed from the files unless --pcr9-event lists them),
 * the VM's AK, t, n, the key epoch (default: now, in seconds; validators
 * refuse an epoch not newer than theirs) and a commitment to the key.
 * kernel= and config= are accepted and not part of the policy (PCR 4 is not
 * quoted).  The key only travels through a pipe to cryptsetup and is wiped;
 * it is never written anywhere.  Exit: 0 done, 1 failed (said so), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "keys/attest.h"
#include "keys/shamir.h"

extern char **environ;

static int rnd(uint8_t *b, size_t n)
{
	return RAND_priv_bytes(b, n) == 1 ? 0 : -1;
}

/* Runs argv with data on its stdin (no shell: nothing is formatted into a
 * command line); returns its exit status, or -1. */
static int run_with_stdin(char *const argv[], const uint8_t *data, size_t len)
{
	int p[2], st = -1;
	pid_t pid;
	posix_spawn_file_actions_t fa;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (rc) {
		close(p[1]);
		return -1;
	}
	int ok = write(p[1], data, len) == (ssize_t)len;
	close(p[1]);
	if (waitpid(pid, &st, 0) < 0 || !ok)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The reference document (JSON bytes, signed as they are). */
static char *make_refs(const char *vm, uint64_t epoch, int t, int n, const char *pcr0, const char *pcr7,
		       char pcr9[][65], int npcr9, const uint8_t commit[32], const char *akpem)
{
	char hx[65];
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "v", json_object_new_int(2));
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "epoch", json_object_new_int64((int64_t)epoch));
	json_object_object_add(o, "t", json_object_new_int(t));
	json_object_object_add(o, "n", json_object_new_int(n));
	json_object_object_add(o, "pcr0", json_object_new_string(pcr0));
	json_object_object_add(o, "pcr7", json_object_new_string(pcr7));
	for (int i = 0; i < npcr9; i++)
		json_object_array_add(a, json_object_new_string(pcr9[i]));
	json_object_object_add(o, "pcr9", a);
	vm_hex(commit, 32, hx);
	json_object_object_add(o, "commit", json_object_new_string(hx));
	json_object_object_add(o, "ak_pub", json_object_new_string(akpem));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

static int sign_b64(EVP_PKEY *key, const char *data, char *out, size_t cap)
{
	uint8_t sig[64];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(md, sig, &sl, (const uint8_t *)data, strlen(data)) == 1;
	EVP_MD_CTX_free(md);
	return ok && vm_b64_encode(sig, sl, out, cap) > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' }, { "t", required_argument, NULL, 't' },
		{ "validators", required_argument, NULL, 'V' }, { "ca", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' }, { "ak-pub", required_argument, NULL, 'a' },
		{ "disk", required_argument, NULL, 'd' }, { "disk-mb", required_argument, NULL, 's' },
		{ "measure", required_argument, NULL, 'm' }, { "pcr", required_argument, NULL, 'p' },
		{ "pcr9-event", required_argument, NULL, 'P' }, { "epoch", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	static const char *names[] = VM_REF_NAMES;
	const char *vm = NULL, *vals = NULL, *ca = NULL, *keyf = NULL, *akf = NULL, *disk = NULL;
	const char *measure[VM_REF_COUNT] = { 0 };
	char pcrhex[24][65] = { { 0 } }, pcr9[VM_PCR9_MAX][65];
	int t = 0, mb = 32, o, npcr9 = 0;
	uint64_t epoch = (uint64_t)time(NULL);

	if (argc < 2 || strcmp(argv[1], "order")) {
		fprintf(stderr, "usage: veil-registry order --vm ID --t T --validators A:P,... --ca F --key F --ak-pub F "
				"--disk PATH --measure cmdline=PATH --measure initrd=PATH [--pcr 0=HEX --pcr 7=HEX] "
				"[--pcr9-event HEX ...] [--epoch N] (see controlplane/veil-registry.c)\n");
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
				return fprintf(stderr, "veil-registry: --measure takes cmdline=, initrd=, kernel= or config=PATH\n"), 2;
			break;
		}
		case 'p': {
			int n = atoi(optarg);
			const char *eq = strchr(optarg, '=');
			uint8_t d[32];
			if (!eq || n < 0 || n > 23 || n == VM_MEASURE_PCR || vm_unhex(eq + 1, d, 32))
				return fprintf(stderr, "veil-registry: --pcr takes N=64 hex digits (N 0 or 7)\n"), 2;
			snprintf(pcrhex[n], 65, "%s", eq + 1);
			break;
		}
		case 'P': {
			uint8_t d[32];
			if (npcr9 >= VM_PCR9_MAX || vm_unhex(optarg, d, 32))
				return fprintf(stderr, "veil-registry: --pcr9-event takes 64 hex digits (at most %d)\n",
					       VM_PCR9_MAX), 2;
			snprintf(pcr9[npcr9++], 65, "%s", optarg);
			break;
		}
		case 'e': {
			char *end;
			epoch = strtoull(optarg, &end, 10);
			if (*end || !epoch || epoch > (1ull << 62))
				return fprintf(stderr, "veil-registry: --epoch takes a positive integer\n"), 2;
			break;
		}
		default:
			return 2;
		}
	}
	if (!npcr9 && (!measure[1] || !measure[2]))
		return fprintf(stderr, "veil-registry: --measure cmdline=PATH and --measure initrd=PATH (or --pcr9-event) "
				       "are required\n"), 2;
	if (!vm || !vals || !ca || !keyf || !akf || !disk || mb < 16)
		return fprintf(stderr, "veil-registry: --vm, --t, --validators, --ca, --key, --ak-pub and --disk are required\n"), 2;
	if (t < 2)
		return fprintf(stderr, "veil-registry: t = %d: at least 2 (one holder alone must never suffice)\n", t), 2;

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
	char akpem[1000] = "";
	size_t al = af ? fread(akpem, 1, sizeof(akpem) - 1, af) : 0;
	if (af)
		fclose(af);
	akpem[al] = 0;
	EVP_PKEY *akk = NULL;
	{
		BIO *b = al ? BIO_new_mem_buf(akpem, -1) : NULL;
		akk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	if (!akk)
		return fprintf(stderr, "veil-registry: %s: not a PEM public key\n", akf), 1;
	EVP_PKEY_free(akk);

	/* reference values: the EFI stub's PCR 9 events, computed offline */
	if (!npcr9) {
		uint8_t h[32];
		char cmdline[4096];
		FILE *cf = fopen(measure[2], "re");
		size_t cl = cf ? fread(cmdline, 1, sizeof(cmdline), cf) : 0;
		if (cf)
			fclose(cf);
		if (!cf || cl == sizeof(cmdline))
			return fprintf(stderr, "veil-registry: cannot read %s (or longer than 4 KiB)\n", measure[2]), 1;
		vm_cmdline_digest(cmdline, cl, h);
		vm_hex(h, 32, pcr9[npcr9++]);
		if (vm_sha256_file(measure[1], 0, h))
			return fprintf(stderr, "veil-registry: cannot read %s\n", measure[1]), 1;
		vm_hex(h, 32, pcr9[npcr9++]);
	}
	static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";
	const char *pcr0 = pcrhex[0][0] ? pcrhex[0] : zero, *pcr7 = pcrhex[7][0] ? pcrhex[7] : zero;

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
	char *cs_argv[] = { "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
			    "--pbkdf-force-iterations", "1000", "--key-file", "-", (char *)disk, NULL };
	if (run_with_stdin(cs_argv, key, sizeof(key)) != 0) {
		OPENSSL_cleanse(key, sizeof(key));
		unlink(disk);
		return fprintf(stderr, "veil-registry: cryptsetup luksFormat failed on %s\n", disk), 1;
	}

	/* the commitment the client checks the rebuilt key against; the signed document */
	uint8_t commit[32];
	char refs_sig[128];
	vm_key_commit(vm, epoch, key, sizeof(key), commit);
	char *refs = make_refs(vm, epoch, t, n, pcr0, pcr7, pcr9, npcr9, commit, akpem);
	if (!refs || sign_b64(reg, refs, refs_sig, sizeof(refs_sig))) {
		OPENSSL_cleanse(key, sizeof(key));
		return fprintf(stderr, "veil-registry: cannot sign the reference values\n"), 1;
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
		uint8_t wire[VM_SHARE_MAX];
		char w64[VM_SHARE_MAX * 2], s64[128], body[16384], hdr[200], resp[4096], why[256], host[64];
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
		json_object *jo = json_object_new_object();
		json_object_object_add(jo, "vm", json_object_new_string(vm));
		json_object_object_add(jo, "refs", json_object_new_string(refs));
		json_object_object_add(jo, "refs_sig", json_object_new_string(refs_sig));
		json_object_object_add(jo, "share", json_object_new_string(w64));
		snprintf(body, sizeof(body), "%s", json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PLAIN));
		json_object_put(jo);
		OPENSSL_cleanse(w64, sizeof(w64));
		int sok = !sign_b64(reg, body, s64, sizeof(s64));
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
	free(refs);
	if (failed)
		return fprintf(stderr, "veil-registry: order %s incomplete: re-run it (a new key and epoch replace the old "
				       "registrations)\n", vm), 1;
	printf("order %s: %s formatted (LUKS2), key split %d of %d (epoch %llu), registered with every validator; key "
	       "wiped\n", vm, disk, t, n, (unsigned long long)epoch);
	return 0;
}
