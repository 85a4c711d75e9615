/*
 * The hypervisor's shadows of the 8254 PIT and the 8259 PIC pair: pure
 * reducers over the guest's intercepted port accesses (and, for the 8259, the
 * interrupt acknowledges the hypervisor observes), mirrored rule for rule
 * from src/devices/pit/shadow.ts and src/devices/pic/shadow.ts. The writers
 * encode a shadow as msgpack with exactly the object shape (key order, integer
 * encodings) the simulator's agent sends in its `shadow` reply, so both agents
 * answer byte for byte alike. Shared test vectors (hypervisor/test/vectors/,
 * generated from the TypeScript reducers) keep them identical.
 *
 * Freestanding; a binding calls bm_*_shadow_access from its port traps (after
 * the device handled the access, with the value read or written).
 */
#ifndef BM_SHADOW_H
#define BM_SHADOW_H
#include <stdint.h>

struct bm_mp_writer;

struct bm_pit_channel {
	uint32_t mode, rw, bcd, cr, count_written, write_state, write_latch, read_state;
	uint32_t count_latched, status_latched, triggered, max_load_weight, max_count_weight;
};
struct bm_pit_shadow {
	struct bm_pit_channel ch[3];
	uint32_t port61;
};

struct bm_pic_chip {
	uint8_t icw[4];
	uint8_t nicw; /* 1..4 */
	uint8_t imr, isr, priority_add, read_reg_select, special_mask, poll, rotate_on_auto_eoi;
};
struct bm_pic_shadow {
	struct bm_pic_chip master, slave;
};

/* Ports the traps must cover (inclusive ranges). */
#define BM_PIT_TRAP_PORTS {{0x40, 0x43}, {0x61, 0x61}}
#define BM_PIC_TRAP_PORTS {{0x20, 0x21}, {0xa0, 0xa1}, {0x4d0, 0x4d1}}

void bm_pit_shadow_init(struct bm_pit_shadow *s);
/* One intercepted access of `size` bytes (1, 2, 4) at `port`; out = 1 for a write.
 * Wide accesses are split over consecutive ports, as the ISA bus does. */
void bm_pit_shadow_access(struct bm_pit_shadow *s, int out, uint16_t port, int size, uint32_t value);
void bm_pit_shadow_write(struct bm_mp_writer *w, const struct bm_pit_shadow *s);

void bm_pic_shadow_init(struct bm_pic_shadow *s);
void bm_pic_shadow_access(struct bm_pic_shadow *s, int out, uint16_t port, int size, uint32_t value);
/* An interrupt acknowledge in poll-word format (bit 7: a level was acknowledged,
 * bits 2-0: the level); has_slave when the master acknowledged its cascade input. */
void bm_pic_shadow_inta(struct bm_pic_shadow *s, uint8_t master, int has_slave, uint8_t slave);
void bm_pic_shadow_write(struct bm_mp_writer *w, const struct bm_pic_shadow *s);
#endif
