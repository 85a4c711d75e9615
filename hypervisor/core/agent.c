/*
 * Agent protocol v1 handlers. Every request is validated field by field
 * (mirroring the zod schemas of src/protocol/messages.ts: strict objects,
 * JS-number vs bigint, ranges, lengths) before anything happens; a request
 * that fails validation, authentication or a state check is answered with an
 * error and changes nothing. State rules and error codes follow
 * src/sim/agent/server.ts.
 */
#include "agent.h"
#include "../hal.h"
#include "bm_lib.h"
#include "msgpack.h"
#include "sha256.h"
#include "xxh64.h"

#define PAGE BM_PAGE
#define GROUP_PAGES 256u
#define MAX_MEM_IO (1u << 20)
#define MAX_PROGRAM_OPS 65536u
#define MAX_WAIT_US 5000000u

enum gstate { G_NONE, G_RUNNING, G_PAUSED, G_INCOMING, G_RELEASED };
static const char *const gname[] = {"none", "running", "paused", "incoming", "released"};

/* ---------- state ---------- */
static struct bm_agent_cfg cfg;
static struct bm_link link;
static struct bm_agent_stats stats;
static enum gstate gs = G_NONE;
static uint64_t ram_bytes, npages;

/* core-owned bitmaps and digest caches, sized at guest allocation (setup path) */
static uint8_t *trk, *dirty, *pending, *stale, *stale_group;
static uint8_t *page_hash, *group_hash;
static size_t bm_bytes, ph_bytes, gh_bytes, gb_bytes;
static int logging;
static uint64_t last_sync_ns;

/* control sessions */
struct ctl {
	int used;
	struct bm_sess *s;
	uint8_t challenge[32];
	int has_challenge, authed, owns_incoming;
	uint8_t lenbuf[4];
	uint32_t lenfill, need, fill;
	int have_msg, close_after;
	uint32_t out_len, out_off;
	uint8_t in[BM_MAX_MESSAGE];
	uint8_t out[4 + BM_MAX_MESSAGE + 64];
};
static struct ctl ctls[BM_MAX_CONTROL];

/* incoming page streams (destination side) */
#define MAX_PIN 2
struct pin {
	struct bm_sess *s;
	uint8_t hdr[40];
	uint32_t hfill;
	int opened, dead;
	int64_t page; /* >= 0 while collecting a split page */
	uint32_t pfill, since_end;
	uint8_t scratch[PAGE];
	uint8_t ackq[64];
	uint32_t ackq_len;
};
static struct pin pins[MAX_PIN];
static int slot_open;
static uint8_t slot_token[32];

/* outgoing page streams (source side): one per peer/token, kept across rounds */
#define MAX_POUT 2
struct pout {
	struct bm_sess *s;
	uint8_t peer[6];
	uint8_t token[32];
	uint32_t port;
	int open, failed;
	uint8_t ackbuf[8];
	uint32_t ackfill;
	int64_t acked; /* last ACK count, -1 none */
	uint32_t nak;
	char why[96];
};
static struct pout pouts[MAX_POUT];

/* the one running streamPages */
static struct job {
	int active, ctl, which_dirty;
	uint32_t id;
	struct pout *po;
	uint64_t next_page, pages, zero, wire, t0, bw, bw_sent;
	int end_written;
	uint64_t connect_deadline;
} job;

/* ---------- small helpers ---------- */
static char errbuf[512];
struct err {
	const char *code;
	struct bm_str m;
};

static void err_init(struct err *e) {
	e->code = 0;
	bm_str_init(&e->m, errbuf, sizeof errbuf);
}
static int fail(struct err *e, const char *code, const char *msg) {
	e->code = code;
	bm_str_init(&e->m, errbuf, sizeof errbuf);
	bm_str_add(&e->m, msg);
	return -1;
}

