/*
 * The test machine: hal.h over a small simulated machine inside one C
 * process, for the unit tests (test/test_agent.c, test/test_vectors.c) and
 * the message fuzzer, which drive the core without Node or a link. (The
 * hosted agent proper is the Node-API addon of napi_hal.c, whose HAL is the
 * simulated node's real Machine, device bus and devices.) Guest RAM is one
 * buffer with write tracking at 4 KiB pages (every guest store marks its
 * page, as EPT dirty bits would); one vCPU register file; a port/MMIO bus with
 * no devices (unclaimed ports read all-ones, as on a PC's ISA bus) and
 * optional 8254/8259 port traps feeding core/shadow.c (test_vectors replays
 * the TypeScript reducers' access streams through them); and a guest: the
 * simulator's stateless guest OS (boot block at 0x8000, heartbeat and
 * memoryLoad modules, src/sim/guest/) ported to C over the same RAM layout.
 */
#define _GNU_SOURCE
#include "machine.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include "../core/msgpack.h"
#include "../core/sha256.h"
#include "../hal.h"

struct machine M;

/* ---------- guest RAM with write tracking ---------- */
static void mark(uint64_t addr, uint64_t len) {
	for (uint64_t p = addr >> 12; p <= (addr + len - 1) >> 12; p++) M.track[p >> 3] |= (uint8_t)(1u << (p & 7));
}
static void gw(uint64_t a, const void *src, size_t n) {
	memcpy(M.ram + a, src, n);
	mark(a, n);
}
static uint32_t r32(uint64_t a) { uint32_t v; memcpy(&v, M.ram + a, 4); return v; }
static uint64_t r64(uint64_t a) { uint64_t v; memcpy(&v, M.ram + a, 8); return v; }
static double rf64(uint64_t a) { double v; memcpy(&v, M.ram + a, 8); return v; }
static void w32(uint64_t a, uint32_t v) { gw(a, &v, 4); }
static void w64(uint64_t a, uint64_t v) { gw(a, &v, 8); }
static void wf64(uint64_t a, double v) { gw(a, &v, 8); }

static void ram_free(void) {
	if (M.ram) munmap(M.ram, M.ram_bytes);
	free(M.track);
	M.ram = 0;
	M.track = 0;
	M.ram_bytes = 0;
}
static int ram_alloc(uint64_t bytes) {
	ram_free();
	void *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) return -1;
	M.ram = p;
	M.ram_bytes = bytes;
	M.track = calloc((bytes / 4096 + 7) / 8, 1);
	return M.track ? 0 : -1;
}

/* ---------- guest clock ---------- */
static uint64_t wall_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}
static int64_t guest_now(void) { return (int64_t)bm_mono_ns() + M.tsc_offset; }

/* ---------- the guest OS (src/sim/guest/os.ts, heartbeat.ts, memoryLoad.ts) ---------- */
#define BOOT_BLOCK 0x8000ULL
#define BOOT_MAGIC 0x545347424d524142ULL
#define KTEXT 0x100000ULL
#define KTEXT_BYTES 0x10000ULL
#define MODULE_AREA (KTEXT + KTEXT_BYTES)
#define HB_GAPS 128
#define HB_BYTES (48 + HB_GAPS * 32)
enum { MOD_HEARTBEAT = 1, MOD_MEMLOAD = 2 };

