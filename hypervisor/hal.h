/*
 * What the agent core needs from the hypervisor it lives in. Two bindings
 * implement it: hosted/napi_hal.c (a Node-API addon inside a simulated node:
 * its Machine, device bus and devices; the link on an AF_PACKET socket) and
 * bitvisor/ (BitVisor's driver APIs, the link on a dedicated PRO/1000 NIC
 * hidden from the guest). hosted/machine.c is a third, small one for the
 * unit tests and fuzzers.
 *
 * The core calls these from one thread (the agent's poll loop); none of them
 * is called from an interrupt or VM-exit context by the core.
 */
#ifndef BM_HAL_H
#define BM_HAL_H
#include <stddef.h>
#include <stdint.h>

struct bm_mp_writer;

/* ---- time and randomness ---- */
uint64_t hal_now_ns(void);             /* monotonic */
uint64_t hal_wall_us(void);            /* wall clock, µs since the epoch (PTP-synchronised between nodes) */
void hal_delay_us(uint32_t us);        /* let time pass (device timers advance meanwhile) */
void hal_random(uint8_t *out, size_t n); /* unpredictable bytes (nonces, tokens) */
void *hal_alloc(size_t n);             /* zeroed; setup path only (guest RAM size changes), never per frame/page */
void hal_free(void *p, size_t n);

/* ---- the dedicated migration link ---- */
void hal_link_mac(uint8_t mac[6]);
uint32_t hal_link_mtu(void);
int hal_link_send(const uint8_t *frame, size_t len); /* one Ethernet frame; 0 sent, -1 dropped */

/* ---- guest RAM ----
 * hal_guest_map: pointer to guest-physical [addr, addr+len) (inside RAM, len <= 1 MiB);
 * valid until the next HAL call. Writes through it are the agent's own and are
 * not seen by write tracking (the core accounts for them). */
uint8_t *hal_guest_map(uint64_t addr, size_t len);
/* Write tracking: OR into `out` (one bit per 4 KiB page, `pages` bits) every page the
 * guest (or device DMA) wrote since the previous call, and clear the HAL's record. */
void hal_track_collect(uint8_t *out, uint64_t pages);
/* Start/stop write tracking (EPT write-protect / dirty bits). */
void hal_track_enable(int on);

/* ---- guest lifecycle (the core owns the state machine; these only act) ----
 * Each returns 0 or -1 with a message in err. */
int hal_guest_boot(uint64_t ram_bytes, const uint8_t *spec, size_t spec_len, char *err, size_t errlen);
int hal_guest_alloc(uint64_t ram_bytes, char *err, size_t errlen); /* RAM for an incoming guest */
/* 1 if the RAM hal_guest_alloc and hal_guest_boot provide is all zero apart from
 * the writes hal_track_collect reports (the digest then starts from known
 * zero-page hashes); 0 if its contents are unknown (every page is hashed). */
int hal_guest_ram_zeroed(void);
void hal_guest_release(void);
/* Pause: the vCPU stops; guest TSC (ns) and wall time (µs) of the pause. */
int hal_guest_pause(uint64_t *tsc_ns, uint64_t *wall_us, char *err, size_t errlen);
/* Resume a paused guest, or start an incoming one (incoming = 1). */
int hal_guest_resume(int incoming, char *err, size_t errlen);

/* ---- vCPU ---- */
#define BM_XSAVE_BYTES 832
struct bm_segment {
	uint32_t selector, limit, attributes;
	uint64_t base;
};
struct bm_vcpu {
	uint64_t gpr[16];  /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15 */
	uint64_t rip, rflags, cr0, cr2, cr3, cr4, cr8, tsc;
	struct bm_segment seg[8]; /* cs ds es fs gs ss ldtr tr */
	uint64_t gdtr_base, idtr_base;
	uint32_t gdtr_limit, idtr_limit;
	uint64_t msr[11]; /* efer star lstar cstar sfmask kernelGsBase sysenterCs sysenterEsp sysenterEip pat tscAux */
	uint8_t xsave[BM_XSAVE_BYTES];
	uint32_t activity;
};
/* Running guest: the state now (tsc read now); paused: as of the pause. wall_us: when tsc was read. */
void hal_vcpu_get(struct bm_vcpu *v, uint64_t *wall_us);
/* Incoming guest: load the state; the guest clock continues from tsc at wall_us. */
void hal_vcpu_set(const struct bm_vcpu *v, uint64_t wall_us);

/* ---- devices (the agent's own accesses; the binding feeds the port accesses to the
 * trapped chips' shadows too, as the guest's, so that a shadow keeps describing its
 * chip after a capture or a restore) ---- */
uint32_t hal_port_in(uint16_t port, int size);
void hal_port_out(uint16_t port, int size, uint32_t value);
uint32_t hal_mmio_read(uint64_t addr, int size);
void hal_mmio_write(uint64_t addr, int size, uint32_t value);
/* Hand a frame to the guest-facing NIC `device` as if it came from the wire; -1: no such NIC. */
int hal_inject_frame(const char *device, size_t devlen, const uint8_t *frame, size_t len);
/* Devices the guest uses: i-th descriptor, 0 while i is in range. mmio_base = UINT64_MAX if none. */
int hal_device(unsigned i, const char **kind, const char **name, uint64_t *mmio_base);
/* The shadows of the trapped chips: write exactly one msgpack map (bm_mpw_object),
 * device kind → shadow (core/shadow.h writers), in the simulator's device order
 * (pic, pit); an empty map when nothing is trapped. The binding feeds the
 * shadows from its port traps and interrupt acknowledges (core/shadow.h). */
void hal_shadow(struct bm_mp_writer *w);
#endif
