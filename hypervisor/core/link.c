#include "link.h"
#include "bm_lib.h"

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LE(a, b) ((int32_t)((a) - (b)) <= 0)
#define W BM_WINDOW
#define HALF_OPEN_NS 2000000000ULL
#define KEEPALIVE_NS 1000000000ULL
#define ACK_EVERY 8
#define ACK_DELAY_NS 200000ULL /* a pure ACK waits this long for more data to acknowledge (or ACK_EVERY frames) */
#define REO_WND_NS 500000ULL /* reordering window of the loss detection: a direct link does not reorder */
#define TLP_MIN_NS 2000000ULL /* tail loss probe after max(2 SRTT, 2 ms) without progress */
#define TLP_MAX 4                /* probes per episode (then the RTO) */

static uint64_t now(struct bm_link *l) { return l->ops.now_ns(l->ops.ctx); }
/* Time from `since` to `t`; 0 if `since` is later (stamped during the poll that took t). */
static uint64_t age(uint64_t t, uint64_t since) { return since >= t ? 0 : t - since; }

int bm_link_init(struct bm_link *l, const struct bm_link_ops *ops, const uint8_t mac[6], uint32_t mtu, const uint8_t *key, size_t keylen) {
	if (mtu < 1500 || mtu > BM_MAX_MTU || keylen < 16 || keylen > 64) return -1;
	bm_memset(&l->st, 0, sizeof l->st);
	for (int i = 0; i < BM_MAX_SESSIONS; i++) l->sess[i].state = BM_S_FREE;
	l->ops = *ops;
	bm_memcpy(l->mac, mac, 6);
	l->mtu = mtu;
	l->mss = mtu - BM_L2_OVERHEAD;
	bm_memcpy(l->key, key, keylen);
	l->keylen = keylen;
	static const char label[] = "baremig-l2 v1 handshake";
	uint8_t k0[32];
	bm_hmac_sha256(key, keylen, label, sizeof label - 1, k0);
	bm_hmac_key_init(&l->k0, k0, 32);
	l->idle_timeout_ns = 15000000000ULL;
	l->dead_ns = 5000000000ULL;
	/* The retransmission timer runs from the last acknowledgement that made progress
	 * (RFC 6298: restarted by every new cumulative ACK), so queueing delay alone never
	 * fires it: only a gap this long in the ACKs does. Losses are found by RACK and the
	 * tail loss probe long before; the RTO is the last resort (a dead or stalled peer),
	 * and a peer that is merely not scheduled for a few tens of ms (a busy host) must
	 * not cost a window of duplicates: hence 200 ms, as TCP's minimum. */
	l->min_rto_ns = 200000000ULL;
	return 0;
}

static void derive(struct bm_link *l, struct bm_sess *s) {
	uint8_t in[16 + 32 + 32 + 4 + 1 + 12], k[32];
	const uint8_t *mi = s->initiator ? l->mac : s->peer, *mr = s->initiator ? s->peer : l->mac;
	for (int dir = 0; dir < 2; dir++) {
		bm_memcpy(in, dir == 0 ? "baremig-l2 v1 i2r" : "baremig-l2 v1 r2i", 16);
		bm_memcpy(in + 16, s->nonce_i, 32);
		bm_memcpy(in + 48, s->nonce_r, 32);
		bm_put32(in + 80, s->sid);
		in[84] = s->kind;
		bm_memcpy(in + 85, mi, 6);
		bm_memcpy(in + 91, mr, 6);
		bm_hmac_sha256(l->key, l->keylen, in, sizeof in, k);
		/* i2r is the initiator's tx key */
		int is_tx = (dir == 0) == (s->initiator != 0);
		bm_hmac_key_init(is_tx ? &s->ktx : &s->krx, k, 32);
	}
	bm_memset(k, 0, sizeof k);
}

