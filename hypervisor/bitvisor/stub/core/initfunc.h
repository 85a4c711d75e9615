#ifndef BM_STUB_INITFUNC_H
#define BM_STUB_INITFUNC_H
/* BitVisor collects these in a link section and runs them in order of the label. */
#define INITFUNC(id, func) static void (*const initfunc_##func)(void) __attribute__((used, section(".initfunc"))) = func
#endif
