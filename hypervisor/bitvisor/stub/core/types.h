/* Minimal stand-ins for BitVisor's headers, written for a compile check of
 * baremig_bitvisor.c outside a BitVisor tree. Only the declarations the
 * binding uses, with the signatures of BitVisor's include/ directory. */
#ifndef BM_STUB_TYPES_H
#define BM_STUB_TYPES_H
#include <stdbool.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef unsigned int uint;
typedef uint64_t phys_t;
typedef unsigned long ulong;
#endif