static void sess_reset(struct bm_sess *s) {
	/* everything but the big buffers */
	s->state = BM_S_FREE;
	s->initiator = s->half_open = 0;
	s->tx_pn = s->rx_pn_hi = 0;
	s->rx_pn_bits = 0;
	s->rx_pn_any = 0;
	s->tx_head = s->tx_cut = s->tx_freed = 0;
	s->snd_una = s->snd_nxt = 0;
	s->peer_edge = W;
	s->rto_ns = 200000000ULL;
	s->srtt_ns = 0;
	s->min_rtt_ns = UINT64_MAX;
	s->rack_xmit_ns = s->rack_rtt_ns = 0;
	s->rack_valid = s->tlp_count = 0;
	s->last_rto_ns = s->last_tlp_ns = 0;
	s->rttvar_ns = 0;
	s->syn_rto_ns = 10000000ULL;
	s->rcv_nxt = s->rcv_dlv = s->dlv_off = 0;
	s->ack_pending = s->rx_since_ack = 0;
	s->ack_due_ns = 0;
	s->fin_sent = 0;
	s->user = 0;
	for (int i = 0; i < W; i++) {
		s->slots[i].used = 0;
		s->inflight[i].sacked = 0;
	}
}

static struct bm_sess *find(struct bm_link *l, const uint8_t peer[6], uint32_t sid) {
	for (int i = 0; i < BM_MAX_SESSIONS; i++) {
		struct bm_sess *s = &l->sess[i];
		if (s->state != BM_S_FREE && s->sid == sid && bm_memcmp(s->peer, peer, 6) == 0) return s;
	}
	return 0;
}

static struct bm_sess *alloc_sess(struct bm_link *l) {
	for (int i = 0; i < BM_MAX_SESSIONS; i++)
		if (l->sess[i].state == BM_S_FREE) return &l->sess[i];
	/* Evict the oldest half-open session (a SYN never followed by an authenticated frame). */
	struct bm_sess *old = 0;
	for (int i = 0; i < BM_MAX_SESSIONS; i++) {
		struct bm_sess *s = &l->sess[i];
		if (s->half_open && (!old || s->opened_ns < old->opened_ns)) old = s;
	}
	if (old) sess_reset(old);
	return old;
}

/* Builds and sends one frame. key NULL = K0 (handshake). */
static void send_frame(struct bm_link *l, struct bm_sess *s, uint8_t type, uint32_t seq, const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2, const struct bm_hmac_key *key) {
	uint8_t *f = l->frame;
	size_t plen = n1 + n2;
	bm_memcpy(f, s->peer, 6);
	bm_memcpy(f + 6, l->mac, 6);
	f[12] = BM_ETHERTYPE >> 8;
	f[13] = BM_ETHERTYPE & 0xff;
	uint8_t *h = f + BM_ETH_HDR;
	h[0] = 1;
	h[1] = type;
	bm_put16(h + 2, (uint16_t)plen);
	bm_put32(h + 4, s->sid);
	bm_put32(h + 8, ++s->tx_pn);
	bm_put32(h + 12, seq);
	uint64_t sack = 0;
	if (s->state == BM_S_OPEN) {
		for (uint32_t i = 0; i < 64; i++) {
			uint32_t q = s->rcv_nxt + 1 + i;
			if (SEQ_LT(q, s->rcv_dlv + W) && s->slots[q % W].used) sack |= 1ULL << i;
		}
	}
	bm_put32(h + 16, s->rcv_nxt);
	bm_put64(h + 20, sack);
	bm_put32(h + 28, s->rcv_dlv + W);
	if (n1) bm_memcpy(h + BM_L2_HDR, p1, n1);
	if (n2) bm_memcpy(h + BM_L2_HDR + n1, p2, n2);
	struct bm_sha256 c;
	const struct bm_hmac_key *k = key ? key : &l->k0;
	bm_hmac_begin(k, &c);
	bm_sha256_update(&c, f, BM_ETH_HDR + BM_L2_HDR + plen);
	bm_hmac_end(k, &c, h + BM_L2_HDR + plen);
	size_t len = BM_ETH_HDR + BM_L2_OVERHEAD + plen;
	l->ops.send(l->ops.ctx, f, len);
	l->st.tx_frames++;
	l->st.tx_bytes += len;
	s->last_tx_ns = now(l);
	if (type == BM_T_DATA || type == BM_T_ACK) {
		s->ack_pending = 0;
		s->rx_since_ack = 0;
	}
}

