/* The link transport between two endpoints over a simulated wire with loss,
 * reordering and duplication, on a virtual clock; and the frames an attacker
 * can send (wrong MAC, replays, unknown sessions, a wrong cluster key). */
#include <stdlib.h>
#include <string.h>
#include "../core/link.h"
#include "check.h"

struct qf { uint64_t at; size_t len; int to; uint8_t *f; };
static struct qf *q;
static size_t qn, qcap;
static uint64_t clk = 1000000000ULL;
static double loss, dup, reorder;
/* Wire rate in bytes per virtual second (0: unlimited): frames queue behind each other, as on a real link. */
static double rate;
static uint64_t wire_free[2];
static uint32_t rng = 12345;
static double rnd(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return (double)rng / 4294967296.0; }

static struct bm_link A, B;
static uint8_t macA[6] = {2, 0, 0, 0, 0, 0xa}, macB[6] = {2, 0, 0, 0, 0, 0xb};
static uint8_t *last_frame; static size_t last_len; /* last frame A sent (for replay tests) */

static void enqueue(int to, const uint8_t *f, size_t n, uint64_t delay) {
	if (qn == qcap) { qcap = qcap * 2 + 64; q = realloc(q, qcap * sizeof *q); }
	q[qn].at = clk + delay; q[qn].len = n; q[qn].to = to; q[qn].f = malloc(n); memcpy(q[qn].f, f, n); qn++;
}
static int send_any(int to, const uint8_t *f, size_t n) {
	if (to == 1) { free(last_frame); last_frame = malloc(n); memcpy(last_frame, f, n); last_len = n; }
	uint64_t queued = 0;
	if (rate > 0) {
		uint64_t start = wire_free[to] > clk ? wire_free[to] : clk;
		wire_free[to] = start + (uint64_t)((double)n * 1e9 / rate);
		queued = wire_free[to] - clk;
	}
	if (rnd() < loss) return 0;
	uint64_t d = queued + 20000 + (rnd() < reorder ? (uint64_t)(rnd() * 200000) : 0);
	enqueue(to, f, n, d);
	if (rnd() < dup) enqueue(to, f, n, d + 5000);
	return 0;
}
static int sendA(void *c, const uint8_t *f, size_t n) { (void)c; return send_any(1, f, n); }
static int sendB(void *c, const uint8_t *f, size_t n) { (void)c; return send_any(0, f, n); }
static uint64_t now(void *c) { (void)c; return clk; }
static void rand_bytes(void *c, uint8_t *o, size_t n) { (void)c; for (size_t i = 0; i < n; i++) o[i] = (uint8_t)(rnd() * 256); }

/* receiver side: B collects a byte stream and checks it against the pattern */
static uint64_t got[2]; static int bad_bytes, accepted, opened_cnt, closed_cnt;
static uint8_t pat(uint64_t i) { return (uint8_t)(i * 131 + (i >> 9)); }
static int acceptB(void *c, struct bm_sess *s) { (void)c; accepted++; return s->kind == BM_KIND_CONTROL ? 0 : -1; }
static int acceptA(void *c, struct bm_sess *s) { (void)c; (void)s; return -1; }
static void opened(void *c, struct bm_sess *s) { (void)c; (void)s; opened_cnt++; }
static size_t dataB(void *c, struct bm_sess *s, const uint8_t *p, size_t n) {
	(void)c; (void)s;
	for (size_t i = 0; i < n; i++) if (p[i] != pat(got[1] + i)) bad_bytes++;
	got[1] += n;
	return n;
}
static size_t dataA(void *c, struct bm_sess *s, const uint8_t *p, size_t n) {
	(void)c; (void)s;
	for (size_t i = 0; i < n; i++) if (p[i] != pat(got[0] + i)) bad_bytes++;
	got[0] += n;
	return n;
}
static void closed(void *c, struct bm_sess *s, const char *why) { (void)c; (void)s; (void)why; closed_cnt++; }

static void step(void) {
	clk += 10000;
	size_t k = 0;
	for (size_t i = 0; i < qn; i++) {
		if (q[i].at <= clk) { bm_link_input(q[i].to ? &B : &A, q[i].f, q[i].len); free(q[i].f); }
		else q[k++] = q[i];
	}
	qn = k;
	bm_link_poll(&A);
	bm_link_poll(&B);
}

