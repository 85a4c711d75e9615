/* libFuzzer: hostile agent protocol messages into the agent core (msgpack
 * decoder, schema checks, handlers) on the hosted simulated machine. The
 * first byte picks an authenticated or fresh session. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../core/agent.h"
#include "../hosted/machine.h"

static uint8_t out[(8u << 20) + 64];
static int inited;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	static uint8_t key[32];
	if (!inited) {
		memset(key, 0x42, 32);
		M.net.mtu = 9000;
		M.net.fd = -1;
		struct bm_agent_cfg cfg = {"fuzz", 16u << 20, key, 32};
		bm_agent_init(&cfg);
		inited = 1;
	}
	if (!size) return 0;
	bm_agent_test_session(0, data[0] & 1);
	int close_after;
	bm_agent_handle(0, data + 1, size - 1, out, sizeof out, &close_after);
	return 0;
}