static void bit_set(uint8_t *b, uint64_t i) { b[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static int bit_get(const uint8_t *b, uint64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }

static void collect(void) {
	if (gs == G_NONE || gs == G_RELEASED || !trk) return;
	bm_memset(trk, 0, bm_bytes);
	hal_track_collect(trk, npages);
	for (size_t i = 0; i < bm_bytes; i++) {
		uint8_t b = trk[i];
		if (!b) continue;
		dirty[i] |= b;
		stale[i] |= b;
		for (int k = 0; k < 8; k++)
			if (b & (1u << k)) bit_set(stale_group, ((uint64_t)i * 8 + (uint64_t)k) / GROUP_PAGES);
	}
}

static void mark_agent_write(uint64_t addr, uint64_t len, int mark_dirty) {
	if (!len) return;
	for (uint64_t p = addr / PAGE; p <= (addr + len - 1) / PAGE; p++) {
		if (mark_dirty) bit_set(dirty, p);
		bit_set(stale, p);
		bit_set(stale_group, p / GROUP_PAGES);
	}
}

static void free_guest_tables(void) {
	if (trk) {
		hal_free(trk, bm_bytes); hal_free(dirty, bm_bytes); hal_free(pending, bm_bytes); hal_free(stale, bm_bytes);
		hal_free(stale_group, gb_bytes); hal_free(page_hash, ph_bytes); hal_free(group_hash, gh_bytes);
	}
	trk = dirty = pending = stale = stale_group = page_hash = group_hash = 0;
	ram_bytes = npages = 0;
}

/* Sizes the bitmaps and digest caches for `bytes` of guest RAM. Every page
 * starts stale (its hash unknown); init_page_hashes() then takes the zero-page
 * hash for all of them when the HAL's fresh RAM is known to be zero. */
static int alloc_guest_tables(uint64_t bytes) {
	free_guest_tables();
	npages = bytes / PAGE;
	uint64_t groups = bytes >> 20;
	bm_bytes = (size_t)((npages + 7) / 8);
	gb_bytes = (size_t)((groups + 7) / 8);
	ph_bytes = (size_t)(npages * 8);
	gh_bytes = (size_t)(groups * 8);
	trk = hal_alloc(bm_bytes); dirty = hal_alloc(bm_bytes); pending = hal_alloc(bm_bytes); stale = hal_alloc(bm_bytes);
	stale_group = hal_alloc(gb_bytes); page_hash = hal_alloc(ph_bytes); group_hash = hal_alloc(gh_bytes);
	if (!trk || !dirty || !pending || !stale || !stale_group || !page_hash || !group_hash) {
		free_guest_tables();
		return -1;
	}
	bm_memset(stale, 0xff, bm_bytes);
	bm_memset(stale_group, 0xff, gb_bytes);
	ram_bytes = bytes;
	return 0;
}

/* After the HAL allocated the guest's RAM: fresh RAM that the HAL guarantees
 * to be zero (apart from writes its tracking reports) has known page hashes,
 * as in the simulator's GuestMemory; the groups are hashed on the first digest. */
static void init_page_hashes(void) {
	if (!hal_guest_ram_zeroed()) return;
	uint8_t zh[8];
	bm_put64(zh, BM_XXH64_ZERO_PAGE);
	for (uint64_t p = 0; p < npages; p++) bm_memcpy(page_hash + p * 8, zh, 8);
	bm_memset(stale, 0, bm_bytes);
}

static void close_slot(void) {
	slot_open = 0;
	for (int i = 0; i < MAX_PIN; i++)
		if (pins[i].s) {
			bm_sess_close(&link, pins[i].s);
			pins[i].s = 0;
		}
}

static void close_senders(void) {
	for (int i = 0; i < MAX_POUT; i++)
		if (pouts[i].s) {
			bm_sess_close(&link, pouts[i].s);
			pouts[i].s = 0;
		}
}

static void guest_release(void) {
	hal_track_enable(0);
	hal_guest_release();
	free_guest_tables();
	logging = 0;
	gs = gs == G_NONE ? G_NONE : G_RELEASED;
}

/* ---------- request parsing ---------- */
#define MAXF 16
struct field {
	const char *name;
	int present;
	size_t pos; /* value start */
	struct bm_mp_val v;
};

/* Collects the keys of the map whose header was just read (count n); every key
 * must be one of names[] (a strict object); the last occurrence wins, as in JS. */
static int collect_map(struct bm_mp_reader *r, uint64_t n, struct field *f, int nf, const char **bad) {
	for (int i = 0; i < nf; i++) f[i].present = 0;
	for (uint64_t k = 0; k < n; k++) {
		struct bm_mp_val key;
		if (bm_mp_read(r, &key)) return -1;
		int idx = -1;
		if (key.type == BM_MP_STR)
			for (int i = 0; i < nf; i++)
				if (bm_mp_str_eq(&key, f[i].name)) { idx = i; break; }
		if (idx < 0) {
			*bad = "unrecognized key";
			return -2;
		}
		size_t pos = r->pos;
		struct bm_mp_reader t = *r;
		if (bm_mp_read(&t, &f[idx].v)) return -1;
		if (bm_mp_skip(r)) return -1;
		f[idx].present = 1;
		f[idx].pos = pos;
	}
	return 0;
}

static int num_in(const struct field *f, int64_t lo, int64_t hi, int64_t *out) {
	int64_t x;
	if (!f->present || bm_mp_number_int(&f->v, &x) || x < lo || x > hi) return -1;
	if (out) *out = x;
	return 0;
}
static int str_max(const struct field *f, size_t max) {
	return f->present && f->v.type == BM_MP_STR && bm_utf16_len(f->v.p, (size_t)f->v.u) <= max ? 0 : -1;
}
static int bin_ok(const struct field *f, size_t max, long exact) {
	if (!f->present || f->v.type != BM_MP_BIN || f->v.u > max) return -1;
	return exact >= 0 && f->v.u != (uint64_t)exact ? -1 : 0;
}
static int size_ok(const struct field *f, int *out) {
	int64_t x;
	if (num_in(f, 1, 4, &x) || x == 3) return -1;
	*out = (int)x;
	return 0;
}

static int perr(struct err *e, const char *t, const char *where, const char *what) {
	e->code = "PROTOCOL";
	bm_str_init(&e->m, errbuf, sizeof errbuf);
	bm_str_add(&e->m, "invalid '");
	bm_str_add(&e->m, t);
	bm_str_add(&e->m, "' request: ");
	bm_str_add(&e->m, where);
	bm_str_add(&e->m, ": ");
	bm_str_add(&e->m, what);
	return -1;
}

/* ---------- IoProgram ---------- */
enum { OP_IN = 1, OP_OUT, OP_MMIOR, OP_MMIOW, OP_MEMR, OP_MEMW, OP_WAIT, OP_DELAY, OP_INJECT };
enum { F_OP, F_PORT, F_SIZE, F_VALUE, F_ADDR, F_LEN, F_DATA, F_SPACE, F_MASK, F_EXPECT, F_TIMEOUT, F_US, F_DEVICE, F_FRAME, F_NOPS };
static const char *const opkeys[F_NOPS] = {"op", "port", "size", "value", "addr", "len", "data", "space", "mask", "expect", "timeoutUs", "us", "device", "frame"};
struct opdef {
	const char *name;
	int code;
	uint32_t keys; /* bit per F_* besides F_OP */
};
#define K(x) (1u << (x))
static const struct opdef opdefs[] = {
	{"in", OP_IN, K(F_PORT) | K(F_SIZE)},
	{"out", OP_OUT, K(F_PORT) | K(F_SIZE) | K(F_VALUE)},
	{"mmioRead", OP_MMIOR, K(F_ADDR) | K(F_SIZE)},
	{"mmioWrite", OP_MMIOW, K(F_ADDR) | K(F_SIZE) | K(F_VALUE)},
	{"memRead", OP_MEMR, K(F_ADDR) | K(F_LEN)},
	{"memWrite", OP_MEMW, K(F_ADDR) | K(F_DATA)},
	{"waitUntil", OP_WAIT, K(F_SPACE) | K(F_ADDR) | K(F_SIZE) | K(F_MASK) | K(F_EXPECT) | K(F_TIMEOUT)},
	{"delay", OP_DELAY, K(F_US)},
	{"injectFrame", OP_INJECT, K(F_DEVICE) | K(F_FRAME)},
};

struct op {
	int code, size, mmio;
	uint64_t addr;
	uint32_t value, mask, expect, us, len;
	const uint8_t *data;
	size_t dlen;
};

#define MMIO_MAX 4503599627370496LL /* 2^52 */
static int parse_op(struct bm_mp_reader *r, struct op *o) {
	struct bm_mp_val m;
	struct field f[F_NOPS];
	const char *bad = 0;
	int64_t x;
	if (bm_mp_read(r, &m) || m.type != BM_MP_MAP) return -1;
	for (int i = 0; i < F_NOPS; i++) f[i].name = opkeys[i];
	if (collect_map(r, m.u, f, F_NOPS, &bad)) return -1;
	if (!f[F_OP].present || f[F_OP].v.type != BM_MP_STR) return -1;
	const struct opdef *d = 0;
	for (size_t i = 0; i < sizeof opdefs / sizeof opdefs[0]; i++)
		if (bm_mp_str_eq(&f[F_OP].v, opdefs[i].name)) d = &opdefs[i];
	if (!d) return -1;
	for (int i = 1; i < F_NOPS; i++)
		if (f[i].present != !!(d->keys & K(i))) return -1; /* missing or unrecognized key */
	bm_memset(o, 0, sizeof *o);
	o->code = d->code;
	if (d->keys & K(F_SIZE) && size_ok(&f[F_SIZE], &o->size)) return -1;
	if (d->keys & K(F_PORT)) { if (num_in(&f[F_PORT], 0, 0xffff, &x)) return -1; o->addr = (uint64_t)x; }
	if (d->keys & K(F_VALUE)) { if (num_in(&f[F_VALUE], 0, 0xffffffffLL, &x)) return -1; o->value = (uint32_t)x; }
	if (d->keys & K(F_ADDR)) {
		int64_t hi = (o->code == OP_MEMR || o->code == OP_MEMW) ? (int64_t)BM_MAX_RAM : MMIO_MAX;
		if (num_in(&f[F_ADDR], 0, hi, &x)) return -1;
		o->addr = (uint64_t)x;
	}
	if (d->keys & K(F_LEN)) { if (num_in(&f[F_LEN], 0, MAX_MEM_IO, &x)) return -1; o->len = (uint32_t)x; }
	if (d->keys & K(F_DATA)) { if (bin_ok(&f[F_DATA], MAX_MEM_IO, -1)) return -1; o->data = f[F_DATA].v.p; o->dlen = (size_t)f[F_DATA].v.u; }
	if (d->keys & K(F_SPACE)) {
		if (bm_mp_str_eq(&f[F_SPACE].v, "io")) o->mmio = 0;
		else if (bm_mp_str_eq(&f[F_SPACE].v, "mmio")) o->mmio = 1;
		else return -1;
	}
	if (d->keys & K(F_MASK)) { if (num_in(&f[F_MASK], 0, 0xffffffffLL, &x)) return -1; o->mask = (uint32_t)x; }
	if (d->keys & K(F_EXPECT)) { if (num_in(&f[F_EXPECT], 0, 0xffffffffLL, &x)) return -1; o->expect = (uint32_t)x; }
	if (d->keys & K(F_TIMEOUT)) { if (num_in(&f[F_TIMEOUT], 0, MAX_WAIT_US, &x)) return -1; o->us = (uint32_t)x; }
	if (d->keys & K(F_US)) {
		/* delay.us is any JS number in [0, 5e6] (messages.ts: z.number(), not .int()): the
		 * 8254 restore waits fractions of a microsecond; rounded to the nearest µs here */
		uint64_t ns;
		if (!bm_mp_number_int(&f[F_US].v, &x)) {
			if (x < 0 || x > MAX_WAIT_US) return -1;
			o->us = (uint32_t)x;
		} else if (f[F_US].v.type == BM_MP_FLOAT && !bm_f64_scaled(f[F_US].v.fbits, 1000, &ns) && ns <= (uint64_t)MAX_WAIT_US * 1000) {
			o->us = (uint32_t)((ns + 500) / 1000);
		} else return -1;
	}
	if (d->keys & K(F_DEVICE)) { if (str_max(&f[F_DEVICE], 64)) return -1; o->data = f[F_DEVICE].v.p; o->len = (uint32_t)f[F_DEVICE].v.u; }
	if (d->keys & K(F_FRAME)) { if (bin_ok(&f[F_FRAME], 16384, -1)) return -1; o->mask = 0; }
	if (o->code == OP_INJECT) {
		/* keep both: device name in data/len, frame in dlen + a second pointer */
		o->dlen = (size_t)f[F_FRAME].v.u;
		o->value = 0;
		o->addr = (uint64_t)(uintptr_t)f[F_FRAME].v.p;
	}
	return 0;
}

static uint32_t szmask(int size) { return size == 1 ? 0xffu : size == 2 ? 0xffffu : 0xffffffffu; }

static int in_range(uint64_t addr, uint64_t len) { return addr <= ram_bytes && len <= ram_bytes - addr; }

/* ---------- vCPU (de)serialisation ---------- */
static const char *const gpr_names[16] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
static const char *const seg_names[8] = {"cs", "ds", "es", "fs", "gs", "ss", "ldtr", "tr"};
static const char *const msr_names[11] = {"efer", "star", "lstar", "cstar", "sfmask", "kernelGsBase", "sysenterCs", "sysenterEsp", "sysenterEip", "pat", "tscAux"};
static const char *const top_u64[8] = {"rip", "rflags", "cr0", "cr2", "cr3", "cr4", "cr8", "tsc"};

static void put_u64_field(struct bm_mp_writer *w, const char *k, uint64_t v) {
	bm_mpw_str(w, k);
	bm_mpw_bigint(w, v);
}

static void encode_vcpu(struct bm_mp_writer *w, const struct bm_vcpu *v) {
	bm_mpw_map(w, 15); /* gpr, 8 registers, seg, gdtr, idtr, msr, xsave, activity */
	bm_mpw_str(w, "gpr");
	bm_mpw_map(w, 16);
	for (int i = 0; i < 16; i++) put_u64_field(w, gpr_names[i], v->gpr[i]);
	const uint64_t *tv[8] = {&v->rip, &v->rflags, &v->cr0, &v->cr2, &v->cr3, &v->cr4, &v->cr8, &v->tsc};
	for (int i = 0; i < 8; i++) put_u64_field(w, top_u64[i], *tv[i]);
	bm_mpw_str(w, "seg");
	bm_mpw_map(w, 8);
	for (int i = 0; i < 8; i++) {
		bm_mpw_str(w, seg_names[i]);
		bm_mpw_map(w, 4);
		bm_mpw_str(w, "selector"); bm_mpw_uint(w, v->seg[i].selector);
		put_u64_field(w, "base", v->seg[i].base);
		bm_mpw_str(w, "limit"); bm_mpw_uint(w, v->seg[i].limit);
		bm_mpw_str(w, "attributes"); bm_mpw_uint(w, v->seg[i].attributes);
	}
	bm_mpw_str(w, "gdtr"); bm_mpw_map(w, 2); put_u64_field(w, "base", v->gdtr_base); bm_mpw_str(w, "limit"); bm_mpw_uint(w, v->gdtr_limit);
	bm_mpw_str(w, "idtr"); bm_mpw_map(w, 2); put_u64_field(w, "base", v->idtr_base); bm_mpw_str(w, "limit"); bm_mpw_uint(w, v->idtr_limit);
	bm_mpw_str(w, "msr");
	bm_mpw_map(w, 11);
	for (int i = 0; i < 11; i++) put_u64_field(w, msr_names[i], v->msr[i]);
	bm_mpw_str(w, "xsave"); bm_mpw_bin(w, v->xsave, BM_XSAVE_BYTES);
	bm_mpw_str(w, "activity"); bm_mpw_uint(w, v->activity);
}

/* Finds key k in the map at r (header not yet read); leaves *out at its value. Non-strict (checkVcpuState ignores extra keys); last wins. */
static int find_key(const struct bm_mp_reader *r0, const char *k, struct bm_mp_reader *out, struct bm_mp_val *v) {
	struct bm_mp_reader r = *r0;
	struct bm_mp_val m, key;
	int found = 0;
	if (bm_mp_read(&r, &m) || m.type != BM_MP_MAP) return -1;
	for (uint64_t i = 0; i < m.u; i++) {
		if (bm_mp_read(&r, &key)) return -1;
		if (bm_mp_str_eq(&key, k)) {
			*out = r;
			struct bm_mp_reader t = r;
			if (bm_mp_read(&t, v)) return -1;
			found = 1;
		}
		if (bm_mp_skip(&r)) return -1;
	}
	return found ? 0 : -1;
}
static int is_u64(const struct bm_mp_val *v, uint64_t *out) {
	if (v->type != BM_MP_BIGINT || v->neg) return -1;
	*out = v->u;
	return 0;
}
static int is_u32(const struct bm_mp_val *v, uint32_t *out) {
	int64_t x;
	if (bm_mp_number_int(v, &x) || x < 0 || x > 0xffffffffLL) return -1;
	*out = (uint32_t)x;
	return 0;
}

static int decode_vcpu(const struct bm_mp_reader *r, struct bm_vcpu *v, struct bm_str *why) {
	struct bm_mp_reader sub, sub2;
	struct bm_mp_val x;
	struct bm_mp_reader t = *r;
	struct bm_mp_val top;
	if (bm_mp_read(&t, &top) || top.type != BM_MP_MAP) { bm_str_add(why, "vcpu state must be an object"); return -1; }
	bm_memset(v, 0, sizeof *v);
	if (find_key(r, "gpr", &sub, &x) || x.type != BM_MP_MAP) { bm_str_add(why, "gpr missing"); return -1; }
	for (int i = 0; i < 16; i++)
		if (find_key(&sub, gpr_names[i], &sub2, &x) || is_u64(&x, &v->gpr[i])) { bm_str_add(why, "gpr."); bm_str_add(why, gpr_names[i]); bm_str_add(why, " must be a 64-bit unsigned integer"); return -1; }
	uint64_t *tv[8] = {&v->rip, &v->rflags, &v->cr0, &v->cr2, &v->cr3, &v->cr4, &v->cr8, &v->tsc};
	for (int i = 0; i < 8; i++)
		if (find_key(r, top_u64[i], &sub, &x) || is_u64(&x, tv[i])) { bm_str_add(why, top_u64[i]); bm_str_add(why, " must be a 64-bit unsigned integer"); return -1; }
	if (find_key(r, "seg", &sub, &x) || x.type != BM_MP_MAP) { bm_str_add(why, "seg missing"); return -1; }
	for (int i = 0; i < 8; i++) {
		struct bm_mp_reader g;
		if (find_key(&sub, seg_names[i], &g, &x) || x.type != BM_MP_MAP) { bm_str_add(why, "seg."); bm_str_add(why, seg_names[i]); bm_str_add(why, " missing"); return -1; }
		if (find_key(&g, "selector", &sub2, &x) || is_u32(&x, &v->seg[i].selector) || v->seg[i].selector > 0xffff) { bm_str_add(why, "seg."); bm_str_add(why, seg_names[i]); bm_str_add(why, ".selector out of range"); return -1; }
		if (find_key(&g, "base", &sub2, &x) || is_u64(&x, &v->seg[i].base) || find_key(&g, "limit", &sub2, &x) || is_u32(&x, &v->seg[i].limit) ||
		    find_key(&g, "attributes", &sub2, &x) || is_u32(&x, &v->seg[i].attributes)) {
			bm_str_add(why, "seg."); bm_str_add(why, seg_names[i]); bm_str_add(why, " fields out of range");
			return -1;
		}
	}
	const char *dt[2] = {"gdtr", "idtr"};
	uint64_t *db[2] = {&v->gdtr_base, &v->idtr_base};
	uint32_t *dl[2] = {&v->gdtr_limit, &v->idtr_limit};
	for (int i = 0; i < 2; i++) {
		if (find_key(r, dt[i], &sub, &x) || x.type != BM_MP_MAP || find_key(&sub, "base", &sub2, &x) || is_u64(&x, db[i]) ||
		    find_key(&sub, "limit", &sub2, &x) || is_u32(&x, dl[i]) || *dl[i] > 0xffff) {
			bm_str_add(why, dt[i]); bm_str_add(why, " out of range");
			return -1;
		}
	}
	if (find_key(r, "msr", &sub, &x) || x.type != BM_MP_MAP) { bm_str_add(why, "msr missing"); return -1; }
	for (int i = 0; i < 11; i++)
		if (find_key(&sub, msr_names[i], &sub2, &x) || is_u64(&x, &v->msr[i])) { bm_str_add(why, "msr."); bm_str_add(why, msr_names[i]); bm_str_add(why, " must be a 64-bit unsigned integer"); return -1; }
	if (find_key(r, "xsave", &sub, &x) || x.type != BM_MP_BIN || x.u != BM_XSAVE_BYTES) { bm_str_add(why, "xsave must be 832 bytes"); return -1; }
	bm_memcpy(v->xsave, x.p, BM_XSAVE_BYTES);
	int64_t a;
	if (find_key(r, "activity", &sub, &x) || bm_mp_number_int(&x, &a) || (a != 0 && a != 1)) { bm_str_add(why, "activity must be 0 or 1"); return -1; }
	v->activity = (uint32_t)a;
	return 0;
}

/* ---------- auth ---------- */
static void auth_mac(const char *label, const uint8_t *challenge, const uint8_t *nonce, uint8_t out[32]) {
	struct bm_hmac_key k;
	struct bm_sha256 c;
	bm_hmac_key_init(&k, cfg.key, cfg.keylen);
	bm_hmac_begin(&k, &c);
	bm_sha256_update(&c, "baremig-v1 ", 11);
	bm_sha256_update(&c, label, bm_strlen(label));
	bm_sha256_update(&c, "", 1);
	bm_sha256_update(&c, challenge, 32);
	bm_sha256_update(&c, nonce, 32);
	bm_sha256_update(&c, cfg.node, bm_strlen(cfg.node));
	bm_hmac_end(&k, &c, out);
}

/* ---------- digest ----------
 * XXH64 (seed 0) of each 4 KiB page → XXH64 of each 1 MiB group's 256 page
 * hashes (8 bytes each, little-endian) → SHA-256 of the group hashes (8 bytes
 * each, in order): src/sim/guestMemory.ts digest(), native/simAccel.c. Page
 * and group hashes are cached; a write marks them stale. */
static void set_page_hash(uint64_t p, uint64_t h) {
	uint8_t *e = page_hash + p * 8;
	if (bm_get64(e) != h) {
		bm_put64(e, h);
		bit_set(stale_group, p / GROUP_PAGES);
	}
	stale[p >> 3] &= (uint8_t)~(1u << (p & 7));
}

static uint64_t digest(uint8_t root[32]) {
	uint64_t rehashed = 0, groups = ram_bytes >> 20;
	collect();
	for (uint64_t g = 0; g < groups; g++) {
		if (!bit_get(stale_group, g)) continue;
		stale_group[g >> 3] &= (uint8_t)~(1u << (g & 7));
		for (uint64_t p = g * GROUP_PAGES; p < (g + 1) * GROUP_PAGES; p++) {
			if (!bit_get(stale, p)) continue;
			stale[p >> 3] &= (uint8_t)~(1u << (p & 7));
			bm_put64(page_hash + p * 8, bm_xxh64(hal_guest_map(p * PAGE, PAGE), PAGE, 0));
			rehashed++;
		}
		bm_put64(group_hash + g * 8, bm_xxh64(page_hash + g * GROUP_PAGES * 8, GROUP_PAGES * 8, 0));
	}
	bm_sha256(group_hash, (size_t)(groups * 8), root);
	return rehashed;
}

/* ---------- page streams ---------- */
static struct pout *find_pout(const uint8_t mac[6], uint32_t port, const uint8_t token[32]) {
	for (int i = 0; i < MAX_POUT; i++)
		if (pouts[i].s && !pouts[i].failed && pouts[i].port == port && !bm_memcmp(pouts[i].peer, mac, 6) && !bm_memcmp(pouts[i].token, token, 32)) return &pouts[i];
	return 0;
}

/* ---------- handlers ---------- */
struct req {
	const char *t;
	struct ctl *c;
	int ctl_idx;
	uint32_t id;
	struct field *f;
	struct bm_mp_writer *w;
	int *close_after;
	const uint8_t *msg;
	size_t len;
};

static int require(struct err *e, int mask) {
	if (mask & (1 << gs)) return 0;
	e->code = "STATE";
	bm_str_init(&e->m, errbuf, sizeof errbuf);
	bm_str_add(&e->m, "node ");
	bm_str_add(&e->m, cfg.node);
	bm_str_add(&e->m, ": guest is ");
	bm_str_add(&e->m, gname[gs]);
	bm_str_add(&e->m, ", this needs ");
	int first = 1;
	for (int s = 0; s <= G_RELEASED; s++)
		if (mask & (1 << s)) {
			if (!first) bm_str_add(&e->m, " or ");
			bm_str_add(&e->m, gname[s]);
			first = 0;
		}
	return -1;
}
#define RUNNING (1 << G_RUNNING)
#define PAUSED (1 << G_PAUSED)
#define INCOMING (1 << G_INCOMING)
#define IDLE ((1 << G_NONE) | (1 << G_RELEASED))

static int need_mem(struct err *e) {
	if (ram_bytes && (gs == G_RUNNING || gs == G_PAUSED || gs == G_INCOMING)) return 0;
	e->code = "STATE";
	bm_str_init(&e->m, errbuf, sizeof errbuf);
	bm_str_add(&e->m, "node ");
	bm_str_add(&e->m, cfg.node);
	bm_str_add(&e->m, " has no guest");
	return -1;
}

static void ok_hdr(struct bm_mp_writer *w, uint32_t id, uint32_t nbody) {
	bm_mpw_map(w, 2 + nbody);
	bm_mpw_str(w, "t");
	bm_mpw_str(w, "ok");
	bm_mpw_str(w, "id");
	bm_mpw_uint(w, id);
}

static uint64_t popcount_bm(const uint8_t *b, size_t n) {
	uint64_t c = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t v = b[i];
		while (v) { c++; v &= (uint8_t)(v - 1); }
	}
	return c;
}

static int run_program(struct req *q, struct err *e, struct bm_mp_reader *pr, uint64_t nops, uint64_t nreads) {
	uint64_t t0 = hal_now_ns();
	struct bm_mp_writer *w = q->w;
	ok_hdr(w, q->id, 2);
	bm_mpw_str(w, "reads");
	bm_mpw_array(w, (uint32_t)nreads);
	for (uint64_t i = 0; i < nops; i++) {
		struct op o;
		parse_op(pr, &o); /* validated already */
		switch (o.code) {
		case OP_IN: bm_mpw_uint(w, hal_port_in((uint16_t)o.addr, o.size) & szmask(o.size)); break;
		case OP_OUT: hal_port_out((uint16_t)o.addr, o.size, o.value & szmask(o.size)); break;
		case OP_MMIOR: bm_mpw_uint(w, hal_mmio_read(o.addr, o.size)); break;
		case OP_MMIOW: hal_mmio_write(o.addr, o.size, o.value); break;
		case OP_MEMR: {
			if (!in_range(o.addr, o.len)) goto range;
			uint8_t *d = bm_mpw_bin_reserve(w, o.len);
			if (d && o.len) bm_memcpy(d, hal_guest_map(o.addr, o.len), o.len);
			break;
		}
		case OP_MEMW:
			if (!in_range(o.addr, o.dlen)) goto range;
			if (o.dlen) {
				bm_memcpy(hal_guest_map(o.addr, o.dlen), o.data, o.dlen);
				mark_agent_write(o.addr, o.dlen, 1);
			}
			break;
		case OP_DELAY: hal_delay_us(o.us); break;
		case OP_WAIT: {
			uint64_t deadline = hal_now_ns() + (uint64_t)o.us * 1000;
			for (;;) {
				uint32_t v = o.mmio ? hal_mmio_read(o.addr, o.size) : hal_port_in((uint16_t)o.addr, o.size);
				if ((v & o.mask) == o.expect) break;
				uint64_t t = hal_now_ns();
				if (t >= deadline) {
					e->code = "DEVICE";
					bm_str_init(&e->m, errbuf, sizeof errbuf);
					bm_str_add(&e->m, "op "); bm_str_u64(&e->m, i); bm_str_add(&e->m, ": waitUntil "); bm_str_add(&e->m, o.mmio ? "mmio " : "io ");
					bm_str_hex(&e->m, o.addr); bm_str_add(&e->m, " & "); bm_str_hex(&e->m, o.mask); bm_str_add(&e->m, " == "); bm_str_hex(&e->m, o.expect);
					bm_str_add(&e->m, " timed out after "); bm_str_u64(&e->m, o.us); bm_str_add(&e->m, " us (last "); bm_str_hex(&e->m, v); bm_str_add(&e->m, ")");
					return -1;
				}
				uint64_t left = (deadline - t) / 1000;
				hal_delay_us(left < 50 ? (uint32_t)(left ? left : 1) : 50);
			}
			break;
		}
		case OP_INJECT:
			if (hal_inject_frame((const char *)o.data, o.len, (const uint8_t *)(uintptr_t)o.addr, o.dlen)) {
				e->code = "BAD_REQUEST";
				bm_str_init(&e->m, errbuf, sizeof errbuf);
				bm_str_add(&e->m, "node "); bm_str_add(&e->m, cfg.node); bm_str_add(&e->m, " has no NIC named "); bm_str_addn(&e->m, (const char *)o.data, o.len);
				return -1;
			}
			break;
		}
		continue;
	range:
		e->code = "BAD_REQUEST";
		bm_str_init(&e->m, errbuf, sizeof errbuf);
		bm_str_add(&e->m, "op "); bm_str_u64(&e->m, i); bm_str_add(&e->m, o.code == OP_MEMR ? ": memRead " : ": memWrite ");
		bm_str_hex(&e->m, o.addr); bm_str_add(&e->m, "+"); bm_str_u64(&e->m, o.code == OP_MEMR ? o.len : o.dlen); bm_str_add(&e->m, " outside guest RAM");
		return -1;
	}
	bm_mpw_str(w, "elapsedUs");
	bm_mpw_uint(w, (hal_now_ns() - t0) / 1000);
	return 0;
}

/* Request types and their keys (besides t and id). */
struct rdef {
	const char *t;
	const char *keys[6];
};
static const struct rdef rdefs[] = {
	{"hello", {"v", "role"}}, {"auth", {"nonce", "mac"}}, {"state", {0}}, {"boot", {"ramBytes", "spec"}},
	{"prepareIncoming", {"ramBytes", "devices"}}, {"dirtyLogStart", {0}}, {"dirtyLogSync", {0}}, {"dirtyLogStop", {0}},
	{"streamPages", {"which", "peer", "bandwidth"}}, {"memRead", {"addr", "len"}}, {"memWrite", {"addr", "data"}},
	{"pause", {0}}, {"resume", {0}}, {"vcpuGet", {0}}, {"vcpuSet", {"vcpu", "wallMs"}}, {"runProgram", {"program"}},
	{"shadow", {0}}, {"digest", {0}}, {"release", {0}},
};

/* Returns 0 ok (reply written), -1 error in e, 1 = must wait (streamPages busy). */
static int handle(struct req *q, struct err *e) {
	struct bm_mp_writer *w = q->w;
	struct field *f = q->f;
	struct ctl *c = q->c;
	const char *t = q->t;
	int64_t x = 0;
#define IS(name) (!bm_memcmp(t, name, sizeof name))
	/* ---- schema checks (PROTOCOL) ---- */
	uint64_t nops = 0, nreads = 0;
	struct bm_mp_reader prog;
	if (IS("hello")) {
		if (num_in(&f[2], -9007199254740991LL, 9007199254740991LL, 0)) return perr(e, t, "v", "expected an integer");
		if (f[3].present && str_max(&f[3], 64)) return perr(e, t, "role", "expected a string of at most 64 characters");
	} else if (IS("auth")) {
		if (bin_ok(&f[2], 32, 32)) return perr(e, t, "nonce", "must be 32 bytes");
		if (bin_ok(&f[3], 32, 32)) return perr(e, t, "mac", "must be 32 bytes");
	} else if (IS("boot") || IS("prepareIncoming")) {
		if (num_in(&f[2], 0, (int64_t)BM_MAX_RAM, 0)) return perr(e, t, "ramBytes", "expected an integer from 0 to 4 GiB");
		struct bm_mp_reader r;
		bm_mp_reader_init(&r, q->msg, q->len);
		r.pos = f[3].pos;
		if (!f[3].present) return perr(e, t, IS("boot") ? "spec" : "devices", "required");
		if (IS("boot")) {
			struct bm_mp_val m;
			struct field sf[1] = {{"modules", 0, 0, {0}}};
			const char *bad = 0;
			if (bm_mp_read(&r, &m) || m.type != BM_MP_MAP || collect_map(&r, m.u, sf, 1, &bad)) return perr(e, t, "spec", "expected an object with modules only");
			if (!sf[0].present || sf[0].v.type != BM_MP_ARRAY || sf[0].v.u > 16) return perr(e, t, "spec.modules", "expected an array of at most 16 modules");
			r.pos = sf[0].pos;
			struct bm_mp_val a;
			bm_mp_read(&r, &a);
			for (uint64_t i = 0; i < a.u; i++) {
				struct field mf[2] = {{"name", 0, 0, {0}}, {"config", 0, 0, {0}}};
				if (bm_mp_read(&r, &m) || m.type != BM_MP_MAP || collect_map(&r, m.u, mf, 2, &bad) || str_max(&mf[0], 32))
					return perr(e, t, "spec.modules", "each module is {name: string of at most 32 characters, config}");
			}
		} else {
			struct bm_mp_val a;
			if (bm_mp_read(&r, &a) || a.type != BM_MP_ARRAY || a.u > 32) return perr(e, t, "devices", "expected an array of at most 32 device kinds");
			for (uint64_t i = 0; i < a.u; i++) {
				struct field one = {"", 1, 0, {0}};
				if (bm_mp_read(&r, &one.v) || str_max(&one, 32)) return perr(e, t, "devices", "expected strings of at most 32 characters");
			}
		}
	} else if (IS("streamPages")) {
		if (!f[2].present || !(bm_mp_str_eq(&f[2].v, "all") || bm_mp_str_eq(&f[2].v, "dirty"))) return perr(e, t, "which", "expected 'all' or 'dirty'");
		struct bm_mp_reader r;
		bm_mp_reader_init(&r, q->msg, q->len);
		r.pos = f[3].pos;
		struct field pf[3] = {{"host", 0, 0, {0}}, {"port", 0, 0, {0}}, {"token", 0, 0, {0}}};
		struct bm_mp_val m;
		const char *bad = 0;
		if (!f[3].present || bm_mp_read(&r, &m) || m.type != BM_MP_MAP || collect_map(&r, m.u, pf, 3, &bad)) return perr(e, t, "peer", "expected {host, port, token}");
		if (str_max(&pf[0], 255) || pf[0].v.u == 0) return perr(e, t, "peer.host", "expected a string of 1 to 255 characters");
		if (num_in(&pf[1], 1, 65535, 0)) return perr(e, t, "peer.port", "expected an integer from 1 to 65535");
		if (bin_ok(&pf[2], 32, 32)) return perr(e, t, "peer.token", "must be 32 bytes");
		if (f[4].present) {
			uint64_t bw;
			if (!bm_mp_is_number(&f[4].v) || bm_f64_scaled(f[4].v.type == BM_MP_FLOAT ? f[4].v.fbits : bm_f64_ratio(f[4].v.neg ? 0 : f[4].v.u, 1), 1, &bw) ||
			    (f[4].v.type == BM_MP_INT && (f[4].v.neg || f[4].v.u == 0)) || (f[4].v.type == BM_MP_FLOAT && ((f[4].v.fbits >> 63) || (f[4].v.fbits << 1) == 0)) || bw > 1000000000000ULL)
				return perr(e, t, "bandwidth", "expected a positive number up to 1e12");
			if (f[4].v.type == BM_MP_FLOAT && bw == 1000000000000ULL && (f[4].v.fbits & 0xfffffffffffffULL) != (bm_f64_ratio(1000000000000ULL, 1) & 0xfffffffffffffULL))
				return perr(e, t, "bandwidth", "expected a positive number up to 1e12");
		}
	} else if (IS("memRead")) {
		if (num_in(&f[2], 0, (int64_t)BM_MAX_RAM, 0)) return perr(e, t, "addr", "expected an integer from 0 to 4 GiB");
		if (num_in(&f[3], 0, MAX_MEM_IO, 0)) return perr(e, t, "len", "expected an integer from 0 to 1 MiB");
	} else if (IS("memWrite")) {
		if (num_in(&f[2], 0, (int64_t)BM_MAX_RAM, 0)) return perr(e, t, "addr", "expected an integer from 0 to 4 GiB");
		if (bin_ok(&f[3], MAX_MEM_IO, -1)) return perr(e, t, "data", "at most 1048576 bytes");
	} else if (IS("vcpuSet")) {
		uint64_t us;
		if (!f[3].present || !bm_mp_is_number(&f[3].v)) return perr(e, t, "wallMs", "expected a number");
		if (f[3].v.type == BM_MP_INT ? f[3].v.neg || f[3].v.u > 1000000000000000ULL : bm_f64_scaled(f[3].v.fbits, 1, &us) || us > 1000000000000000ULL ||
		    (us == 1000000000000000ULL && bm_f64_to_int(f[3].v.fbits, &x)))
			return perr(e, t, "wallMs", "expected a number from 0 to 1e15");
	} else if (IS("runProgram")) {
		struct bm_mp_val a;
		if (!f[2].present) return perr(e, t, "program", "required");
		bm_mp_reader_init(&prog, q->msg, q->len);
		prog.pos = f[2].pos;
		if (bm_mp_read(&prog, &a) || a.type != BM_MP_ARRAY || a.u > MAX_PROGRAM_OPS) return perr(e, t, "program", "expected an array of at most 65536 ops");
		nops = a.u;
		struct bm_mp_reader r = prog;
		for (uint64_t i = 0; i < nops; i++) {
			struct op o;
			if (parse_op(&r, &o)) {
				bm_str_init(&e->m, errbuf, sizeof errbuf);
				e->code = "PROTOCOL";
				bm_str_add(&e->m, "invalid 'runProgram' request: program.");
				bm_str_u64(&e->m, i);
				bm_str_add(&e->m, ": not a valid IoProgram op");
				return -1;
			}
			if (o.code == OP_IN || o.code == OP_MMIOR || o.code == OP_MEMR) nreads++;
		}
	}

	/* ---- authentication ---- */
	if (IS("hello")) {
		bm_mp_number_int(&f[2].v, &x);
		if (x != BM_PROTOCOL_VERSION) {
			e->code = "VERSION";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "agent "); bm_str_add(&e->m, cfg.node); bm_str_add(&e->m, " speaks protocol v1, the coordinator v");
			if (x < 0) { bm_str_add(&e->m, "-"); bm_str_u64(&e->m, (uint64_t)-x); } else bm_str_u64(&e->m, (uint64_t)x);
			bm_str_add(&e->m, ": upgrade one of them");
			return -1;
		}
		hal_random(c->challenge, 32);
		c->has_challenge = 1;
		c->authed = 0;
		ok_hdr(w, q->id, 3);
		bm_mpw_str(w, "node"); bm_mpw_str(w, cfg.node);
		bm_mpw_str(w, "v"); bm_mpw_uint(w, BM_PROTOCOL_VERSION);
		bm_mpw_str(w, "challenge"); bm_mpw_bin(w, c->challenge, 32);
		return 0;
	}
	if (IS("auth")) {
		if (!c->has_challenge) return fail(e, "AUTH", "send hello before auth");
		uint8_t expect[32], mine[32];
		auth_mac("client", c->challenge, f[2].v.p, expect);
		c->has_challenge = 0;
		if (!bm_ct_equal(expect, f[3].v.p, 32)) {
			e->code = "AUTH";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "wrong cluster key for node "); bm_str_add(&e->m, cfg.node); bm_str_add(&e->m, ": check the key in the nodes file");
			return -1;
		}
		c->authed = 1;
		auth_mac("agent", c->challenge, f[2].v.p, mine);
		ok_hdr(w, q->id, 1);
		bm_mpw_str(w, "mac"); bm_mpw_bin(w, mine, 32);
		return 0;
	}
	if (!c->authed) {
		e->code = "AUTH";
		bm_str_init(&e->m, errbuf, sizeof errbuf);
		bm_str_add(&e->m, "not authenticated: '"); bm_str_add(&e->m, t); bm_str_add(&e->m, "' needs hello and auth first");
		return -1;
	}

	/* ---- commands ---- */
	if (IS("state")) {
		unsigned nd = 0;
		const char *kind, *name;
		uint64_t mb;
		while (!hal_device(nd, &kind, &name, &mb)) nd++;
		ok_hdr(w, q->id, 6);
		bm_mpw_str(w, "node"); bm_mpw_str(w, cfg.node);
		bm_mpw_str(w, "guest"); bm_mpw_str(w, gname[gs]);
		bm_mpw_str(w, "ramBytes"); bm_mpw_uint(w, gs == G_NONE || gs == G_RELEASED ? 0 : ram_bytes);
		bm_mpw_str(w, "ramCapacity"); bm_mpw_uint(w, cfg.ram_capacity);
		bm_mpw_str(w, "devices");
		bm_mpw_array(w, nd);
		for (unsigned i = 0; i < nd; i++) {
			hal_device(i, &kind, &name, &mb);
			bm_mpw_map(w, mb == UINT64_MAX ? 2 : 3);
			bm_mpw_str(w, "kind"); bm_mpw_str(w, kind);
			bm_mpw_str(w, "name"); bm_mpw_str(w, name);
			if (mb != UINT64_MAX) { bm_mpw_str(w, "mmioBase"); bm_mpw_uint(w, mb); }
		}
		bm_mpw_str(w, "dirtyLog"); bm_mpw_bool(w, logging);
		return 0;
	}
	if (IS("boot")) {
		if (require(e, IDLE)) return -1;
		num_in(&f[2], 0, (int64_t)BM_MAX_RAM, &x);
		if ((uint64_t)x > cfg.ram_capacity) return fail(e, "BAD_REQUEST", "the guest needs more RAM than this node has");
		char herr[200];
		struct bm_str s;
		if (x == 0 || x % (1 << 20) || alloc_guest_tables((uint64_t)x)) {
			e->code = "BAD_REQUEST";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "cannot boot guest: guest RAM size must be a positive multiple of 1 MiB up to 4 GiB, got ");
			bm_str_u64(&e->m, (uint64_t)x);
			return -1;
		}
		gs = G_RUNNING; /* hal_guest_boot may call back into nothing; set before for symmetry */
		if (hal_guest_boot((uint64_t)x, q->msg + f[3].pos, q->len - f[3].pos, herr, sizeof herr)) {
			gs = G_RUNNING;
			guest_release();
			gs = G_RELEASED;
			e->code = "BAD_REQUEST";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "cannot boot guest: ");
			bm_str_add(&e->m, herr);
			return -1;
		}
		(void)s;
		init_page_hashes();
		hal_track_enable(1);
		logging = 0;
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("prepareIncoming")) {
		if (require(e, IDLE)) return -1;
		num_in(&f[2], 0, (int64_t)BM_MAX_RAM, &x);
		if ((uint64_t)x > cfg.ram_capacity) return fail(e, "BAD_REQUEST", "the guest needs more RAM than this node has");
		if (x == 0 || x % (1 << 20)) return fail(e, "BAD_REQUEST", "RAM size is not a positive multiple of 1 MiB");
		struct bm_mp_reader r;
		struct bm_mp_val a, d;
		bm_mp_reader_init(&r, q->msg, q->len);
		r.pos = f[3].pos;
		bm_mp_read(&r, &a);
		for (uint64_t i = 0; i < a.u; i++) {
			bm_mp_read(&r, &d);
			int have = 0;
			const char *kind, *name;
			uint64_t mb;
			for (unsigned k = 0; !hal_device(k, &kind, &name, &mb); k++)
				if (bm_mp_str_eq(&d, kind)) have = 1;
			if (!have) {
				e->code = "BAD_REQUEST";
				bm_str_init(&e->m, errbuf, sizeof errbuf);
				bm_str_add(&e->m, "node "); bm_str_add(&e->m, cfg.node); bm_str_add(&e->m, " lacks device ");
				bm_str_addn(&e->m, (const char *)d.p, (size_t)d.u); bm_str_add(&e->m, " the guest uses");
				return -1;
			}
		}
		char herr[200];
		if (alloc_guest_tables((uint64_t)x)) return fail(e, "BAD_REQUEST", "cannot allocate the guest's tables");
		if (hal_guest_alloc((uint64_t)x, herr, sizeof herr)) {
			free_guest_tables();
			e->code = "BAD_REQUEST";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, herr);
			return -1;
		}
		init_page_hashes();
		hal_track_enable(1);
		gs = G_INCOMING;
		logging = 0;
		close_slot();
		hal_random(slot_token, 32);
		slot_open = 1;
		c->owns_incoming = 1;
		stats.pages_received = 0;
		ok_hdr(w, q->id, 2);
		bm_mpw_str(w, "port"); bm_mpw_uint(w, BM_DATA_PORT);
		bm_mpw_str(w, "token"); bm_mpw_bin(w, slot_token, 32);
		return 0;
	}
	if (IS("dirtyLogStart")) {
		if (require(e, RUNNING | PAUSED)) return -1;
		collect();
		bm_memset(dirty, 0, bm_bytes);
		bm_memset(pending, 0, bm_bytes);
		logging = 1;
		last_sync_ns = hal_now_ns();
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("dirtyLogSync")) {
		if (require(e, RUNNING | PAUSED)) return -1;
		if (!logging) return fail(e, "STATE", "dirty logging is off: send dirtyLogStart first");
		collect();
		for (size_t i = 0; i < bm_bytes; i++) pending[i] |= dirty[i];
		bm_memset(dirty, 0, bm_bytes);
		uint64_t t1 = hal_now_ns();
		ok_hdr(w, q->id, 2);
		bm_mpw_str(w, "dirtyPages"); bm_mpw_uint(w, popcount_bm(pending, bm_bytes));
		bm_mpw_str(w, "intervalMs"); bm_mpw_f64(w, bm_f64_ratio(t1 - last_sync_ns, 1000000));
		last_sync_ns = t1;
		return 0;
	}
	if (IS("dirtyLogStop")) {
		logging = 0;
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("streamPages")) {
		if (require(e, RUNNING | PAUSED)) return -1;
		int which_dirty = bm_mp_str_eq(&f[2].v, "dirty");
		if (which_dirty && !logging) return fail(e, "STATE", "dirty logging is off: send dirtyLogStart and dirtyLogSync first");
		if (job.active) return 1;
		struct bm_mp_reader r;
		struct bm_mp_val m;
		struct field pf[3] = {{"host", 0, 0, {0}}, {"port", 0, 0, {0}}, {"token", 0, 0, {0}}};
		const char *bad;
		bm_mp_reader_init(&r, q->msg, q->len);
		r.pos = f[3].pos;
		bm_mp_read(&r, &m);
		collect_map(&r, m.u, pf, 3, &bad);
		uint8_t mac[6];
		if (bm_parse_mac((const char *)pf[0].v.p, (size_t)pf[0].v.u, mac)) {
			e->code = "STREAM";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "page stream to ");
			bm_str_addn(&e->m, (const char *)pf[0].v.p, (size_t)pf[0].v.u);
			bm_str_add(&e->m, ": not a link address (aa:bb:cc:dd:ee:ff) on the migration link");
			return -1;
		}
		num_in(&pf[1], 1, 65535, &x);
		bm_memset(&job, 0, sizeof job);
		job.po = find_pout(mac, (uint32_t)x, pf[2].v.p);
		if (!job.po) {
			struct pout *po = 0;
			for (int i = 0; i < MAX_POUT; i++)
				if (!pouts[i].s) { po = &pouts[i]; break; }
			if (!po) { /* drop the oldest stream */
				po = &pouts[0];
				bm_sess_close(&link, po->s);
				po->s = 0;
			}
			bm_memset(po, 0, sizeof *po);
			bm_memcpy(po->peer, mac, 6);
			bm_memcpy(po->token, pf[2].v.p, 32);
			po->port = (uint32_t)x;
			po->acked = -1;
			po->s = bm_link_connect(&link, mac, BM_KIND_PAGES);
			if (!po->s) return fail(e, "STREAM", "no free link session for the page stream");
			po->s->user = po;
			job.po = po;
		}
		job.po->acked = -1;
		job.active = 1;
		job.ctl = q->ctl_idx;
		job.id = q->id;
		job.which_dirty = which_dirty;
		job.t0 = hal_now_ns();
		job.connect_deadline = job.t0 + 5000000000ULL;
		if (f[4].present) {
			uint64_t bw = 0;
			if (f[4].v.type == BM_MP_FLOAT) bm_f64_scaled(f[4].v.fbits, 1, &bw);
			else bw = f[4].v.u;
			job.bw = bw ? bw : 1;
		}
		return 2; /* reply when done */
	}
	if (IS("memRead")) {
		if (need_mem(e)) return -1;
		int64_t a = 0, n = 0;
		num_in(&f[2], 0, (int64_t)BM_MAX_RAM, &a);
		num_in(&f[3], 0, MAX_MEM_IO, &n);
		if (!in_range((uint64_t)a, (uint64_t)n)) {
			e->code = "BAD_REQUEST";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "memRead "); bm_str_hex(&e->m, (uint64_t)a); bm_str_add(&e->m, "+"); bm_str_u64(&e->m, (uint64_t)n);
			bm_str_add(&e->m, " outside guest RAM of "); bm_str_u64(&e->m, ram_bytes); bm_str_add(&e->m, " bytes");
			return -1;
		}
		ok_hdr(w, q->id, 1);
		bm_mpw_str(w, "data");
		uint8_t *d = bm_mpw_bin_reserve(w, (size_t)n);
		if (d && n) bm_memcpy(d, hal_guest_map((uint64_t)a, (size_t)n), (size_t)n);
		return 0;
	}
	if (IS("memWrite")) {
		if (require(e, PAUSED | INCOMING) || need_mem(e)) return -1;
		int64_t a = 0;
		num_in(&f[2], 0, (int64_t)BM_MAX_RAM, &a);
		uint64_t n = f[3].v.u;
		if (!in_range((uint64_t)a, n)) {
			e->code = "BAD_REQUEST";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "memWrite "); bm_str_hex(&e->m, (uint64_t)a); bm_str_add(&e->m, "+"); bm_str_u64(&e->m, n);
			bm_str_add(&e->m, " outside guest RAM of "); bm_str_u64(&e->m, ram_bytes); bm_str_add(&e->m, " bytes");
			return -1;
		}
		if (n) {
			bm_memcpy(hal_guest_map((uint64_t)a, (size_t)n), f[3].v.p, (size_t)n);
			mark_agent_write((uint64_t)a, n, 1);
		}
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("pause")) {
		if (require(e, RUNNING)) return -1;
		uint64_t tsc, wall;
		char herr[200];
		if (hal_guest_pause(&tsc, &wall, herr, sizeof herr)) return fail(e, "STATE", herr);
		gs = G_PAUSED;
		ok_hdr(w, q->id, 2);
		bm_mpw_str(w, "guestNs"); bm_mpw_uint(w, tsc);
		bm_mpw_str(w, "wallMs"); bm_mpw_f64(w, bm_f64_ratio(wall, 1000));
		return 0;
	}
	if (IS("resume")) {
		if (require(e, PAUSED | INCOMING)) return -1;
		int was_incoming = gs == G_INCOMING;
		char herr[200];
		if (hal_guest_resume(was_incoming, herr, sizeof herr)) {
			e->code = "STATE";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "cannot resume on "); bm_str_add(&e->m, cfg.node); bm_str_add(&e->m, ": "); bm_str_add(&e->m, herr);
			return -1;
		}
		gs = G_RUNNING;
		if (was_incoming) {
			close_slot();
			c->owns_incoming = 0;
		}
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("vcpuGet")) {
		if (require(e, RUNNING | PAUSED)) return -1;
		struct bm_vcpu v;
		uint64_t wall;
		hal_vcpu_get(&v, &wall);
		ok_hdr(w, q->id, 2);
		bm_mpw_str(w, "vcpu"); encode_vcpu(w, &v);
		bm_mpw_str(w, "wallMs"); bm_mpw_f64(w, bm_f64_ratio(wall, 1000));
		return 0;
	}
	if (IS("vcpuSet")) {
		if (require(e, INCOMING)) return -1;
		struct bm_vcpu v;
		struct bm_str why;
		char wb[120];
		bm_str_init(&why, wb, sizeof wb);
		struct bm_mp_reader r;
		bm_mp_reader_init(&r, q->msg, q->len);
		if (!f[2].present) bm_str_add(&why, "vcpu state must be an object");
		r.pos = f[2].pos;
		if (!f[2].present || decode_vcpu(&r, &v, &why)) {
			e->code = "PROTOCOL";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "invalid vCPU state: ");
			bm_str_add(&e->m, wb);
			return -1;
		}
		uint64_t wall;
		if (f[3].v.type == BM_MP_INT) wall = f[3].v.u * 1000;
		else bm_f64_scaled(f[3].v.fbits, 1000, &wall);
		hal_vcpu_set(&v, wall);
		ok_hdr(w, q->id, 0);
		return 0;
	}
	if (IS("runProgram")) {
		if (require(e, PAUSED | INCOMING) || need_mem(e)) return -1;
		return run_program(q, e, &prog, nops, nreads);
	}
	if (IS("shadow")) {
		/* byte for byte the simulator agent's reply: {t, id, shadow} as msgpackr writes objects */
		bm_mpw_object(w, 3);
		bm_mpw_str(w, "t"); bm_mpw_str(w, "ok");
		bm_mpw_str(w, "id"); bm_mpw_uint(w, q->id);
		bm_mpw_str(w, "shadow");
		hal_shadow(w);
		return 0;
	}
	if (IS("digest")) {
		if (need_mem(e)) return -1;
		uint64_t t0 = hal_now_ns();
		uint8_t root[32];
		uint64_t n = digest(root);
		char hex[64];
		for (int i = 0; i < 32; i++) {
			hex[i * 2] = "0123456789abcdef"[root[i] >> 4];
			hex[i * 2 + 1] = "0123456789abcdef"[root[i] & 15];
		}
		ok_hdr(w, q->id, 3);
		bm_mpw_str(w, "hex"); bm_mpw_strn(w, hex, 64);
		bm_mpw_str(w, "rehashedPages"); bm_mpw_uint(w, n);
		bm_mpw_str(w, "ms"); bm_mpw_f64(w, bm_f64_ratio(hal_now_ns() - t0, 1000000));
		return 0;
	}
	if (IS("release")) {
		if (gs == G_RUNNING) {
			e->code = "STATE";
			bm_str_init(&e->m, errbuf, sizeof errbuf);
			bm_str_add(&e->m, "refusing to release the running guest on "); bm_str_add(&e->m, cfg.node);
			bm_str_add(&e->m, ": pause it first (only a migrated or abandoned guest is released)");
			return -1;
		}
		close_senders();
		close_slot();
		if (gs != G_NONE) guest_release();
		logging = 0;
		ok_hdr(w, q->id, 0);
		return 0;
	}
