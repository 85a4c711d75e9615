/*
 * baremig-l2-helper: the coordinator's end of the migration link. The
 * coordinator (Node) runs one helper per agent connection, inside the
 * coordinator's network namespace, and talks to it over stdin/stdout:
 *
 *   record = u32 length (LE), u8 kind, payload
 *   stdin:  kind 1 = the cluster key (first record), 2 = one agent protocol message
 *   stdout: kind 0 = session open, 1 = one message from the agent,
 *           2 = failure "CODE message" (then exit), 3 = counters (JSON) at exit
 *
 * The helper owns the link session (handshake, per-frame HMAC, sequence
 * numbers, acknowledgements, retransmission) with the same core as the agent.
 * EOF on stdin closes the session (FIN) and exits 0.
 *
 *   baremig-l2-helper --if IFACE --peer aa:bb:cc:dd:ee:ff [--timeout-ms 5000] [--loss F]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../core/agent.h"
#include "../core/bm_lib.h"
#include "../core/link.h"
#include "net.h"

static struct bm_net net;
static struct bm_link L;
static struct bm_sess *S;
static int opened, closed_why_set;
static char closed_why[160];

/* stdin assembly */
static uint8_t *inbuf;
static size_t in_fill, in_cap;
/* pending bytes for the session (length-prefixed messages) */
static uint8_t *outq;
static size_t outq_len, outq_off, outq_cap;
/* from the session: length-prefixed messages */
static uint8_t *msg;
static uint32_t msg_need, msg_fill, len_fill;
static uint8_t lenb[4];

static void out_record(uint8_t kind, const void *p, size_t n) {
	uint8_t h[5];
	bm_put32(h, (uint32_t)n);
	h[4] = kind;
	size_t off = 0;
	while (off < 5) { ssize_t r = write(1, h + off, 5 - off); if (r <= 0) { if (errno == EINTR) continue; exit(0); } off += (size_t)r; }
	off = 0;
	while (off < n) { ssize_t r = write(1, (const uint8_t *)p + off, n - off); if (r <= 0) { if (errno == EINTR) continue; exit(0); } off += (size_t)r; }
}

static void print_counters(void) {
	char j[512];
	int n = snprintf(j, sizeof j, "{\"rxFrames\":%llu,\"txFrames\":%llu,\"badMac\":%llu,\"replay\":%llu,\"unknownSession\":%llu,\"retransmits\":%llu,\"rackLost\":%llu,\"probes\":%llu,\"timeouts\":%llu,\"lossDropped\":%llu}",
	                 (unsigned long long)L.st.rx_frames, (unsigned long long)L.st.tx_frames, (unsigned long long)L.st.bad_mac, (unsigned long long)L.st.replay,
	                 (unsigned long long)L.st.unknown_session, (unsigned long long)L.st.retransmits, (unsigned long long)L.st.rack_lost, (unsigned long long)L.st.probes,
	                 (unsigned long long)L.st.timeouts, (unsigned long long)net.dropped);
	out_record(3, j, (size_t)n);
}

static void die(const char *code, const char *m) {
	char b[400];
	int n = snprintf(b, sizeof b, "%s %s", code, m);
	out_record(2, b, (size_t)n);
	print_counters();
	exit(3);
}

static int cb_send(void *c, const uint8_t *f, size_t n) { (void)c; return bm_net_send(&net, f, n); }
static uint64_t cb_now(void *c) { (void)c; return bm_mono_ns(); }
static void cb_random(void *c, uint8_t *o, size_t n) { (void)c; bm_os_random(o, n); }
static int cb_accept(void *c, struct bm_sess *s) { (void)c; (void)s; return -1; /* the coordinator accepts nothing */ }
static void cb_opened(void *c, struct bm_sess *s) { (void)c; (void)s; opened = 1; out_record(0, "", 0); }
static size_t cb_data(void *c, struct bm_sess *s, const uint8_t *d, size_t n) {
	(void)c; (void)s;
	size_t off = 0;
	while (off < n) {
		if (len_fill < 4) {
			lenb[len_fill++] = d[off++];
			if (len_fill == 4) {
				msg_need = bm_get32(lenb);
				msg_fill = 0;
				if (msg_need > BM_MAX_MESSAGE) die("PROTOCOL", "the agent sent a message larger than 8 MiB");
				if (msg_need == 0) { out_record(1, "", 0); len_fill = 0; }
			}
			continue;
		}
		size_t k = msg_need - msg_fill;
		if (k > n - off) k = n - off;
		memcpy(msg + msg_fill, d + off, k);
		msg_fill += (uint32_t)k;
		off += k;
		if (msg_fill == msg_need) {
			out_record(1, msg, msg_need);
			len_fill = 0;
		}
	}
	return n;
}
static void cb_closed(void *c, struct bm_sess *s, const char *why) {
	(void)c; (void)s;
	snprintf(closed_why, sizeof closed_why, "%s", why);
	closed_why_set = 1;
	S = 0;
}

