#include "msgpack.h"
#include "bm_lib.h"

void bm_mp_reader_init(struct bm_mp_reader *r, const uint8_t *buf, size_t len) {
	r->buf = buf;
	r->len = len;
	r->pos = 0;
	r->err = 0;
}

static int need(struct bm_mp_reader *r, size_t n) {
	if (r->err || r->len - r->pos < n) {
		r->err = 1;
		return -1;
	}
	return 0;
}

static uint64_t be(const uint8_t *p, int n) {
	uint64_t v = 0;
	for (int i = 0; i < n; i++) v = (v << 8) | p[i];
	return v;
}

static int take_be(struct bm_mp_reader *r, int n, uint64_t *out) {
	if (need(r, (size_t)n)) return -1;
	*out = be(r->buf + r->pos, n);
	r->pos += (size_t)n;
	return 0;
}

static int take_data(struct bm_mp_reader *r, struct bm_mp_val *v, uint64_t n) {
	if (r->err || n > r->len - r->pos) {
		r->err = 1;
		return -1;
	}
	v->p = r->buf + r->pos;
	v->u = n;
	r->pos += (size_t)n;
	return 0;
}

static void set_signed(struct bm_mp_val *v, int64_t x) {
	if (x < 0) {
		v->neg = 1;
		v->i = x;
		v->u = 0;
	} else {
		v->u = (uint64_t)x;
	}
}

static uint64_t f32_to_f64_bits(uint32_t f) {
	uint32_t sign = f >> 31, exp = (f >> 23) & 0xff, man = f & 0x7fffff;
	uint64_t s = (uint64_t)sign << 63;
	if (exp == 0xff) return s | (0x7ffULL << 52) | ((uint64_t)man << 29);
	if (exp == 0) {
		if (man == 0) return s;
		int e = -126; /* subnormal: normalise */
		while (!(man & 0x800000)) { man <<= 1; e--; }
		man &= 0x7fffff;
		return s | ((uint64_t)(e + 1023) << 52) | ((uint64_t)man << 29);
	}
	return s | ((uint64_t)(exp - 127 + 1023) << 52) | ((uint64_t)man << 29);
}

int bm_mp_read(struct bm_mp_reader *r, struct bm_mp_val *v) {
	uint64_t x;
	bm_memset(v, 0, sizeof *v);
	if (need(r, 1)) return -1;
	uint8_t b = r->buf[r->pos++];
	if (b <= 0x7f) { v->type = BM_MP_INT; v->u = b; return 0; }
	if (b >= 0xe0) { v->type = BM_MP_INT; set_signed(v, (int8_t)b); return 0; }
	if ((b & 0xf0) == 0x80) { v->type = BM_MP_MAP; v->u = b & 0x0f; return 0; }
	if ((b & 0xf0) == 0x90) { v->type = BM_MP_ARRAY; v->u = b & 0x0f; return 0; }
	if ((b & 0xe0) == 0xa0) { v->type = BM_MP_STR; return take_data(r, v, b & 0x1f); }
	switch (b) {
	case 0xc0: v->type = BM_MP_NIL; return 0;
	case 0xc2: v->type = BM_MP_BOOL; v->u = 0; return 0;
	case 0xc3: v->type = BM_MP_BOOL; v->u = 1; return 0;
	case 0xc4: case 0xc5: case 0xc6:
		v->type = BM_MP_BIN;
		if (take_be(r, 1 << (b - 0xc4), &x)) return -1;
		return take_data(r, v, x);
	case 0xd9: case 0xda: case 0xdb:
		v->type = BM_MP_STR;
		if (take_be(r, 1 << (b - 0xd9), &x)) return -1;
		return take_data(r, v, x);
	case 0xc7: case 0xc8: case 0xc9:
		v->type = BM_MP_EXT;
		if (take_be(r, 1 << (b - 0xc7), &x)) return -1;
		if (need(r, 1)) return -1;
		r->pos++;
		return take_data(r, v, x);
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		v->type = BM_MP_EXT;
		if (need(r, 1)) return -1;
		r->pos++;
		return take_data(r, v, (uint64_t)1 << (b - 0xd4));
	case 0xca:
		v->type = BM_MP_FLOAT;
		if (take_be(r, 4, &x)) return -1;
		v->fbits = f32_to_f64_bits((uint32_t)x);
		return 0;
	case 0xcb:
		v->type = BM_MP_FLOAT;
		return take_be(r, 8, &v->fbits);
	case 0xcc: case 0xcd: case 0xce:
		v->type = BM_MP_INT;
		return take_be(r, 1 << (b - 0xcc), &v->u);
	case 0xcf:
		v->type = BM_MP_BIGINT;
		return take_be(r, 8, &v->u);
	case 0xd0: v->type = BM_MP_INT; if (take_be(r, 1, &x)) return -1; set_signed(v, (int8_t)x); return 0;
	case 0xd1: v->type = BM_MP_INT; if (take_be(r, 2, &x)) return -1; set_signed(v, (int16_t)x); return 0;
	case 0xd2: v->type = BM_MP_INT; if (take_be(r, 4, &x)) return -1; set_signed(v, (int32_t)(uint32_t)x); return 0;
	case 0xd3: v->type = BM_MP_BIGINT; if (take_be(r, 8, &x)) return -1; set_signed(v, (int64_t)x); return 0;
	case 0xdc: case 0xdd:
		v->type = BM_MP_ARRAY;
		return take_be(r, b == 0xdc ? 2 : 4, &v->u);
	case 0xde: case 0xdf:
		v->type = BM_MP_MAP;
		return take_be(r, b == 0xde ? 2 : 4, &v->u);
	default: /* 0xc1 is never used */
		r->err = 1;
		return -1;
	}
}

