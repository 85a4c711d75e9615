#ifndef BM_HOSTED_MACHINE_H
#define BM_HOSTED_MACHINE_H
#include <stdint.h>
#include "../core/shadow.h"
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
	/* Port traps on the 8259 pair / the 8254 (--trap-chips): their shadows. */
	int trap_pic, trap_pit;
	struct bm_pic_shadow pic_shadow;
	struct bm_pit_shadow pit_shadow;
};
extern struct machine M;
/* Runs the guest if it is due; returns the monotonic ns of its next wake-up (UINT64_MAX: not running). */
uint64_t machine_run(void);
/* The guest's port I/O: the bus answers (it has no devices: reads are all-ones,
 * writes vanish), then the hypervisor's traps observe the access. */
uint32_t machine_guest_in(uint16_t port, int size);
void machine_guest_out(uint16_t port, int size, uint32_t value);
/* The port trap: one guest access as the bus completed it (value read or written). */
void machine_port_trap(int out, uint16_t port, int size, uint32_t value);
/* An interrupt acknowledge the hypervisor observed (poll-word format, see core/shadow.h). */
void machine_inta(uint8_t master, int has_slave, uint8_t slave);
/* Hardware reset of the trapped chips' shadows (a guest boots or arrives). */
void machine_reset_shadows(void);
#endif
