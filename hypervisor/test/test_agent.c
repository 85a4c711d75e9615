/* The agent core's request handling on the hosted simulated machine, without
 * the link: validation, authentication, state rules, memory, digest, vCPU. */
#include <string.h>
#include "../core/agent.h"
#include "../core/msgpack.h"
#include "../core/sha256.h"
#include "../core/xxh64.h"
#include "../core/bm_lib.h"
#include "../hosted/machine.h"
#include "check.h"

static uint8_t key[32];
static uint8_t out[(8u << 20) + 64];
static size_t outn;
static int closeafter;
static uint8_t mb[1 << 21];
static struct bm_mp_writer W;

static void begin(const char *t, uint32_t id, uint32_t extra) {
	bm_mpw_init(&W, mb, sizeof mb);
	bm_mpw_map(&W, 2 + extra);
	bm_mpw_str(&W, "t"); bm_mpw_str(&W, t);
	bm_mpw_str(&W, "id"); bm_mpw_uint(&W, id);
}
static void send_(void) { outn = bm_agent_handle(0, mb, W.len, out, sizeof out, &closeafter); }

/* Finds key k in the reply (top level). */
static int get(const char *k, struct bm_mp_val *v, struct bm_mp_reader *at) {
	struct bm_mp_reader r;
	struct bm_mp_val m, kk;
	bm_mp_reader_init(&r, out, outn);
	if (bm_mp_read(&r, &m) || m.type != BM_MP_MAP) return -1;
	for (uint64_t i = 0; i < m.u; i++) {
		bm_mp_read(&r, &kk);
		if (bm_mp_str_eq(&kk, k)) { if (at) *at = r; return bm_mp_read(&r, v); }
		bm_mp_skip(&r);
	}
	return -1;
}
static int is_ok(void) { struct bm_mp_val v; return !get("t", &v, 0) && bm_mp_str_eq(&v, "ok"); }
static int code_is(const char *c) { struct bm_mp_val v; return !get("code", &v, 0) && bm_mp_str_eq(&v, c); }
static uint64_t reply_id(void) { struct bm_mp_val v; get("id", &v, 0); return v.u; }

static void mac(const char *label, const uint8_t *ch, const uint8_t *nonce, uint8_t o[32]) {
	uint8_t buf[256];
	size_t n = 0;
	memcpy(buf, "baremig-v1 ", 11); n = 11;
	memcpy(buf + n, label, strlen(label)); n += strlen(label);
	buf[n++] = 0;
	memcpy(buf + n, ch, 32); n += 32;
	memcpy(buf + n, nonce, 32); n += 32;
	memcpy(buf + n, "node9", 5); n += 5;
	bm_hmac_sha256(key, 32, buf, n, o);
}

static void login(void) {
	begin("hello", 1, 1); bm_mpw_str(&W, "v"); bm_mpw_uint(&W, 1); send_();
	struct bm_mp_val ch;
	get("challenge", &ch, 0);
	uint8_t c[32], nonce[32], m[32];
	memcpy(c, ch.p, 32);
	memset(nonce, 3, 32);
	mac("client", c, nonce, m);
	begin("auth", 2, 2); bm_mpw_str(&W, "nonce"); bm_mpw_bin(&W, nonce, 32); bm_mpw_str(&W, "mac"); bm_mpw_bin(&W, m, 32); send_();
	CHECK(is_ok());
	struct bm_mp_val am;
	uint8_t expect[32];
	mac("agent", c, nonce, expect);
	CHECK(!get("mac", &am, 0) && !memcmp(am.p, expect, 32));
}

/* The digest tree computed from scratch over all of RAM (no caches): XXH64 per page,
 * XXH64 per 1 MiB group of page hashes, SHA-256 of the group hashes. */