#undef IS
	return fail(e, "PROTOCOL", "unknown request");
}

static size_t error_reply(uint8_t *out, size_t cap, uint32_t id, struct err *e) {
	struct bm_mp_writer w;
	bm_mpw_init(&w, out, cap);
	bm_mpw_map(&w, 4);
	bm_mpw_str(&w, "t"); bm_mpw_str(&w, "err");
	bm_mpw_str(&w, "id"); bm_mpw_uint(&w, id);
	bm_mpw_str(&w, "code"); bm_mpw_str(&w, e->code);
	bm_mpw_str(&w, "message"); bm_mpw_str(&w, errbuf);
	if (!bm_strlen(e->code) || e->code[0] == 'P' || e->code[0] == 'A' || e->code[0] == 'V') stats.refused++;
	return w.len;
}

/* Returns reply length; 0 = wait (job busy, message kept); (size_t)-1 = the reply will come from the job. */
static size_t handle_msg(int ci, const uint8_t *msg, size_t len, uint8_t *out, size_t cap, int *close_after) {
	struct ctl *c = &ctls[ci];
	struct err e;
	err_init(&e);
	uint32_t id = 0;
	struct bm_mp_reader r;
	struct bm_mp_val m, key, v;
	char tname[40];
	*close_after = 0;
	if (bm_mp_check_one(msg, len)) { fail(&e, "PROTOCOL", "undecodable message"); goto error; }
	bm_mp_reader_init(&r, msg, len);
	bm_mp_read(&r, &m);
	if (m.type != BM_MP_MAP) { fail(&e, "PROTOCOL", "message is not a map"); goto error; }
	/* pass 1: t and id (the last occurrence wins, as in a JS object) */
	struct bm_mp_val tv = {0};
	int have_t = 0;
	for (uint64_t i = 0; i < m.u; i++) {
		bm_mp_read(&r, &key);
		struct bm_mp_reader t = r;
		bm_mp_read(&t, &v);
		if (bm_mp_str_eq(&key, "t")) { tv = v; have_t = 1; }
		if (bm_mp_str_eq(&key, "id")) {
			int64_t x;
			id = (!bm_mp_number_int(&v, &x) && x >= 0 && x <= 0xffffffffLL) ? (uint32_t)x : 0;
		}
		bm_mp_skip(&r);
	}
	if (!have_t || tv.type != BM_MP_STR) { id = 0; fail(&e, "PROTOCOL", "message has no string field t"); goto error; }
	const struct rdef *d = 0;
	for (size_t i = 0; i < sizeof rdefs / sizeof rdefs[0]; i++)
		if (bm_mp_str_eq(&tv, rdefs[i].t)) d = &rdefs[i];
	if (!d) {
		e.code = "PROTOCOL";
		bm_str_init(&e.m, errbuf, sizeof errbuf);
		bm_str_add(&e.m, "invalid '");
		bm_str_addn(&e.m, (const char *)tv.p, tv.u > 32 ? 32 : (size_t)tv.u);
		bm_str_add(&e.m, "' request: t: unknown request type");
		goto error;
	}
	/* pass 2: strict keys */
	struct field f[MAXF];
	int nf = 2;
	f[0].name = "t";
	f[1].name = "id";
	for (int i = 0; i < 6 && d->keys[i]; i++) f[nf++].name = d->keys[i];
	const char *bad = 0;
	bm_mp_reader_init(&r, msg, len);
	bm_mp_read(&r, &m);
	if (collect_map(&r, m.u, f, nf, &bad)) { perr(&e, d->t, "(root)", "unrecognized key"); goto error; }
	{
		int64_t x;
		if (num_in(&f[1], 0, 0xffffffffLL, &x)) { perr(&e, d->t, "id", "expected an integer from 0 to 2^32-1"); goto error; }
	}
	bm_memcpy(tname, d->t, bm_strlen(d->t) + 1);
	{
		struct bm_mp_writer w;
		bm_mpw_init(&w, out, cap);
		struct req q = {tname, c, ci, id, f, &w, close_after, msg, len};
		int rc = handle(&q, &e);
		if (rc == 1) return 0;
		if (rc == 2) return (size_t)-1;
		if (rc == 0) {
			if (!w.overflow) return w.len;
			fail(&e, "BAD_REQUEST", "the reply exceeds the largest message (8 MiB)");
		}
	}
error:
	if (e.code[0] == 'A' && !c->has_challenge && !c->authed) *close_after = 1;
	return error_reply(out, cap, id, &e);
}

