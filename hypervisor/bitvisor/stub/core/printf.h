#ifndef BM_STUB_PRINTF_H
#define BM_STUB_PRINTF_H
int printf(const char *format, ...);
#endif
