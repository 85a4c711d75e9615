#ifndef BM_STUB_MM_H
#define BM_STUB_MM_H
#include <core/types.h>
#define MAPMEM_WRITE 1
#define MAPMEM_UC 0x10
void *mapmem_gphys(u64 physaddr, uint len, int flags);
void unmapmem(void *virt, uint len);
void *alloc(uint len);
void free(void *virt);
#endif