static int read_stdin(uint8_t *key, size_t *keylen, int *have_key) {
	if (in_cap - in_fill < 65536) {
		in_cap = in_cap * 2 + 65536;
		inbuf = realloc(inbuf, in_cap);
		if (!inbuf) die("INTERNAL", "out of memory");
	}
	ssize_t r = read(0, inbuf + in_fill, in_cap - in_fill);
	if (r == 0) return -1;
	if (r < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
	in_fill += (size_t)r;
	size_t off = 0;
	while (in_fill - off >= 5) {
		uint32_t n = bm_get32(inbuf + off);
		if (n > BM_MAX_MESSAGE + 16) die("PROTOCOL", "message larger than 8 MiB");
		if (in_fill - off < 5 + (size_t)n) break;
		uint8_t kind = inbuf[off + 4];
		const uint8_t *p = inbuf + off + 5;
		if (kind == 1) {
			if (n < 16 || n > 64) die("AUTH", "the cluster key must be 16..64 bytes");
			memcpy(key, p, n);
			*keylen = n;
			*have_key = 1;
		} else if (kind == 2) {
			if (outq_cap - outq_len < (size_t)n + 4) {
				memmove(outq, outq + outq_off, outq_len - outq_off);
				outq_len -= outq_off;
				outq_off = 0;
				if (outq_cap - outq_len < (size_t)n + 4) {
					outq_cap = outq_len + n + 4 + (1 << 20);
					outq = realloc(outq, outq_cap);
					if (!outq) die("INTERNAL", "out of memory");
				}
			}
			bm_put32(outq + outq_len, n);
			memcpy(outq + outq_len + 4, p, n);
			outq_len += n + 4;
		}
		off += 5 + (size_t)n;
	}
	memmove(inbuf, inbuf + off, in_fill - off);
	in_fill -= off;
	return 0;
}

int main(int argc, char **argv) {
	const char *ifname = 0, *peer = 0;
	long timeout_ms = 5000;
	double loss = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--if") && i + 1 < argc) ifname = argv[++i];
		else if (!strcmp(argv[i], "--peer") && i + 1 < argc) peer = argv[++i];
		else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) timeout_ms = atol(argv[++i]);
		else if (!strcmp(argv[i], "--loss") && i + 1 < argc) loss = atof(argv[++i]);
		else { fprintf(stderr, "usage: %s --if IFACE --peer MAC [--timeout-ms N] [--loss F]\n", argv[0]); return 2; }
	}
	signal(SIGPIPE, SIG_IGN);
	uint8_t pmac[6];
	if (!ifname || !peer || bm_parse_mac(peer, strlen(peer), pmac)) die("USAGE", "needs --if IFACE and --peer aa:bb:cc:dd:ee:ff");
	char err[256];
	if (bm_net_open(&net, ifname, err, sizeof err)) die("AGENT_UNREACHABLE", err);
	net.loss = loss;
	msg = malloc(BM_MAX_MESSAGE);
	if (!msg) die("INTERNAL", "out of memory");
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	uint8_t key[64];
	size_t keylen = 0;
	int have_key = 0, stdin_open = 1;
	static uint8_t frame[BM_MAX_FRAME + 64];
	uint64_t t0 = bm_mono_ns();
	for (;;) {
		struct pollfd p[2] = {{net.fd, POLLIN, 0}, {0, POLLIN, 0}};
		uint64_t now = bm_mono_ns(), next = S ? bm_link_next_ns(&L) : now + 50000000ULL;
		struct timespec ts = {0, 0};
		if (next > now) { uint64_t d = next - now; if (d > 50000000ULL) d = 50000000ULL; ts.tv_nsec = (long)d; }
		int r = ppoll(p, stdin_open ? 2 : 1, &ts, 0);
		if (r < 0 && errno != EINTR) die("INTERNAL", strerror(errno));
		if (stdin_open && (p[1].revents & (POLLIN | POLLHUP))) {
			if (read_stdin(key, &keylen, &have_key) < 0) {
				stdin_open = 0;
				if (S) {
					/* flush what is queued, then close */
					uint64_t until = bm_mono_ns() + 2000000000ULL;
					while (S && (outq_off < outq_len || !bm_sess_tx_idle(S)) && bm_mono_ns() < until) {
						if (outq_off < outq_len) outq_off += bm_sess_write(&L, S, outq + outq_off, outq_len - outq_off);
						long n;
						while ((n = bm_net_recv(&net, frame, sizeof frame)) > 0) bm_link_input(&L, frame, (size_t)n);
						bm_link_poll(&L);
						struct timespec sl = {0, 100000};
						nanosleep(&sl, 0);
					}
					if (S) bm_sess_close(&L, S);
				}
				print_counters();
				return 0;
			}
			if (have_key && !S && !opened) {
				struct bm_link_ops ops = {0, cb_send, cb_now, cb_random, cb_accept, cb_opened, cb_data, cb_closed};
				if (bm_link_init(&L, &ops, net.mac, net.mtu, key, keylen)) die("USAGE", "bad key or MTU");
				S = bm_link_connect(&L, pmac, BM_KIND_CONTROL);
				t0 = bm_mono_ns();
			}
		}
		if (!have_key) continue;
		for (int k = 0; k < 512; k++) {
			long n = bm_net_recv(&net, frame, sizeof frame);
			if (n <= 0) break;
			bm_link_input(&L, frame, (size_t)n);
		}
		if (S && opened && outq_off < outq_len) outq_off += bm_sess_write(&L, S, outq + outq_off, outq_len - outq_off);
		if (outq_off == outq_len) outq_off = outq_len = 0;
		bm_link_poll(&L);
		if (!opened && bm_mono_ns() - t0 > (uint64_t)timeout_ms * 1000000ULL)
			die("AUTH", "no authenticated answer from the agent: the cluster key is wrong, or no agent has that address on the migration link");
		if (closed_why_set) die("AGENT_UNREACHABLE", closed_why);
	}
}
