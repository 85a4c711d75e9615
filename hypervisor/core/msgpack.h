/*
 * msgpack for the agent protocol: a cursor reader that never allocates and
 * checks every length against the bytes left, and a bounded writer.
 *
 * Types follow msgpackr as the coordinator configures it (no records,
 * int64AsType 'bigint'): int64/uint64 encodings (0xd3/0xcf) are "bigint",
 * every other integer and float32/64 is a "number". The schema checks rely on
 * that distinction (64-bit registers must be bigints, ids must be numbers).
 */
#ifndef BM_MSGPACK_H
#define BM_MSGPACK_H
#include <stddef.h>
#include <stdint.h>

enum bm_mp_type {
	BM_MP_NIL = 1,
	BM_MP_BOOL,
	BM_MP_INT,    /* a JS number holding an integer (fixint, u8..u32, i8..i32) */
	BM_MP_BIGINT, /* int64/uint64 encodings */
	BM_MP_FLOAT,  /* float32/float64: bits held as float64 */
	BM_MP_STR,
	BM_MP_BIN,
	BM_MP_ARRAY,
	BM_MP_MAP,
	BM_MP_EXT,
};

#define BM_MP_MAX_DEPTH 128

struct bm_mp_val {
	enum bm_mp_type type;
	int neg;          /* INT/BIGINT: value is negative (then i is valid) */
	uint64_t u;       /* INT/BIGINT non-negative value; BOOL; ARRAY/MAP count; STR/BIN length */
	int64_t i;        /* INT/BIGINT negative value */
	uint64_t fbits;   /* FLOAT: IEEE-754 binary64 bits */
	const uint8_t *p; /* STR/BIN/EXT data */
};

struct bm_mp_reader {
	const uint8_t *buf;
	size_t len, pos;
	int err;
};

void bm_mp_reader_init(struct bm_mp_reader *r, const uint8_t *buf, size_t len);
/* Reads one value header; STR/BIN/EXT payload is consumed (v->p points at it), ARRAY/MAP children follow. 0 ok, -1 error. */
int bm_mp_read(struct bm_mp_reader *r, struct bm_mp_val *v);
/* Skips one complete value (with children), depth-bounded. */
int bm_mp_skip(struct bm_mp_reader *r);
/* Checks that buf holds exactly one well-formed value and nothing after it. */
int bm_mp_check_one(const uint8_t *buf, size_t len);

/* Numbers: float64 bits to an integer if it is one (|v| <= 2^53-1, as zod's .int()). */
int bm_f64_to_int(uint64_t bits, int64_t *out);
/* Non-negative finite float64 times `scale` (10^k), truncated; -1 for NaN/inf/negative/too big. */
int bm_f64_scaled(uint64_t bits, uint32_t scale, uint64_t *out);
/* float64 bits of num/den (num < 2^62), truncated to 53 bits. */
uint64_t bm_f64_ratio(uint64_t num, uint32_t den);
/* Value as a JS "number" integer (INT, or integral FLOAT); 0 ok. */
int bm_mp_number_int(const struct bm_mp_val *v, int64_t *out);
/* A JS number (INT or FLOAT), finite; */
int bm_mp_is_number(const struct bm_mp_val *v);
/* UTF-16 length of a UTF-8 string as JS sees it. */
size_t bm_utf16_len(const uint8_t *p, size_t n);
int bm_mp_str_eq(const struct bm_mp_val *v, const char *s);

struct bm_mp_writer {
	uint8_t *buf;
	size_t cap, len;
	int overflow;
};
void bm_mpw_init(struct bm_mp_writer *w, uint8_t *buf, size_t cap);
void bm_mpw_map(struct bm_mp_writer *w, uint32_t n);
void bm_mpw_array(struct bm_mp_writer *w, uint32_t n);
/* A map header as msgpackr writes a JS object (always map16, 0xde): for replies
 * that must be byte-identical to the simulator agent's (the `shadow` reply). */
void bm_mpw_object(struct bm_mp_writer *w, uint16_t n);
void bm_mpw_str(struct bm_mp_writer *w, const char *s);
void bm_mpw_strn(struct bm_mp_writer *w, const char *s, size_t n);
void bm_mpw_bin(struct bm_mp_writer *w, const uint8_t *p, size_t n);
/* Reserves a bin of n bytes and returns where to write them (NULL on overflow). */
uint8_t *bm_mpw_bin_reserve(struct bm_mp_writer *w, size_t n);
void bm_mpw_uint(struct bm_mp_writer *w, uint64_t v);   /* JS number (must be < 2^53 to stay exact) */
void bm_mpw_int(struct bm_mp_writer *w, int64_t v);
void bm_mpw_bigint(struct bm_mp_writer *w, uint64_t v); /* always 0xcf/0xd3: decodes as bigint */
void bm_mpw_f64(struct bm_mp_writer *w, uint64_t bits);
void bm_mpw_bool(struct bm_mp_writer *w, int b);
void bm_mpw_nil(struct bm_mp_writer *w);
void bm_mpw_raw(struct bm_mp_writer *w, const uint8_t *p, size_t n);
#endif