static uint64_t next_checksum(uint64_t prev, uint64_t counter) {
	uint64_t z = prev ^ (counter * 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t hb_step(uint64_t base, int64_t now) {
	uint64_t period = r64(base), last = r64(base + 24);
	if ((uint64_t)now - last < period) return (int64_t)(last + period);
	uint64_t counter = r64(base + 8) + 1;
	w64(base + 8, counter);
	w64(base + 16, next_checksum(r64(base + 16), counter));
	uint64_t gap = (uint64_t)now - last;
	w64(base + 24, (uint64_t)now);
	if (gap > r64(base + 32)) w64(base + 32, gap);
	if (gap > 3 * period) {
		uint32_t head = r32(base + 40);
		uint64_t rec = base + 48 + (uint64_t)(head % HB_GAPS) * 32;
		w64(rec, (uint64_t)now);
		w64(rec + 8, gap);
		w64(rec + 16, counter);
		w32(base + 40, head + 1);
	}
	return now + (int64_t)period;
}

#define ML_HDR 4096
#define ML_STEP_NS 1000000
#define ML_MAX_CATCHUP 10000000

static int64_t ml_step(uint64_t base, int64_t now) {
	int64_t last = (int64_t)r64(base + 16);
	double rate = rf64(base + 8);
	uint32_t pages = r32(base + 4);
	if (rate <= 0 || pages == 0) {
		w64(base + 16, (uint64_t)now);
		return now + 1000000000LL;
	}
	int64_t dt = now - last;
	if (dt < 0) dt = 0;
	if (dt > ML_MAX_CATCHUP) dt = ML_MAX_CATCHUP;
	double budget = rf64(base + 24) + rate * (double)dt / 1e9;
	uint32_t x = r32(base);
	uint64_t ws = base + ML_HDR;
	uint32_t n = 0;
	while (budget >= 4096) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint32_t page = x % pages;
		uint64_t off = ws + (uint64_t)page * 4096 + ((x >> 8) & 0xff8);
		w32(off, x);
		w32(off + 4, n);
		budget -= 4096;
		n++;
	}
	w32(base, x);
	wf64(base + 24, budget);
	w64(base + 16, (uint64_t)now);
	w64(base + 32, r64(base + 32) + n);
	return now + ML_STEP_NS;
}

static int guest_booted(void) { return M.ram_bytes > BOOT_BLOCK + 8 && r64(BOOT_BLOCK) == BOOT_MAGIC; }

/* Runs every module that is due; returns the guest time of the next wake-up. */
static int64_t guest_step(void) {
	int64_t now = guest_now(), wake = INT64_MAX;
	uint32_t n = r32(BOOT_BLOCK + 8);
	if (n > 16) n = 16;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = BOOT_BLOCK + 16 + i * 32;
		int64_t due = (int64_t)r64(a + 24);
		if (due <= now) {
			uint32_t id = r32(a);
			uint64_t base = r64(a + 8);
			if (base >= M.ram_bytes) continue;
			if (id == MOD_HEARTBEAT) due = hb_step(base, now);
			else if (id == MOD_MEMLOAD) due = ml_step(base, now);
			else continue;
			w64(a + 24, (uint64_t)(due < 0 ? 0 : due));
		}
		if (due < wake) wake = due;
	}
	return wake;
}

uint64_t machine_run(void) {
	if (M.state != MS_RUNNING) return UINT64_MAX;
	int64_t now = guest_now();
	if (now < M.next_wake) return (uint64_t)(M.next_wake - M.tsc_offset);
	M.next_wake = guest_step();
	if (M.next_wake - now > 1000000000LL) M.next_wake = now + 1000000000LL;
	return (uint64_t)(M.next_wake - M.tsc_offset);
}

/* splitmix64 stream: the hosted guest's "random" fill (the TS guest uses AES-CTR; contents differ, layout does not) */
static void random_fill(uint32_t seed, uint64_t addr, uint64_t len, uint64_t stream_off) {
	uint64_t s = ((uint64_t)seed << 32) ^ 0x6261726d6967ULL ^ (stream_off / 8);
	for (uint64_t o = 0; o + 8 <= len; o += 8) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		memcpy(M.ram + addr + o, &z, 8);
	}
	mark(addr, len);
}

/* config parsing helpers over the boot spec (msgpack) */
static int cfg_number(struct bm_mp_reader *r, double *out) {
	struct bm_mp_val v;
	if (bm_mp_read(r, &v)) return -1;
	if (v.type == BM_MP_INT) { *out = v.neg ? (double)v.i : (double)v.u; return 0; }
	if (v.type == BM_MP_FLOAT) { memcpy(out, &v.fbits, 8); return 0; }
	return -1;
}