size_t bm_agent_handle(int ci, const uint8_t *msg, size_t len, uint8_t *out, size_t cap, int *close_after) {
	size_t n = handle_msg(ci, msg, len, out, cap, close_after);
	return n == (size_t)-1 ? 0 : n;
}

void bm_agent_test_session(int ci, int authed) {
	bm_memset(&ctls[ci].challenge, 0, 32);
	ctls[ci].has_challenge = ctls[ci].owns_incoming = 0;
	ctls[ci].authed = authed;
	ctls[ci].used = 1;
}

/* ---------- link callbacks ---------- */
static int cb_send(void *ctx, const uint8_t *f, size_t n) { (void)ctx; return hal_link_send(f, n); }
static uint64_t cb_now(void *ctx) { (void)ctx; return hal_now_ns(); }
static void cb_random(void *ctx, uint8_t *o, size_t n) { (void)ctx; hal_random(o, n); }

static int cb_accept(void *ctx, struct bm_sess *s) {
	(void)ctx;
	if (s->kind == BM_KIND_CONTROL) {
		for (int i = 0; i < BM_MAX_CONTROL; i++)
			if (!ctls[i].used) {
				struct ctl *c = &ctls[i];
				c->used = 1;
				c->s = s;
				c->has_challenge = c->authed = c->owns_incoming = 0;
				c->lenfill = c->need = c->fill = 0;
				c->have_msg = c->close_after = 0;
				c->out_len = c->out_off = 0;
				s->user = c;
				return 0;
			}
		return -1;
	}
	if (s->kind == BM_KIND_PAGES) {
		for (int i = 0; i < MAX_PIN; i++)
			if (!pins[i].s) {
				struct pin *p = &pins[i];
				p->s = s;
				p->hfill = 0;
				p->opened = p->dead = 0;
				p->page = -1;
				p->pfill = p->since_end = 0;
				p->ackq_len = 0;
				s->user = p;
				return 0;
			}
	}
	return -1;
}