static void send_syn(struct bm_link *l, struct bm_sess *s) {
	uint8_t p[36];
	p[0] = s->kind;
	p[1] = p[2] = p[3] = 0;
	bm_memcpy(p + 4, s->nonce_i, 32);
	send_frame(l, s, BM_T_SYN, 0, p, 36, 0, 0, 0);
}

static void send_synack(struct bm_link *l, struct bm_sess *s) {
	send_frame(l, s, BM_T_SYNACK, 0, s->nonce_r, 32, s->nonce_i, 32, 0);
}

static void send_ack(struct bm_link *l, struct bm_sess *s) { send_frame(l, s, BM_T_ACK, 0, 0, 0, 0, 0, &s->ktx); }

struct bm_sess *bm_link_connect(struct bm_link *l, const uint8_t peer[6], uint8_t kind) {
	struct bm_sess *s = 0;
	for (int i = 0; i < BM_MAX_SESSIONS; i++)
		if (l->sess[i].state == BM_S_FREE) { s = &l->sess[i]; break; }
	if (!s) return 0;
	sess_reset(s);
	s->initiator = 1;
	s->kind = kind;
	bm_memcpy(s->peer, peer, 6);
	do {
		uint8_t r[4];
		l->ops.random(l->ops.ctx, r, 4);
		s->sid = bm_get32(r);
	} while (s->sid == 0 || find(l, peer, s->sid));
	l->ops.random(l->ops.ctx, s->nonce_i, 32);
	s->state = BM_S_SYN_SENT;
	s->opened_ns = s->last_rx_ns = s->last_progress_ns = now(l);
	send_syn(l, s);
	return s;
}

static void sess_free(struct bm_link *l, struct bm_sess *s, const char *why) {
	if (why && l->ops.closed) l->ops.closed(l->ops.ctx, s, why);
	sess_reset(s);
}

void bm_sess_close(struct bm_link *l, struct bm_sess *s) {
	if (s->state == BM_S_OPEN) {
		send_frame(l, s, BM_T_FIN, 0, 0, 0, 0, 0, &s->ktx);
		send_frame(l, s, BM_T_FIN, 0, 0, 0, 0, 0, &s->ktx);
	}
	sess_reset(s);
}

size_t bm_sess_tx_free(const struct bm_sess *s) { return BM_TXRING - (size_t)(s->tx_head - s->tx_freed); }
int bm_sess_tx_idle(const struct bm_sess *s) { return s->tx_freed == s->tx_head; }

size_t bm_sess_write(struct bm_link *l, struct bm_sess *s, const uint8_t *p, size_t n) {
	(void)l;
	size_t free = bm_sess_tx_free(s);
	if (n > free) n = free;
	size_t pos = (size_t)(s->tx_head & (BM_TXRING - 1));
	size_t first = BM_TXRING - pos;
	if (first > n) first = n;
	bm_memcpy(s->txring + pos, p, first);
	if (n > first) bm_memcpy(s->txring, p + first, n - first);
	s->tx_head += n;
	return n;
}

static void send_data(struct bm_link *l, struct bm_sess *s, uint32_t seq) {
	struct bm_inflight *f = &s->inflight[seq % W];
	size_t pos = (size_t)(f->off & (BM_TXRING - 1));
	size_t first = BM_TXRING - pos;
	if (first > f->len) first = f->len;
	send_frame(l, s, BM_T_DATA, seq, s->txring + pos, first, s->txring, f->len - first, &s->ktx);
	f->sent_ns = now(l);
}

