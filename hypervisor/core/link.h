/*
 * Reliable, authenticated sessions over raw Ethernet frames (EtherType
 * 0x88B5, IEEE "local experimental"). One session is an ordered byte stream
 * in each direction.
 *
 * Frame (after the 14-byte Ethernet header), little-endian:
 *    0 u8  version (1)        1 u8  type (SYN, SYNACK, DATA, ACK, FIN)
 *    2 u16 payload length     4 u32 session id (chosen by the initiator)
 *    8 u32 packet number      per direction, strictly increasing: replay window of 64
 *   12 u32 seq                DATA: frame sequence number
 *   16 u32 ack                cumulative: first frame not yet received
 *   20 u64 sack               bit i: frame ack+1+i received
 *   28 u32 edge               receive window: the sender may send seq < edge
 *   32 payload
 *   32+len mac[32]            HMAC-SHA256 over Ethernet header, header, payload
 *
 * Handshake: SYN {kind u8, 0[3], nonce_i[32]} and SYNACK {nonce_r[32],
 * nonce_i[32]} carry a MAC under K0 = HMAC(cluster key, "baremig-l2 v1
 * handshake"); every later frame carries a MAC under a per-direction session
 * key HMAC(cluster key, "baremig-l2 v1 i2r"|"r2i" | nonce_i | nonce_r | sid |
 * kind | mac_i | mac_r). A frame with a wrong MAC, a replayed packet number or
 * an unknown session is dropped and counted, never acted on.
 */
#ifndef BM_LINK_H
#define BM_LINK_H
#include <stddef.h>
#include <stdint.h>
#include "sha256.h"

#define BM_ETHERTYPE 0x88B5
#define BM_ETH_HDR 14
#define BM_L2_HDR 32
#define BM_L2_MAC 32
#define BM_L2_OVERHEAD (BM_L2_HDR + BM_L2_MAC)
#ifndef BM_MAX_MTU
#define BM_MAX_MTU 9000
#endif
#define BM_MAX_PAYLOAD (BM_MAX_MTU - BM_L2_OVERHEAD)
#define BM_MAX_FRAME (BM_ETH_HDR + BM_MAX_MTU)
#ifndef BM_WINDOW
#define BM_WINDOW 512 /* frames in flight per session (power of two) */
#endif
#ifndef BM_TXRING
#define BM_TXRING (8u << 20) /* bytes buffered per session for sending (power of two) */
#endif
#ifndef BM_MAX_SESSIONS
#define BM_MAX_SESSIONS 6
#endif

enum { BM_T_SYN = 1, BM_T_SYNACK = 2, BM_T_DATA = 3, BM_T_ACK = 4, BM_T_FIN = 5 };
enum { BM_KIND_CONTROL = 1, BM_KIND_PAGES = 2 };
enum { BM_S_FREE = 0, BM_S_SYN_SENT, BM_S_OPEN };

struct bm_link_stats {
	uint64_t rx_frames, tx_frames, rx_bytes, tx_bytes;
	uint64_t bad_mac, replay, unknown_session, malformed, retransmits, dup_data, refused;
	uint64_t rack_lost, probes, timeouts; /* retransmissions by cause: RACK, tail loss probe, RTO events */
};

struct bm_inflight {
	uint64_t off, sent_ns;
	uint32_t len;
	uint8_t sacked, retx;
};

struct bm_rxslot {
	uint16_t len;
	uint8_t used;
	uint8_t data[BM_MAX_PAYLOAD];
};

struct bm_sess {
	int state, initiator, half_open;
	uint8_t kind;
	uint8_t peer[6];
	uint32_t sid;
	uint8_t nonce_i[32], nonce_r[32];
	struct bm_hmac_key ktx, krx;
	uint32_t tx_pn, rx_pn_hi;
	uint64_t rx_pn_bits;
	int rx_pn_any;
	/* sending */
	uint64_t tx_head, tx_cut, tx_freed;
	uint32_t snd_una, snd_nxt, peer_edge;
	struct bm_inflight inflight[BM_WINDOW];
	uint64_t rto_ns, srtt_ns, rttvar_ns, min_rtt_ns, syn_rto_ns, last_progress_ns;
	/* loss detection (RACK, RFC 8985): the latest send time among delivered original
	 * frames and the RTT it took; an unacknowledged frame sent before it is lost once
	 * that RTT plus a reordering window has passed since it was sent */
	uint64_t rack_xmit_ns, rack_rtt_ns;
	uint32_t rack_seq; /* breaks ties of equal send times (a coarse clock): sequence order */
	int rack_valid;
	int tlp_count; /* tail loss probes since anything was newly acknowledged (each waits twice as long) */
	uint64_t last_rto_ns, last_tlp_ns;
	/* receiving */
	uint32_t rcv_nxt, rcv_dlv, dlv_off;
	int ack_pending, rx_since_ack;
	uint64_t ack_due_ns;
	struct bm_rxslot slots[BM_WINDOW];
	uint64_t last_rx_ns, last_tx_ns, opened_ns;
	int fin_sent;
	void *user;
	uint8_t txring[BM_TXRING];
};

struct bm_link;
struct bm_link_ops {
	void *ctx;
	int (*send)(void *ctx, const uint8_t *frame, size_t len);
	uint64_t (*now_ns)(void *ctx);
	void (*random)(void *ctx, uint8_t *out, size_t n);
	/* Responder: a new session of s->kind from s->peer; return 0 to accept. */
	int (*accept)(void *ctx, struct bm_sess *s);
	/* Initiator: the handshake completed. */
	void (*opened)(void *ctx, struct bm_sess *s);
	/* In-order bytes; returns how many were consumed (the rest is offered again later). */
	size_t (*data)(void *ctx, struct bm_sess *s, const uint8_t *p, size_t n);
	/* The session ended (FIN, silence, failure); s is freed after the call. */
	void (*closed)(void *ctx, struct bm_sess *s, const char *why);
};

struct bm_link {
	struct bm_link_ops ops;
	uint8_t mac[6];
	uint32_t mtu, mss;
	uint8_t key[64];
	size_t keylen;
	struct bm_hmac_key k0;
	struct bm_link_stats st;
	uint64_t idle_timeout_ns, dead_ns, min_rto_ns;
	struct bm_sess sess[BM_MAX_SESSIONS];
	uint8_t frame[BM_MAX_FRAME];
};

/* key: the cluster key (16..64 bytes). mtu: the link MTU (>= 1500, <= BM_MAX_MTU). */
int bm_link_init(struct bm_link *l, const struct bm_link_ops *ops, const uint8_t mac[6], uint32_t mtu, const uint8_t *key, size_t keylen);
/* Start a session to peer (initiator); NULL if no slot is free. */
struct bm_sess *bm_link_connect(struct bm_link *l, const uint8_t peer[6], uint8_t kind);
/* One received Ethernet frame (any EtherType: others are ignored). */
void bm_link_input(struct bm_link *l, const uint8_t *frame, size_t len);
/* Timers, acknowledgements, sending what is buffered, delivering what arrived. */
void bm_link_poll(struct bm_link *l);
/* Earliest time poll() has work to do (ns, absolute). */
uint64_t bm_link_next_ns(struct bm_link *l);
size_t bm_sess_tx_free(const struct bm_sess *s);
size_t bm_sess_write(struct bm_link *l, struct bm_sess *s, const uint8_t *p, size_t n);
/* Everything written has been acknowledged. */
int bm_sess_tx_idle(const struct bm_sess *s);
/* Close (sends FIN, frees the slot; closed() is not called). */
void bm_sess_close(struct bm_link *l, struct bm_sess *s);
#endif
