#include "alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_after = -1;

/* Returns 1 when the test hook says this allocation must fail. */
static int injected_failure(void)
{
    long n = atomic_load(&fail_after);
    if (n < 0) return 0;
    if (n == 0) return 1;
    atomic_fetch_sub(&fail_after, 1);
    return 0;
}

void sm__alloc_fail_after(long n) { atomic_store(&fail_after, n); }

void *sm__malloc(size_t size)
{
    if (injected_failure()) return NULL;
    return malloc(size ? size : 1);
}

void *sm__calloc(size_t count, size_t size)
{
    if (injected_failure()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sm__realloc(void *ptr, size_t size)
{
    if (injected_failure()) return NULL;
    return realloc(ptr, size ? size : 1);
}

void *sm__malloc_aligned(size_t size)
{
    if (injected_failure()) return NULL;
    void *p = NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) return NULL;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return p;
}

void sm__free(void *ptr) { free(ptr); }
void sm__free_aligned(void *ptr) { free(ptr); }

char *sm__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sm__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int sm__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