static uint64_t fed[2];
static void feed(struct bm_link *l, struct bm_sess *s, int side, uint64_t total) {
	uint8_t buf[65536];
	while (fed[side] < total) {
		size_t n = total - fed[side] < sizeof buf ? (size_t)(total - fed[side]) : sizeof buf;
		for (size_t i = 0; i < n; i++) buf[i] = pat(fed[side] + i);
		size_t w = bm_sess_write(l, s, buf, n);
		fed[side] += w;
		if (w < n) break;
	}
}

static struct bm_sess *peer_of(struct bm_link *l) {
	for (int i = 0; i < BM_MAX_SESSIONS; i++) if (l->sess[i].state == BM_S_OPEN) return &l->sess[i];
	return 0;
}

static int transfer(uint64_t total, int both) {
	got[0] = got[1] = fed[0] = fed[1] = 0;
	struct bm_sess *sa = bm_link_connect(&A, macB, BM_KIND_CONTROL);
	for (int i = 0; i < 20000 && sa->state != BM_S_OPEN; i++) step();
	if (sa->state != BM_S_OPEN) return -1;
	struct bm_sess *sb = 0;
	for (int i = 0; i < 20000 && !(sb = peer_of(&B)); i++) step();
	for (long i = 0; i < 5000000 && (got[1] < total || (both && got[0] < total)); i++) {
		feed(&A, sa, 1, total);
		if (both && sb) feed(&B, sb, 0, total);
		step();
	}
	bm_sess_close(&A, sa);
	for (int i = 0; i < 100; i++) step();
	return 0;
}

