#define _GNU_SOURCE
#include "net.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "../core/link.h"

uint64_t bm_mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void bm_os_random(uint8_t *out, size_t n) {
	while (n) {
		ssize_t r = getrandom(out, n, 0);
		if (r <= 0) continue;
		out += r;
		n -= (size_t)r;
	}
}

static int lossy(struct bm_net *n) {
	if (n->loss <= 0) return 0;
	uint32_t r;
	bm_os_random((uint8_t *)&r, sizeof r);
	if ((double)r / 4294967296.0 < n->loss) {
		n->dropped++;
		return 1;
	}
	return 0;
}

int bm_net_open(struct bm_net *n, const char *ifname, char *err, size_t errlen) {
	memset(n, 0, sizeof *n);
	n->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(BM_ETHERTYPE));
	if (n->fd < 0) {
		snprintf(err, errlen, "AF_PACKET socket: %s (needs CAP_NET_RAW)", strerror(errno));
		return -1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
	if (ioctl(n->fd, SIOCGIFINDEX, &ifr) < 0) {
		snprintf(err, errlen, "interface %s: %s", ifname, strerror(errno));
		close(n->fd);
		return -1;
	}
	n->ifindex = ifr.ifr_ifindex;
	if (ioctl(n->fd, SIOCGIFHWADDR, &ifr) < 0) {
		snprintf(err, errlen, "interface %s: no hardware address: %s", ifname, strerror(errno));
		close(n->fd);
		return -1;
	}
	memcpy(n->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(n->fd, SIOCGIFMTU, &ifr) < 0) {
		snprintf(err, errlen, "interface %s: MTU: %s", ifname, strerror(errno));
		close(n->fd);
		return -1;
	}
	n->mtu = (uint32_t)ifr.ifr_mtu > BM_MAX_MTU ? BM_MAX_MTU : (uint32_t)ifr.ifr_mtu;
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(BM_ETHERTYPE);
	sll.sll_ifindex = n->ifindex;
	if (bind(n->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
		snprintf(err, errlen, "bind to %s: %s", ifname, strerror(errno));
		close(n->fd);
		return -1;
	}
	int sz = 32 << 20;
	setsockopt(n->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
	setsockopt(n->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
	return 0;
}

int bm_net_send(struct bm_net *n, const uint8_t *frame, size_t len) {
	for (int tries = 0; tries < 1000; tries++) {
		ssize_t r = send(n->fd, frame, len, 0);
		if (r == (ssize_t)len) return 0;
		if (r < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, 0);
			continue;
		}
		return -1;
	}
	return -1;
}

long bm_net_recv(struct bm_net *n, uint8_t *buf, size_t cap) {
	for (;;) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof from;
		ssize_t r = recvfrom(n->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (r <= 0) return 0;
		if (from.sll_pkttype == PACKET_OUTGOING) continue;
		if (lossy(n)) continue;
		return (long)r;
	}
}

uint64_t bm_net_sock_drops(struct bm_net *n) {
	struct tpacket_stats st;
	socklen_t l = sizeof st;
	if (getsockopt(n->fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0) n->sock_drops += st.tp_drops; /* reading resets the kernel's counters */
	return n->sock_drops;
}
