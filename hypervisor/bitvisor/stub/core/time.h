#ifndef BM_STUB_TIME_H
#define BM_STUB_TIME_H
#include <core/types.h>
u64 get_time(void); /* microseconds since boot */
#endif