struct modspec {
	int id;
	double period, ws, rate, seed;
	int fill; /* 0 zero, 1 random, 2 halfRandom */
	uint64_t size, base;
};

static int parse_spec(const uint8_t *spec, size_t len, struct modspec *mods, int *nmods, char *err, size_t errlen) {
	struct bm_mp_reader r;
	struct bm_mp_val v, k;
	bm_mp_reader_init(&r, spec, len);
	if (bm_mp_read(&r, &v) || v.type != BM_MP_MAP) { snprintf(err, errlen, "spec must be an object"); return -1; }
	for (uint64_t i = 0; i < v.u; i++) {
		bm_mp_read(&r, &k);
		if (!bm_mp_str_eq(&k, "modules")) { bm_mp_skip(&r); continue; }
		struct bm_mp_val a;
		bm_mp_read(&r, &a);
		*nmods = 0;
		for (uint64_t m = 0; m < a.u; m++) {
			struct bm_mp_val mm, kk, nv;
			struct modspec *ms = &mods[(*nmods)++];
			memset(ms, 0, sizeof *ms);
			ms->period = 1e6;
			ms->fill = 1;
			ms->seed = 7;
			bm_mp_read(&r, &mm);
			struct bm_mp_reader cfgr = {0};
			int have_cfg = 0;
			for (uint64_t f = 0; f < mm.u; f++) {
				bm_mp_read(&r, &kk);
				if (bm_mp_str_eq(&kk, "name")) {
					bm_mp_read(&r, &nv);
					if (bm_mp_str_eq(&nv, "heartbeat")) ms->id = MOD_HEARTBEAT;
					else if (bm_mp_str_eq(&nv, "memoryLoad")) ms->id = MOD_MEMLOAD;
					else if (bm_mp_str_eq(&nv, "timer") || bm_mp_str_eq(&nv, "nic") || bm_mp_str_eq(&nv, "netApp")) {
						snprintf(err, errlen, "guest module %.*s needs a device this node does not have", (int)nv.u, (const char *)nv.p);
						return -2;
					} else {
						snprintf(err, errlen, "unknown guest module %.*s", (int)nv.u, (const char *)nv.p);
						return -2;
					}
				} else if (bm_mp_str_eq(&kk, "config")) {
					cfgr = r;
					have_cfg = 1;
					bm_mp_skip(&r);
				} else bm_mp_skip(&r);
			}
			struct bm_mp_val cm;
			if (have_cfg && !bm_mp_read(&cfgr, &cm) && cm.type == BM_MP_MAP) {
				for (uint64_t f = 0; f < cm.u; f++) {
					bm_mp_read(&cfgr, &kk);
					double d;
					if (bm_mp_str_eq(&kk, "periodNs") && !cfg_number(&cfgr, &d)) ms->period = d;
					else if (bm_mp_str_eq(&kk, "workingSetBytes") && !cfg_number(&cfgr, &d)) ms->ws = d;
					else if (bm_mp_str_eq(&kk, "dirtyRateBytesPerSec") && !cfg_number(&cfgr, &d)) ms->rate = d;
					else if (bm_mp_str_eq(&kk, "seed") && !cfg_number(&cfgr, &d)) ms->seed = d;
					else if (bm_mp_str_eq(&kk, "fill")) {
						bm_mp_read(&cfgr, &nv);
						ms->fill = bm_mp_str_eq(&nv, "zero") ? 0 : bm_mp_str_eq(&nv, "halfRandom") ? 2 : 1;
					} else bm_mp_skip(&cfgr);
				}
			}
			if (ms->id == MOD_HEARTBEAT) {
				if (!(ms->period >= 1000 && ms->period <= 1e12)) { snprintf(err, errlen, "heartbeat periodNs must be a number from 1000 to 1e12"); return -1; }
				ms->size = 4096 * ((HB_BYTES + 4095) / 4096);
			} else {
				if (!(ms->ws >= 0 && ms->ws <= 4294967296.0) || !(ms->rate >= 0 && ms->rate < 1e12)) { snprintf(err, errlen, "memoryLoad needs workingSetBytes and dirtyRateBytesPerSec"); return -1; }
				ms->size = ML_HDR + 4096 * (uint64_t)((ms->ws + 4095) / 4096);
			}
		}
		return 0;
	}
	snprintf(err, errlen, "spec has no modules");
	return -1;
}

