/*
 * Replays the shared vectors of hypervisor/test/vectors/ (generated from the
 * TypeScript side by test/conformance/vectors.ts) against the C core:
 *   xxh64.json   bm_xxh64
 *   digest.json  the agent's `digest` reply after memWrite requests on an incoming guest
 *   pit.json     bm_pit_shadow_*: msgpack identical to codec.encode(reducePitShadow(...))
 *   pic.json     bm_pic_shadow_*: the same for the 8259 pair, INTA included
 * Run from hypervisor/ (the Makefile does), or pass the vector directory.
 */
#include <stdio.h>
#include <string.h>
#include "../core/agent.h"
#include "../core/msgpack.h"
#include "../core/sha256.h"
#include "../core/shadow.h"
#include "../core/xxh64.h"
#include "../hosted/machine.h"
#include "check.h"
#include "json.h"

static char dir[512] = "test/vectors";

static struct jv *load(const char *name) {
	char path[700];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return j_load(path);
}

static void test_xxh64(void) {
	CHECK(bm_xxh64("", 0, 0) == 0xEF46DB3751D8E999ULL);
	CHECK(bm_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
	static const uint8_t zero[4096];
	CHECK(bm_xxh64(zero, 4096, 0) == BM_XXH64_ZERO_PAGE);
	struct jv *v = load("xxh64.json");
	CHECK(strtoull(j_str(v, "zeroPage"), 0, 16) == BM_XXH64_ZERO_PAGE);
	struct jv *cases = j_get(v, "cases");
	int bad = 0;
	for (size_t i = 0; i < cases->n; i++) {
		size_t n;
		uint8_t *b = j_hex(j_str(&cases->kids[i], "hex"), &n);
		uint64_t want = strtoull(j_str(&cases->kids[i], "hash"), 0, 16);
		/* unaligned too: the hash must not depend on where the bytes are */
		uint8_t *u = malloc(n + 1);
		memcpy(u + 1, b, n);
		if (bm_xxh64(b, n, 0) != want || bm_xxh64(u + 1, n, 0) != want) {
			bad++;
			fprintf(stderr, "xxh64 of %zu bytes: got %016llx want %016llx\n", n, (unsigned long long)bm_xxh64(b, n, 0), (unsigned long long)want);
		}
		free(b);
		free(u);
	}
	CHECK(cases->n > 70 && bad == 0);
}

/* ---- the agent, driven directly (as test_agent.c) ---- */
static uint8_t key[32];
static uint8_t out[(8u << 20) + 64];
static size_t outn;
static int closeafter;
static uint8_t mb[(1 << 21) + 64];
static struct bm_mp_writer W;

static void begin(const char *t, uint32_t id, uint32_t extra) {
	bm_mpw_init(&W, mb, sizeof mb);
	bm_mpw_map(&W, 2 + extra);
	bm_mpw_str(&W, "t"); bm_mpw_str(&W, t);
	bm_mpw_str(&W, "id"); bm_mpw_uint(&W, id);
}
static void send_(void) { outn = bm_agent_handle(0, mb, W.len, out, sizeof out, &closeafter); }
static int get(const char *k, struct bm_mp_val *v, size_t *pos) {
	struct bm_mp_reader r;
	struct bm_mp_val m, kk;
	bm_mp_reader_init(&r, out, outn);
	if (bm_mp_read(&r, &m) || m.type != BM_MP_MAP) return -1;
	for (uint64_t i = 0; i < m.u; i++) {
		bm_mp_read(&r, &kk);
		if (bm_mp_str_eq(&kk, k)) { if (pos) *pos = r.pos; return bm_mp_read(&r, v); }
		bm_mp_skip(&r);
	}
	return -1;
}
static int is_ok(void) { struct bm_mp_val v; return !get("t", &v, 0) && bm_mp_str_eq(&v, "ok"); }

static void lcg_bytes(uint32_t seed, uint8_t *b, size_t n) {
	uint32_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 24);
	}
}

