/*
 * The hosted binding of hal.h as a Node-API addon (build/Release/baremig_hosted.node):
 * the native agent core inside a simulated node process (src/sim/node/main.ts
 * with `agent: 'native'`), in front of that node's real objects.
 *
 *   guest RAM        the simulator's GuestMemory buffer (the node's physical RAM),
 *                    by pointer: the core reads and writes it in place
 *   write tracking   GuestMemory's dirty map (one byte per page), by pointer:
 *                    collected and cleared in one step on the main thread, where
 *                    the guest also runs, so no guest write falls in between
 *   lifecycle, vCPU  the simulator's Machine (boot, prepareIncoming, pause, resume,
 *                    release, getVcpu, setVcpu) through src/sim/node/nativeAgent.ts
 *   devices          the simulator's device bus (the 8254, 8259 and RTL8169 models),
 *                    the same accesses as the TypeScript agent's IoProgram runner
 *   shadows          core/shadow.c, fed by the port traps the node registers on its
 *                    bus (portTrap: the guest's accesses and the agent's own) and
 *                    the vCPU's interrupt acknowledges (inta)
 *   link             an AF_PACKET socket on one interface (net.c), opened in a
 *                    network namespace when asked; its fd is polled by libuv
 *
 * Everything runs on the Node main thread: libuv calls the core when the link
 * socket is readable and when the core's next deadline (a uv timer) is due; the
 * core's HAL calls into JavaScript synchronously (napi_call_function) inside a
 * handle scope and a callback scope. The guest's run loop is on the same
 * thread, so the guest is stopped while the core runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "../core/agent.h"
#include "../core/msgpack.h"
#include "../core/sha256.h"
#include "../core/shadow.h"
#include "../hal.h"
#include "net.h"

/* vCPU exchange layout (BigUint64Array shared with src/sim/node/nativeAgent.ts). */
enum {
	V_GPR = 0,
	V_RIP = 16, V_RFLAGS, V_CR0, V_CR2, V_CR3, V_CR4, V_CR8, V_TSC,
	V_SEG = 24, /* 8 × (selector, limit, attributes, base) */
	V_GDTR_BASE = 56, V_GDTR_LIMIT, V_IDTR_BASE, V_IDTR_LIMIT,
	V_MSR = 60, /* 11 */
	V_ACTIVITY = 71,
	V_WALL_US = 72,
	V_WORDS = 73
};

#define MAX_DEVICES 8
static struct {
	napi_env env;
	napi_ref host;        /* the NativeHost object */
	napi_ref resource;    /* async resource for callback scopes */
	napi_async_context actx;
	napi_ref ram_ref;     /* the guest RAM buffer, while there is a guest */
	uint8_t *ram;
	uint64_t ram_bytes;
	uint64_t *vwords;     /* host.vcpu (BigUint64Array) */
	uint8_t *xsave;       /* host.xsave (Uint8Array, BM_XSAVE_BYTES) */
	napi_ref vwords_ref, xsave_ref;
	struct bm_net net;
	int started;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_idle_t idle;
	int ndev;
	char kind[MAX_DEVICES][16], name[MAX_DEVICES][32];
	uint64_t mmio[MAX_DEVICES];
	int trap_pic, trap_pit;
	struct bm_pic_shadow pic_shadow;
	struct bm_pit_shadow pit_shadow;
	uint64_t js_errors;
	uint8_t key[64];
	char node[64];
} H;

/* ---------- calling the host (JavaScript) ---------- */
static void report_js_error(const char *fn) {
	napi_env env = H.env;
	bool pending = false;
	napi_is_exception_pending(env, &pending);
	H.js_errors++;
	if (!pending) {
		fprintf(stderr, "baremig_hosted: host.%s failed\n", fn);
		return;
	}
	napi_value exc, str;
	napi_get_and_clear_last_exception(env, &exc);
	char buf[512] = "?";
	size_t n;
	if (napi_coerce_to_string(env, exc, &str) == napi_ok) napi_get_value_string_utf8(env, str, buf, sizeof buf, &n);
	fprintf(stderr, "baremig_hosted: host.%s threw: %s\n", fn, buf);
}

