/* SPDX-License-Identifier: MIT */
/* Private: the safetensors container (https://github.com/huggingface/safetensors), as a pure
 * in-memory codec: building a header for the writer and strictly parsing a whole file for the
 * reader. File I/O and tensor payloads stay with the caller, so the same code serves any source
 * of bytes and can be fuzzed without touching the disk.
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (padded with spaces),
 * then the data region. The JSON maps each tensor name to
 * {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} (offsets relative to the data
 * region) and the optional key "__metadata__" to a flat {string: string} object. */
#ifndef SM_LIB_SAFETENSORS_H
#define SM_LIB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* A header longer than this is refused with SM_ERR_LIMIT (the reference reader's bound). */
#define SM__ST_MAX_HEADER ((uint64_t)100 << 20)
/* Tensors of higher rank are refused with SM_ERR_LIMIT; ours have rank <= 4. */
#define SM__ST_MAX_RANK 8
/* A model has a few tensors per layer; far more is a malformed or hostile header. */
#define SM__ST_MAX_TENSORS 65536

typedef enum sm__st_dtype {
    SM__ST_BOOL,
    SM__ST_U8,
    SM__ST_I8,
    SM__ST_F8_E5M2,
    SM__ST_F8_E4M3,
    SM__ST_I16,
    SM__ST_U16,
    SM__ST_F16,
    SM__ST_BF16,
    SM__ST_I32,
    SM__ST_U32,
    SM__ST_F32,
    SM__ST_I64,
    SM__ST_U64,
    SM__ST_F64
} sm__st_dtype;

/* Bytes per element, and the name the header uses ("F32"). */
size_t sm__st_dtype_size(sm__st_dtype dt);
const char *sm__st_dtype_name(sm__st_dtype dt);

/* 1 when the n bytes at p are well-formed UTF-8 without NUL (RFC 3629: no overlong forms,
 * no surrogates), else 0. */
int sm__utf8_valid(const uint8_t *p, size_t n);

/* ---- writing ---- */

typedef struct sm__st_out_tensor {
    const char *name;
    sm__st_dtype dtype;
    size_t rank;
    uint64_t shape[SM__ST_MAX_RANK];
} sm__st_out_tensor;

typedef struct sm__st_out_meta {
    const char *key;
    const char *value;
    size_t value_pos; /* out: file offset of the value's first byte (after its quote) */
} sm__st_out_meta;

/* Builds the file prefix: the 8-byte length and the space-padded JSON header (N a multiple of
 * 8, so the data region starts 8-aligned). Tensors are laid out contiguously in the given
 * order; `*data_size` receives the data region's length. `*out` is sm__malloc'd. Strings are
 * JSON-escaped; a value with a byte that needs escaping gets value_pos all the same. */
sm_status sm__st_build_header(const sm__st_out_tensor *tensors, size_t n_tensors,
                              sm__st_out_meta *meta, size_t n_meta, uint8_t **out, size_t *out_len,
                              uint64_t *data_size);
/* The same with the data region starting at a multiple of `align` bytes in the file (a power of
 * 2, at least 8): the header is padded with more spaces, which readers allow. Galleries align
 * their feature rows so that a mapped file can be used in place. */
sm_status sm__st_build_header_aligned(const sm__st_out_tensor *tensors, size_t n_tensors,
                                      sm__st_out_meta *meta, size_t n_meta, size_t align,
                                      uint8_t **out, size_t *out_len, uint64_t *data_size);

/* ---- reading ---- */

typedef struct sm__st_tensor {
    char *name;
    sm__st_dtype dtype;
    size_t rank;
    uint64_t shape[SM__ST_MAX_RANK];
    size_t begin, end; /* byte offsets within the data region */
} sm__st_tensor;

typedef struct sm__st_kv {
    char *key, *value;   /* decoded, NUL-terminated (embedded NULs are refused) */
    size_t value_pos;    /* file offset of the value's raw text (after the opening quote) */
    size_t value_rawlen; /* its raw length in the file, escapes undecoded */
} sm__st_kv;

typedef struct sm__st_file {
    sm__st_tensor *tensors; /* sorted by name (JSON member order carries no meaning) */
    size_t n_tensors;
    sm__st_kv *meta; /* sorted by key */
    size_t n_meta;
    size_t data_off; /* file offset of the data region: 8 + N */
    size_t data_size;
} sm__st_file;

/* Parses and validates a whole file held in memory: every offset within the data region,
 * tensors contiguous and covering it exactly, byte lengths matching shape x dtype, names and
 * metadata keys unique, strict JSON and UTF-8. SM_ERR_FORMAT (the detail says what and where),
 * SM_ERR_LIMIT (header over SM__ST_MAX_HEADER, rank over SM__ST_MAX_RANK), SM_ERR_NOMEM.
 * `*out` is written only on success; release it with sm__st_file_free. */
sm_status sm__st_parse(const uint8_t *buf, size_t size, sm__st_file *out);
void sm__st_file_free(sm__st_file *f);

/* Lookups: NULL when absent. */
const sm__st_tensor *sm__st_find(const sm__st_file *f, const char *name);
const sm__st_kv *sm__st_meta(const sm__st_file *f, const char *key);

/* zlib's CRC-32 of n bytes continued from `crc` (0 to start), for any n. */
uint32_t sm__crc32_update(uint32_t crc, const uint8_t *p, size_t n);
/* The CRC-32 of A then B from crc_a (of A) and crc_b (of B, `len_b` bytes): zlib's
 * crc32_combine, without reading either. */
uint32_t sm__crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
