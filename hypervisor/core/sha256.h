#ifndef BM_SHA256_H
#define BM_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct bm_sha256 {
	uint32_t h[8];
	uint64_t total;
	uint8_t buf[64];
	size_t fill;
};

void bm_sha256_init(struct bm_sha256 *c);
void bm_sha256_update(struct bm_sha256 *c, const void *data, size_t n);
void bm_sha256_final(struct bm_sha256 *c, uint8_t out[32]);
void bm_sha256(const void *data, size_t n, uint8_t out[32]);

/* HMAC-SHA256 with a precomputed key schedule (inner/outer states). */
struct bm_hmac_key {
	struct bm_sha256 inner, outer;
};
void bm_hmac_key_init(struct bm_hmac_key *k, const uint8_t *key, size_t keylen);
void bm_hmac_begin(const struct bm_hmac_key *k, struct bm_sha256 *ctx);
void bm_hmac_end(const struct bm_hmac_key *k, struct bm_sha256 *ctx, uint8_t out[32]);
void bm_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t n, uint8_t out[32]);

/* Which block function runs (for reports): "sha-ni" or "portable". */
const char *bm_sha256_impl(void);
#endif
