/*
 * 8254 and 8259 shadows: see shadow.h. Each function names the TypeScript
 * function it mirrors; constants are those of src/devices/{pit,pic}/registers.ts.
 */
#include "shadow.h"
#include "bm_lib.h"
#include "msgpack.h"

/* ================= 8254 (src/devices/pit/shadow.ts) ================= */
#define RW_LATCH 0
#define RW_LSB_MSB 3
#define RW_STATE_LSB 1
#define RW_STATE_MSB 2
#define RW_STATE_WORD0 3
#define RW_STATE_WORD1 4
#define CW_SC_READBACK 3
#define RB_NO_COUNT 0x20
#define RB_NO_STATUS 0x10
#define PORT61_GATE2 0x01
#define PORT61_OUT2 0x20

/* countWeight */
static uint32_t count_weight(uint32_t raw, uint32_t bcd) {
	if (!bcd) return raw == 0 ? 0x10000 : raw;
	if (raw == 0) return 10000;
	return (raw & 0xf) + ((raw >> 4) & 0xf) * 10 + ((raw >> 8) & 0xf) * 100 + ((raw >> 12) & 0xf) * 1000;
}
/* effectiveMode */
static uint32_t effective_mode(uint32_t mode) { return mode >= 6 ? mode - 4 : mode; }
static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

void bm_pit_shadow_init(struct bm_pit_shadow *s) {
	for (int i = 0; i < 3; i++) {
		struct bm_pit_channel *c = &s->ch[i];
		bm_memset(c, 0, sizeof *c);
		c->mode = 3;
		c->rw = RW_LSB_MSB;
		c->count_written = 1;
		c->write_state = RW_STATE_WORD0;
		c->read_state = RW_STATE_WORD0;
		c->max_count_weight = 0x10000;
	}
	s->port61 = 0;
}

/* readByte */
static void pit_read_byte(struct bm_pit_channel *c) {
	if (c->status_latched) {
		c->status_latched = 0;
		return;
	}
	if (c->count_latched) {
		c->count_latched = c->count_latched == RW_STATE_WORD0 ? RW_STATE_MSB : 0;
		return;
	}
	if (c->read_state == RW_STATE_WORD0) c->read_state = RW_STATE_WORD1;
	else if (c->read_state == RW_STATE_WORD1) c->read_state = RW_STATE_WORD0;
}

/* countComplete */
static void pit_count_complete(struct bm_pit_channel *c, uint32_t value) {
	c->cr = value & 0xffff;
	c->count_written = 1;
	c->max_count_weight = max_u32(c->max_count_weight, count_weight(c->cr, c->bcd));
	uint32_t m = effective_mode(c->mode);
	if ((m == 1 || m == 5) && c->triggered) c->max_load_weight = max_u32(c->max_load_weight, count_weight(c->cr, c->bcd));
}

/* writeCount */
static void pit_write_count(struct bm_pit_channel *c, uint32_t b) {
	switch (c->write_state) {
	case RW_STATE_LSB: pit_count_complete(c, b); return;
	case RW_STATE_MSB: pit_count_complete(c, b << 8); return;
	case RW_STATE_WORD0:
		c->write_latch = b;
		c->write_state = RW_STATE_WORD1;
		return;
	default:
		c->write_state = RW_STATE_WORD0;
		pit_count_complete(c, c->write_latch | (b << 8));
	}
}

/* writeControl */
static void pit_write_control(struct bm_pit_shadow *s, uint32_t v) {
	uint32_t sc = v >> 6;
	if (sc == CW_SC_READBACK) {
		for (int i = 0; i < 3; i++) {
			if (!(v & (2u << i))) continue;
			struct bm_pit_channel *c = &s->ch[i];
			if (!(v & RB_NO_COUNT) && !c->count_latched) c->count_latched = c->rw;
			if (!(v & RB_NO_STATUS)) c->status_latched = 1;
		}
		return;
	}
	struct bm_pit_channel *c = &s->ch[sc];
	uint32_t rw = (v >> 4) & 3;
	if (rw == RW_LATCH) {
		if (!c->count_latched) c->count_latched = c->rw;
		return;
	}
	c->mode = (v >> 1) & 7;
	c->rw = rw;
	c->bcd = v & 1;
	c->read_state = rw; /* rwInitialState */
	c->write_state = rw;
	c->count_latched = 0;
	c->count_written = 0;
	c->triggered = 0;
	c->max_load_weight = 0;
	c->max_count_weight = 0;
}

/* writePort61 */
static void pit_write_port61(struct bm_pit_shadow *s, uint32_t v) {
	uint32_t before = s->port61 & PORT61_GATE2;
	s->port61 = v & ~(uint32_t)PORT61_OUT2 & 0xff;
	struct bm_pit_channel *c = &s->ch[2];
	uint32_t m = effective_mode(c->mode);
	if (!before && (v & PORT61_GATE2) && (m == 1 || m == 5) && c->count_written) {
		c->triggered = 1;
		c->max_load_weight = count_weight(c->cr, c->bcd);
	}
}

