/* SPDX-License-Identifier: MIT */
#include "common/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_after = -1;
static atomic_long attempts; /* allocations tried since the process started */
static atomic_long live;     /* allocations made and not yet freed */

/* Returns 1 when the test hook says this allocation must fail. */
static int injected_failure(void)
{
    atomic_fetch_add_explicit(&attempts, 1, memory_order_relaxed);
    long n = atomic_load(&fail_after);
    if (n < 0) return 0;
    if (n == 0) return 1;
    atomic_fetch_sub(&fail_after, 1);
    return 0;
}

void sm__alloc_fail_after(long n) { atomic_store(&fail_after, n); }
long sm__alloc_count(void) { return atomic_load(&attempts); }
long sm__alloc_live(void) { return atomic_load(&live); }

/* Counts a successful allocation; returns p. */
static void *note_live(void *p)
{
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *sm__malloc(size_t size)
{
    if (injected_failure()) return NULL;
    return note_live(malloc(size ? size : 1));
}

void *sm__calloc(size_t count, size_t size)
{
    if (injected_failure()) return NULL;
    return note_live(calloc(count ? count : 1, size ? size : 1));
}

void *sm__realloc(void *ptr, size_t size)
{
    if (injected_failure()) return NULL;
    void *p = realloc(ptr, size ? size : 1);
    return ptr ? p : note_live(p); /* a resize moves, it does not add */
}

void *sm__malloc_aligned(size_t size)
{
    if (injected_failure()) return NULL;
    void *p = NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) return NULL;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return note_live(p);
}

static void note_freed(const void *ptr)
{
    if (ptr) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
}

void sm__free(void *ptr)
{
    note_freed(ptr);
    free(ptr);
}

void sm__free_aligned(void *ptr)
{
    note_freed(ptr);
    free(ptr);
}

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
