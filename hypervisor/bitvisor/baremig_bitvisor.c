/*
 * The BitVisor binding of hal.h. Built inside a BitVisor tree as a driver
 * (see README.md); compile-checked here against stub/ headers.
 *
 * - The migration link is a dedicated Intel PRO/1000 NIC driven by BitVisor's
 *   pro1000 driver, configured with `net=baremig` and no virtual NIC: the
 *   guest does not see the device in PCI enumeration and its BARs are not
 *   mapped for the guest. We register the "baremig" net backend; the driver
 *   hands us its physical send/receive functions.
 * - Received frames are copied into a ring from the driver's receive
 *   callback; the agent runs in its own BitVisor thread that drains the ring,
 *   runs the core and yields (schedule()).
 * - Port I/O and MMIO for IoPrograms are the agent's own accesses (in/out
 *   instructions, uncached mappings of the BAR), never the guest's trapped path.
 * - The 8254 and 8259 ports are intercepted with set_iofunc() and passed
 *   through to the hardware (do_iopass_default); each access, with the value
 *   the chip returned or was given, is folded into the shadows of
 *   core/shadow.c, which hal_shadow() reports as the simulator's agent does.
 * - Guest memory is reached with mapmem_gphys(); write tracking, vCPU state
 *   and pausing come from the core hooks in baremig_core_hooks.h.
 */
#include <core/initfunc.h>
#include <core/io.h>
#include <core/mm.h>
#include <core/printf.h>
#include <core/thread.h>
#include <core/time.h>
#include <net/netapi.h>
#include "../core/agent.h"
#include "../core/bm_lib.h"
#include "../core/msgpack.h"
#include "../core/shadow.h"
#include "../hal.h"
#include "baremig_core_hooks.h"

#ifndef BAREMIG_NODE_NAME
#define BAREMIG_NODE_NAME "node"
#endif
/* The cluster key, 32 bytes, from BitVisor's configuration (defconfig / loader). */
extern const u8 baremig_cluster_key[32];

/* ---------- the link NIC ---------- */
static void *nic_handle;
static struct nicfunc *nic;
static struct nicinfo nic_info;
#define RX_SLOTS 512
static struct {
	u16 len;
	u8 data[BM_MAX_FRAME];
} rx_ring[RX_SLOTS];
static volatile u32 rx_head, rx_tail; /* head: written by the receive callback; tail: the agent thread */
static u64 rx_overruns;

static void recv_cb(void *handle, unsigned int n, void **packets, unsigned int *sizes, void *param, long *premap) {
	(void)handle; (void)param; (void)premap;
	for (unsigned int i = 0; i < n; i++) {
		if (sizes[i] > BM_MAX_FRAME || sizes[i] < BM_ETH_HDR) continue;
		const u8 *p = packets[i];
		if (p[12] != (BM_ETHERTYPE >> 8) || p[13] != (BM_ETHERTYPE & 0xff)) continue; /* only our EtherType */
		u32 h = rx_head;
		if (h - rx_tail >= RX_SLOTS) { rx_overruns++; continue; } /* the link retransmits */
		bm_memcpy(rx_ring[h % RX_SLOTS].data, p, sizes[i]);
		rx_ring[h % RX_SLOTS].len = (u16)sizes[i];
		__atomic_store_n(&rx_head, h + 1, __ATOMIC_RELEASE);
	}
}

static void *bm_new_nic(char *arg, void *param) { (void)arg; (void)param; return &nic_handle; }
static bool bm_net_init(void *handle, void *phys_handle, struct nicfunc *phys_func, void *virt_handle, struct nicfunc *virt_func) {
	(void)handle; (void)virt_func;
	if (virt_handle) {
		printf("baremig: the migration NIC must have no virtual NIC (it is hidden from the guest)\n");
		return false;
	}
	nic_handle = phys_handle;
	nic = phys_func;
	return true;
}
static void agent_thread(void *arg);
static void bm_net_start(void *handle) {
	(void)handle;
	nic->get_nic_info(nic_handle, &nic_info);
	nic->set_recv_callback(nic_handle, recv_cb, 0);
	thread_new(agent_thread, 0, 65536);
}
static struct netfunc baremig_netfunc = {bm_new_nic, bm_net_init, bm_net_start, 0};

/* ---------- the 8254/8259 shadows (core/shadow.c), fed by the port traps ---------- */
static struct bm_pic_shadow pic_shadow;
static struct bm_pit_shadow pit_shadow;

/* Every access to a trapped chip reaches its shadow: the guest's (trap below) and the agent's own
 * (hal_port_in/out), so that the shadow keeps describing the chip after a capture or a restore. */
