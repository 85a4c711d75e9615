/*
 * XXH64 (seed 0), as specified by its author ("xxHash fast digest algorithm",
 * XXH64 algorithm description). Freestanding. The memory digest hashes every
 * 4 KiB page and every 1 MiB group of page hashes with it, exactly as the
 * simulator's agent does (native/simAccel.c), so digests compare across both
 * agents.
 */
#ifndef BM_XXH64_H
#define BM_XXH64_H
#include <stddef.h>
#include <stdint.h>

uint64_t bm_xxh64(const void *data, size_t len, uint64_t seed);
/* XXH64 of a 4 KiB page of zeros (fresh RAM). */
#define BM_XXH64_ZERO_PAGE 0xac869b6f32d8bbdbULL
#endif