int main(void) {
	uint8_t key[32], wrong[32];
	memset(key, 7, 32);
	memset(wrong, 8, 32);
	struct bm_link_ops oa = {0, sendA, now, rand_bytes, acceptA, opened, dataA, closed};
	struct bm_link_ops ob = {0, sendB, now, rand_bytes, acceptB, opened, dataB, closed};
	CHECK(bm_link_init(&A, &oa, macA, 9000, key, 32) == 0);
	CHECK(bm_link_init(&B, &ob, macB, 9000, key, 32) == 0);
	CHECK(bm_link_init(&B, &ob, macB, 100, key, 32) != 0);
	CHECK(bm_link_init(&B, &ob, macB, 9000, key, 32) == 0);

	/* clean link: 8 MB one way */
	CHECK(transfer(8u << 20, 0) == 0);
	CHECK(got[1] == 8u << 20 && bad_bytes == 0);
	CHECK(A.st.retransmits == 0);
	CHECK(closed_cnt == 1); /* B saw the FIN */
	/* the sender sends data frames only (no keepalive ACK per poll), the receiver about one ACK per ACK_EVERY frames */
	uint64_t data_frames = ((8u << 20) + A.mss - 1) / A.mss;
	CHECK(A.st.tx_frames <= data_frames + 4);
	CHECK(B.st.tx_frames <= data_frames / 4);

	/* 5 % loss, reordering and duplicates, both directions */
	loss = 0.05; dup = 0.02; reorder = 0.05;
	CHECK(transfer(4u << 20, 1) == 0);
	CHECK(got[1] == 4u << 20 && got[0] == 4u << 20 && bad_bytes == 0);
	CHECK(A.st.retransmits > 0);
	CHECK(B.st.replay > 0); /* network duplicates reuse a packet number: dropped as replays */
	/* losses (lost retransmissions included) are repaired by RACK and probes, not by the RTO */
	CHECK(A.st.timeouts == 0 && B.st.timeouts == 0);
	CHECK(B.st.dup_data < A.st.retransmits / 4 + 5); /* few spurious retransmissions */
	loss = dup = reorder = 0;
	printf("lossy transfer: A retransmits %llu (RACK %llu, probes %llu, timeouts %llu), B duplicates %llu\n", (unsigned long long)A.st.retransmits, (unsigned long long)A.st.rack_lost, (unsigned long long)A.st.probes, (unsigned long long)A.st.timeouts, (unsigned long long)B.st.dup_data);

	/* 5 % loss on a 1 Gb/s wire: a full window queues (~4 ms), holes wait behind it. Frames
	 * beyond the SACK's 64 must not give RTT samples when a repaired hole finally lets the
	 * cumulative ACK cover them: that inflated the RTT estimate, slowed the next repair, and
	 * ended in RTOs (a real veth link ran at a sixth of its rate). */
	{
		uint64_t to0 = A.st.timeouts, t0 = clk;
		loss = 0.05; rate = 125e6;
		CHECK(transfer(16u << 20, 0) == 0);
		CHECK(got[1] == 16u << 20 && bad_bytes == 0);
		uint64_t took = clk - t0, ideal = (uint64_t)((16u << 20) * 1e9 / rate);
		CHECK(A.st.timeouts == to0);
		CHECK(took < 2 * ideal); /* at least half the wire rate */
		printf("lossy 1 Gb/s transfer: %.1f ms for 16 MiB (wire-rate limit %.1f ms), timeouts %llu\n", took / 1e6, ideal / 1e6, (unsigned long long)(A.st.timeouts - to0));
		loss = 0; rate = 0;
	}

	/* attacks on an open session: nothing is acted on, everything is counted */
	got[1] = fed[0] = fed[1] = 0;
	struct bm_sess *sa = bm_link_connect(&A, macB, BM_KIND_CONTROL);
	for (int i = 0; i < 100; i++) step();
	CHECK(sa->state == BM_S_OPEN);
	feed(&A, sa, 1, 1000);
	clk += 10000;
	bm_link_poll(&A); /* A sends the data frame; capture it */
	uint8_t *data = malloc(last_len); size_t dlen = last_len; memcpy(data, last_frame, dlen);
	for (int i = 0; i < 100; i++) step();
	CHECK(got[1] == 1000);
	uint64_t replay0 = B.st.replay, bad0 = B.st.bad_mac, unk0 = B.st.unknown_session;
	bm_link_input(&B, data, dlen); /* replayed frame */
	CHECK(B.st.replay == replay0 + 1 && got[1] == 1000);
	data[BM_ETH_HDR + BM_L2_HDR + 5] ^= 1; /* flipped payload bit */
	bm_link_input(&B, data, dlen);
	CHECK(B.st.bad_mac == bad0 + 1 && got[1] == 1000);
	data[BM_ETH_HDR + BM_L2_HDR + 5] ^= 1;
	data[BM_ETH_HDR + 8] ^= 0x40; /* new packet number, MAC now wrong */
	bm_link_input(&B, data, dlen);
	CHECK(B.st.bad_mac == bad0 + 2);
	data[BM_ETH_HDR + 8] ^= 0x40;
	data[BM_ETH_HDR + 4] ^= 1; /* unknown session id */
	bm_link_input(&B, data, dlen);
	CHECK(B.st.unknown_session == unk0 + 1 && got[1] == 1000);
	size_t before = B.st.malformed;
	bm_link_input(&B, data, 20); /* truncated */
	CHECK(B.st.malformed == before + 1);
	free(data);
	bm_sess_close(&A, sa);
	for (int i = 0; i < 100; i++) step();

	/* a wrong cluster key: the responder never answers, no session appears */
	struct bm_link_ops ow = oa;
	CHECK(bm_link_init(&A, &ow, macA, 9000, wrong, 32) == 0);
	int acc0 = accepted;
	bad0 = B.st.bad_mac;
	sa = bm_link_connect(&A, macB, BM_KIND_CONTROL);
	for (int i = 0; i < 5000; i++) step();
	CHECK(sa->state == BM_S_SYN_SENT);
	CHECK(accepted == acc0);
	CHECK(B.st.bad_mac > bad0);
	CHECK(peer_of(&B) == 0);
	/* a refused kind: accept() says no, nothing opens */
	CHECK(bm_link_init(&A, &oa, macA, 9000, key, 32) == 0);
	sa = bm_link_connect(&A, macB, BM_KIND_PAGES);
	for (int i = 0; i < 2000; i++) step();
	CHECK(sa->state == BM_S_SYN_SENT && B.st.refused > 0);
	/* MTU 1500 link works too */
	CHECK(bm_link_init(&A, &oa, macA, 1500, key, 32) == 0);
	CHECK(bm_link_init(&B, &ob, macB, 1500, key, 32) == 0);
	CHECK(transfer(1u << 20, 1) == 0);
	CHECK(got[1] == 1u << 20 && bad_bytes == 0);
	free(last_frame);
	for (size_t i = 0; i < qn; i++) free(q[i].f);
	free(q);
	DONE("test_link");
}
