#ifndef BM_CHECK_H
#define BM_CHECK_H
#include <stdio.h>
#include <stdlib.h>
static int check_failures, check_count;
#define CHECK(c) do { check_count++; if (!(c)) { check_failures++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define DONE(name) do { printf("%s: %d checks, %d failed\n", name, check_count, check_failures); return check_failures ? 1 : 0; } while (0)
#endif