static void ctl_closed(struct ctl *c) {
	if (job.active && &ctls[job.ctl] == c) job.active = 0;
	if (c->owns_incoming && gs == G_INCOMING) {
		/* the coordinator that started this incoming migration is gone before the guest ran here */
		close_slot();
		guest_release();
	}
	c->used = 0;
	c->s = 0;
}

static void cb_closed(void *ctx, struct bm_sess *s, const char *why) {
	(void)ctx;
	for (int i = 0; i < BM_MAX_CONTROL; i++)
		if (ctls[i].used && ctls[i].s == s) ctl_closed(&ctls[i]);
	for (int i = 0; i < MAX_PIN; i++)
		if (pins[i].s == s) pins[i].s = 0;
	for (int i = 0; i < MAX_POUT; i++)
		if (pouts[i].s == s) {
			pouts[i].s = 0;
			pouts[i].failed = 1;
			struct bm_str m;
			bm_str_init(&m, pouts[i].why, sizeof pouts[i].why);
			bm_str_add(&m, why);
			if (job.active && job.po == &pouts[i]) {
				job.po = 0; /* the job notices and fails */
				bm_memcpy(errbuf, pouts[i].why, sizeof pouts[i].why);
			}
		}
}

static void cb_opened(void *ctx, struct bm_sess *s) {
	(void)ctx;
	struct pout *po = (struct pout *)s->user;
	if (!po) return;
	po->open = 1;
	uint8_t op[40];
	bm_memset(op, 0, 40);
	bm_put32(op, 0x53504d42); /* 'BMPS' */
	op[4] = 1;
	bm_memcpy(op + 8, po->token, 32);
	bm_sess_write(&link, s, op, 40);
}

