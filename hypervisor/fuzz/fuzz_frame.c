/* libFuzzer: hostile frames into the link's frame decoder and session state
 * machine. The input is a series of frames, each prefixed by a u16 length.
 * In this build (BM_FUZZ) half the frames pass the MAC check so that the
 * fuzzer reaches the handshake, acknowledgement and reassembly paths. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../core/bm_lib.h"
#include "../core/link.h"

static struct bm_link L;
static uint64_t clk;
static uint32_t rs = 1;
static int snd(void *c, const uint8_t *f, size_t n) { (void)c; (void)f; (void)n; return 0; }
static uint64_t now(void *c) { (void)c; return clk += 1000; }
static void rnd(void *c, uint8_t *o, size_t n) { (void)c; for (size_t i = 0; i < n; i++) { rs = rs * 1103515245u + 12345u; o[i] = (uint8_t)(rs >> 16); } }
static int acc(void *c, struct bm_sess *s) { (void)c; return s->kind == 1 || s->kind == 2 ? 0 : -1; }
static void opn(void *c, struct bm_sess *s) { (void)c; (void)s; }
static size_t dat(void *c, struct bm_sess *s, const uint8_t *p, size_t n) { (void)c; (void)s; (void)p; return n > 3 ? n - 3 : n; }
static void cls(void *c, struct bm_sess *s, const char *w) { (void)c; (void)s; (void)w; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1}, peer[6] = {2, 0, 0, 0, 0, 2};
	uint8_t key[32];
	memset(key, 1, 32);
	struct bm_link_ops ops = {0, snd, now, rnd, acc, opn, dat, cls};
	bm_link_init(&L, &ops, mac, 9000, key, 32);
	if (size && data[0] & 1) bm_link_connect(&L, peer, BM_KIND_CONTROL);
	static uint8_t frame[BM_MAX_FRAME + 256];
	size_t off = 1;
	while (off + 2 <= size) {
		size_t n = bm_get16(data + off);
		off += 2;
		if (n > size - off) n = size - off;
		if (n > sizeof frame - 12) n = sizeof frame - 12;
		/* addressed to us, from the peer, our EtherType; the rest is the fuzzer's */
		memcpy(frame, mac, 6);
		memcpy(frame + 6, peer, 6);
		memcpy(frame + 12, data + off, n);
		bm_link_input(&L, frame, n + 12);
		bm_link_poll(&L);
		off += n;
	}
	for (int i = 0; i < BM_MAX_SESSIONS; i++)
		if (L.sess[i].state == BM_S_OPEN) {
			bm_sess_write(&L, &L.sess[i], data, size);
			bm_link_poll(&L);
		}
	return 0;
}