static void kernel_text(void) {
	uint8_t buf[32];
	char label[40];
	for (uint64_t off = 0, i = 0; off < KTEXT_BYTES; off += 32, i++) {
		int n = snprintf(label, sizeof label, "baremig-kernel-%llu", (unsigned long long)i);
		bm_sha256(label, (size_t)n, buf);
		gw(KTEXT + off, buf, 32);
	}
}

static void vcpu_reset(struct bm_vcpu *v) {
	memset(v, 0, sizeof *v);
	v->rip = 0x100000;
	v->rflags = 0x2;
	struct bm_segment code = {0x10, 0xffffffff, 0xa09b, 0}, data = {0x18, 0xffffffff, 0xc093, 0}, nul = {0, 0xffffffff, 0x1c000, 0};
	v->seg[0] = code;
	v->seg[1] = v->seg[2] = v->seg[5] = data;
	v->seg[3] = v->seg[4] = nul;
	struct bm_segment ldtr = {0, 0xffff, 0x10082, 0}, tr = {0x28, 0x67, 0x8b, 0};
	v->seg[6] = ldtr;
	v->seg[7] = tr;
	v->gdtr_base = 0x1000; v->gdtr_limit = 0x37;
	v->idtr_base = 0x2000; v->idtr_limit = 0xfff;
	v->cr0 = 0x80050033; v->cr3 = 0x3000; v->cr4 = 0x6b0;
	v->msr[0] = 0xd01;
	v->msr[9] = 0x0007040600070406ULL;
}

/* ---------- HAL ---------- */
#ifdef BM_FUZZ
/* fuzz builds: virtual time, so that delays and waits cost nothing */
static uint64_t fuzz_clock = 1000000000ULL;
uint64_t hal_now_ns(void) { return fuzz_clock += 1000; }
void hal_delay_us(uint32_t us) { fuzz_clock += (uint64_t)us * 1000; }
#else
uint64_t hal_now_ns(void) { return bm_mono_ns(); }
void hal_delay_us(uint32_t us) {
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
	nanosleep(&ts, 0);
}
#endif
uint64_t hal_wall_us(void) { return wall_us(); }
void hal_random(uint8_t *out, size_t n) { bm_os_random(out, n); }
void *hal_alloc(size_t n) { return calloc(n ? n : 1, 1); }
void hal_free(void *p, size_t n) { (void)n; free(p); }
void hal_link_mac(uint8_t mac[6]) { memcpy(mac, M.net.mac, 6); }
uint32_t hal_link_mtu(void) { return M.net.mtu; }
int hal_link_send(const uint8_t *f, size_t n) { return bm_net_send(&M.net, f, n); }
uint8_t *hal_guest_map(uint64_t addr, size_t len) { (void)len; return M.ram + addr; }
void hal_track_collect(uint8_t *out, uint64_t pages) {
	size_t n = (size_t)((pages + 7) / 8);
	for (size_t i = 0; i < n; i++) out[i] |= M.track[i];
	memset(M.track, 0, n);
}
void hal_track_enable(int on) { (void)on; /* the simulated machine always tracks */ }

