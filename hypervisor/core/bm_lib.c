#include "bm_lib.h"

void bm_str_init(struct bm_str *s, char *buf, size_t cap) {
	s->buf = buf;
	s->cap = cap;
	s->len = 0;
	if (cap) buf[0] = 0;
}

void bm_str_addn(struct bm_str *s, const char *t, size_t n) {
	if (!s->cap) return;
	for (size_t i = 0; i < n && s->len + 1 < s->cap; i++) s->buf[s->len++] = t[i];
	s->buf[s->len] = 0;
}

void bm_str_add(struct bm_str *s, const char *t) { bm_str_addn(s, t, bm_strlen(t)); }

void bm_str_u64(struct bm_str *s, uint64_t v) {
	char tmp[24];
	int i = 0;
	do { tmp[i++] = (char)('0' + v % 10); v /= 10; } while (v);
	while (i) { char c = tmp[--i]; bm_str_addn(s, &c, 1); }
}

void bm_str_hex(struct bm_str *s, uint64_t v) {
	char tmp[20];
	int i = 0;
	do { tmp[i++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
	bm_str_add(s, "0x");
	while (i) { char c = tmp[--i]; bm_str_addn(s, &c, 1); }
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int bm_parse_mac(const char *s, size_t n, uint8_t mac[6]) {
	if (n != 17) return -1;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[i * 3]), lo = hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0) return -1;
		if (i < 5 && s[i * 3 + 2] != ':') return -1;
		mac[i] = (uint8_t)(hi * 16 + lo);
	}
	return 0;
}