/* Iterative skip with an explicit stack: depth-bounded, and every element
 * costs at least one input byte, so hostile counts end at the buffer's end. */
int bm_mp_skip(struct bm_mp_reader *r) {
	uint64_t left[BM_MP_MAX_DEPTH + 1];
	int depth = 0;
	left[0] = 1;
	while (depth >= 0) {
		if (left[depth] == 0) { depth--; continue; }
		left[depth]--;
		struct bm_mp_val v;
		if (bm_mp_read(r, &v)) return -1;
		if (v.type == BM_MP_ARRAY || v.type == BM_MP_MAP) {
			uint64_t n = v.type == BM_MP_MAP ? v.u * 2 : v.u;
			if (v.u > r->len - r->pos) { r->err = 1; return -1; }
			if (n == 0) continue;
			if (depth + 1 > BM_MP_MAX_DEPTH) { r->err = 1; return -1; }
			left[++depth] = n;
		}
	}
	return 0;
}

int bm_mp_check_one(const uint8_t *buf, size_t len) {
	struct bm_mp_reader r;
	bm_mp_reader_init(&r, buf, len);
	if (bm_mp_skip(&r)) return -1;
	return r.pos == len ? 0 : -1;
}

int bm_f64_to_int(uint64_t bits, int64_t *out) {
	int sign = (int)(bits >> 63);
	int exp = (int)((bits >> 52) & 0x7ff);
	uint64_t man = bits & ((1ULL << 52) - 1);
	if (exp == 0x7ff) return -1; /* inf, NaN */
	if (exp == 0) {
		if (man) return -1; /* subnormal: not an integer */
		*out = 0;
		return 0;
	}
	int e = exp - 1023;
	if (e < 0) return -1;
	if (e > 52) return -1; /* >= 2^53: not a safe integer */
	man |= 1ULL << 52;
	int sh = 52 - e;
	if (man & ((1ULL << sh) - 1)) return -1;
	uint64_t m = man >> sh;
	if (m > (1ULL << 53) - 1) return -1;
	*out = sign ? -(int64_t)m : (int64_t)m;
	return 0;
}

int bm_f64_scaled(uint64_t bits, uint32_t scale, uint64_t *out) {
	int exp = (int)((bits >> 52) & 0x7ff);
	uint64_t man = bits & ((1ULL << 52) - 1);
	if (exp == 0x7ff) return -1;
	if (bits >> 63) {
		if ((bits << 1) == 0) { *out = 0; return 0; } /* -0 */
		return -1;
	}
	if (exp == 0) { *out = 0; return 0; } /* zero or subnormal: truncates to 0 */
	int e = exp - 1023;
	man |= 1ULL << 52;
	if (e > 60) return -1;
	/* value*scale = man * scale * 2^(e-52); man*scale < 2^53 * 2^20 */
	if (scale > (1u << 10) * 1000) return -1;
	uint64_t ms = man * (uint64_t)scale; /* < 2^63 for scale <= 1024000 */
	if (e >= 52) {
		int sh = e - 52;
		if (sh >= 63 || ms > (UINT64_MAX >> sh)) return -1;
		*out = ms << sh;
	} else {
		int sh = 52 - e;
		*out = sh >= 64 ? 0 : ms >> sh;
	}
	return 0;
}

static int bitlen(uint64_t x) {
	int n = 0;
	while (x) { n++; x >>= 1; }
	return n;
}

uint64_t bm_f64_ratio(uint64_t num, uint32_t den) {
	if (num == 0 || den == 0) return 0;
	uint64_t q = num / den, rem = num % den;
	int s = 0; /* fractional bits taken */
	while (q > (1ULL << 53) - 1) { q >>= 1; s--; } /* (not reached for num < 2^62 and den >= 1 with 53-bit cap; kept exact enough) */
	while (bitlen(q) < 53 && s < 1100) {
		rem *= 2;
		q = q * 2 + (rem >= den);
		if (rem >= den) rem -= den;
		s++;
	}
	int e = bitlen(q) - 1 - s;
	return ((uint64_t)(e + 1023) << 52) | (q & ((1ULL << 52) - 1));
}

int bm_mp_number_int(const struct bm_mp_val *v, int64_t *out) {
	if (v->type == BM_MP_INT) {
		*out = v->neg ? v->i : (int64_t)v->u;
		return 0;
	}
	if (v->type == BM_MP_FLOAT) return bm_f64_to_int(v->fbits, out);
	return -1;
}

