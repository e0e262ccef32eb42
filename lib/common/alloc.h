/* SPDX-License-Identifier: MIT */
/* Private: every heap allocation of the library goes through here, so that tests can make the
 * n-th one fail and check that each public call reports SM_ERR_NOMEM and leaks nothing. */
#ifndef SM_LIB_ALLOC_H
#define SM_LIB_ALLOC_H

#include <stddef.h>

void *sm__malloc(size_t size);
void *sm__calloc(size_t count, size_t size);
void *sm__realloc(void *ptr, size_t size);
/* 64-byte aligned, for SIMD loops and BLAS; free with sm__free_aligned. */
void *sm__malloc_aligned(size_t size);
void sm__free(void *ptr);
void sm__free_aligned(void *ptr);
char *sm__strdup(const char *s);

/* Multiplications that refuse to overflow: return 0 on overflow, else 1 with *out set. */
int sm__mul_size(size_t a, size_t b, size_t *out);

/* Test hook: after `n` more successful allocations, every allocation fails (n < 0: never). */
void sm__alloc_fail_after(long n);
/* Test hooks: allocations attempted since the process started (failed ones included), and
 * allocations made through this file and not yet freed. Only the library's own allocations
 * count: libspng, libzip, OpenBLAS and libc (newlocale, ...) allocate on their own. */
long sm__alloc_count(void);
long sm__alloc_live(void);

#endif
