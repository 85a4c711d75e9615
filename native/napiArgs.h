/* Argument checks shared by the simulator's Node-API functions (simAccel.c, pageStreamIo.c). */
#ifndef BAREMIG_NAPI_ARGS_H
#define BAREMIG_NAPI_ARGS_H
#include <node_api.h>
#include <stdint.h>

/* Throw and return NULL from a napi callback when a Node-API call fails. */
#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      napi_throw_error(env, "BAREMIG_NATIVE", "N-API call failed: " #call); \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

/* The bytes of a Uint8Array (a Buffer is one); 0 if `v` is anything else. */
static inline int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *d;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, v, &type, len, &d, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  *data = d;
  return 1;
}

/* The elements of a Float64Array of at least `min` elements; NULL otherwise. */
static inline double *get_f64(napi_env env, napi_value v, size_t min) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t len, off;
  void *d;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return NULL;
  if (napi_get_typedarray_info(env, v, &type, &len, &d, &ab, &off) != napi_ok || type != napi_float64_array || len < min) return NULL;
  return d;
}

#endif
