// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the validator's evidence parser (TPMS_ATTEST and TPMT_SIGNATURE
 * unmarshalling, then the checks).  Input: 2 bytes of attest length, the
 * attest bytes, the signature bytes.  Nothing may crash; nothing random may
 * verify. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "keys/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *ak;
	static const uint8_t nonce[VM_NONCE_LEN] = { 1, 2, 3 };
	static const uint8_t digest[32] = { 4, 5, 6 };
	char why[256];
	struct vm_quote_info qi;

	if (!ak)
		ak = EVP_EC_gen("P-256");
	if (size < 2)
		return 0;
	size_t al = ((size_t)data[0] << 8) | data[1];
	if (al > size - 2)
		al = size - 2;
	if (vm_quote_verify(data + 2, al, data + 2 + al, size - 2 - al, ak, nonce, sizeof(nonce), digest, &qi, why,
			    sizeof(why)) == 0)
		abort();   /* a signature by a key nobody holds */
	return 0;
}