/* Calls host[fn](...argv); 0 and *out on success. */
static int call(const char *fn, size_t argc, const napi_value *argv, napi_value *out) {
	napi_env env = H.env;
	napi_value host, f, r;
	if (napi_get_reference_value(env, H.host, &host) != napi_ok || napi_get_named_property(env, host, fn, &f) != napi_ok) {
		report_js_error(fn);
		return -1;
	}
	if (napi_call_function(env, host, f, argc, argv, &r) != napi_ok) {
		report_js_error(fn);
		return -1;
	}
	if (out) *out = r;
	return 0;
}

static napi_value u32v(uint32_t v) {
	napi_value x;
	napi_create_uint32(H.env, v, &x);
	return x;
}
static napi_value f64v(double v) {
	napi_value x;
	napi_create_double(H.env, v, &x);
	return x;
}
static uint32_t to_u32(napi_value v) {
	double d = 0;
	napi_get_value_double(H.env, v, &d);
	return d < 0 ? 0 : d > 4294967295.0 ? 0xffffffffu : (uint32_t)d;
}

/* A host result that is a string is an error message. Returns 1 (and copies it) when it is. */
static int is_error(napi_value v, char *err, size_t errlen) {
	napi_valuetype t;
	if (napi_typeof(H.env, v, &t) != napi_ok || t != napi_string) return 0;
	size_t n;
	napi_get_value_string_utf8(H.env, v, err, errlen, &n);
	return 1;
}

static void drop_ram(void) {
	if (H.ram_ref) napi_delete_reference(H.env, H.ram_ref);
	H.ram_ref = 0;
	H.ram = 0;
	H.ram_bytes = 0;
}

/* Takes the guest RAM buffer (a Buffer view of the node's physical RAM) by pointer. */
static int take_ram(napi_value buf, uint64_t bytes, char *err, size_t errlen) {
	drop_ram();
	void *p = 0;
	size_t len = 0;
	bool isbuf = false;
	napi_is_buffer(H.env, buf, &isbuf);
	if (!isbuf || napi_get_buffer_info(H.env, buf, &p, &len) != napi_ok || len < bytes) {
		snprintf(err, errlen, "the node gave no guest RAM buffer of %llu bytes", (unsigned long long)bytes);
		return -1;
	}
	napi_create_reference(H.env, buf, 1, &H.ram_ref);
	H.ram = p;
	H.ram_bytes = bytes;
	return 0;
}

/* ---------- HAL: time, randomness, memory ---------- */
uint64_t hal_now_ns(void) { return bm_mono_ns(); }
uint64_t hal_wall_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}
/* Blocks the main thread, as a hypervisor's udelay: it spins on the monotonic
 * clock and ends on time (the 8254 restore's phase waits must not see extra
 * CLK pulses; a sleep wakes up late on a busy host), sleeping first only for
 * all but the last 2 ms of a longer delay. Then it brings the node's
 * clock-driven device models to now (host.advance): what they did meanwhile
 * (a NIC's DMA of a looped-back dummy frame, a counter's terminal count)
 * happens before the program's next op, as on hardware where devices run
 * beside the CPU. They are also brought to the clock before each port or MMIO
 * access (host.portIn/…), as the TypeScript agent's IoProgram runner does. */
#define SPIN_MAX_NS 2000000ULL
void hal_delay_us(uint32_t us) {
	uint64_t end = bm_mono_ns() + (uint64_t)us * 1000;
	if ((uint64_t)us * 1000 > SPIN_MAX_NS) {
		uint64_t sl = (uint64_t)us * 1000 - SPIN_MAX_NS;
		struct timespec ts = {(time_t)(sl / 1000000000ULL), (long)(sl % 1000000000ULL)};
		nanosleep(&ts, 0);
	}
	while (bm_mono_ns() < end) {
	}
	call("advance", 0, 0, 0);
}
void hal_random(uint8_t *out, size_t n) { bm_os_random(out, n); }
void *hal_alloc(size_t n) { return calloc(n ? n : 1, 1); }
void hal_free(void *p, size_t n) { (void)n; free(p); }