static void reference_digest(char hex[65]) {
	uint64_t groups = M.ram_bytes >> 20;
	static uint8_t ph[256 * 8], gh[4096 * 8];
	uint8_t h[32];
	for (uint64_t g = 0; g < groups; g++) {
		for (uint64_t p = 0; p < 256; p++) bm_put64(ph + p * 8, bm_xxh64(M.ram + (g * 256 + p) * 4096, 4096, 0));
		bm_put64(gh + g * 8, bm_xxh64(ph, sizeof ph, 0));
	}
	bm_sha256(gh, (size_t)groups * 8, h);
	for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", h[i]);
}

int main(void) {
	memset(key, 0x42, 32);
	M.net.mtu = 9000;
	M.net.fd = -1;
	struct bm_agent_cfg cfg = {"node9", 64u << 20, key, 32};
	CHECK(bm_agent_init(&cfg) == 0);
	bm_agent_test_session(0, 0);

	/* before hello: AUTH, and the connection goes */
	begin("state", 7, 0); send_();
	CHECK(code_is("AUTH") && reply_id() == 7 && closeafter);
	/* malformed input */
	uint8_t junk[] = {0xc1};
	outn = bm_agent_handle(0, junk, 1, out, sizeof out, &closeafter);
	CHECK(code_is("PROTOCOL") && reply_id() == 0);
	begin("nope", 9, 0); send_();
	CHECK(code_is("PROTOCOL") && reply_id() == 9);
	begin("state", 9, 1); bm_mpw_str(&W, "extra"); bm_mpw_uint(&W, 1); send_();
	CHECK(code_is("PROTOCOL") && reply_id() == 9);
	bm_mpw_init(&W, mb, sizeof mb); bm_mpw_map(&W, 2); bm_mpw_str(&W, "t"); bm_mpw_str(&W, "state"); bm_mpw_str(&W, "id"); bm_mpw_bigint(&W, 5); send_();
	CHECK(code_is("PROTOCOL") && reply_id() == 0); /* a bigint id is not an id */
	begin("hello", 3, 1); bm_mpw_str(&W, "v"); bm_mpw_uint(&W, 2); send_();
	CHECK(code_is("VERSION"));
	begin("hello", 3, 1); bm_mpw_str(&W, "v"); bm_mpw_str(&W, "1"); send_();
	CHECK(code_is("PROTOCOL"));
	/* wrong key */
	begin("hello", 1, 1); bm_mpw_str(&W, "v"); bm_mpw_uint(&W, 1); send_();
	CHECK(is_ok());
	uint8_t z[32] = {0};
	begin("auth", 2, 2); bm_mpw_str(&W, "nonce"); bm_mpw_bin(&W, z, 32); bm_mpw_str(&W, "mac"); bm_mpw_bin(&W, z, 32); send_();
	CHECK(code_is("AUTH") && closeafter);
	bm_agent_test_session(0, 0);
	login();

	begin("state", 4, 0); send_();
	struct bm_mp_val v;
	CHECK(is_ok() && !get("guest", &v, 0) && bm_mp_str_eq(&v, "none"));
	CHECK(!get("ramCapacity", &v, 0) && v.u == 64u << 20);
	begin("memRead", 5, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 0); bm_mpw_str(&W, "len"); bm_mpw_uint(&W, 16); send_();
	CHECK(code_is("STATE"));
	begin("prepareIncoming", 6, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 3u << 20); bm_mpw_str(&W, "devices"); bm_mpw_array(&W, 1); bm_mpw_str(&W, "rtl8169"); send_();
	CHECK(code_is("BAD_REQUEST"));
	begin("prepareIncoming", 6, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 3u << 20 | 5); bm_mpw_str(&W, "devices"); bm_mpw_array(&W, 0); send_();
	CHECK(code_is("BAD_REQUEST"));
	begin("prepareIncoming", 6, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 3u << 20); bm_mpw_str(&W, "devices"); bm_mpw_array(&W, 0); send_();
	CHECK(is_ok() && !get("token", &v, 0) && v.u == 32);
	uint8_t data[5000];
	for (int i = 0; i < 5000; i++) data[i] = (uint8_t)(i * 7);
	begin("memWrite", 8, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, (3u << 20) - 100); bm_mpw_str(&W, "data"); bm_mpw_bin(&W, data, 5000); send_();
	CHECK(code_is("BAD_REQUEST"));
	begin("memWrite", 8, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 4000); bm_mpw_str(&W, "data"); bm_mpw_bin(&W, data, 5000); send_();
	CHECK(is_ok());
	begin("memRead", 9, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 4000); bm_mpw_str(&W, "len"); bm_mpw_uint(&W, 5000); send_();
	CHECK(is_ok() && !get("data", &v, 0) && v.u == 5000 && !memcmp(v.p, data, 5000));
	begin("memRead", 9, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 0); bm_mpw_str(&W, "len"); bm_mpw_uint(&W, (1u << 20) + 1); send_();
	CHECK(code_is("PROTOCOL"));
	/* digest equals the tree computed independently; a second one rehashes nothing */
	char ref[65];
	reference_digest(ref);
	begin("digest", 10, 0); send_();
	CHECK(is_ok() && !get("hex", &v, 0) && v.u == 64 && !memcmp(v.p, ref, 64));
	begin("digest", 10, 0); send_();
	CHECK(!get("rehashedPages", &v, 0) && v.u == 0);
	/* runProgram */
	begin("runProgram", 11, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 3);
	bm_mpw_map(&W, 3); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "in"); bm_mpw_str(&W, "port"); bm_mpw_uint(&W, 0x40); bm_mpw_str(&W, "size"); bm_mpw_uint(&W, 1);
	bm_mpw_map(&W, 3); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "memRead"); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 4000); bm_mpw_str(&W, "len"); bm_mpw_uint(&W, 4);
	bm_mpw_map(&W, 2); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "delay"); bm_mpw_str(&W, "us"); bm_mpw_uint(&W, 10);
	send_();
	struct bm_mp_reader at;
	CHECK(is_ok() && !get("reads", &v, &at) && v.type == BM_MP_ARRAY && v.u == 2);
	bm_mp_read(&at, &v); bm_mp_read(&at, &v);
	CHECK(v.type == BM_MP_INT && v.u == 255);
	/* delay.us is any number in [0, 5e6] (the 8254 restore waits fractional µs), as messages.ts */
	{
		double frac = 12.345, neg = -0.5, big = 5000000.5;
		uint64_t fb, nb, bb;
		memcpy(&fb, &frac, 8); memcpy(&nb, &neg, 8); memcpy(&bb, &big, 8);
		begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
		bm_mpw_map(&W, 2); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "delay"); bm_mpw_str(&W, "us"); bm_mpw_f64(&W, fb);
		send_();
		CHECK(is_ok());
		begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
		bm_mpw_map(&W, 2); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "delay"); bm_mpw_str(&W, "us"); bm_mpw_f64(&W, nb);
		send_();
		CHECK(code_is("PROTOCOL"));
		begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
		bm_mpw_map(&W, 2); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "delay"); bm_mpw_str(&W, "us"); bm_mpw_f64(&W, bb);
		send_();
		CHECK(code_is("PROTOCOL"));
	}
	begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
	bm_mpw_map(&W, 3); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "in"); bm_mpw_str(&W, "port"); bm_mpw_uint(&W, 0x40); bm_mpw_str(&W, "size"); bm_mpw_uint(&W, 3);
	send_();
	CHECK(code_is("PROTOCOL"));
	begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
	bm_mpw_map(&W, 3); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "memWrite"); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 3u << 20); bm_mpw_str(&W, "data"); bm_mpw_bin(&W, data, 1);
	send_();
	CHECK(code_is("BAD_REQUEST"));
	begin("runProgram", 12, 1); bm_mpw_str(&W, "program"); bm_mpw_array(&W, 1);
	bm_mpw_map(&W, 3); bm_mpw_str(&W, "op"); bm_mpw_str(&W, "injectFrame"); bm_mpw_str(&W, "device"); bm_mpw_str(&W, "nic0"); bm_mpw_str(&W, "frame"); bm_mpw_bin(&W, data, 60);
	send_();
	CHECK(code_is("BAD_REQUEST"));
	/* an incoming guest without a boot block does not start */
	begin("resume", 13, 0); send_();
	CHECK(code_is("STATE"));
	begin("vcpuSet", 14, 2); bm_mpw_str(&W, "vcpu"); bm_mpw_map(&W, 0); bm_mpw_str(&W, "wallMs"); bm_mpw_uint(&W, 5); send_();
	CHECK(code_is("PROTOCOL"));
	begin("release", 15, 0); send_();
	CHECK(is_ok());
	/* boot a guest, read its vCPU, pause/resume rules */
	begin("boot", 16, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 8u << 20); bm_mpw_str(&W, "spec"); bm_mpw_map(&W, 1); bm_mpw_str(&W, "modules"); bm_mpw_array(&W, 1);
	bm_mpw_map(&W, 1); bm_mpw_str(&W, "name"); bm_mpw_str(&W, "bogus"); send_();
	CHECK(code_is("BAD_REQUEST"));
	begin("boot", 16, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 8u << 20); bm_mpw_str(&W, "spec"); bm_mpw_map(&W, 1); bm_mpw_str(&W, "modules"); bm_mpw_array(&W, 1);
	bm_mpw_map(&W, 2); bm_mpw_str(&W, "name"); bm_mpw_str(&W, "heartbeat"); bm_mpw_str(&W, "config"); bm_mpw_map(&W, 1); bm_mpw_str(&W, "periodNs"); bm_mpw_uint(&W, 1000000); send_();
	CHECK(is_ok());
	begin("release", 17, 0); send_();
	CHECK(code_is("STATE"));
	begin("vcpuGet", 18, 0); send_();
	CHECK(is_ok() && bm_mp_check_one(out, outn) == 0);
	static uint8_t vbytes[4096];
	size_t vlen = 0;
	{
		struct bm_mp_reader vr;
		get("vcpu", &v, &vr);
		size_t start = vr.pos;
		bm_mp_skip(&vr);
		vlen = vr.pos - start;
		memcpy(vbytes, out + start, vlen);
	}
	begin("pause", 19, 0); send_();
	CHECK(is_ok());
	begin("pause", 19, 0); send_();
	CHECK(code_is("STATE"));
	begin("dirtyLogSync", 20, 0); send_();
	CHECK(code_is("STATE"));
	begin("dirtyLogStart", 21, 0); send_();
	CHECK(is_ok());
	begin("memWrite", 22, 2); bm_mpw_str(&W, "addr"); bm_mpw_uint(&W, 0x300000); bm_mpw_str(&W, "data"); bm_mpw_bin(&W, data, 4097); send_();
	begin("dirtyLogSync", 23, 0); send_();
	CHECK(is_ok() && !get("dirtyPages", &v, 0) && v.u == 2);
	begin("release", 24, 0); send_();
	CHECK(is_ok());
	begin("prepareIncoming", 25, 2); bm_mpw_str(&W, "ramBytes"); bm_mpw_uint(&W, 8u << 20); bm_mpw_str(&W, "devices"); bm_mpw_array(&W, 0); send_();
	CHECK(is_ok());
	begin("vcpuSet", 26, 2); bm_mpw_str(&W, "vcpu"); bm_mpw_raw(&W, vbytes, vlen); bm_mpw_str(&W, "wallMs"); bm_mpw_f64(&W, bm_f64_ratio(1700000000123456ULL, 1000)); send_();
	CHECK(is_ok());
	begin("vcpuSet", 27, 2); bm_mpw_str(&W, "vcpu"); bm_mpw_raw(&W, vbytes, vlen); bm_mpw_str(&W, "wallMs"); bm_mpw_int(&W, -1); send_();
	CHECK(code_is("PROTOCOL"));
	begin("shadow", 28, 0); send_();
	CHECK(is_ok() && !get("shadow", &v, 0) && v.type == BM_MP_MAP && v.u == 0);
	DONE("test_agent");
}