/* Verifies the MAC of a frame: 1 good. */
static int mac_ok(const struct bm_hmac_key *k, const uint8_t *f, size_t covered) {
#ifdef BM_FUZZ
	if (covered & 1) return 1; /* fuzz builds only: let half the frames past the MAC to reach the state machine */
#endif
	uint8_t m[32];
	struct bm_sha256 c;
	bm_hmac_begin(k, &c);
	bm_sha256_update(&c, f, covered);
	bm_hmac_end(k, &c, m);
	return bm_ct_equal(m, f + covered, 32);
}

/* Replay window (RFC 4303 style) on packet numbers; 1 = fresh (and recorded). */
static int pn_fresh(struct bm_sess *s, uint32_t pn) {
	if (!s->rx_pn_any) {
		s->rx_pn_any = 1;
		s->rx_pn_hi = pn;
		s->rx_pn_bits = 1;
		return 1;
	}
	if (SEQ_LT(s->rx_pn_hi, pn)) {
		uint32_t d = pn - s->rx_pn_hi;
		s->rx_pn_bits = d >= 64 ? 1 : (s->rx_pn_bits << d) | 1;
		s->rx_pn_hi = pn;
		return 1;
	}
	uint32_t back = s->rx_pn_hi - pn;
	if (back >= 64) return 0;
	if (s->rx_pn_bits & (1ULL << back)) return 0;
	s->rx_pn_bits |= 1ULL << back;
	return 1;
}

/* A frame reached the peer (first SACK or cumulative ACK of it): RTT sample and RACK state.
 * A retransmitted frame's ACK may be for its first transmission, so it feeds neither.
 * `fresh` = 0: the frame may have arrived long before this ACK told of it (it lay beyond
 * the 64 frames the SACK describes, behind a hole): it still moves the RACK reference
 * (it was delivered, and it was sent when it was sent) but gives no RTT sample. Taking
 * one inflated the RTT by the hole's repair time, which slowed the next repair, which
 * inflated it more: at 5 % loss the RTT estimate reached ~200 ms on a veth link and RTOs
 * stalled the stream (0.16 Gb/s). */
/* Was frame q (sent at `sent`) sent before the RACK reference? Send time, then sequence. */
static int rack_before(const struct bm_sess *s, uint64_t sent, uint32_t q) {
	return s->rack_valid && (sent < s->rack_xmit_ns || (sent == s->rack_xmit_ns && SEQ_LT(q, s->rack_seq)));
}

static void delivered(struct bm_sess *s, struct bm_inflight *f, uint32_t q, uint64_t t, int fresh) {
	s->tlp_count = 0;
	if (f->retx) return;
	uint64_t rtt = age(t, f->sent_ns);
	if (fresh && rtt < s->min_rtt_ns) s->min_rtt_ns = rtt;
	if (!s->rack_valid || !rack_before(s, f->sent_ns, q)) {
		s->rack_xmit_ns = f->sent_ns;
		s->rack_seq = q;
		if (fresh || !s->rack_valid) s->rack_rtt_ns = rtt;
		s->rack_valid = 1;
	}
}

static void on_ack_fields(struct bm_link *l, struct bm_sess *s, uint32_t ack, uint64_t sack, uint32_t edge) {
	uint64_t t = now(l);
	if (SEQ_LT(s->snd_una, ack) && SEQ_LE(ack, s->snd_nxt)) {
		/* Frames up to the SACK range of the previous ACK were not there when it left: their ACK is news. */
		const uint32_t fresh_end = s->snd_una + 65;
		while (s->snd_una != ack) {
			struct bm_inflight *f = &s->inflight[s->snd_una % W];
			const int fresh = SEQ_LT(s->snd_una, fresh_end);
			if (!f->retx && !f->sacked && fresh) {
				uint64_t rtt = age(t, f->sent_ns);
				if (!s->srtt_ns) {
					s->srtt_ns = rtt;
					s->rttvar_ns = rtt / 2;
				} else {
					uint64_t d = rtt > s->srtt_ns ? rtt - s->srtt_ns : s->srtt_ns - rtt;
					s->rttvar_ns = (3 * s->rttvar_ns + d) / 4;
					s->srtt_ns = (7 * s->srtt_ns + rtt) / 8;
				}
			}
			if (!f->sacked) delivered(s, f, s->snd_una, t, fresh);
			s->tx_freed = f->off + f->len;
			f->sacked = 0;
			s->snd_una++;
		}
		uint64_t rto = s->srtt_ns + 4 * s->rttvar_ns;
		s->rto_ns = rto < l->min_rto_ns ? l->min_rto_ns : rto > 1000000000ULL ? 1000000000ULL : rto;
		s->last_progress_ns = t;
	}
	for (uint32_t i = 0; i < 64; i++) {
		if (!(sack & (1ULL << i))) continue;
		uint32_t q = ack + 1 + i;
		if (SEQ_LE(s->snd_una, q) && SEQ_LT(q, s->snd_nxt) && !s->inflight[q % W].sacked) {
			s->inflight[q % W].sacked = 1;
			delivered(s, &s->inflight[q % W], q, t, 1);
		}
	}
	if (SEQ_LT(s->peer_edge, edge) && SEQ_LE(edge, ack + W)) s->peer_edge = edge;
}