int hal_guest_boot(uint64_t ram_bytes, const uint8_t *spec, size_t len, char *err, size_t errlen) {
	struct modspec mods[16];
	int nmods = 0;
	if (parse_spec(spec, len, mods, &nmods, err, errlen)) return -1;
	if (ram_alloc(ram_bytes)) { snprintf(err, errlen, "cannot allocate %llu bytes of guest RAM", (unsigned long long)ram_bytes); return -1; }
	vcpu_reset(&M.vcpu);
	machine_reset_shadows();
	M.vcpu.rflags |= 1u << 9;
	M.tsc_offset = -(int64_t)bm_mono_ns();
	kernel_text();
	uint64_t next = MODULE_AREA;
	for (int i = 0; i < nmods; i++) {
		if (next + mods[i].size > ram_bytes) {
			snprintf(err, errlen, "guest modules need %llu bytes of RAM, the guest has %llu", (unsigned long long)(next + mods[i].size), (unsigned long long)ram_bytes);
			ram_free();
			return -1;
		}
		uint64_t a = BOOT_BLOCK + 16 + (uint64_t)i * 32;
		w32(a, (uint32_t)mods[i].id);
		w32(a + 4, 0);
		w64(a + 8, next);
		w64(a + 16, mods[i].size);
		w64(a + 24, 0);
		mods[i].base = next;
		next += mods[i].size;
	}
	w64(BOOT_BLOCK, BOOT_MAGIC);
	w32(BOOT_BLOCK + 8, (uint32_t)nmods);
	int64_t now = guest_now();
	for (int i = 0; i < nmods; i++) {
		uint64_t base = mods[i].base;
		if (mods[i].id == MOD_HEARTBEAT) {
			w64(base, (uint64_t)mods[i].period);
			w64(base + 8, 0);
			w64(base + 16, 0);
			w64(base + 24, (uint64_t)now);
			w64(base + 32, 0);
			w32(base + 40, 0);
		} else {
			uint32_t pages = (uint32_t)((mods[i].ws + 4095) / 4096);
			uint32_t seed = (uint32_t)(int64_t)mods[i].seed;
			w32(base, seed ? seed : 0x9e3779b9u);
			w32(base + 4, pages);
			wf64(base + 8, mods[i].rate);
			w64(base + 16, (uint64_t)now);
			wf64(base + 24, 0);
			w64(base + 32, 0);
			uint64_t ws = base + ML_HDR, MiB = 1 << 20;
			if (mods[i].fill == 0) continue;
			for (uint64_t off = 0, k = 0; off < (uint64_t)pages * 4096; off += MiB, k++) {
				uint64_t n = (uint64_t)pages * 4096 - off < MiB ? (uint64_t)pages * 4096 - off : MiB;
				if (mods[i].fill == 2 && k % 2 == 1) continue;
				random_fill(seed, ws + off, n, off);
			}
		}
	}
	M.state = MS_RUNNING;
	M.next_wake = 0;
	return 0;
}

int hal_guest_alloc(uint64_t ram_bytes, char *err, size_t errlen) {
	if (ram_alloc(ram_bytes)) { snprintf(err, errlen, "cannot allocate %llu bytes of guest RAM", (unsigned long long)ram_bytes); return -1; }
	vcpu_reset(&M.vcpu);
	machine_reset_shadows();
	M.state = MS_INCOMING;
	return 0;
}

/* Anonymous mappings are zero; boot writes go through gw()/random_fill(), which track. */
int hal_guest_ram_zeroed(void) { return 1; }

void hal_guest_release(void) {
	ram_free();
	M.state = MS_NONE;
}

int hal_guest_pause(uint64_t *tsc, uint64_t *wall, char *err, size_t errlen) {
	(void)err; (void)errlen;
	M.state = MS_PAUSED;
	M.vcpu.tsc = (uint64_t)guest_now();
	M.paused_wall_us = wall_us();
	*tsc = M.vcpu.tsc;
	*wall = M.paused_wall_us;
	return 0;
}

int hal_guest_resume(int incoming, char *err, size_t errlen) {
	if (incoming && !guest_booted()) { snprintf(err, errlen, "incoming guest RAM holds no bootable guest"); return -1; }
	M.state = MS_RUNNING;
	M.next_wake = 0;
	return 0;
}

void hal_vcpu_get(struct bm_vcpu *v, uint64_t *wall) {
	*v = M.vcpu;
	if (M.state != MS_RUNNING) { *wall = M.paused_wall_us; return; }
	*wall = wall_us();
	v->tsc = (uint64_t)guest_now();
}