static void shadow_access(int out, u32 port, int size, uint32_t v) {
	if ((port >= 0x40 && port <= 0x43) || port == 0x61) bm_pit_shadow_access(&pit_shadow, out, (uint16_t)port, size, v);
	else if (port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1 || port == 0x4d0 || port == 0x4d1) bm_pic_shadow_access(&pic_shadow, out, (uint16_t)port, size, v);
}

static void trap(enum iotype type, u32 port, void *data) {
	do_iopass_default(type, port, data); /* the chip handles the access first; the shadow sees its result */
	int out = type == IOTYPE_OUTB || type == IOTYPE_OUTW || type == IOTYPE_OUTL;
	int size = type == IOTYPE_INB || type == IOTYPE_OUTB ? 1 : type == IOTYPE_INW || type == IOTYPE_OUTW ? 2 : 4;
	uint32_t v = size == 1 ? *(u8 *)data : size == 2 ? *(u16 *)data : *(u32 *)data;
	shadow_access(out, port, size, v);
}

/* Called by the core patch for every interrupt acknowledge it performs for the
 * guest (external-interrupt exiting, acknowledge through the 8259 poll command;
 * see README "core hooks"): poll words of the master and, after a cascade
 * acknowledge, the slave. */
void baremig_observe_inta(u8 master, int has_slave, u8 slave) { bm_pic_shadow_inta(&pic_shadow, master, has_slave, slave); }

/* ---------- HAL ---------- */
uint64_t hal_now_ns(void) { return get_time() * 1000ULL; }
uint64_t hal_wall_us(void) { return get_time(); /* node-local; PTP sync is outside this binding */ }
void hal_delay_us(uint32_t us) {
	u64 end = get_time() + us;
	while (get_time() < end) __asm__ volatile("pause");
}
void hal_random(uint8_t *out, size_t n) {
	while (n) {
		unsigned long long r;
		unsigned char ok;
		__asm__ volatile("rdrand %0; setc %1" : "=r"(r), "=qm"(ok));
		if (!ok) continue;
		for (int i = 0; i < 8 && n; i++, n--) *out++ = (uint8_t)(r >> (8 * i));
	}
}
void *hal_alloc(size_t n) {
	void *p = alloc((uint)n);
	if (p) bm_memset(p, 0, n);
	return p;
}
void hal_free(void *p, size_t n) { (void)n; if (p) free(p); }
void hal_link_mac(uint8_t mac[6]) { bm_memcpy(mac, nic_info.mac_address, 6); }
uint32_t hal_link_mtu(void) { return nic_info.mtu > BM_MAX_MTU ? BM_MAX_MTU : nic_info.mtu < 1500 ? 1500 : nic_info.mtu; }
int hal_link_send(const uint8_t *frame, size_t len) {
	void *p = (void *)frame;
	unsigned int sz = (unsigned int)len;
	nic->send(nic_handle, 1, &p, &sz, false);
	return 0;
}

static void *mapped;
static uint mapped_len;
uint8_t *hal_guest_map(uint64_t addr, size_t len) {
	if (mapped) unmapmem(mapped, mapped_len);
	mapped = mapmem_gphys(addr, (uint)len, MAPMEM_WRITE);
	mapped_len = (uint)len;
	return mapped;
}
void hal_track_collect(uint8_t *out, uint64_t pages) { baremig_core_track_collect(out, pages); }
void hal_track_enable(int on) { baremig_core_track_enable(on); }

static int err(char *e, size_t n, const char *m) {
	struct bm_str s;
	bm_str_init(&s, e, n);
	bm_str_add(&s, m);
	return -1;
}
int hal_guest_boot(uint64_t ram, const uint8_t *spec, size_t len, char *e, size_t n) {
	(void)ram; (void)spec; (void)len;
	return err(e, n, "this node boots its own operating system: boot is for simulated nodes");
}
int hal_guest_alloc(uint64_t ram, char *e, size_t n) {
	/* A destination node runs BitVisor with its guest held before the OS loader. */
	if (ram > baremig_core_ram_bytes()) return err(e, n, "the guest needs more RAM than this node gives its guest");
	return baremig_core_pause() ? err(e, n, "cannot hold the guest vCPU") : 0;
}
/* The held guest's RAM holds whatever the firmware and loader left: hash every page. */
int hal_guest_ram_zeroed(void) { return 0; }
void hal_guest_release(void) {
	/* The guest stays paused forever: a migrated source is power-cycled by the operator. */
}
int hal_guest_pause(uint64_t *tsc, uint64_t *wall, char *e, size_t n) {
	if (baremig_core_pause()) return err(e, n, "cannot stop the guest vCPU");
	struct bm_vcpu v;
	baremig_core_vcpu_get(&v);
	*tsc = v.tsc;
	*wall = get_time();
	return 0;
}
int hal_guest_resume(int incoming, char *e, size_t n) {
	(void)incoming; (void)e; (void)n;
	baremig_core_resume();
	return 0;
}
void hal_vcpu_get(struct bm_vcpu *v, uint64_t *wall) {
	baremig_core_vcpu_get(v);
	*wall = get_time();
}
void hal_vcpu_set(const struct bm_vcpu *v, uint64_t wall) {
	(void)wall;
	baremig_core_vcpu_set(v);
}

