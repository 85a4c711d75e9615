/*
 * baremig-agent-hosted: the native agent core on a simulated machine, its
 * migration link an AF_PACKET socket on one interface.
 *
 *   baremig-agent-hosted --if mig0 --name node1 --key-file FILE [--ram-capacity 256M] [--loss 0.05]
 *                        [--trap-chips pic,pit]
 *
 * --trap-chips: trap the guest's accesses to the 8259 pair's and/or the 8254's
 * ports and keep their shadows (core/shadow.c), reported by `shadow`. The
 * hosted machine has no model of these chips (the bus answers all-ones), so
 * they are not listed among its devices.
 *
 * The key file holds the cluster key in hex (as the nodes file). On SIGUSR1
 * and at exit it prints one JSON line of counters to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../core/agent.h"
#include "machine.h"

static volatile sig_atomic_t stop, dump;
static void on_term(int s) { (void)s; stop = 1; }
static void on_usr1(int s) { (void)s; dump = 1; }

static void print_stats(void) {
	struct bm_agent_stats s;
	bm_agent_get_stats(&s);
	fprintf(stderr,
	        "{\"rxFrames\":%llu,\"txFrames\":%llu,\"rxBytes\":%llu,\"txBytes\":%llu,\"badMac\":%llu,\"replay\":%llu,\"unknownSession\":%llu,\"malformed\":%llu,"
	        "\"retransmits\":%llu,\"dupData\":%llu,\"refusedSessions\":%llu,\"refused\":%llu,\"pagesReceived\":%llu,\"streamsRejected\":%llu,\"lossDropped\":%llu,\"sockDrops\":%llu,\"rackLost\":%llu,\"probes\":%llu,\"timeouts\":%llu}\n",
	        (unsigned long long)s.link.rx_frames, (unsigned long long)s.link.tx_frames, (unsigned long long)s.link.rx_bytes, (unsigned long long)s.link.tx_bytes, (unsigned long long)s.link.bad_mac, (unsigned long long)s.link.replay,
	        (unsigned long long)s.link.unknown_session, (unsigned long long)s.link.malformed, (unsigned long long)s.link.retransmits,
	        (unsigned long long)s.link.dup_data, (unsigned long long)s.link.refused, (unsigned long long)s.refused, (unsigned long long)s.pages_received,
	        (unsigned long long)s.streams_rejected, (unsigned long long)M.net.dropped,
	        (unsigned long long)bm_net_sock_drops(&M.net), (unsigned long long)s.link.rack_lost, (unsigned long long)s.link.probes,
	        (unsigned long long)s.link.timeouts);
	fflush(stderr);
}

static int parse_size(const char *s, uint64_t *out) {
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0) return -1;
	if (*end == 'K' || *end == 'k') v *= 1024;
	else if (*end == 'M' || *end == 'm') v *= 1024 * 1024;
	else if (*end == 'G' || *end == 'g') v *= 1024.0 * 1024 * 1024;
	else if (*end) return -1;
	*out = (uint64_t)v;
	return 0;
}

int read_key_file(const char *path, uint8_t *key, size_t *keylen) {
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	char hex[300] = {0};
	size_t n = fread(hex, 1, sizeof hex - 1, f);
	fclose(f);
	while (n && (hex[n - 1] == '\n' || hex[n - 1] == ' ' || hex[n - 1] == '\r')) n--;
	if (n % 2 || n < 32 || n > 128) return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned b;
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) return -1;
		key[i] = (uint8_t)b;
	}
	*keylen = n / 2;
	return 0;
}

int main(int argc, char **argv) {
	const char *ifname = 0, *name = 0, *keyfile = 0;
	uint64_t cap = 256ULL << 20;
	double loss = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
		if (!strcmp(a, "--if") && v) ifname = argv[++i];
		else if (!strcmp(a, "--name") && v) name = argv[++i];
		else if (!strcmp(a, "--key-file") && v) keyfile = argv[++i];
		else if (!strcmp(a, "--ram-capacity") && v) {
			if (parse_size(argv[++i], &cap) || cap > (4ULL << 30)) { fprintf(stderr, "--ram-capacity: a size up to 4G\n"); return 2; }
		} else if (!strcmp(a, "--loss") && v) loss = atof(argv[++i]);
		else if (!strcmp(a, "--trap-chips") && v) {
			const char *c = argv[++i];
			for (const char *p = c; *p;) {
				size_t n = strcspn(p, ",");
				if (n == 3 && !strncmp(p, "pic", 3)) M.trap_pic = 1;
				else if (n == 3 && !strncmp(p, "pit", 3)) M.trap_pit = 1;
				else { fprintf(stderr, "--trap-chips: a list of pic and pit, got %s\n", c); return 2; }
				p += n;
				if (*p == ',') p++;
			}
		}
		else {
			fprintf(stderr, "usage: %s --if IFACE --name NODE --key-file FILE [--ram-capacity SIZE] [--loss FRACTION] [--trap-chips pic,pit]\n", argv[0]);
			return 2;
		}
	}
	if (!ifname || !name || !keyfile) {
		fprintf(stderr, "usage: %s --if IFACE --name NODE --key-file FILE [--ram-capacity SIZE] [--loss FRACTION] [--trap-chips pic,pit]\n", argv[0]);
		return 2;
	}
	uint8_t key[64];
	size_t keylen;
	if (read_key_file(keyfile, key, &keylen)) { fprintf(stderr, "%s: not a hex cluster key of 16..64 bytes\n", keyfile); return 2; }
	machine_reset_shadows();
	char err[256];
	if (bm_net_open(&M.net, ifname, err, sizeof err)) { fprintf(stderr, "baremig-agent-hosted: %s\n", err); return 1; }
	M.net.loss = loss;
	struct bm_agent_cfg cfg = {name, cap, key, keylen};
	if (bm_agent_init(&cfg)) { fprintf(stderr, "baremig-agent-hosted: bad configuration (MTU %u)\n", M.net.mtu); return 1; }
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "baremig-agent-hosted: node %s on %s %02x:%02x:%02x:%02x:%02x:%02x mtu %u, sha256 %s\n", name, ifname, M.net.mac[0], M.net.mac[1], M.net.mac[2],
	        M.net.mac[3], M.net.mac[4], M.net.mac[5], M.net.mtu, bm_sha256_impl());
	static uint8_t frame[BM_MAX_FRAME + 64];
	struct pollfd pfd = {M.net.fd, POLLIN, 0};
	while (!stop) {
		if (dump) { dump = 0; print_stats(); }
		uint64_t now = bm_mono_ns();
		uint64_t next = bm_agent_next_ns();
		uint64_t g = machine_run();
		if (g < next) next = g;
		now = bm_mono_ns();
		struct timespec ts = {0, 0};
		if (next > now) {
			uint64_t d = next - now;
			if (d > 100000000ULL) d = 100000000ULL;
			ts.tv_sec = (time_t)(d / 1000000000ULL);
			ts.tv_nsec = (long)(d % 1000000000ULL);
		}
		int r = ppoll(&pfd, 1, &ts, 0);
		if (r < 0 && errno != EINTR) break;
		for (int k = 0; k < 512; k++) {
			long n = bm_net_recv(&M.net, frame, sizeof frame);
			if (n <= 0) break;
			bm_agent_input(frame, (size_t)n);
			if ((k & 31) == 31) bm_agent_poll();
		}
		bm_agent_poll();
	}
	print_stats();
	return 0;
}
