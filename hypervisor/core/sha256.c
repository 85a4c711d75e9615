/* SHA-256 (FIPS 180-4) and HMAC (RFC 2104), freestanding. On x86-64 with the
 * SHA extensions the block function uses them (checked once with CPUID). */
#include "sha256.h"
#include "bm_lib.h"

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks) {
	while (nblocks--) {
		uint32_t w[64];
		for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[i * 4] << 24 | (uint32_t)p[i * 4 + 1] << 16 | (uint32_t)p[i * 4 + 2] << 8 | p[i * 4 + 3];
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
		for (int i = 0; i < 64; i++) {
			uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
			uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
			hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
		}
		h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
		p += 64;
	}
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(BM_NO_SHANI)
#include <immintrin.h>
#include <cpuid.h>
/* The Intel SHA extensions sequence (as in Intel's white paper "Intel SHA
 * Extensions", 2013): four rounds per sha256rnds2 pair. */
__attribute__((target("sha,sse4.1"))) static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks) {
	const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i tmp = _mm_loadu_si128((const __m128i *)(const void *)&h[0]);
	__m128i st1 = _mm_loadu_si128((const __m128i *)(const void *)&h[4]);
	tmp = _mm_shuffle_epi32(tmp, 0xB1);
	st1 = _mm_shuffle_epi32(st1, 0x1B);
	__m128i st0 = _mm_alignr_epi8(tmp, st1, 8);
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);
	while (nblocks--) {
		__m128i a0 = st0, b0 = st1, msg, m0, m1, m2, m3;
		m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 0)), MASK);
		m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), MASK);
		m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), MASK);
		m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), MASK);
#define RND(mi, k)                                                                  \
	msg = _mm_add_epi32(mi, _mm_loadu_si128((const __m128i *)(const void *)&K[k])); \
	st1 = _mm_sha256rnds2_epu32(st1, st0, msg);                                     \
	msg = _mm_shuffle_epi32(msg, 0x0E);                                             \
	st0 = _mm_sha256rnds2_epu32(st0, st1, msg)
#define SCHED(ma, mb, mc, md) /* ma = next schedule from ma..md */            \
	ma = _mm_sha256msg1_epu32(ma, mb);                                        \
	ma = _mm_add_epi32(ma, _mm_alignr_epi8(md, mc, 4));                       \
	ma = _mm_sha256msg2_epu32(ma, md)
		RND(m0, 0); RND(m1, 4); RND(m2, 8); RND(m3, 12);
		for (int k = 16; k < 64; k += 16) {
			SCHED(m0, m1, m2, m3); RND(m0, k);
			SCHED(m1, m2, m3, m0); RND(m1, k + 4);
			SCHED(m2, m3, m0, m1); RND(m2, k + 8);
			SCHED(m3, m0, m1, m2); RND(m3, k + 12);
		}
#undef RND
#undef SCHED
		st0 = _mm_add_epi32(st0, a0);
		st1 = _mm_add_epi32(st1, b0);
		p += 64;
	}
	tmp = _mm_shuffle_epi32(st0, 0x1B);
	st1 = _mm_shuffle_epi32(st1, 0xB1);
	st0 = _mm_blend_epi16(tmp, st1, 0xF0);
	st1 = _mm_alignr_epi8(st1, tmp, 8);
	_mm_storeu_si128((__m128i *)(void *)&h[0], st0);
	_mm_storeu_si128((__m128i *)(void *)&h[4], st1);
}

static int shani = -1;
static int have_shani(void) {
	if (shani < 0) {
		unsigned a, b, c, d;
		shani = 0;
		if (__get_cpuid_max(0, 0) >= 7) {
			__cpuid_count(7, 0, a, b, c, d);
			unsigned a1, b1, c1, d1;
			__cpuid(1, a1, b1, c1, d1);
			shani = ((b >> 29) & 1) && ((c1 >> 19) & 1) && ((c1 >> 9) & 1); /* SHA, SSE4.1, SSSE3 */
		}
	}
	return shani;
}
static void blocks(uint32_t h[8], const uint8_t *p, size_t n) {
	if (have_shani()) blocks_shani(h, p, n);
	else blocks_portable(h, p, n);
}
const char *bm_sha256_impl(void) { return have_shani() ? "sha-ni" : "portable"; }
#else
static void blocks(uint32_t h[8], const uint8_t *p, size_t n) { blocks_portable(h, p, n); }
const char *bm_sha256_impl(void) { return "portable"; }
#endif