uint32_t hal_port_in(uint16_t port, int size) {
	uint32_t v = 0;
	if (size == 1) { uint8_t b; __asm__ volatile("inb %1, %0" : "=a"(b) : "Nd"(port)); v = b; }
	else if (size == 2) { uint16_t w; __asm__ volatile("inw %1, %0" : "=a"(w) : "Nd"(port)); v = w; }
	else __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	shadow_access(0, port, size, v);
	return v;
}
void hal_port_out(uint16_t port, int size, uint32_t value) {
	if (size == 1) __asm__ volatile("outb %0, %1" : : "a"((uint8_t)value), "Nd"(port));
	else if (size == 2) __asm__ volatile("outw %0, %1" : : "a"((uint16_t)value), "Nd"(port));
	else __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
	shadow_access(1, port, size, value);
}
uint32_t hal_mmio_read(uint64_t addr, int size) {
	volatile void *p = mapmem_gphys(addr, (uint)size, MAPMEM_UC);
	uint32_t v = size == 1 ? *(volatile uint8_t *)p : size == 2 ? *(volatile uint16_t *)p : *(volatile uint32_t *)p;
	unmapmem((void *)p, (uint)size);
	return v;
}
void hal_mmio_write(uint64_t addr, int size, uint32_t value) {
	volatile void *p = mapmem_gphys(addr, (uint)size, MAPMEM_UC | MAPMEM_WRITE);
	if (size == 1) *(volatile uint8_t *)p = (uint8_t)value;
	else if (size == 2) *(volatile uint16_t *)p = (uint16_t)value;
	else *(volatile uint32_t *)p = value;
	unmapmem((void *)p, (uint)size);
}
int hal_inject_frame(const char *dev, size_t devlen, const uint8_t *f, size_t n) {
	/* The guest's NIC is the real one: a dummy frame reaches it from the wire (a peer or a loopback plug), not from here. */
	(void)dev; (void)devlen; (void)f; (void)n;
	return -1;
}
static const char *const dev_kind[2] = {"pic", "pit"}; /* the simulator's order */
int hal_device(unsigned i, const char **kind, const char **name, uint64_t *mmio) {
	if (i >= 2) return -1;
	*kind = *name = dev_kind[i];
	*mmio = UINT64_MAX;
	return 0;
}
void hal_shadow(struct bm_mp_writer *w) {
	bm_mpw_object(w, 2);
	bm_mpw_str(w, "pic");
	bm_pic_shadow_write(w, &pic_shadow);
	bm_mpw_str(w, "pit");
	bm_pit_shadow_write(w, &pit_shadow);
}

/* ---------- the agent thread ---------- */
static void agent_thread(void *arg) {
	(void)arg;
	struct bm_agent_cfg cfg = {BAREMIG_NODE_NAME, baremig_core_ram_bytes(), baremig_cluster_key, 32};
	if (bm_agent_init(&cfg)) {
		printf("baremig: agent init failed (link MTU %u)\n", nic_info.mtu);
		return;
	}
	printf("baremig: agent %s on the migration link, MTU %u\n", BAREMIG_NODE_NAME, hal_link_mtu());
	for (;;) {
		while (rx_tail != __atomic_load_n(&rx_head, __ATOMIC_ACQUIRE)) {
			bm_agent_input(rx_ring[rx_tail % RX_SLOTS].data, rx_ring[rx_tail % RX_SLOTS].len);
			rx_tail++;
		}
		if (nic->poll) nic->poll(nic_handle);
		bm_agent_poll();
		schedule();
	}
}

static void baremig_init(void) {
	/* Trapping starts at BitVisor's start, before the guest's firmware touches the
	 * chips: the shadows start from their reset state (core/shadow.h). */
	bm_pic_shadow_init(&pic_shadow);
	bm_pit_shadow_init(&pit_shadow);
	static const u32 ports[] = {0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61};
	for (unsigned i = 0; i < sizeof ports / sizeof ports[0]; i++) set_iofunc(ports[i], trap);
	net_register("baremig", &baremig_netfunc, 0);
}
INITFUNC("driver1", baremig_init);