/* ---------- HAL: the link ---------- */
void hal_link_mac(uint8_t mac[6]) { memcpy(mac, H.net.mac, 6); }
uint32_t hal_link_mtu(void) { return H.net.mtu; }
int hal_link_send(const uint8_t *f, size_t n) { return bm_net_send(&H.net, f, n); }

/* ---------- HAL: guest RAM and write tracking ---------- */
uint8_t *hal_guest_map(uint64_t addr, size_t len) {
	(void)len;
	return H.ram + addr;
}

void hal_track_collect(uint8_t *out, uint64_t pages) {
	napi_value d;
	if (!H.ram || call("dirty", 0, 0, &d)) return;
	void *data = 0;
	size_t len = 0;
	napi_typedarray_type type;
	napi_value ab;
	size_t off;
	if (napi_get_typedarray_info(H.env, d, &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) return;
	uint8_t *map = data;
	uint64_t n = len < pages ? len : pages;
	for (uint64_t p = 0; p < n; p++)
		if (map[p]) out[p >> 3] |= (uint8_t)(1u << (p & 7));
	memset(map, 0, len);
}
void hal_track_enable(int on) { (void)on; /* GuestMemory always tracks */ }

/* ---------- HAL: guest lifecycle ---------- */
static void reset_shadows(void) {
	bm_pic_shadow_init(&H.pic_shadow);
	bm_pit_shadow_init(&H.pit_shadow);
}

int hal_guest_boot(uint64_t ram_bytes, const uint8_t *spec, size_t spec_len, char *err, size_t errlen) {
	napi_value argv[2], r;
	void *copy;
	argv[0] = f64v((double)ram_bytes);
	napi_create_buffer_copy(H.env, spec_len, spec, &copy, &argv[1]);
	if (call("boot", 2, argv, &r)) { snprintf(err, errlen, "the node failed to boot the guest"); return -1; }
	if (is_error(r, err, errlen)) return -1;
	/* (the host reset the shadows before Machine.boot reset the devices and ran
	 * the guest's boot code, whose chip accesses came through the traps) */
	return take_ram(r, ram_bytes, err, errlen);
}

int hal_guest_alloc(uint64_t ram_bytes, char *err, size_t errlen) {
	napi_value argv[1] = {f64v((double)ram_bytes)}, r;
	if (call("alloc", 1, argv, &r)) { snprintf(err, errlen, "the node failed to prepare for a guest"); return -1; }
	if (is_error(r, err, errlen)) return -1;
	if (take_ram(r, ram_bytes, err, errlen)) return -1;
	reset_shadows(); /* the devices were reset for the incoming guest */
	return 0;
}

/* The node's physical RAM is zero when a guest gets it (Machine scrubs what a
 * released guest used before the next one), and every write the simulated
 * guest and its devices make marks GuestMemory's dirty map. */
int hal_guest_ram_zeroed(void) { return 1; }

void hal_guest_release(void) {
	call("release", 0, 0, 0);
	drop_ram();
}

int hal_guest_pause(uint64_t *tsc_ns, uint64_t *wall_us, char *err, size_t errlen) {
	napi_value r;
	if (call("pause", 0, 0, &r)) { snprintf(err, errlen, "the node failed to pause the guest"); return -1; }
	if (is_error(r, err, errlen)) return -1;
	*tsc_ns = H.vwords[V_TSC];
	*wall_us = H.vwords[V_WALL_US];
	return 0;
}

int hal_guest_resume(int incoming, char *err, size_t errlen) {
	napi_value argv[1], r;
	napi_get_boolean(H.env, incoming != 0, &argv[0]);
	if (call("resume", 1, argv, &r)) { snprintf(err, errlen, "the node failed to resume the guest"); return -1; }
	return is_error(r, err, errlen) ? -1 : 0;
}

/* ---------- HAL: vCPU ---------- */
void hal_vcpu_get(struct bm_vcpu *v, uint64_t *wall_us) {
	memset(v, 0, sizeof *v);
	*wall_us = hal_wall_us();
	if (call("vcpuGet", 0, 0, 0)) return;
	const uint64_t *w = H.vwords;
	for (int i = 0; i < 16; i++) v->gpr[i] = w[V_GPR + i];
	v->rip = w[V_RIP]; v->rflags = w[V_RFLAGS];
	v->cr0 = w[V_CR0]; v->cr2 = w[V_CR2]; v->cr3 = w[V_CR3]; v->cr4 = w[V_CR4]; v->cr8 = w[V_CR8];
	v->tsc = w[V_TSC];
	for (int i = 0; i < 8; i++) {
		v->seg[i].selector = (uint32_t)w[V_SEG + 4 * i];
		v->seg[i].limit = (uint32_t)w[V_SEG + 4 * i + 1];
		v->seg[i].attributes = (uint32_t)w[V_SEG + 4 * i + 2];
		v->seg[i].base = w[V_SEG + 4 * i + 3];
	}
	v->gdtr_base = w[V_GDTR_BASE]; v->gdtr_limit = (uint32_t)w[V_GDTR_LIMIT];
	v->idtr_base = w[V_IDTR_BASE]; v->idtr_limit = (uint32_t)w[V_IDTR_LIMIT];
	for (int i = 0; i < 11; i++) v->msr[i] = w[V_MSR + i];
	memcpy(v->xsave, H.xsave, BM_XSAVE_BYTES);
	v->activity = (uint32_t)w[V_ACTIVITY];
	*wall_us = w[V_WALL_US];
}

void hal_vcpu_set(const struct bm_vcpu *v, uint64_t wall_us) {
	uint64_t *w = H.vwords;
	for (int i = 0; i < 16; i++) w[V_GPR + i] = v->gpr[i];
	w[V_RIP] = v->rip; w[V_RFLAGS] = v->rflags;
	w[V_CR0] = v->cr0; w[V_CR2] = v->cr2; w[V_CR3] = v->cr3; w[V_CR4] = v->cr4; w[V_CR8] = v->cr8;
	w[V_TSC] = v->tsc;
	for (int i = 0; i < 8; i++) {
		w[V_SEG + 4 * i] = v->seg[i].selector;
		w[V_SEG + 4 * i + 1] = v->seg[i].limit;
		w[V_SEG + 4 * i + 2] = v->seg[i].attributes;
		w[V_SEG + 4 * i + 3] = v->seg[i].base;
	}
	w[V_GDTR_BASE] = v->gdtr_base; w[V_GDTR_LIMIT] = v->gdtr_limit;
	w[V_IDTR_BASE] = v->idtr_base; w[V_IDTR_LIMIT] = v->idtr_limit;
	for (int i = 0; i < 11; i++) w[V_MSR + i] = v->msr[i];
	memcpy(H.xsave, v->xsave, BM_XSAVE_BYTES);
	w[V_ACTIVITY] = v->activity;
	w[V_WALL_US] = wall_us;
	call("vcpuSet", 0, 0, 0);
}

/* ---------- HAL: devices (the agent's own accesses, past the guest's traps) ---------- */
static uint32_t ones(int size) { return size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu; }

uint32_t hal_port_in(uint16_t port, int size) {
	napi_value argv[2] = {u32v(port), u32v((uint32_t)size)}, r;
	if (call("portIn", 2, argv, &r)) return ones(size);
	return to_u32(r);
}
void hal_port_out(uint16_t port, int size, uint32_t value) {
	napi_value argv[3] = {u32v(port), u32v((uint32_t)size), u32v(value)};
	call("portOut", 3, argv, 0);
}
uint32_t hal_mmio_read(uint64_t addr, int size) {
	napi_value argv[2] = {f64v((double)addr), u32v((uint32_t)size)}, r;
	if (call("mmioRead", 2, argv, &r)) return ones(size);
	return to_u32(r);
}
void hal_mmio_write(uint64_t addr, int size, uint32_t value) {
	napi_value argv[3] = {f64v((double)addr), u32v((uint32_t)size), u32v(value)};
	call("mmioWrite", 3, argv, 0);
}
int hal_inject_frame(const char *device, size_t devlen, const uint8_t *frame, size_t len) {
	napi_value argv[2], r;
	void *copy;
	napi_create_string_utf8(H.env, device, devlen, &argv[0]);
	napi_create_buffer_copy(H.env, len, frame, &copy, &argv[1]);
	if (call("injectFrame", 2, argv, &r)) return -1;
	bool ok = false;
	napi_get_value_bool(H.env, r, &ok);
	return ok ? 0 : -1;
}
int hal_device(unsigned i, const char **kind, const char **name, uint64_t *mmio_base) {
	if ((int)i >= H.ndev) return -1;
	*kind = H.kind[i];
	*name = H.name[i];
	*mmio_base = H.mmio[i];
	return 0;
}
/* Kind → shadow, in the simulator's device order (pic before pit), as its shadowLog(). */
void hal_shadow(struct bm_mp_writer *w) {
	bm_mpw_object(w, (uint16_t)(H.trap_pic + H.trap_pit));
	if (H.trap_pic) {
		bm_mpw_str(w, "pic");
		bm_pic_shadow_write(w, &H.pic_shadow);
	}
	if (H.trap_pit) {
		bm_mpw_str(w, "pit");
		bm_pit_shadow_write(w, &H.pit_shadow);
	}
}

/* ---------- the main-thread loop: libuv calls the core ---------- */
static void on_timer(uv_timer_t *t);

static void on_idle(uv_idle_t *t);

/* The core's next deadline: now → an idle handle (runs on the next loop turn,
 * after I/O is polled without blocking); later → a uv timer (ms resolution;
 * the link's sub-ms deadlines, such as delayed ACKs, round up to 1 ms). */
static void rearm(void) {
	uint64_t next = bm_agent_next_ns(), now = bm_mono_ns();
	if (next <= now) {
		uv_timer_stop(&H.timer);
		uv_idle_start(&H.idle, on_idle);
		return;
	}
	uv_idle_stop(&H.idle);
	uint64_t d = next - now;
	if (d > 100000000ULL) d = 100000000ULL;
	uv_timer_start(&H.timer, on_timer, (d + 999999ULL) / 1000000ULL, 0);
}

/* Runs `fn` in a handle scope and a callback scope (JS the HAL calls may queue
 * microtasks and nextTicks; closing the callback scope runs them). */
static void in_scope(void (*fn)(void)) {
	napi_env env = H.env;
	napi_handle_scope hs;
	napi_callback_scope cs;
	napi_value res;
	napi_open_handle_scope(env, &hs);
	napi_get_reference_value(env, H.resource, &res);
	napi_open_callback_scope(env, res, H.actx, &cs);
	fn();
	napi_close_callback_scope(env, cs);
	napi_close_handle_scope(env, hs);
}

static void do_readable(void) {
	static uint8_t frame[BM_MAX_FRAME + 64];
	for (int k = 0; k < 512; k++) {
		long n = bm_net_recv(&H.net, frame, sizeof frame);
		if (n <= 0) break;
		bm_agent_input(frame, (size_t)n);
		if ((k & 31) == 31) bm_agent_poll();
	}
	bm_agent_poll();
	rearm();
}
static void do_timer(void) {
	bm_agent_poll();
	rearm();
}
static void on_readable(uv_poll_t *p, int status, int events) {
	(void)p; (void)events;
	if (status < 0) return;
	in_scope(do_readable);
}
static void on_timer(uv_timer_t *t) {
	(void)t;
	in_scope(do_timer);
}
static void on_idle(uv_idle_t *t) {
	(void)t;
	in_scope(do_timer);
}

/* ---------- exports ---------- */
#define THROW(env, msg)                                    \
	do {                                                   \
		napi_throw_error(env, "BAREMIG_HOSTED", msg);      \
		return 0;                                          \
	} while (0)

static int prop(napi_env env, napi_value o, const char *k, napi_value *out) {
	bool has = false;
	if (napi_has_named_property(env, o, k, &has) != napi_ok || !has) return -1;
	if (napi_get_named_property(env, o, k, out) != napi_ok) return -1;
	napi_valuetype t;
	napi_typeof(env, *out, &t);
	return t == napi_undefined || t == napi_null ? -1 : 0;
}
static int prop_str(napi_env env, napi_value o, const char *k, char *buf, size_t cap) {
	napi_value v;
	size_t n;
	if (prop(env, o, k, &v) || napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok) return -1;
	return n + 1 < cap ? 0 : -1;
}
static int prop_f64(napi_env env, napi_value o, const char *k, double *d) {
	napi_value v;
	return prop(env, o, k, &v) || napi_get_value_double(env, v, d) != napi_ok ? -1 : 0;
}
static int prop_bool(napi_env env, napi_value o, const char *k) {
	napi_value v;
	bool b = false;
	if (prop(env, o, k, &v)) return 0;
	napi_get_value_bool(env, v, &b);
	return b;
}

/* Opens the AF_PACKET socket, in network namespace `netns` when given (the
 * socket stays in the namespace it was created in; the thread returns). */
static int open_link(const char *ifname, const char *netns, char *err, size_t errlen) {
	if (!netns || !*netns) return bm_net_open(&H.net, ifname, err, errlen);
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	char path[300];
	snprintf(path, sizeof path, "/var/run/netns/%s", netns);
	int target = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || target < 0) {
		snprintf(err, errlen, "network namespace %s: %s", netns, strerror(errno));
		if (self >= 0) close(self);
		if (target >= 0) close(target);
		return -1;
	}
	if (setns(target, CLONE_NEWNET)) {
		snprintf(err, errlen, "network namespace %s: setns: %s (needs CAP_SYS_ADMIN)", netns, strerror(errno));
		close(self);
		close(target);
		return -1;
	}
	int r = bm_net_open(&H.net, ifname, err, errlen);
	if (setns(self, CLONE_NEWNET)) {
		fprintf(stderr, "baremig_hosted: cannot return to the node's network namespace: %s\n", strerror(errno));
		abort();
	}
	close(self);
	close(target);
	return r;
}