/* reduceByte */
static void pit_byte(struct bm_pit_shadow *s, int out, uint32_t port, uint32_t value) {
	if (port >= 0x40 && port <= 0x42) {
		struct bm_pit_channel *c = &s->ch[port - 0x40];
		if (!out) pit_read_byte(c);
		else pit_write_count(c, value);
	} else if (port == 0x43) {
		if (out) pit_write_control(s, value);
	} else if (port == 0x61) {
		if (out) pit_write_port61(s, value);
	}
}

/* reducePitShadow */
void bm_pit_shadow_access(struct bm_pit_shadow *s, int out, uint16_t port, int size, uint32_t value) {
	for (int i = 0; i < size; i++) pit_byte(s, out, (uint32_t)port + (uint32_t)i, (value >> (8 * i)) & 0xff);
}

static void kv(struct bm_mp_writer *w, const char *k, uint32_t v) {
	bm_mpw_str(w, k);
	bm_mpw_uint(w, v);
}

/* The object of initialPitShadow(), keys in its order; objects as msgpackr writes them (map16). */
void bm_pit_shadow_write(struct bm_mp_writer *w, const struct bm_pit_shadow *s) {
	bm_mpw_object(w, 2);
	bm_mpw_str(w, "channels");
	bm_mpw_array(w, 3);
	for (int i = 0; i < 3; i++) {
		const struct bm_pit_channel *c = &s->ch[i];
		bm_mpw_object(w, 13);
		kv(w, "mode", c->mode);
		kv(w, "rw", c->rw);
		kv(w, "bcd", c->bcd);
		kv(w, "cr", c->cr);
		kv(w, "countWritten", c->count_written);
		kv(w, "writeState", c->write_state);
		kv(w, "writeLatch", c->write_latch);
		kv(w, "readState", c->read_state);
		kv(w, "countLatched", c->count_latched);
		kv(w, "statusLatched", c->status_latched);
		kv(w, "triggered", c->triggered);
		kv(w, "maxLoadWeight", c->max_load_weight);
		kv(w, "maxCountWeight", c->max_count_weight);
	}
	kv(w, "port61", s->port61);
}

/* ================= 8259 (src/devices/pic/shadow.ts) ================= */
#define ICW1_IC4 0x01
#define ICW1_SNGL 0x02
#define ICW1_INIT 0x10
#define ICW4_AEOI 0x02
#define OCW3_SELECT 0x08
#define OCW3_RIS 0x01
#define OCW3_RR 0x02
#define OCW3_POLL 0x04
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40
#define POLL_INT 0x80
#define POLL_LEVEL_MASK 0x07

/* initialChip: ICW1 0x10, ICW2 0, ICW3 0 */
static void pic_initial_chip(struct bm_pic_chip *c) {
	bm_memset(c, 0, sizeof *c);
	c->icw[0] = ICW1_INIT;
	c->nicw = 3;
}

void bm_pic_shadow_init(struct bm_pic_shadow *s) {
	pic_initial_chip(&s->master);
	pic_initial_chip(&s->slave);
}

/* decodeIcw: how far the initialisation got (0 = complete) and whether AEOI is on. */
static void pic_decode(const struct bm_pic_chip *c, int *init_state, int *auto_eoi) {
	uint8_t icw1 = c->nicw ? c->icw[0] : ICW1_INIT;
	int ic4 = icw1 & ICW1_IC4 ? 1 : 0, sngl = icw1 & ICW1_SNGL ? 1 : 0;
	int st = 1;
	*auto_eoi = 0;
	for (int i = 1; i < c->nicw && st != 0; i++) {
		uint8_t v = c->icw[i];
		if (st == 1) st = sngl ? (ic4 ? 3 : 0) : 2;
		else if (st == 2) st = ic4 ? 3 : 0;
		else {
			*auto_eoi = v & ICW4_AEOI ? 1 : 0;
			st = 0;
		}
	}
	*init_state = st;
}

/* bestPriority */
static int best_priority(uint32_t mask, uint32_t add) {
	if ((mask & 0xff) == 0) return 8;
	int p = 0;
	while ((mask & (1u << ((p + add) & 7))) == 0) p++;
	return p;
}

/* acknowledged */
static void pic_ack(struct bm_pic_chip *c, uint32_t level) {
	int st, aeoi;
	pic_decode(c, &st, &aeoi);
	if (aeoi) {
		if (c->rotate_on_auto_eoi) c->priority_add = (uint8_t)((level + 1) & 7);
		return;
	}
	c->isr |= (uint8_t)(1u << level);
}