/* An ACK is owed: it goes out with the next frame, after ACK_EVERY frames, or ACK_DELAY_NS from now. */
static void ack_later(struct bm_link *l, struct bm_sess *s) {
	if (!s->ack_pending) s->ack_due_ns = now(l) + ACK_DELAY_NS;
	s->ack_pending = 1;
}

static void deliver(struct bm_link *l, struct bm_sess *s) {
	while (s->rcv_dlv != s->rcv_nxt && s->state == BM_S_OPEN) {
		struct bm_rxslot *sl = &s->slots[s->rcv_dlv % W];
		size_t left = sl->len - s->dlv_off;
		size_t took = left ? l->ops.data(l->ops.ctx, s, sl->data + s->dlv_off, left) : 0;
		if (s->state != BM_S_OPEN) return; /* consumer closed the session */
		if (took > left) took = left;
		s->dlv_off += (uint32_t)took;
		if (s->dlv_off < sl->len) return; /* consumer is full; offered again on the next poll */
		sl->used = 0;
		s->dlv_off = 0;
		s->rcv_dlv++;
		ack_later(l, s); /* the window edge moved */
	}
}

void bm_link_input(struct bm_link *l, const uint8_t *f, size_t len) {
	if (len < BM_ETH_HDR || f[12] != (BM_ETHERTYPE >> 8) || f[13] != (BM_ETHERTYPE & 0xff)) return;
	l->st.rx_frames++;
	l->st.rx_bytes += len;
	if (bm_memcmp(f, l->mac, 6) != 0) { l->st.malformed++; return; } /* not for us */
	if (len < BM_ETH_HDR + BM_L2_OVERHEAD) { l->st.malformed++; return; }
	const uint8_t *h = f + BM_ETH_HDR;
	uint8_t type = h[1];
	size_t plen = bm_get16(h + 2);
	if (h[0] != 1 || type < BM_T_SYN || type > BM_T_FIN || plen > l->mss || BM_ETH_HDR + BM_L2_OVERHEAD + plen > len) {
		l->st.malformed++;
		return;
	}
	const uint8_t *src = f + 6;
	uint32_t sid = bm_get32(h + 4), pn = bm_get32(h + 8), seq = bm_get32(h + 12);
	uint32_t ack = bm_get32(h + 16), edge = bm_get32(h + 28);
	uint64_t sack = bm_get64(h + 20);
	const uint8_t *p = h + BM_L2_HDR;
	size_t covered = BM_ETH_HDR + BM_L2_HDR + plen;
	uint64_t t = now(l);

	if (type == BM_T_SYN || type == BM_T_SYNACK) {
		if (!mac_ok(&l->k0, f, covered)) { l->st.bad_mac++; return; }
		struct bm_sess *s = find(l, src, sid);
		if (type == BM_T_SYN) {
			if (plen != 36 || sid == 0) { l->st.malformed++; return; }
			if (s) {
				if (!s->initiator && bm_memcmp(s->nonce_i, p + 4, 32) == 0) send_synack(l, s); /* our SYNACK was lost */
				else l->st.replay++;
				return;
			}
			s = alloc_sess(l);
			if (!s) { l->st.refused++; return; }
			sess_reset(s);
			s->initiator = 0;
			s->kind = p[0];
			bm_memcpy(s->peer, src, 6);
			s->sid = sid;
			bm_memcpy(s->nonce_i, p + 4, 32);
			l->ops.random(l->ops.ctx, s->nonce_r, 32);
			s->state = BM_S_OPEN;
			s->half_open = 1;
			s->peer_edge = edge >= 1 && edge <= W ? edge : 1; /* the initiator's receive window (its W may be smaller) */
			s->opened_ns = s->last_rx_ns = s->last_progress_ns = t;
			if (l->ops.accept(l->ops.ctx, s) != 0) {
				l->st.refused++;
				sess_reset(s);
				return;
			}
			derive(l, s);
			send_synack(l, s);
			return;
		}
		/* SYNACK */
		if (plen != 64) { l->st.malformed++; return; }
		if (!s || !s->initiator) { l->st.unknown_session++; return; }
		if (s->state == BM_S_OPEN) {
			if (bm_memcmp(s->nonce_r, p, 32) == 0) send_ack(l, s);
			else l->st.replay++;
			return;
		}
		if (bm_memcmp(s->nonce_i, p + 32, 32) != 0) { l->st.replay++; return; }
		bm_memcpy(s->nonce_r, p, 32);
		derive(l, s);
		s->state = BM_S_OPEN;
		s->peer_edge = edge >= 1 && edge <= W ? edge : 1;
		s->last_rx_ns = s->last_progress_ns = t;
		send_ack(l, s);
		if (l->ops.opened) l->ops.opened(l->ops.ctx, s);
		return;
	}

	struct bm_sess *s = find(l, src, sid);
	if (!s || s->state != BM_S_OPEN) { l->st.unknown_session++; return; }
	if (!mac_ok(&s->krx, f, covered)) { l->st.bad_mac++; return; }
	if (!pn_fresh(s, pn)) { l->st.replay++; return; }
	s->half_open = 0;
	s->last_rx_ns = t;
	if (type == BM_T_FIN) {
		sess_free(l, s, "closed by the peer");
		return;
	}
	on_ack_fields(l, s, ack, sack, edge);
	if (type == BM_T_DATA) {
		if (plen == 0) { l->st.malformed++; return; }
		if (SEQ_LT(seq, s->rcv_nxt) || !SEQ_LT(seq, s->rcv_dlv + W)) {
			/* an old duplicate (our ACK was lost) or beyond the window we offered */
			l->st.dup_data++;
			send_ack(l, s);
			return;
		}
		struct bm_rxslot *sl = &s->slots[seq % W];
		if (sl->used) {
			l->st.dup_data++;
			send_ack(l, s);
			return;
		}
		bm_memcpy(sl->data, p, plen);
		sl->len = (uint16_t)plen;
		sl->used = 1;
		int in_order = seq == s->rcv_nxt;
		while (SEQ_LT(s->rcv_nxt, s->rcv_dlv + W) && s->slots[s->rcv_nxt % W].used) s->rcv_nxt++;
		ack_later(l, s);
		if (!in_order) send_ack(l, s); /* a hole: tell the sender now (SACK) */
		else if (++s->rx_since_ack >= ACK_EVERY) send_ack(l, s);
		deliver(l, s);
	}
}

