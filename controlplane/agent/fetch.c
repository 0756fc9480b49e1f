// SPDX-License-Identifier: Apache-2.0
/* VM images over HTTP(S) with libcurl, checked against their sha256 and
 * cached by it: cache_dir/<sha256>.  A download in progress is
 * cache_dir/<sha256>.part; a later run resumes it (HTTP range). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "vmm.h"

const char *ag_fetch_ca;

int ag_sha256_file(const char *path, char hex[65])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char buf[1 << 16], md[32];
	size_t n;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(c, buf, n);
	int bad = ferror(f);
	fclose(f);
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return bad ? -1 : 0;
}

static int progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	volatile int *stop = arg;
	return stop && *stop; /* non-zero aborts the transfer */
}

int ag_fetch(const char *url, const char *sha256, const char *cache_dir, char *path, size_t pathlen,
	     volatile int *stop, char *err, size_t errlen)
{
	char part[1024], got[65];
	struct stat st;

	snprintf(path, pathlen, "%s/%s", cache_dir, sha256);
	if (!stat(path, &st))
		return 0; /* cached: it was checked when it was stored */
	mkdir(cache_dir, 0700);
	snprintf(part, sizeof(part), "%s.part", path);
	FILE *f = fopen(part, "ab");
	if (!f) {
		snprintf(err, errlen, "%s: %s", part, strerror(errno));
		return -1;
	}
	long have = ftell(f);
	CURL *c = curl_easy_init();
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (ag_fetch_ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ag_fetch_ca);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop);
	if (have > 0)
		curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (fclose(f) && rc == CURLE_OK) {
		snprintf(err, errlen, "%s: %s", part, strerror(errno));
		return -1;
	}
	if (rc == CURLE_RANGE_ERROR || (have > 0 && code == 200)) {
		/* the server ignored the range: what we have is not a prefix */
		unlink(part);
		snprintf(err, errlen, "%s: server cannot resume; starting over", url);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
		return -1; /* the .part stays: the next try resumes */
	}
	if (ag_sha256_file(part, got) || strcmp(got, sha256)) {
		unlink(part);
		snprintf(err, errlen, "%s: sha256 %s, the order says %s", url, got, sha256);
		return -1;
	}
	if (rename(part, path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
