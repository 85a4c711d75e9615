/* AF_PACKET access to one interface for the hosted agent and the coordinator's link helper. */
#ifndef BM_HOSTED_NET_H
#define BM_HOSTED_NET_H
#include <stddef.h>
#include <stdint.h>
struct bm_net {
	int fd;
	int ifindex;
	uint8_t mac[6];
	uint32_t mtu;
	double loss; /* fraction of received frames dropped (fault injection: each endpoint loses this share of what reaches it) */
	uint64_t dropped;
	uint64_t sock_drops;
};
int bm_net_open(struct bm_net *n, const char *ifname, char *err, size_t errlen);
int bm_net_send(struct bm_net *n, const uint8_t *frame, size_t len);
/* Receives up to one frame (non-blocking): length, 0 if none. */
long bm_net_recv(struct bm_net *n, uint8_t *buf, size_t cap);
/* Frames the kernel dropped because the socket's receive queue was full (since the previous call is added to n->sock_drops). */
uint64_t bm_net_sock_drops(struct bm_net *n);
uint64_t bm_mono_ns(void);
void bm_os_random(uint8_t *out, size_t n);
#endif
