#include <string.h>
#include "../core/msgpack.h"
#include "check.h"

static int check_one(const char *hexs) {
	uint8_t b[256];
	size_t n = strlen(hexs) / 2;
	for (size_t i = 0; i < n; i++) { unsigned x; sscanf(hexs + 2 * i, "%2x", &x); b[i] = (uint8_t)x; }
	return bm_mp_check_one(b, n);
}

int main(void) {
	/* well-formed */
	CHECK(check_one("81a174a168") == 0);
	CHECK(check_one("820101a174a168") == 0);
	CHECK(check_one("cf0000000000000005") == 0);
	/* trailing bytes, truncation, hostile lengths */
	CHECK(check_one("81a174a16800") != 0);
	CHECK(check_one("81a174") != 0);
	CHECK(check_one("c6ffffffff00") != 0);
	CHECK(check_one("dbffffffff41") != 0);
	CHECK(check_one("ddffffffff") != 0);
	CHECK(check_one("dfffffffff") != 0);
	CHECK(check_one("c1") != 0);
	/* depth bomb: 200 nested arrays */
	uint8_t deep[201];
	memset(deep, 0x91, 200);
	deep[200] = 0x00;
	CHECK(bm_mp_check_one(deep, 201) != 0);
	memset(deep, 0x91, 100);
	deep[100] = 0x00;
	CHECK(bm_mp_check_one(deep, 101) == 0);
	/* types as msgpackr sees them */
	uint8_t big[] = {0xd3, 0, 0, 0, 0, 0, 0, 0, 5};
	struct bm_mp_reader r;
	struct bm_mp_val v;
	bm_mp_reader_init(&r, big, sizeof big);
	CHECK(bm_mp_read(&r, &v) == 0 && v.type == BM_MP_BIGINT && v.u == 5);
	uint8_t neg[] = {0xff};
	bm_mp_reader_init(&r, neg, 1);
	CHECK(bm_mp_read(&r, &v) == 0 && v.type == BM_MP_INT && v.neg && v.i == -1);
	/* float helpers */
	int64_t x;
	CHECK(bm_f64_to_int(0x4014000000000000ULL, &x) == 0 && x == 5);      /* 5.0 */
	CHECK(bm_f64_to_int(0x3ff8000000000000ULL, &x) != 0);                /* 1.5 */
	CHECK(bm_f64_to_int(0x4340000000000000ULL, &x) != 0);                /* 2^53: not safe */
	CHECK(bm_f64_to_int(0xc014000000000000ULL, &x) == 0 && x == -5);
	CHECK(bm_f64_to_int(0x7ff8000000000000ULL, &x) != 0);                /* NaN */
	uint64_t u;
	CHECK(bm_f64_scaled(0x3ff8000000000000ULL, 1000, &u) == 0 && u == 1500); /* 1.5 * 1000 */
	CHECK(bm_f64_ratio(1500, 1000) == 0x3ff8000000000000ULL);
	CHECK(bm_f64_ratio(8589934592ULL, 1) == 0x4200000000000000ULL); /* 2^33 as msgpackr packs it */
	CHECK(bm_f64_ratio(1, 3) == 0x3fd5555555555555ULL);
	/* writer round trip */
	uint8_t out[64];
	struct bm_mp_writer w;
	bm_mpw_init(&w, out, sizeof out);
	bm_mpw_map(&w, 1); bm_mpw_str(&w, "id"); bm_mpw_uint(&w, 70000);
	CHECK(!w.overflow && bm_mp_check_one(out, w.len) == 0);
	bm_mpw_init(&w, out, 4);
	bm_mpw_str(&w, "too long for four bytes");
	CHECK(w.overflow);
	CHECK(bm_utf16_len((const uint8_t *)"\xf0\x9f\x98\x80", 4) == 2);
	CHECK(bm_utf16_len((const uint8_t *)"\xc3\xa9t\xc3\xa9", 5) == 3);
	DONE("test_msgpack");
}
