/*
 * Hot paths of the simulated node that a real hypervisor runs natively:
 * hashing guest pages for the memory digest, backing the node's physical RAM
 * at start, and (pageStreamIo.c) the page stream's sender and receiver.
 *
 * The digest hash is XXH64 (seed 0), from the native agent's core
 * (hypervisor/core/xxh64.c), so that both agents hash with one implementation
 * and their digests compare.
 */
#define _DEFAULT_SOURCE
#include <node_api.h>
#include "../hypervisor/core/xxh64.h"
#include "napiArgs.h"
#include "pageStreamIo.h"
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One XXH64 for both agents: the native agent's freestanding implementation. */
#define xxh64 bm_xxh64

/*
 * refreshDigest(ram, stalePage, staleGroup, pageHash, groupHash, firstGroup, endGroup) → pages rehashed
 * For each stale group in [firstGroup, endGroup): rehash its stale pages (8-byte XXH64 each, little-endian
 * in pageHash) and the group (XXH64 over its 256 page hashes, into groupHash); clear the stale marks.
 */
static napi_value refresh_digest(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "refreshDigest takes 7 arguments");
    return NULL;
  }
  uint8_t *ram, *stale_page, *stale_group, *page_hash, *group_hash;
  size_t ram_len, sp_len, sg_len, ph_len, gh_len;
  if (!get_bytes(env, argv[0], &ram, &ram_len) || !get_bytes(env, argv[1], &stale_page, &sp_len) || !get_bytes(env, argv[2], &stale_group, &sg_len) ||
      !get_bytes(env, argv[3], &page_hash, &ph_len) || !get_bytes(env, argv[4], &group_hash, &gh_len)) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "refreshDigest: the first five arguments must be Uint8Arrays");
    return NULL;
  }
  int64_t g0, g1;
  CHECK(napi_get_value_int64(env, argv[5], &g0));
  CHECK(napi_get_value_int64(env, argv[6], &g1));
  const size_t pages = ram_len / 4096, groups = pages / 256;
  if (sp_len != pages || sg_len != groups || ph_len != pages * 8 || gh_len != groups * 8 || g0 < 0 || g1 < g0 || (size_t)g1 > groups) {
    napi_throw_range_error(env, "BAREMIG_NATIVE", "refreshDigest: array sizes do not match the RAM");
    return NULL;
  }
  int64_t rehashed = 0;
  for (size_t g = (size_t)g0; g < (size_t)g1; g++) {
    if (!stale_group[g]) continue;
    stale_group[g] = 0;
    for (size_t pg = g * 256; pg < (g + 1) * 256; pg++) {
      if (!stale_page[pg]) continue;
      stale_page[pg] = 0;
      uint64_t h = xxh64(ram + pg * 4096, 4096, 0);
      memcpy(page_hash + pg * 8, &h, 8);
      rehashed++;
    }
    uint64_t gh = xxh64(page_hash + g * 256 * 8, 256 * 8, 0);
    memcpy(group_hash + g * 8, &gh, 8);
  }
  napi_value out;
  CHECK(napi_create_int64(env, rehashed, &out));
  return out;
}

/*
 * orCount(into, from|null) → number: into |= from (byte-wise, 0/1 marks), then the number of marked
 * bytes in into. The dirty log's merge and count: a loop over a million pages of a 4 GiB guest took
 * 3–6 ms in JavaScript, inside the pause.
 */
static napi_value or_count(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *into, *from = NULL;
  size_t n, m = 0;
  napi_valuetype t = napi_null;
  if (argc == 2) CHECK(napi_typeof(env, argv[1], &t));
  if (argc < 1 || !get_bytes(env, argv[0], &into, &n) || (argc == 2 && t != napi_null && t != napi_undefined && !get_bytes(env, argv[1], &from, &m))) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "orCount takes a Uint8Array and an optional Uint8Array");
    return NULL;
  }
  if (from && m != n) {
    napi_throw_range_error(env, "BAREMIG_NATIVE", "orCount: the arrays differ in length");
    return NULL;
  }
  /* Eight marks at a time: fold each byte's bits into its lowest, count those. */
  size_t count = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, into + i, 8);
    if (from) {
      uint64_t f;
      memcpy(&f, from + i, 8);
      w |= f;
      memcpy(into + i, &w, 8);
    }
    w |= w >> 4;
    w |= w >> 2;
    w |= w >> 1;
    /* Each byte is now 0 or 1: one multiply sums the eight into the top byte (no popcount instruction needed). */
    count += (size_t)(((w & 0x0101010101010101ULL) * 0x0101010101010101ULL) >> 56);
  }
  for (; i < n; i++) {
    if (from) into[i] |= from[i];
    count += into[i] != 0;
  }
  napi_value out;
  CHECK(napi_create_double(env, (double)count, &out));
  return out;
}

/* zeroPageHash() → bigint: XXH64 of an all-zero page (fresh RAM's page hash). */
static napi_value zero_page_hash(napi_env env, napi_callback_info info) {
  (void)info;
  static const uint8_t z[4096];
  napi_value out;
  CHECK(napi_create_bigint_uint64(env, xxh64(z, 4096, 0), &out));
  return out;
}

/* xxh64(bytes) → bigint: for tests against an independent implementation. */
static napi_value xxh64_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *d;
  size_t len;
  if (argc != 1 || !get_bytes(env, argv[0], &d, &len)) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "xxh64 takes one Uint8Array");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_bigint_uint64(env, xxh64(d, len, 0), &out));
  return out;
}

/*
 * populate(buffer) → bool: back the buffer with memory now (MADV_POPULATE_WRITE,
 * Linux 5.14+; else touch one byte per page). A bare-metal node's RAM exists
 * from power-on: the simulated node populates its physical RAM once at start,
 * so receiving a guest costs no page faults, as on real hardware.
 */
static napi_value populate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *d;
  size_t len;
  if (argc != 1 || !get_bytes(env, argv[0], &d, &len)) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "populate takes one Uint8Array");
    return NULL;
  }
  long ps = sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)d + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
  uintptr_t e = ((uintptr_t)d + len) & ~((uintptr_t)ps - 1);
  int ok = 0;
#ifdef MADV_POPULATE_WRITE
  if (e > a) ok = madvise((void *)a, e - a, MADV_POPULATE_WRITE) == 0;
#endif
  if (!ok) {
    volatile uint8_t *v = d;
    for (size_t i = 0; i < len; i += (size_t)ps) v[i] = v[i];
    ok = 1;
  }
  napi_value out;
  CHECK(napi_get_boolean(env, ok, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"refreshDigest", NULL, refresh_digest, NULL, NULL, NULL, napi_default, NULL},
      {"xxh64", NULL, xxh64_js, NULL, NULL, NULL, napi_default, NULL},
      {"populate", NULL, populate, NULL, NULL, NULL, napi_default, NULL},
      {"orCount", NULL, or_count, NULL, NULL, NULL, napi_default, NULL},
      {"zeroPageHash", NULL, zero_page_hash, NULL, NULL, NULL, napi_default, NULL},
      {"sendPages", NULL, bm_send_pages, NULL, NULL, NULL, napi_default, NULL},
      {"receivePages", NULL, bm_receive_pages, NULL, NULL, NULL, napi_default, NULL},
      {"cancelStream", NULL, bm_cancel_stream, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