static void sess_poll(struct bm_link *l, struct bm_sess *s, uint64_t t) {
	if (s->state == BM_S_SYN_SENT) {
		if (age(t, s->last_tx_ns) >= s->syn_rto_ns) {
			send_syn(l, s);
			s->syn_rto_ns = s->syn_rto_ns * 2 > 200000000ULL ? 200000000ULL : s->syn_rto_ns * 2;
		}
		return;
	}
	if (s->half_open && age(t, s->opened_ns) > HALF_OPEN_NS) {
		sess_reset(s); /* a SYN never followed by an authenticated frame: forget it quietly */
		return;
	}
	if (age(t, s->last_rx_ns) > l->idle_timeout_ns) {
		sess_free(l, s, "peer silent");
		return;
	}
	if (s->snd_una != s->snd_nxt && age(t, s->last_progress_ns) > l->dead_ns) {
		sess_free(l, s, "peer stopped acknowledging");
		return;
	}
	deliver(l, s);
	if (s->state != BM_S_OPEN) return;
	/* Retransmissions.
	 * - RACK: a frame is lost when a frame sent after it was delivered and its own
	 *   delivery is overdue by the reordering window (a hole the SACK shows). A
	 *   retransmitted frame is lost again when it is still unacknowledged a round
	 *   trip and a margin after it was sent (doubling with each retransmission): a
	 *   full window may leave the peer nothing to acknowledge.
	 * - Tail loss probe: nothing new can be sent (none buffered, or the window is
	 *   full) and no progress for max(2 SRTT, 2 ms),
	 *   doubling per probe: resend the oldest unacknowledged frames (at most 4).
	 *   (Not the newest, as TCP does: with a window wider than the 64 frames the
	 *   SACK describes, the frames that hold the cumulative ACK back are the ones
	 *   to probe; at a true tail they are the same frames.)
	 * - RTO: no cumulative progress for rto_ns (timer restarted by every ACK that
	 *   advances, RFC 6298): resend every unacknowledged frame and back off. */
	if (s->snd_una != s->snd_nxt) {
		uint64_t since = s->last_progress_ns > s->last_rto_ns ? s->last_progress_ns : s->last_rto_ns;
		int rto = age(t, since) > s->rto_ns;
		uint64_t pto = (2 * s->srtt_ns > TLP_MIN_NS ? 2 * s->srtt_ns : TLP_MIN_NS) << s->tlp_count;
		uint64_t since_tlp = since > s->last_tlp_ns ? since : s->last_tlp_ns;
		int stuck = s->tx_cut == s->tx_head || (uint32_t)(s->snd_nxt - s->snd_una) >= W || !SEQ_LT(s->snd_nxt, s->peer_edge);
		int tlp = !rto && s->tlp_count < TLP_MAX && stuck && age(t, since_tlp) > pto;
		if (rto) {
			l->st.timeouts++;
			s->rto_ns = s->rto_ns * 2 > 1000000000ULL ? 1000000000ULL : s->rto_ns * 2;
			s->last_rto_ns = t;
		}
		if (tlp) {
			s->last_tlp_ns = t;
			s->tlp_count++;
		}
		uint32_t probes = 0;
		for (uint32_t q = s->snd_una; q != s->snd_nxt && tlp && probes < 4; q++) {
			struct bm_inflight *f = &s->inflight[q % W];
			if (f->sacked) continue;
			if (f->retx < 255) f->retx++;
			l->st.retransmits++;
			l->st.probes++;
			probes++;
			send_data(l, s, q);
		}
		uint64_t rtt = s->rack_rtt_ns > s->srtt_ns ? s->rack_rtt_ns : s->srtt_ns;
		uint64_t relost = rtt + s->srtt_ns / 4 + REO_WND_NS;
		for (uint32_t q = s->snd_una; q != s->snd_nxt && !tlp; q++) {
			struct bm_inflight *f = &s->inflight[q % W];
			if (f->sacked) continue;
			int lost = rack_before(s, f->sent_ns, q) && age(t, f->sent_ns) > s->rack_rtt_ns + REO_WND_NS;
			if (f->retx && age(t, f->sent_ns) > relost << (f->retx > 4 ? 4 : f->retx - 1)) lost = 1;
			if (!lost && !rto) continue;
			if (lost) l->st.rack_lost++;
			if (f->retx < 255) f->retx++;
			l->st.retransmits++;
			send_data(l, s, q);
		}
	}
	/* new data */
	while (s->tx_cut != s->tx_head && (uint32_t)(s->snd_nxt - s->snd_una) < W && SEQ_LT(s->snd_nxt, s->peer_edge)) {
		uint64_t n = s->tx_head - s->tx_cut;
		if (n > l->mss) n = l->mss;
		struct bm_inflight *f = &s->inflight[s->snd_nxt % W];
		f->off = s->tx_cut;
		f->len = (uint32_t)n;
		f->sacked = 0;
		f->retx = 0;
		if (s->snd_una == s->snd_nxt) {
			s->last_progress_ns = t;
			s->tlp_count = 0;
		}
		s->tx_cut += n;
		send_data(l, s, s->snd_nxt);
		s->snd_nxt++;
	}
	if ((s->ack_pending && (s->rx_since_ack >= ACK_EVERY || t >= s->ack_due_ns)) || age(t, s->last_tx_ns) > KEEPALIVE_NS) send_ack(l, s);
}

