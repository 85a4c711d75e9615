#include <string.h>
#include "../core/sha256.h"
#include "check.h"

static void hex(const uint8_t *d, size_t n, char *out) {
	for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

int main(void) {
	uint8_t h[32];
	char s[65];
	bm_sha256("", 0, h); hex(h, 32, s);
	CHECK(!strcmp(s, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	bm_sha256("abc", 3, h); hex(h, 32, s);
	CHECK(!strcmp(s, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	bm_sha256(m2, strlen(m2), h); hex(h, 32, s);
	CHECK(!strcmp(s, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	/* one million 'a', fed in odd pieces */
	static uint8_t a[1000000];
	memset(a, 'a', sizeof a);
	struct bm_sha256 c;
	bm_sha256_init(&c);
	for (size_t off = 0; off < sizeof a;) { size_t n = (off * 7 + 13) % 1000 + 1; if (n > sizeof a - off) n = sizeof a - off; bm_sha256_update(&c, a + off, n); off += n; }
	bm_sha256_final(&c, h); hex(h, 32, s);
	CHECK(!strcmp(s, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
	/* RFC 4231 test cases 1, 2 and 6 */
	uint8_t k1[20]; memset(k1, 0x0b, 20);
	bm_hmac_sha256(k1, 20, "Hi There", 8, h); hex(h, 32, s);
	CHECK(!strcmp(s, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
	bm_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, h); hex(h, 32, s);
	CHECK(!strcmp(s, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
	uint8_t k6[131]; memset(k6, 0xaa, 131);
	const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	bm_hmac_sha256(k6, 131, m6, strlen(m6), h); hex(h, 32, s);
	CHECK(!strcmp(s, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
	printf("sha256 implementation: %s\n", bm_sha256_impl());
	DONE("test_crypto");
}