int bm_mp_is_number(const struct bm_mp_val *v) {
	if (v->type == BM_MP_INT) return 1;
	if (v->type == BM_MP_FLOAT) return ((v->fbits >> 52) & 0x7ff) != 0x7ff;
	return 0;
}

size_t bm_utf16_len(const uint8_t *p, size_t n) {
	size_t units = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
		if (i + k > n) k = 1;
		units += k == 4 ? 2 : 1;
		i += k;
	}
	return units;
}

int bm_mp_str_eq(const struct bm_mp_val *v, const char *s) {
	size_t n = bm_strlen(s);
	return v->type == BM_MP_STR && v->u == n && bm_memcmp(v->p, s, n) == 0;
}

/* ---- writer ---- */
void bm_mpw_init(struct bm_mp_writer *w, uint8_t *buf, size_t cap) {
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
}

static uint8_t *wr(struct bm_mp_writer *w, size_t n) {
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = 1;
		return 0;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

static void put_be(uint8_t *p, uint64_t v, int n) {
	for (int i = n - 1; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

static void hdr(struct bm_mp_writer *w, uint8_t tag, uint64_t v, int n) {
	uint8_t *p = wr(w, 1 + (size_t)n);
	if (!p) return;
	p[0] = tag;
	put_be(p + 1, v, n);
}

void bm_mpw_map(struct bm_mp_writer *w, uint32_t n) {
	if (n < 16) hdr(w, (uint8_t)(0x80 | n), 0, 0);
	else if (n < 65536) hdr(w, 0xde, n, 2);
	else hdr(w, 0xdf, n, 4);
}

void bm_mpw_object(struct bm_mp_writer *w, uint16_t n) { hdr(w, 0xde, n, 2); }

void bm_mpw_array(struct bm_mp_writer *w, uint32_t n) {
	if (n < 16) hdr(w, (uint8_t)(0x90 | n), 0, 0);
	else if (n < 65536) hdr(w, 0xdc, n, 2);
	else hdr(w, 0xdd, n, 4);
}

void bm_mpw_strn(struct bm_mp_writer *w, const char *s, size_t n) {
	if (n < 32) hdr(w, (uint8_t)(0xa0 | n), 0, 0);
	else if (n < 256) hdr(w, 0xd9, n, 1);
	else if (n < 65536) hdr(w, 0xda, n, 2);
	else hdr(w, 0xdb, n, 4);
	uint8_t *p = wr(w, n);
	if (p) bm_memcpy(p, s, n);
}

void bm_mpw_str(struct bm_mp_writer *w, const char *s) { bm_mpw_strn(w, s, bm_strlen(s)); }

uint8_t *bm_mpw_bin_reserve(struct bm_mp_writer *w, size_t n) {
	if (n < 256) hdr(w, 0xc4, n, 1);
	else if (n < 65536) hdr(w, 0xc5, n, 2);
	else hdr(w, 0xc6, n, 4);
	return wr(w, n);
}

void bm_mpw_bin(struct bm_mp_writer *w, const uint8_t *p, size_t n) {
	uint8_t *d = bm_mpw_bin_reserve(w, n);
	if (d && n) bm_memcpy(d, p, n);
}

void bm_mpw_uint(struct bm_mp_writer *w, uint64_t v) {
	if (v < 128) hdr(w, (uint8_t)v, 0, 0);
	else if (v < 256) hdr(w, 0xcc, v, 1);
	else if (v < 65536) hdr(w, 0xcd, v, 2);
	else if (v <= 0xffffffffULL) hdr(w, 0xce, v, 4);
	else bm_mpw_f64(w, bm_f64_ratio(v, 1)); /* as msgpackr does: numbers above 2^32 travel as float64 */
}

void bm_mpw_int(struct bm_mp_writer *w, int64_t v) {
	if (v >= 0) { bm_mpw_uint(w, (uint64_t)v); return; }
	if (v >= -32) hdr(w, (uint8_t)(int8_t)v, 0, 0);
	else if (v >= -128) hdr(w, 0xd0, (uint8_t)(int8_t)v, 1);
	else if (v >= -32768) hdr(w, 0xd1, (uint16_t)(int16_t)v, 2);
	else if (v >= -2147483647LL - 1) hdr(w, 0xd2, (uint32_t)(int32_t)v, 4);
	else bm_mpw_f64(w, bm_f64_ratio((uint64_t)-v, 1) | (1ULL << 63));
}

void bm_mpw_bigint(struct bm_mp_writer *w, uint64_t v) { hdr(w, v >> 63 ? 0xcf : 0xd3, v, 8); }
void bm_mpw_f64(struct bm_mp_writer *w, uint64_t bits) { hdr(w, 0xcb, bits, 8); }
void bm_mpw_bool(struct bm_mp_writer *w, int b) { hdr(w, b ? 0xc3 : 0xc2, 0, 0); }
void bm_mpw_nil(struct bm_mp_writer *w) { hdr(w, 0xc0, 0, 0); }
void bm_mpw_raw(struct bm_mp_writer *w, const uint8_t *p, size_t n) {
	uint8_t *d = wr(w, n);
	if (d && n) bm_memcpy(d, p, n);
}
