#ifndef BM_STUB_THREAD_H
#define BM_STUB_THREAD_H
#include <core/types.h>
typedef int tid_t;
tid_t thread_new(void (*func)(void *), void *arg, int stacksize);
void schedule(void);
#endif