static void pin_nak(struct pin *p, uint32_t code) {
	uint8_t a[8] = {5, 0, 0, 0};
	bm_put32(a + 4, code);
	p->dead = 1;
	stats.streams_rejected++;
	bm_memcpy(p->ackq + p->ackq_len, a, 8);
	p->ackq_len += 8;
}

static int store_page(struct pin *p, uint32_t idx, const uint8_t *src) {
	if (!slot_open || gs != G_INCOMING || (uint64_t)idx >= npages) {
		pin_nak(p, 1);
		return -1;
	}
	uint8_t *dst = hal_guest_map((uint64_t)idx * PAGE, PAGE);
	stats.pages_received++;
	if (!src) {
		if (bm_is_zero(dst, PAGE)) return 0; /* already zero: its hash is unchanged (as the simulator's receiver, native/pageStreamIo.c) */
		bm_memset(dst, 0, PAGE);
	} else {
		bm_memcpy(dst, src, PAGE);
	}
	bit_set(stale, idx);
	bit_set(stale_group, idx / GROUP_PAGES);
	return 0;
}

/* Destination side: the page stream decoder (the format of src/protocol/pageStream.ts). */
static size_t pin_data(struct pin *p, const uint8_t *d, size_t n) {
	size_t off = 0;
	if (p->ackq_len > 48) return 0; /* acks not yet out: wait */
	while (off < n && !p->dead) {
		if (!p->opened) {
			size_t k = 40 - p->hfill;
			if (k > n - off) k = n - off;
			bm_memcpy(p->hdr + p->hfill, d + off, k);
			p->hfill += (uint32_t)k;
			off += k;
			if (p->hfill < 40) break;
			p->hfill = 0;
			if (bm_get32(p->hdr) != 0x53504d42 || p->hdr[4] != 1 || !slot_open || !bm_ct_equal(p->hdr + 8, slot_token, 32)) {
				pin_nak(p, 2);
				break;
			}
			p->opened = 1;
			continue;
		}
		if (p->page >= 0) {
			size_t k = PAGE - p->pfill;
			if (k > n - off) k = n - off;
			bm_memcpy(p->scratch + p->pfill, d + off, k);
			p->pfill += (uint32_t)k;
			off += k;
			if (p->pfill == PAGE) {
				uint32_t idx = (uint32_t)p->page;
				p->page = -1;
				if (store_page(p, idx, p->scratch)) break;
			}
			continue;
		}
		uint8_t type;
		uint32_t arg;
		if (p->hfill == 0 && n - off >= 8) {
			type = d[off];
			arg = bm_get32(d + off + 4);
			off += 8;
		} else {
			size_t k = 8 - p->hfill;
			if (k > n - off) k = n - off;
			bm_memcpy(p->hdr + p->hfill, d + off, k);
			p->hfill += (uint32_t)k;
			off += k;
			if (p->hfill < 8) break;
			p->hfill = 0;
			type = p->hdr[0];
			arg = bm_get32(p->hdr + 4);
		}
		if (type == 1) {
			p->since_end++;
			if (n - off >= PAGE) {
				if (store_page(p, arg, d + off)) break;
				off += PAGE;
			} else {
				p->page = arg;
				p->pfill = 0;
			}
		} else if (type == 2) {
			p->since_end++;
			if (store_page(p, arg, 0)) break;
		} else if (type == 3) {
			if (arg != p->since_end) { pin_nak(p, 2); break; }
			p->since_end = 0;
			uint8_t a[8] = {4, 0, 0, 0};
			bm_put32(a + 4, arg);
			bm_memcpy(p->ackq + p->ackq_len, a, 8);
			p->ackq_len += 8;
			if (p->ackq_len > 48) break;
		} else {
			pin_nak(p, 2);
			break;
		}
	}
	return p->dead ? n : off;
}