void bm_link_poll(struct bm_link *l) {
	uint64_t t = now(l);
	for (int i = 0; i < BM_MAX_SESSIONS; i++)
		if (l->sess[i].state != BM_S_FREE) sess_poll(l, &l->sess[i], t);
}

uint64_t bm_link_next_ns(struct bm_link *l) {
	uint64_t t = now(l), next = t + 50000000ULL;
	for (int i = 0; i < BM_MAX_SESSIONS; i++) {
		struct bm_sess *s = &l->sess[i];
		if (s->state == BM_S_FREE) continue;
		if (s->state == BM_S_SYN_SENT) {
			uint64_t d = s->last_tx_ns + s->syn_rto_ns;
			if (d < next) next = d;
			continue;
		}
		/* work now: an ACK to send, data the window lets out, data for the consumer */
		int can_send = s->tx_cut != s->tx_head && (uint32_t)(s->snd_nxt - s->snd_una) < W && SEQ_LT(s->snd_nxt, s->peer_edge);
		if (can_send || s->rcv_dlv != s->rcv_nxt) return t;
		if (s->ack_pending && s->ack_due_ns < next) next = s->ack_due_ns;
		if (s->snd_una != s->snd_nxt) {
			uint64_t since = s->last_progress_ns > s->last_rto_ns ? s->last_progress_ns : s->last_rto_ns;
			uint64_t d = since + s->rto_ns + 1;
			uint64_t pto = (2 * s->srtt_ns > TLP_MIN_NS ? 2 * s->srtt_ns : TLP_MIN_NS) << s->tlp_count;
			uint64_t e = (since > s->last_tlp_ns ? since : s->last_tlp_ns) + pto + 1;
			int stuck = s->tx_cut == s->tx_head || (uint32_t)(s->snd_nxt - s->snd_una) >= W || !SEQ_LT(s->snd_nxt, s->peer_edge);
			if (s->tlp_count < TLP_MAX && stuck && e < d) d = e;
			/* a retransmitted frame whose ACK is overdue */
			uint64_t rtt = s->rack_rtt_ns > s->srtt_ns ? s->rack_rtt_ns : s->srtt_ns;
			for (uint32_t q = s->snd_una; q != s->snd_nxt; q++) {
				struct bm_inflight *f = &s->inflight[q % W];
				if (f->sacked || !f->retx) continue;
				uint64_t r = f->sent_ns + ((rtt + s->srtt_ns / 4 + REO_WND_NS) << (f->retx > 4 ? 4 : f->retx - 1)) + 1;
				if (r < d) d = r;
			}
			/* the earliest RACK deadline among frames sent before the RACK reference */
			for (uint32_t q = s->snd_una; s->rack_valid && q != s->snd_nxt; q++) {
				struct bm_inflight *f = &s->inflight[q % W];
				if (f->sacked || !rack_before(s, f->sent_ns, q)) continue;
				uint64_t r = f->sent_ns + s->rack_rtt_ns + REO_WND_NS + 1;
				if (r < d) d = r;
			}
			if (d < next) next = d;
		}
		uint64_t k = s->last_tx_ns + KEEPALIVE_NS;
		if (k < next) next = k;
	}
	return next < t ? t : next;
}
