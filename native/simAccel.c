/*
 * Hot paths of the simulated node that a real hypervisor runs natively: the
 * page stream's packing and unpacking loops, hashing guest pages for the
 * memory digest, and backing the node's physical RAM at start.
 *
 * The digest hash is XXH64 (seed 0), from the native agent's core
 * (hypervisor/core/xxh64.c), so that both agents hash with one implementation
 * and their digests compare.
 */
#define _DEFAULT_SOURCE
#include <node_api.h>
#include "../hypervisor/core/xxh64.h"
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Little-endian 64-bit load (x86 and the other hosts we build on). */
static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* One XXH64 for both agents: the native agent's freestanding implementation. */
#define xxh64 bm_xxh64

#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      napi_throw_error(env, "BAREMIG_NATIVE", "N-API call failed: " #call); \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *d;
  if (napi_get_typedarray_info(env, v, &type, len, &d, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  *data = d;
  return 1;
}

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

/* A Float64Array of at least `n` elements (the out-parameter of the loops below). */
static double *get_stats(napi_env env, napi_value v, size_t n) {
  bool is_typed = false;
  napi_typedarray_type t;
  size_t len, off;
  void *data;
  napi_value ab;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return NULL;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off) != napi_ok || t != napi_float64_array || len < n) return NULL;
  return data;
}

static int is_zero_page(const uint8_t *p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < 4096; i += 64) {
    acc |= rd64(p + i) | rd64(p + i + 8) | rd64(p + i + 16) | rd64(p + i + 24) | rd64(p + i + 32) | rd64(p + i + 40) | rd64(p + i + 48) | rd64(p + i + 56);
    if (acc) return 0;
  }
  return 1;
}

/*
 * packPages(ram, bitmap|null, fromPage, endPage, out, outOffset, pageHash, stalePage, stats: Float64Array(4))
 * The page stream's sender loop: from `fromPage`, for every page (or every page marked in `bitmap`) up to
 * `endPage`, append a frame to `out` — 8-byte header {type, 0, 0, index} and, unless the page is all zero,
 * the 4096 bytes — while `out` has room. Each page is hashed as it is sent (its digest entry then matches
 * what the destination receives); a later guest write marks it stale again.
 * stats ← [nextPage, outEnd, pages, zeroPages].
 */
static napi_value pack_pages(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 9) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "packPages takes 9 arguments");
    return NULL;
  }
  uint8_t *ram, *bitmap = NULL, *out, *page_hash, *stale_page;
  size_t ram_len, bm_len = 0, out_len, ph_len, sp_len;
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[1], &t));
  if (!get_bytes(env, argv[0], &ram, &ram_len) || (t != napi_null && !get_bytes(env, argv[1], &bitmap, &bm_len)) || !get_bytes(env, argv[4], &out, &out_len) ||
      !get_bytes(env, argv[6], &page_hash, &ph_len) || !get_bytes(env, argv[7], &stale_page, &sp_len)) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "packPages: bad argument types");
    return NULL;
  }
  double *stats = get_stats(env, argv[8], 4);
  if (!stats) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "packPages: stats must be a Float64Array(4)");
    return NULL;
  }
  int64_t from, end, out_off;
  CHECK(napi_get_value_int64(env, argv[2], &from));
  CHECK(napi_get_value_int64(env, argv[3], &end));
  CHECK(napi_get_value_int64(env, argv[5], &out_off));
  const size_t pages = ram_len / 4096;
  if (from < 0 || end < from || (size_t)end > pages || (bitmap && bm_len != pages) || ph_len != pages * 8 || sp_len != pages || out_off < 0 || (size_t)out_off > out_len) {
    napi_throw_range_error(env, "BAREMIG_NATIVE", "packPages: arguments do not match the RAM");
    return NULL;
  }
  static uint64_t zero_hash = 0;
  static int zero_hash_set = 0;
  if (!zero_hash_set) {
    static const uint8_t z[4096];
    zero_hash = xxh64(z, 4096, 0);
    zero_hash_set = 1;
  }
  size_t p = (size_t)from, o = (size_t)out_off;
  double n = 0, zeros = 0;
  for (; p < (size_t)end; p++) {
    if (bitmap && !bitmap[p]) continue;
    const uint8_t *src = ram + p * 4096;
    const int zero = is_zero_page(src);
    if (o + 8 + (zero ? 0 : 4096) > out_len) break;
    uint8_t *h = out + o;
    h[0] = zero ? 2 : 1; /* FrameType.Zero : FrameType.Raw (src/protocol/pageStream.ts) */
    h[1] = 0;
    h[2] = 0;
    h[3] = 0;
    h[4] = (uint8_t)p;
    h[5] = (uint8_t)(p >> 8);
    h[6] = (uint8_t)(p >> 16);
    h[7] = (uint8_t)(p >> 24);
    o += 8;
    uint64_t hash;
    if (zero) {
      hash = zero_hash;
      zeros++;
    } else {
      memcpy(out + o, src, 4096);
      hash = xxh64(out + o, 4096, 0); /* the bytes as sent */
      o += 4096;
    }
    memcpy(page_hash + p * 8, &hash, 8);
    stale_page[p] = 0;
    n++;
  }
  stats[0] = (double)p;
  stats[1] = (double)o;
  stats[2] = n;
  stats[3] = zeros;
  return NULL;
}

