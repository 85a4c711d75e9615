#ifndef BM_HOSTED_MACHINE_H
#define BM_HOSTED_MACHINE_H
#include <stdint.h>
#include "../hal.h"
#include "net.h"
enum { MS_NONE, MS_RUNNING, MS_PAUSED, MS_INCOMING };
struct machine {
	struct bm_net net;
	uint8_t *ram;
	uint8_t *track;
	uint64_t ram_bytes;
	int state;
	struct bm_vcpu vcpu;
	int64_t tsc_offset; /* guest ns = monotonic ns + tsc_offset */
	uint64_t paused_wall_us;
	int64_t next_wake;
};
extern struct machine M;
/* Runs the guest if it is due; returns the monotonic ns of its next wake-up (UINT64_MAX: not running). */
uint64_t machine_run(void);
#endif