void bm_sha256_init(struct bm_sha256 *c) {
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	for (int i = 0; i < 8; i++) c->h[i] = iv[i];
	c->total = 0;
	c->fill = 0;
}

void bm_sha256_update(struct bm_sha256 *c, const void *data, size_t n) {
	const uint8_t *p = (const uint8_t *)data;
	c->total += n;
	if (c->fill) {
		size_t t = 64 - c->fill;
		if (t > n) t = n;
		bm_memcpy(c->buf + c->fill, p, t);
		c->fill += t;
		p += t;
		n -= t;
		if (c->fill < 64) return;
		blocks(c->h, c->buf, 1);
		c->fill = 0;
	}
	if (n >= 64) {
		blocks(c->h, p, n / 64);
		p += n & ~(size_t)63;
		n &= 63;
	}
	if (n) {
		bm_memcpy(c->buf, p, n);
		c->fill = n;
	}
}

void bm_sha256_final(struct bm_sha256 *c, uint8_t out[32]) {
	uint64_t bits = c->total * 8;
	uint8_t pad[72];
	size_t padlen = (c->fill < 56) ? 56 - c->fill : 120 - c->fill;
	bm_memset(pad, 0, sizeof pad);
	pad[0] = 0x80;
	for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	uint64_t keep = c->total;
	bm_sha256_update(c, pad, padlen + 8);
	c->total = keep;
	for (int i = 0; i < 8; i++) {
		out[i * 4] = (uint8_t)(c->h[i] >> 24);
		out[i * 4 + 1] = (uint8_t)(c->h[i] >> 16);
		out[i * 4 + 2] = (uint8_t)(c->h[i] >> 8);
		out[i * 4 + 3] = (uint8_t)c->h[i];
	}
}

void bm_sha256(const void *data, size_t n, uint8_t out[32]) {
	struct bm_sha256 c;
	bm_sha256_init(&c);
	bm_sha256_update(&c, data, n);
	bm_sha256_final(&c, out);
}

void bm_hmac_key_init(struct bm_hmac_key *k, const uint8_t *key, size_t keylen) {
	uint8_t kb[64], pad[64];
	bm_memset(kb, 0, 64);
	if (keylen > 64) bm_sha256(key, keylen, kb);
	else bm_memcpy(kb, key, keylen);
	for (int i = 0; i < 64; i++) pad[i] = (uint8_t)(kb[i] ^ 0x36);
	bm_sha256_init(&k->inner);
	bm_sha256_update(&k->inner, pad, 64);
	for (int i = 0; i < 64; i++) pad[i] = (uint8_t)(kb[i] ^ 0x5c);
	bm_sha256_init(&k->outer);
	bm_sha256_update(&k->outer, pad, 64);
	bm_memset(kb, 0, 64);
}

void bm_hmac_begin(const struct bm_hmac_key *k, struct bm_sha256 *ctx) { *ctx = k->inner; }

void bm_hmac_end(const struct bm_hmac_key *k, struct bm_sha256 *ctx, uint8_t out[32]) {
	uint8_t ih[32];
	bm_sha256_final(ctx, ih);
	struct bm_sha256 o = k->outer;
	bm_sha256_update(&o, ih, 32);
	bm_sha256_final(&o, out);
}

void bm_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t n, uint8_t out[32]) {
	struct bm_hmac_key k;
	struct bm_sha256 c;
	bm_hmac_key_init(&k, key, keylen);
	bm_hmac_begin(&k, &c);
	bm_sha256_update(&c, data, n);
	bm_hmac_end(&k, &c, out);
}