static void test_digest(void) {
	struct jv *v = load("digest.json");
	struct jv *cases = j_get(v, "cases");
	static uint8_t data[1 << 20];
	for (size_t i = 0; i < cases->n; i++) {
		struct jv *c = &cases->kids[i];
		begin("release", 1, 0); send_();
		begin("prepareIncoming", 2, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, (uint64_t)j_num(c, "ramBytes")); bm_mpw_str(&W, "devices"); bm_mpw_array(&W, 0); send_();
		CHECK(is_ok());
		struct jv *ws = j_get(c, "writes");
		for (size_t k = 0; k < ws->n; k++) {
			uint32_t seed = (uint32_t)j_num(&ws->kids[k], "seed");
			size_t len = (size_t)j_num(&ws->kids[k], "len");
			if (seed) lcg_bytes(seed, data, len);
			else memset(data, 0, len);
			begin("memWrite", 3, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, (uint64_t)j_num(&ws->kids[k], "addr")); bm_mpw_str(&W, "data"); bm_mpw_bin(&W, data, len); send_();
			CHECK(is_ok());
		}
		begin("digest", 4, 0); send_();
		struct bm_mp_val h, r;
		CHECK(is_ok() && !get("hex", &h, 0) && h.u == 64 && !memcmp(h.p, j_str(c, "hex"), 64));
		CHECK(!get("rehashedPages", &r, 0) && r.u == (uint64_t)j_num(c, "rehashedPages"));
		begin("digest", 5, 0); send_();
		CHECK(!get("hex", &h, 0) && !memcmp(h.p, j_str(c, "hex"), 64) && !get("rehashedPages", &r, 0) && r.u == 0);
	}
	CHECK(cases->n >= 4);
}

/* ---- shadows ---- */
static int hex_eq(const uint8_t *b, size_t n, const char *hex, const char *what, size_t seq, size_t after) {
	size_t m;
	uint8_t *want = j_hex(hex, &m);
	int ok = m == n && !memcmp(want, b, n);
	if (!ok) {
		fprintf(stderr, "%s sequence %zu after %zu inputs: msgpack differs\n  got  ", what, seq, after);
		for (size_t i = 0; i < n; i++) fprintf(stderr, "%02x", b[i]);
		fprintf(stderr, "\n  want %s\n", hex);
	}
	free(want);
	return ok;
}

static void test_shadows(void) {
	static uint8_t buf[4096];
	struct bm_mp_writer w;
	for (int chip = 0; chip < 2; chip++) {
		struct jv *v = load(chip ? "pic.json" : "pit.json");
		struct jv *seqs = j_get(v, "sequences");
		size_t checked = 0, bad = 0;
		for (size_t i = 0; i < seqs->n; i++) {
			struct jv *acc = j_get(&seqs->kids[i], "accesses"), *exp = j_get(&seqs->kids[i], "expect");
			struct bm_pit_shadow pit;
			struct bm_pic_shadow pic;
			bm_pit_shadow_init(&pit);
			bm_pic_shadow_init(&pic);
			size_t applied = 0;
			for (size_t e = 0; e < exp->n; e++) {
				size_t after = (size_t)j_num(&exp->kids[e], "after");
				for (; applied < after; applied++) {
					struct jv *a = &acc->kids[applied];
					const char *d = j_str(a, "dir");
					if (!strcmp(d, "inta")) {
						struct jv *sl = j_get(a, "slave");
						bm_pic_shadow_inta(&pic, (uint8_t)j_num(a, "master"), sl != 0, sl ? (uint8_t)sl->num : 0);
						continue;
					}
					int o = !strcmp(d, "out");
					uint16_t port = (uint16_t)j_num(a, "port");
					int size = (int)j_num(a, "size");
					uint32_t val = (uint32_t)j_num(a, "value");
					if (chip) bm_pic_shadow_access(&pic, o, port, size, val);
					else bm_pit_shadow_access(&pit, o, port, size, val);
				}
				bm_mpw_init(&w, buf, sizeof buf);
				if (chip) bm_pic_shadow_write(&w, &pic);
				else bm_pit_shadow_write(&w, &pit);
				checked++;
				if (w.overflow || !hex_eq(buf, w.len, j_str(&exp->kids[e], "msgpack"), chip ? "pic" : "pit", i, after)) bad++;
			}
		}
		printf("%s shadow: %zu sequences, %zu checkpoints, %zu differ\n", chip ? "pic" : "pit", seqs->n, checked, bad);
		CHECK(seqs->n >= 100 && bad == 0);
	}
}

