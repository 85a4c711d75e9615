#ifndef BM_STUB_IO_H
#define BM_STUB_IO_H
#include <core/types.h>
enum iotype { IOTYPE_INB, IOTYPE_INW, IOTYPE_INL, IOTYPE_OUTB, IOTYPE_OUTW, IOTYPE_OUTL };
typedef void (*iofunc_t)(enum iotype type, u32 port, void *data);
void do_iopass_default(enum iotype type, u32 port, void *data);
iofunc_t set_iofunc(u32 port, iofunc_t func);
#endif