static int hexkey(const char *hex, uint8_t *key, size_t *keylen) {
	size_t n = strlen(hex);
	if (n % 2 || n < 32 || n > 128) return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned b;
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) return -1;
		key[i] = (uint8_t)b;
	}
	*keylen = n / 2;
	return 0;
}

/*
 * start({ name, ramCapacity, keyHex, ifname, netns?, loss?, trapPic, trapPit,
 *         devices: [{kind, name, mmioBase?}], host }) → { mac, mtu }
 */
static napi_value start(napi_env env, napi_callback_info info) {
	size_t argc = 1;
	napi_value argv[1], o, v;
	napi_get_cb_info(env, info, &argc, argv, 0, 0);
	if (H.started) THROW(env, "the native agent is already running in this process");
	if (argc < 1) THROW(env, "start(options)");
	o = argv[0];
	char ifname[64], netns[128] = "", keyhex[160];
	double cap = 0, loss = 0;
	if (prop_str(env, o, "name", H.node, sizeof H.node)) THROW(env, "options.name: a node name");
	if (prop_str(env, o, "ifname", ifname, sizeof ifname)) THROW(env, "options.ifname: the link interface");
	if (prop_str(env, o, "keyHex", keyhex, sizeof keyhex)) THROW(env, "options.keyHex: the cluster key in hex");
	if (prop_f64(env, o, "ramCapacity", &cap) || cap <= 0 || cap > (double)BM_MAX_RAM) THROW(env, "options.ramCapacity: bytes, up to 4 GiB");
	if (!prop(env, o, "netns", &v)) prop_str(env, o, "netns", netns, sizeof netns);
	prop_f64(env, o, "loss", &loss);
	H.trap_pic = prop_bool(env, o, "trapPic");
	H.trap_pit = prop_bool(env, o, "trapPit");
	size_t keylen;
	if (hexkey(keyhex, H.key, &keylen)) THROW(env, "options.keyHex: 16 to 64 bytes of hex");
	/* devices */
	H.ndev = 0;
	if (!prop(env, o, "devices", &v)) {
		uint32_t n = 0;
		napi_get_array_length(env, v, &n);
		for (uint32_t i = 0; i < n && H.ndev < MAX_DEVICES; i++) {
			napi_value d;
			napi_get_element(env, v, i, &d);
			int k = H.ndev;
			if (prop_str(env, d, "kind", H.kind[k], sizeof H.kind[k]) || prop_str(env, d, "name", H.name[k], sizeof H.name[k])) THROW(env, "options.devices: {kind, name, mmioBase?}");
			double mb;
			H.mmio[k] = prop_f64(env, d, "mmioBase", &mb) ? UINT64_MAX : (uint64_t)mb;
			H.ndev++;
		}
	}
	/* host object and its shared vCPU buffers */
	napi_value host;
	if (prop(env, o, "host", &host)) THROW(env, "options.host: the node's NativeHost");
	napi_value vw, xs, ab;
	napi_typedarray_type tt;
	size_t len, off;
	void *data;
	if (prop(env, host, "vcpu", &vw) || napi_get_typedarray_info(env, vw, &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_biguint64_array || len < V_WORDS)
		THROW(env, "host.vcpu: a BigUint64Array of at least 73 words");
	H.vwords = data;
	if (prop(env, host, "xsave", &xs) || napi_get_typedarray_info(env, xs, &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_uint8_array || len < BM_XSAVE_BYTES)
		THROW(env, "host.xsave: a Uint8Array of 832 bytes");
	H.xsave = data;
	H.env = env;
	napi_create_reference(env, host, 1, &H.host);
	napi_create_reference(env, vw, 1, &H.vwords_ref);
	napi_create_reference(env, xs, 1, &H.xsave_ref);
	napi_value res, rname;
	napi_create_object(env, &res);
	napi_create_string_utf8(env, "baremig-native-agent", NAPI_AUTO_LENGTH, &rname);
	napi_create_reference(env, res, 1, &H.resource);
	napi_async_init(env, res, rname, &H.actx);
	reset_shadows();
	/* the link */
	char err[300];
	if (open_link(ifname, netns, err, sizeof err)) THROW(env, err);
	H.net.loss = loss;
	struct bm_agent_cfg cfg = {H.node, (uint64_t)cap, H.key, keylen};
	if (bm_agent_init(&cfg)) {
		close(H.net.fd);
		snprintf(err, sizeof err, "the agent core refused its configuration (link MTU %u)", H.net.mtu);
		THROW(env, err);
	}
	uv_loop_t *loop;
	napi_get_uv_event_loop(env, &loop);
	uv_poll_init(loop, &H.poll, H.net.fd);
	uv_poll_start(&H.poll, UV_READABLE, on_readable);
	uv_timer_init(loop, &H.timer);
	uv_idle_init(loop, &H.idle);
	rearm();
	H.started = 1;
	napi_value out, mac, mtu;
	char ms[18];
	snprintf(ms, sizeof ms, "%02x:%02x:%02x:%02x:%02x:%02x", H.net.mac[0], H.net.mac[1], H.net.mac[2], H.net.mac[3], H.net.mac[4], H.net.mac[5]);
	napi_create_object(env, &out);
	napi_create_string_utf8(env, ms, NAPI_AUTO_LENGTH, &mac);
	napi_create_uint32(env, H.net.mtu, &mtu);
	napi_set_named_property(env, out, "mac", mac);
	napi_set_named_property(env, out, "mtu", mtu);
	napi_value impl;
	napi_create_string_utf8(env, bm_sha256_impl(), NAPI_AUTO_LENGTH, &impl);
	napi_set_named_property(env, out, "sha256", impl);
	return out;
}

/* portTrap(out, port, size, value): one guest access the node's port trap saw. */
static const uint16_t pic_ports[][2] = BM_PIC_TRAP_PORTS;
static const uint16_t pit_ports[][2] = BM_PIT_TRAP_PORTS;
static int in_ranges(uint32_t port, const uint16_t (*r)[2], int n) {
	for (int i = 0; i < n; i++)
		if (port >= r[i][0] && port <= r[i][1]) return 1;
	return 0;
}
static napi_value port_trap(napi_env env, napi_callback_info info) {
	size_t argc = 4;
	napi_value a[4];
	napi_get_cb_info(env, info, &argc, a, 0, 0);
	if (argc < 4) return 0;
	bool out = false;
	uint32_t port = 0, size = 0, value = 0;
	napi_get_value_bool(env, a[0], &out);
	napi_get_value_uint32(env, a[1], &port);
	napi_get_value_uint32(env, a[2], &size);
	napi_get_value_uint32(env, a[3], &value);
	if (size != 1 && size != 2 && size != 4) return 0;
	if (H.trap_pic && in_ranges(port, pic_ports, 3)) bm_pic_shadow_access(&H.pic_shadow, out, (uint16_t)port, (int)size, value);
	if (H.trap_pit && in_ranges(port, pit_ports, 2)) bm_pit_shadow_access(&H.pit_shadow, out, (uint16_t)port, (int)size, value);
	return 0;
}

/* inta(master, slave?): an interrupt acknowledge (poll-word format, core/shadow.h). */
static napi_value inta(napi_env env, napi_callback_info info) {
	size_t argc = 2;
	napi_value a[2];
	napi_get_cb_info(env, info, &argc, a, 0, 0);
	if (argc < 1 || !H.trap_pic) return 0;
	uint32_t master = 0, slave = 0;
	napi_get_value_uint32(env, a[0], &master);
	int has_slave = 0;
	if (argc > 1) {
		napi_valuetype t;
		napi_typeof(env, a[1], &t);
		if (t == napi_number) {
			has_slave = 1;
			napi_get_value_uint32(env, a[1], &slave);
		}
	}
	bm_pic_shadow_inta(&H.pic_shadow, (uint8_t)master, has_slave, (uint8_t)slave);
	return 0;
}

/* resetShadows(): the node reset its devices outside the core (boot at start-up). */
static napi_value reset_shadows_js(napi_env env, napi_callback_info info) {
	(void)env; (void)info;
	reset_shadows();
	return 0;
}

/* stats(): the counters the standalone agent printed as JSON. */
static napi_value stats(napi_env env, napi_callback_info info) {
	(void)info;
	struct bm_agent_stats s;
	bm_agent_get_stats(&s);
	napi_value o;
	napi_create_object(env, &o);
	struct { const char *k; uint64_t v; } kv[] = {
		{"rxFrames", s.link.rx_frames}, {"txFrames", s.link.tx_frames}, {"rxBytes", s.link.rx_bytes}, {"txBytes", s.link.tx_bytes},
		{"badMac", s.link.bad_mac}, {"replay", s.link.replay}, {"unknownSession", s.link.unknown_session}, {"malformed", s.link.malformed},
		{"retransmits", s.link.retransmits}, {"dupData", s.link.dup_data}, {"refusedSessions", s.link.refused}, {"refused", s.refused},
		{"pagesReceived", s.pages_received}, {"streamsRejected", s.streams_rejected}, {"lossDropped", H.started ? H.net.dropped : 0},
		{"sockDrops", H.started ? bm_net_sock_drops(&H.net) : 0}, {"rackLost", s.link.rack_lost}, {"probes", s.link.probes},
		{"timeouts", s.link.timeouts}, {"hostErrors", H.js_errors},
	};
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
		napi_value v;
		napi_create_double(env, (double)kv[i].v, &v);
		napi_set_named_property(env, o, kv[i].k, v);
	}
	return o;
}

/* stop(): closes the link; the core stops being called. */
static napi_value stop(napi_env env, napi_callback_info info) {
	(void)info;
	(void)env;
	if (!H.started) return 0;
	H.started = 0;
	uv_poll_stop(&H.poll);
	uv_timer_stop(&H.timer);
	uv_idle_stop(&H.idle);
	uv_close((uv_handle_t *)&H.poll, 0);
	uv_close((uv_handle_t *)&H.timer, 0);
	uv_close((uv_handle_t *)&H.idle, 0);
	close(H.net.fd);
	return 0;
}

static napi_value init(napi_env env, napi_value exports) {
	napi_property_descriptor d[] = {
		{"start", 0, start, 0, 0, 0, napi_default, 0},
		{"portTrap", 0, port_trap, 0, 0, 0, napi_default, 0},
		{"inta", 0, inta, 0, 0, 0, napi_default, 0},
		{"resetShadows", 0, reset_shadows_js, 0, 0, 0, napi_default, 0},
		{"stats", 0, stats, 0, 0, 0, napi_default, 0},
		{"stop", 0, stop, 0, 0, 0, napi_default, 0},
	};
	napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