/*
 * unpackFrames(chunk, offset, ram, pageHash, stalePage, staleGroup, stats: Float64Array(4))
 * The page stream's receiving loop: applies the whole RAW and ZERO frames of
 * `chunk` from `offset` to guest RAM, hashing each page as it is stored (the
 * digest then needs only the group hashes). Stops at the first frame that is
 * incomplete, not a page frame (END: the caller handles it), or names a page
 * outside RAM. stats ← [nextOffset, pagesApplied, status (0 ok, 2 page out of
 * range), bad page index].
 */
static napi_value unpack_frames(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "unpackFrames takes 7 arguments");
    return NULL;
  }
  uint8_t *chunk, *ram, *page_hash, *stale_page, *stale_group;
  size_t chunk_len, ram_len, ph_len, sp_len, sg_len;
  if (!get_bytes(env, argv[0], &chunk, &chunk_len) || !get_bytes(env, argv[2], &ram, &ram_len) || !get_bytes(env, argv[3], &page_hash, &ph_len) ||
      !get_bytes(env, argv[4], &stale_page, &sp_len) || !get_bytes(env, argv[5], &stale_group, &sg_len)) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "unpackFrames: bad argument types");
    return NULL;
  }
  double *stats = get_stats(env, argv[6], 4);
  if (!stats) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "unpackFrames: stats must be a Float64Array(4)");
    return NULL;
  }
  int64_t off_in;
  CHECK(napi_get_value_int64(env, argv[1], &off_in));
  const size_t pages = ram_len / 4096;
  if (off_in < 0 || (size_t)off_in > chunk_len || ph_len != pages * 8 || sp_len != pages || sg_len != pages / 256) {
    napi_throw_range_error(env, "BAREMIG_NATIVE", "unpackFrames: arguments do not match the RAM");
    return NULL;
  }
  static const uint8_t zero_page[4096];
  static uint64_t zero_hash = 0;
  static int zero_hash_set = 0;
  if (!zero_hash_set) {
    zero_hash = xxh64(zero_page, 4096, 0);
    zero_hash_set = 1;
  }
  size_t off = (size_t)off_in;
  double n = 0, status = 0, bad = 0;
  while (off + 8 <= chunk_len) {
    const uint8_t type = chunk[off];
    const uint32_t idx = (uint32_t)chunk[off + 4] | ((uint32_t)chunk[off + 5] << 8) | ((uint32_t)chunk[off + 6] << 16) | ((uint32_t)chunk[off + 7] << 24);
    uint64_t hash;
    if (type == 1) { /* FrameType.Raw */
      if (off + 8 + 4096 > chunk_len) break;
      if (idx >= pages) { status = 2; bad = idx; break; }
      memcpy(ram + (size_t)idx * 4096, chunk + off + 8, 4096);
      hash = xxh64(ram + (size_t)idx * 4096, 4096, 0);
      off += 8 + 4096;
    } else if (type == 2) { /* FrameType.Zero */
      if (idx >= pages) { status = 2; bad = idx; break; }
      uint8_t *pg = ram + (size_t)idx * 4096;
      if (!is_zero_page(pg)) memset(pg, 0, 4096);
      hash = zero_hash;
      off += 8;
    } else {
      break; /* END, or something the caller must judge */
    }
    memcpy(page_hash + (size_t)idx * 8, &hash, 8);
    stale_page[idx] = 0;
    stale_group[idx / 256] = 1;
    n++;
  }
  stats[0] = (double)off;
  stats[1] = n;
  stats[2] = status;
  stats[3] = bad;
  return NULL;
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
      {"packPages", NULL, pack_pages, NULL, NULL, NULL, napi_default, NULL},
      {"populate", NULL, populate, NULL, NULL, NULL, napi_default, NULL},
      {"unpackFrames", NULL, unpack_frames, NULL, NULL, NULL, napi_default, NULL},
      {"zeroPageHash", NULL, zero_page_hash, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
