/*
 * The agent core: the agent protocol v1 (src/protocol/messages.ts) over the
 * link sessions of link.h, in front of the HAL. Single-threaded: the binding
 * feeds received frames to bm_agent_input() and calls bm_agent_poll() when
 * bm_agent_next_ns() is due.
 */
#ifndef BM_AGENT_H
#define BM_AGENT_H
#include <stddef.h>
#include <stdint.h>
#include "link.h"

#ifndef BM_MAX_MESSAGE
#define BM_MAX_MESSAGE (8u << 20) /* as MAX_MESSAGE_BYTES in codec.ts */
#endif
#ifndef BM_MAX_CONTROL
#define BM_MAX_CONTROL 4
#endif
#define BM_PROTOCOL_VERSION 1
#define BM_PAGE 4096u
#define BM_MAX_RAM (4ULL << 30)
#define BM_DATA_PORT 1 /* what prepareIncoming returns as `port` on the raw link */

struct bm_agent_cfg {
	const char *node;
	uint64_t ram_capacity;
	const uint8_t *key;
	size_t keylen;
};

struct bm_agent_stats {
	struct bm_link_stats link;
	uint64_t refused;         /* requests refused for protocol, auth or version reasons */
	uint64_t pages_received;  /* pages applied from incoming page streams */
	uint64_t streams_rejected;
};

int bm_agent_init(const struct bm_agent_cfg *cfg);
void bm_agent_input(const uint8_t *frame, size_t len);
void bm_agent_poll(void);
uint64_t bm_agent_next_ns(void);
void bm_agent_get_stats(struct bm_agent_stats *out);

/* Handles one request message (already reassembled) for control context `ctl`
 * and writes the reply into out; returns the reply length, 0 if the request
 * must wait (a page stream is running), or sets *close_after. Exposed for the
 * unit tests and the fuzzer. */
size_t bm_agent_handle(int ctl, const uint8_t *msg, size_t len, uint8_t *out, size_t cap, int *close_after);
/* Test hook: reset control context `ctl` to a fresh session (authenticated or not). */
void bm_agent_test_session(int ctl, int authed);
#endif