static size_t pout_data(struct pout *po, const uint8_t *d, size_t n) {
	for (size_t i = 0; i < n; i++) {
		po->ackbuf[po->ackfill++] = d[i];
		if (po->ackfill == 8) {
			po->ackfill = 0;
			if (po->ackbuf[0] == 4) po->acked = bm_get32(po->ackbuf + 4);
			else {
				po->failed = 1;
				po->nak = po->ackbuf[0] == 5 ? bm_get32(po->ackbuf + 4) : 0xffffffffu;
			}
		}
	}
	return n;
}

static size_t ctl_data(struct ctl *c, const uint8_t *d, size_t n) {
	size_t off = 0;
	while (off < n && !c->have_msg && !c->close_after) {
		if (c->lenfill < 4) {
			c->lenbuf[c->lenfill++] = d[off++];
			if (c->lenfill == 4) {
				c->need = bm_get32(c->lenbuf);
				c->fill = 0;
				if (c->need > BM_MAX_MESSAGE) {
					/* as the WebSocket transport does with an oversized message: drop the connection */
					stats.refused++;
					struct bm_sess *s = c->s;
					ctl_closed(c);
					bm_sess_close(&link, s);
					return n;
				}
				if (c->need == 0) { c->lenfill = 0; c->have_msg = 1; }
			}
			continue;
		}
		size_t k = c->need - c->fill;
		if (k > n - off) k = n - off;
		bm_memcpy(c->in + c->fill, d + off, k);
		c->fill += (uint32_t)k;
		off += k;
		if (c->fill == c->need) {
			c->lenfill = 0;
			c->have_msg = 1;
		}
	}
	return off;
}

