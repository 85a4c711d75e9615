/*
 * Tiny freestanding helpers for the core: no libc. The core calls only these
 * (and the HAL); the compiler may still emit calls to memcpy/memset/memmove/
 * memcmp for struct copies, which every environment (libc, BitVisor's core)
 * provides.
 */
#ifndef BM_LIB_H
#define BM_LIB_H
#include <stddef.h>
#include <stdint.h>

static inline void bm_memcpy(void *dst, const void *src, size_t n) {
	uint8_t *d = (uint8_t *)dst;
	const uint8_t *s = (const uint8_t *)src;
	while (n >= 8) {
		uint64_t v;
		__builtin_memcpy(&v, s, 8);
		__builtin_memcpy(d, &v, 8);
		d += 8; s += 8; n -= 8;
	}
	while (n--) *d++ = *s++;
}

static inline void bm_memset(void *dst, int c, size_t n) {
	uint8_t *d = (uint8_t *)dst;
	while (n--) *d++ = (uint8_t)c;
}

static inline int bm_memcmp(const void *a, const void *b, size_t n) {
	const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
	return 0;
}

/* Constant-time equality (MACs). */
static inline int bm_ct_equal(const uint8_t *a, const uint8_t *b, size_t n) {
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++) d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}

static inline size_t bm_strlen(const char *s) {
	size_t n = 0;
	while (s[n]) n++;
	return n;
}

static inline int bm_is_zero(const uint8_t *p, size_t n) {
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		__builtin_memcpy(&v, p + i, 8);
		acc |= v;
		if (acc) return 0;
	}
	for (; i < n; i++) acc |= p[i];
	return acc == 0;
}

static inline void bm_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void bm_put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static inline void bm_put64(uint8_t *p, uint64_t v) { bm_put32(p, (uint32_t)v); bm_put32(p + 4, (uint32_t)(v >> 32)); }
static inline uint16_t bm_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t bm_get32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static inline uint64_t bm_get64(const uint8_t *p) { return (uint64_t)bm_get32(p) | ((uint64_t)bm_get32(p + 4) << 32); }

/* A bounded string builder for error messages. */
struct bm_str {
	char *buf;
	size_t cap, len;
};
void bm_str_init(struct bm_str *s, char *buf, size_t cap);
void bm_str_add(struct bm_str *s, const char *t);
void bm_str_addn(struct bm_str *s, const char *t, size_t n);
void bm_str_u64(struct bm_str *s, uint64_t v);
void bm_str_hex(struct bm_str *s, uint64_t v);

/* "aa:bb:cc:dd:ee:ff" → 6 bytes; 0 on success. */
int bm_parse_mac(const char *s, size_t n, uint8_t mac[6]);

#endif