void hal_vcpu_set(const struct bm_vcpu *v, uint64_t wall) {
	M.vcpu = *v;
	int64_t guest = (int64_t)v->tsc + ((int64_t)wall_us() - (int64_t)wall) * 1000;
	M.tsc_offset = guest - (int64_t)bm_mono_ns();
}

/* The bus: no devices on this simulated node. */
static uint32_t bus_in(uint16_t port, int size) { (void)port; return size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu; }
static void bus_out(uint16_t port, int size, uint32_t value) { (void)port; (void)size; (void)value; }
/* The agent's own accesses (IoPrograms): straight to the bus, not through the guest's traps. */
uint32_t hal_port_in(uint16_t port, int size) { return bus_in(port, size); }
void hal_port_out(uint16_t port, int size, uint32_t value) { bus_out(port, size, value); }

/* ---------- port traps and shadows (core/shadow.c) ----------
 * The hypervisor traps the 8259 pair's ports (0x20-0x21, 0xa0-0xa1, ELCR 0x4d0-0x4d1)
 * and the 8254's (0x40-0x43, 0x61), as src/sim/devices.ts registers them, when the
 * node is configured to (--trap-chips). The hosted node models neither chip: the
 * traps and shadows are the hypervisor's part, which is what the agent reports. */
static int in_ranges(uint16_t port, const uint16_t (*r)[2], int n) {
	for (int i = 0; i < n; i++)
		if (port >= r[i][0] && port <= r[i][1]) return 1;
	return 0;
}
static const uint16_t pic_ports[][2] = BM_PIC_TRAP_PORTS;
static const uint16_t pit_ports[][2] = BM_PIT_TRAP_PORTS;

void machine_port_trap(int out, uint16_t port, int size, uint32_t value) {
	/* a trap is registered per port: the access is trapped when its first port is */
	if (M.trap_pic && in_ranges(port, pic_ports, 3)) bm_pic_shadow_access(&M.pic_shadow, out, port, size, value);
	if (M.trap_pit && in_ranges(port, pit_ports, 2)) bm_pit_shadow_access(&M.pit_shadow, out, port, size, value);
}

uint32_t machine_guest_in(uint16_t port, int size) {
	uint32_t v = bus_in(port, size);
	machine_port_trap(0, port, size, v);
	return v;
}

void machine_guest_out(uint16_t port, int size, uint32_t value) {
	bus_out(port, size, value);
	machine_port_trap(1, port, size, value);
}

void machine_inta(uint8_t master, int has_slave, uint8_t slave) {
	if (M.trap_pic) bm_pic_shadow_inta(&M.pic_shadow, master, has_slave, slave);
}

void machine_reset_shadows(void) {
	bm_pic_shadow_init(&M.pic_shadow);
	bm_pit_shadow_init(&M.pit_shadow);
}
uint32_t hal_mmio_read(uint64_t addr, int size) { (void)addr; return size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu; }
void hal_mmio_write(uint64_t addr, int size, uint32_t value) { (void)addr; (void)size; (void)value; }
int hal_inject_frame(const char *dev, size_t devlen, const uint8_t *f, size_t n) { (void)dev; (void)devlen; (void)f; (void)n; return -1; }
int hal_device(unsigned i, const char **kind, const char **name, uint64_t *mmio) { (void)i; (void)kind; (void)name; (void)mmio; return -1; }
/* Kind → shadow, in the simulator's device order (pic before pit), as its shadowLog(). */
void hal_shadow(struct bm_mp_writer *w) {
	bm_mpw_object(w, (uint16_t)(M.trap_pic + M.trap_pit));
	if (M.trap_pic) {
		bm_mpw_str(w, "pic");
		bm_pic_shadow_write(w, &M.pic_shadow);
	}
	if (M.trap_pit) {
		bm_mpw_str(w, "pit");
		bm_pit_shadow_write(w, &M.pit_shadow);
	}
}