static size_t cb_data(void *ctx, struct bm_sess *s, const uint8_t *d, size_t n) {
	(void)ctx;
	for (int i = 0; i < BM_MAX_CONTROL; i++)
		if (ctls[i].used && ctls[i].s == s) return ctl_data(&ctls[i], d, n);
	for (int i = 0; i < MAX_PIN; i++)
		if (pins[i].s == s) return pin_data(&pins[i], d, n);
	for (int i = 0; i < MAX_POUT; i++)
		if (pouts[i].s == s) return pout_data(&pouts[i], d, n);
	return n;
}

int bm_agent_init(const struct bm_agent_cfg *c) {
	cfg = *c;
	bm_memset(&stats, 0, sizeof stats);
	gs = G_NONE;
	struct bm_link_ops ops = {0, cb_send, cb_now, cb_random, cb_accept, cb_opened, cb_data, cb_closed};
	uint8_t mac[6];
	hal_link_mac(mac);
	return bm_link_init(&link, &ops, mac, hal_link_mtu(), c->key, c->keylen);
}

void bm_agent_input(const uint8_t *frame, size_t len) { bm_link_input(&link, frame, len); }

static void ctl_reply(struct ctl *c, size_t n) {
	bm_put32(c->out, (uint32_t)n);
	c->out_len = (uint32_t)n + 4;
	c->out_off = 0;
}

static void job_finish(struct err *e) {
	struct ctl *c = &ctls[job.ctl];
	job.active = 0;
	if (!c->used) return;
	size_t n;
	if (e) {
		n = error_reply(c->out + 4, sizeof c->out - 4, job.id, e);
	} else {
		struct bm_mp_writer w;
		bm_mpw_init(&w, c->out + 4, sizeof c->out - 4);
		ok_hdr(&w, job.id, 4);
		bm_mpw_str(&w, "pages"); bm_mpw_uint(&w, job.pages);
		bm_mpw_str(&w, "zeroPages"); bm_mpw_uint(&w, job.zero);
		bm_mpw_str(&w, "wireBytes"); bm_mpw_uint(&w, job.wire);
		bm_mpw_str(&w, "ms"); bm_mpw_f64(&w, bm_f64_ratio(hal_now_ns() - job.t0, 1000000));
		n = w.len;
	}
	ctl_reply(c, n);
}

static void job_step(void) {
	struct err e;
	err_init(&e);
	if (!job.active) return;
	struct pout *po = job.po;
	if (gs != G_RUNNING && gs != G_PAUSED) { fail(&e, "STATE", "the guest went away during the page stream"); job_finish(&e); return; }
	if (!po || !po->s) {
		e.code = "STREAM";
		bm_str_init(&e.m, errbuf + 256, 200);
		char tmp[200];
		bm_memcpy(tmp, errbuf, 100);
		tmp[99] = 0;
		bm_str_init(&e.m, errbuf, sizeof errbuf);
		bm_str_add(&e.m, "page stream to the destination failed: ");
		bm_str_add(&e.m, tmp);
		job_finish(&e);
		return;
	}
	if (po->failed) {
		e.code = "STREAM";
		bm_str_init(&e.m, errbuf, sizeof errbuf);
		bm_str_add(&e.m, "destination refused the page stream (code ");
		bm_str_u64(&e.m, po->nak);
		bm_str_add(&e.m, ")");
		bm_sess_close(&link, po->s);
		po->s = 0;
		job_finish(&e);
		return;
	}
	if (!po->open) {
		if (hal_now_ns() > job.connect_deadline) {
			bm_sess_close(&link, po->s);
			po->s = 0;
			fail(&e, "STREAM", "page stream to the destination: connect timed out after 5000 ms");
			job_finish(&e);
		}
		return;
	}
	struct bm_sess *s = po->s;
	uint8_t h[8] = {0};
	uint64_t budget = UINT64_MAX;
	if (job.bw) {
		uint64_t el = hal_now_ns() - job.t0;
		uint64_t allowed = job.bw * (el / 1000) / 1000000 + 65536; /* bytes/s × µs, plus one burst */
		budget = allowed > job.bw_sent ? allowed - job.bw_sent : 0;
	}
	while (!job.end_written && job.next_page < npages) {
		uint64_t p = job.next_page;
		if (job.which_dirty && !bit_get(pending, p)) {
			/* skip clear bytes quickly */
			if ((p & 7) == 0 && pending[p >> 3] == 0) { job.next_page += 8; continue; }
			job.next_page++;
			continue;
		}
		if (bm_sess_tx_free(s) < 8 + PAGE + 8 || budget < 8 + PAGE) return;
		const uint8_t *src = hal_guest_map(p * PAGE, PAGE);
		int zero = bm_is_zero(src, PAGE);
		h[0] = zero ? 2 : 1;
		bm_put32(h + 4, (uint32_t)p);
		bm_sess_write(&link, s, h, 8);
		if (!zero) bm_sess_write(&link, s, src, PAGE);
		/* hash the page as sent (as the simulator's sender, native/pageStreamIo.c): the digest at pause then costs only later writes */
		set_page_hash(p, zero ? BM_XXH64_ZERO_PAGE : bm_xxh64(src, PAGE, 0));
		uint64_t nb = zero ? 8 : 8 + PAGE;
		job.wire += nb;
		job.bw_sent += nb;
		budget -= nb;
		job.pages++;
		if (zero) job.zero++;
		job.next_page++;
	}
	if (!job.end_written) {
		if (bm_sess_tx_free(s) < 8) return;
		h[0] = 3;
		bm_put32(h + 4, (uint32_t)job.pages);
		bm_sess_write(&link, s, h, 8);
		job.wire += 8;
		job.end_written = 1;
	}
	if (po->acked < 0) return;
	if ((uint64_t)po->acked != job.pages) {
		e.code = "STREAM";
		bm_str_init(&e.m, errbuf, sizeof errbuf);
		bm_str_add(&e.m, "destination acknowledged "); bm_str_u64(&e.m, (uint64_t)po->acked); bm_str_add(&e.m, " pages, ");
		bm_str_u64(&e.m, job.pages); bm_str_add(&e.m, " were sent");
		job_finish(&e);
		return;
	}
	if (logging) bm_memset(pending, 0, bm_bytes); /* sent and acknowledged: no longer pending */
	job_finish(0);
}

void bm_agent_poll(void) {
	bm_link_poll(&link);
	for (int i = 0; i < MAX_PIN; i++) {
		struct pin *p = &pins[i];
		if (!p->s) continue;
		if (p->ackq_len) {
			size_t k = bm_sess_write(&link, p->s, p->ackq, p->ackq_len);
			bm_memcpy(p->ackq, p->ackq + k, p->ackq_len - k);
			p->ackq_len -= (uint32_t)k;
		}
		if (p->dead && !p->ackq_len && bm_sess_tx_idle(p->s)) {
			bm_sess_close(&link, p->s);
			p->s = 0;
		}
	}
	job_step();
	for (int i = 0; i < BM_MAX_CONTROL; i++) {
		struct ctl *c = &ctls[i];
		if (!c->used) continue;
		if (c->out_off < c->out_len) {
			c->out_off += (uint32_t)bm_sess_write(&link, c->s, c->out + c->out_off, c->out_len - c->out_off);
			if (c->out_off < c->out_len) continue;
		}
		if (c->close_after) {
			if (bm_sess_tx_idle(c->s)) {
				struct bm_sess *s = c->s;
				ctl_closed(c);
				bm_sess_close(&link, s);
			}
			continue;
		}
		if (c->have_msg && !(job.active && job.ctl == i)) {
			int close_after = 0;
			size_t n = handle_msg(i, c->in, c->need, c->out + 4, sizeof c->out - 4, &close_after);
			if (n == 0) continue; /* must wait for the running page stream */
			c->have_msg = 0;
			c->need = 0;
			if (n != (size_t)-1) {
				ctl_reply(c, n);
				c->close_after = close_after;
				c->out_off += (uint32_t)bm_sess_write(&link, c->s, c->out, c->out_len);
			}
		}
	}
	job_step();
	bm_link_poll(&link);
}

/* When the running page stream can go on without waiting for the link: 0 = now,
 * UINT64_MAX = when frames arrive (ACKs free the send ring, the destination's ACK). */
static uint64_t job_next_ns(uint64_t t) {
	struct pout *po = job.po;
	if (!po || !po->s || po->failed || (gs != G_RUNNING && gs != G_PAUSED)) return t; /* job_step reports it */
	if (!po->open) return job.connect_deadline;
	if (job.end_written) return po->acked >= 0 ? t : UINT64_MAX;
	if (bm_sess_tx_free(po->s) < 8 + PAGE + 8) return UINT64_MAX;
	return job.bw ? t + 200000 : t;
}

uint64_t bm_agent_next_ns(void) {
	uint64_t t = hal_now_ns();
	for (int i = 0; i < BM_MAX_CONTROL; i++)
		if (ctls[i].used && ((ctls[i].have_msg && !(job.active && job.ctl == i)) || ctls[i].out_off < ctls[i].out_len || ctls[i].close_after)) return t;
	for (int i = 0; i < MAX_PIN; i++)
		if (pins[i].s && (pins[i].ackq_len || pins[i].dead)) return t;
	uint64_t l = bm_link_next_ns(&link);
	if (job.active) {
		uint64_t j = job_next_ns(t);
		if (j < l) l = j;
	}
	return l;
}

void bm_agent_get_stats(struct bm_agent_stats *out) {
	*out = stats;
	out->link = link.st;
}