/* The hosted machine's port traps feed the shadows; the agent's `shadow` reply must be
 * the simulator agent's, byte for byte. Writes go through the guest's port path (bus,
 * then trap); reads are handed to the trap with the vector's value, since the hosted
 * bus has no chip that could answer them. */
static void test_agent_shadow(void) {
	struct jv *v = load("agent-shadow.json");
	struct jv *seqs = j_get(v, "sequences");
	M.trap_pic = M.trap_pit = 1;
	size_t bad = 0;
	for (size_t i = 0; i < seqs->n; i++) {
		struct jv *acc = j_get(&seqs->kids[i], "accesses");
		machine_reset_shadows();
		for (size_t k = 0; k < acc->n; k++) {
			struct jv *a = &acc->kids[k];
			const char *d = j_str(a, "dir");
			if (!strcmp(d, "inta")) {
				struct jv *sl = j_get(a, "slave");
				machine_inta((uint8_t)j_num(a, "master"), sl != 0, sl ? (uint8_t)sl->num : 0);
			} else if (!strcmp(d, "out")) machine_guest_out((uint16_t)j_num(a, "port"), (int)j_num(a, "size"), (uint32_t)j_num(a, "value"));
			else machine_port_trap(0, (uint16_t)j_num(a, "port"), (int)j_num(a, "size"), (uint32_t)j_num(a, "value"));
		}
		begin("shadow", (uint32_t)j_num(&seqs->kids[i], "id"), 0); send_();
		if (!hex_eq(out, outn, j_str(&seqs->kids[i], "reply"), "agent shadow reply", i, acc->n)) bad++;
	}
	/* a guest read goes to the bus (all-ones: no chip here), then to the trap with that value */
	machine_reset_shadows();
	struct bm_pic_shadow want;
	bm_pic_shadow_init(&want);
	bm_pic_shadow_access(&want, 0, 0x21, 1, 0xff);
	CHECK(machine_guest_in(0x21, 1) == 0xff && machine_guest_in(0x30, 2) == 0xffff);
	CHECK(!memcmp(&want, &M.pic_shadow, sizeof want) && want.master.imr == 0xff);
	printf("agent shadow reply: %zu sequences, %zu differ\n", seqs->n, bad);
	CHECK(seqs->n >= 20 && bad == 0);
	/* nothing trapped: an empty map, as a node without these devices */
	M.trap_pic = M.trap_pit = 0;
	begin("shadow", 3, 0); send_();
	CHECK(hex_eq(out, outn, "de0003a174a26f6ba2696403a6736861646f77de0000", "empty shadow reply", 0, 0));
}

int main(int argc, char **argv) {
	if (argc > 1) snprintf(dir, sizeof dir, "%s", argv[1]);
	test_xxh64();
	memset(key, 0x42, 32);
	M.net.mtu = 9000;
	M.net.fd = -1;
	struct bm_agent_cfg cfg = {"node9", 64u << 20, key, 32};
	CHECK(bm_agent_init(&cfg) == 0);
	bm_agent_test_session(0, 1);
	test_digest();
	test_shadows();
	test_agent_shadow();
	DONE("test_vectors");
}