/* writeCommand */
static void pic_command(struct bm_pic_chip *c, uint32_t v) {
	if (v & ICW1_INIT) { /* isIcw1 */
		pic_initial_chip(c);
		c->icw[0] = (uint8_t)v;
		c->nicw = 1;
		return;
	}
	if (v & OCW3_SELECT) { /* isOcw3 */
		if (v & OCW3_POLL) c->poll = 1;
		if (v & OCW3_RR) c->read_reg_select = v & OCW3_RIS ? 1 : 0;
		if (v & OCW3_ESMM) c->special_mask = v & OCW3_SMM ? 1 : 0;
		return;
	}
	uint32_t level = v & 7;
	switch (v & 0xe0) {
	case 0x00: c->rotate_on_auto_eoi = 0; return; /* rotate in AEOI (clear) */
	case 0x80: c->rotate_on_auto_eoi = 1; return; /* rotate in AEOI (set) */
	case 0x20:                                    /* non-specific EOI */
	case 0xa0: {                                  /* rotate on non-specific EOI */
		uint32_t candidates = c->special_mask ? (uint32_t)(c->isr & ~c->imr) : c->isr;
		int p = best_priority(candidates, c->priority_add);
		if (p == 8) return;
		uint32_t irq = ((uint32_t)p + c->priority_add) & 7;
		c->isr &= (uint8_t)~(1u << irq);
		if ((v & 0xe0) == 0xa0) c->priority_add = (uint8_t)((irq + 1) & 7);
		return;
	}
	case 0x60: c->isr &= (uint8_t)~(1u << level); return;                 /* specific EOI */
	case 0xc0: c->priority_add = (uint8_t)((level + 1) & 7); return;      /* set priority */
	case 0xe0:                                                          /* rotate on specific EOI */
		c->isr &= (uint8_t)~(1u << level);
		c->priority_add = (uint8_t)((level + 1) & 7);
		return;
	default: return; /* 0x40: no operation */
	}
}

/* writeData */
static void pic_data(struct bm_pic_chip *c, uint32_t v) {
	int st, aeoi;
	pic_decode(c, &st, &aeoi);
	if (st != 0) {
		c->icw[c->nicw++] = (uint8_t)v; /* st != 0 means fewer than 4 entries so far */
		return;
	}
	c->imr = (uint8_t)v;
}

/* read */
static void pic_read(struct bm_pic_chip *c, int command_port, uint32_t v) {
	if (c->poll) {
		c->poll = 0;
		if (v & POLL_INT) pic_ack(c, v & POLL_LEVEL_MASK);
		return;
	}
	if (!command_port) {
		c->imr = (uint8_t)v;
		return;
	}
	if (c->read_reg_select) c->isr = (uint8_t)v;
}

/* reduceByte */
static void pic_byte(struct bm_pic_shadow *s, int out, uint32_t port, uint32_t v) {
	struct bm_pic_chip *c;
	int command_port;
	if (port == 0x20 || port == 0x21) { c = &s->master; command_port = port == 0x20; }
	else if (port == 0xa0 || port == 0xa1) { c = &s->slave; command_port = port == 0xa0; }
	else return; /* ELCR and anything else: readable, nothing to shadow */
	if (out) {
		if (command_port) pic_command(c, v);
		else pic_data(c, v);
	} else pic_read(c, command_port, v);
}

/* reducePicShadow, port accesses */
void bm_pic_shadow_access(struct bm_pic_shadow *s, int out, uint16_t port, int size, uint32_t value) {
	for (int i = 0; i < size; i++) pic_byte(s, out, (uint32_t)port + (uint32_t)i, (value >> (8 * i)) & 0xff);
}

/* reducePicShadow, {dir:'inta'} */
void bm_pic_shadow_inta(struct bm_pic_shadow *s, uint8_t master, int has_slave, uint8_t slave) {
	if (master & POLL_INT) pic_ack(&s->master, master & POLL_LEVEL_MASK);
	if (has_slave && (slave & POLL_INT)) pic_ack(&s->slave, slave & POLL_LEVEL_MASK);
}

static void pic_chip_write(struct bm_mp_writer *w, const struct bm_pic_chip *c) {
	bm_mpw_object(w, 8);
	bm_mpw_str(w, "icw");
	bm_mpw_array(w, c->nicw);
	for (int i = 0; i < c->nicw; i++) bm_mpw_uint(w, c->icw[i]);
	kv(w, "imr", c->imr);
	kv(w, "isr", c->isr);
	kv(w, "priorityAdd", c->priority_add);
	kv(w, "readRegSelect", c->read_reg_select);
	kv(w, "specialMask", c->special_mask);
	kv(w, "poll", c->poll);
	kv(w, "rotateOnAutoEoi", c->rotate_on_auto_eoi);
}

/* The object of initialPicShadow(), keys in its order. */
void bm_pic_shadow_write(struct bm_mp_writer *w, const struct bm_pic_shadow *s) {
	bm_mpw_object(w, 2);
	bm_mpw_str(w, "master");
	pic_chip_write(w, &s->master);
	bm_mpw_str(w, "slave");
	pic_chip_write(w, &s->slave);
}
