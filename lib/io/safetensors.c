/* SPDX-License-Identifier: MIT */
/* The safetensors codec. The reader is schema-driven rather than a general JSON parser: the
 * format nests at most three levels (file object, tensor object, shape array), so anything else
 * is refused where it appears instead of being built into a tree first. That bounds depth and
 * memory by construction, and every failure can say exactly what was expected where. Input is
 * untrusted: each index is checked against its bound before use, each size computation for
 * overflow. */
#include "io/safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/error.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [SM__ST_BOOL] = {"BOOL", 1},       [SM__ST_U8] = {"U8", 1},
    [SM__ST_I8] = {"I8", 1},           [SM__ST_F8_E5M2] = {"F8_E5M2", 1},
    [SM__ST_F8_E4M3] = {"F8_E4M3", 1}, [SM__ST_I16] = {"I16", 2},
    [SM__ST_U16] = {"U16", 2},         [SM__ST_F16] = {"F16", 2},
    [SM__ST_BF16] = {"BF16", 2},       [SM__ST_I32] = {"I32", 4},
    [SM__ST_U32] = {"U32", 4},         [SM__ST_F32] = {"F32", 4},
    [SM__ST_I64] = {"I64", 8},         [SM__ST_U64] = {"U64", 8},
    [SM__ST_F64] = {"F64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

size_t sm__st_dtype_size(sm__st_dtype dt) { return (size_t)dt < N_DTYPES ? dtypes[dt].size : 0; }

const char *sm__st_dtype_name(sm__st_dtype dt)
{
    return (size_t)dt < N_DTYPES ? dtypes[dt].name : "?";
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes available), 0 if there is
 * none: no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

int sm__utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = p[i] ? utf8_seq_len(p + i, n - i) : 0;
        if (len == 0) return 0;
        i += len;
    }
    return 1;
}

/* Product of a shape times an element size, 0 on overflow (with *ok cleared). */
static uint64_t shape_bytes(const uint64_t *shape, size_t rank, size_t elem, int *ok)
{
    uint64_t n = elem;
    *ok = 1;
    for (size_t i = 0; i < rank; i++) {
        if (shape[i] != 0 && n > UINT64_MAX / shape[i]) {
            *ok = 0;
            return 0;
        }
        n *= shape[i];
    }
    return n;
}

/* ===================================== writer ===================================== */

typedef struct growbuf {
    uint8_t *p;
    size_t len, cap;
    int nomem;
} growbuf;

static void gb_put(growbuf *b, const void *src, size_t n)
{
    if (b->nomem) return;
    if (n > SIZE_MAX - b->len) {
        b->nomem = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + n;
                break;
            }
            cap *= 2;
        }
        uint8_t *np = sm__realloc(b->p, cap);
        if (!np) {
            b->nomem = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void gb_puts(growbuf *b, const char *s) { gb_put(b, s, strlen(s)); }

static void gb_u64(growbuf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    gb_put(b, t, (size_t)n);
}

/* A JSON string literal. Only control characters, '"' and '\' need escapes; other bytes must
 * already be UTF-8, since JSON has no way to carry raw bytes. */
static sm_status gb_json_string(growbuf *b, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    gb_puts(b, "\"");
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            gb_put(b, e, 2);
            i++;
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", (unsigned)c);
            gb_put(b, e, 6);
            i++;
        } else {
            size_t len = utf8_seq_len(p + i, n - i);
            SM_RETURN_IF(len == 0, SM_ERR_INVALID_ARG,
                         "safetensors writer: string '%.40s' is not valid UTF-8", s);
            gb_put(b, p + i, len);
            i += len;
        }
    }
    gb_puts(b, "\"");
    return SM_OK;
}

sm_status sm__st_build_header(const sm__st_out_tensor *tensors, size_t n_tensors,
                              sm__st_out_meta *meta, size_t n_meta, uint8_t **out, size_t *out_len,
                              uint64_t *data_size)
{
    return sm__st_build_header_aligned(tensors, n_tensors, meta, n_meta, 8, out, out_len,
                                       data_size);
}

sm_status sm__st_build_header_aligned(const sm__st_out_tensor *tensors, size_t n_tensors,
                                      sm__st_out_meta *meta, size_t n_meta, size_t align,
                                      uint8_t **out, size_t *out_len, uint64_t *data_size)
{
    SM_CHECK_ARG(out && out_len && data_size && (tensors || !n_tensors) && (meta || !n_meta),
                 "sm__st_build_header: NULL argument");
    SM_CHECK_ARG(align >= 8 && align <= 4096 && (align & (align - 1)) == 0,
                 "sm__st_build_header: alignment %zu is not a power of 2 in 8..4096", align);
    growbuf b = {0};
    sm_status st = SM_OK;
    uint64_t off = 0;
    static const uint8_t zero8[8];

    gb_put(&b, zero8, 8); /* the length, patched at the end */
    gb_puts(&b, "{");
    if (n_meta) {
        gb_puts(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta && st == SM_OK; i++) {
            if (i) gb_puts(&b, ",");
            st = gb_json_string(&b, meta[i].key);
            gb_puts(&b, ":");
            meta[i].value_pos = b.len + 1;
            if (st == SM_OK) st = gb_json_string(&b, meta[i].value);
        }
        gb_puts(&b, "}");
    }
    for (size_t i = 0; i < n_tensors && st == SM_OK; i++) {
        const sm__st_out_tensor *t = &tensors[i];
        int ok;
        if ((size_t)t->dtype >= N_DTYPES || t->rank > SM__ST_MAX_RANK) {
            st = sm__fail(SM_ERR_INVALID_ARG, "safetensors writer: bad dtype or rank for '%s'",
                          t->name);
            break;
        }
        uint64_t bytes = shape_bytes(t->shape, t->rank, dtypes[t->dtype].size, &ok);
        if (!ok || bytes > UINT64_MAX - off) {
            st = sm__fail(SM_ERR_LIMIT, "safetensors writer: tensor '%s' is too large", t->name);
            break;
        }
        if (n_meta || i) gb_puts(&b, ",");
        st = gb_json_string(&b, t->name);
        gb_puts(&b, ":{\"dtype\":\"");
        gb_puts(&b, dtypes[t->dtype].name);
        gb_puts(&b, "\",\"shape\":[");
        for (size_t d = 0; d < t->rank; d++) {
            if (d) gb_puts(&b, ",");
            gb_u64(&b, t->shape[d]);
        }
        gb_puts(&b, "],\"data_offsets\":[");
        gb_u64(&b, off);
        gb_puts(&b, ",");
        gb_u64(&b, off + bytes);
        gb_puts(&b, "]}");
        off += bytes;
    }
    gb_puts(&b, "}");
    /* Pad so the data region starts aligned in the file (and in a buffer read whole). */
    while (!b.nomem && b.len % align != 0) gb_puts(&b, " "); /* a failed put adds nothing */
    if (st == SM_OK && b.nomem) st = sm__fail(SM_ERR_NOMEM, "out of memory building a header");
    if (st == SM_OK && (uint64_t)(b.len - 8) > SM__ST_MAX_HEADER)
        st = sm__fail(SM_ERR_LIMIT, "safetensors header of %zu bytes exceeds the limit", b.len);
    if (st != SM_OK) {
        sm__free(b.p);
        return st;
    }
    uint64_t n = (uint64_t)(b.len - 8);
    for (int i = 0; i < 8; i++) b.p[i] = (uint8_t)(n >> (8 * i));
    *out = b.p;
    *out_len = b.len;
    *data_size = off;
    return SM_OK;
}

/* ===================================== reader ===================================== */

typedef struct parser {
    const uint8_t *p; /* header JSON */
    size_t n;         /* its length */
    size_t pos;
    size_t base; /* file offset of p[0], for messages and value positions */
    size_t data_size;
    sm__st_tensor *t;
    size_t nt, capt;
    sm__st_kv *m;
    size_t nm, capm;
    int seen_meta;
} parser;

static sm_status perr(const parser *ps, const char *what)
{
    return sm__fail(SM_ERR_FORMAT, "safetensors header: %s at byte %zu", what, ps->base + ps->pos);
}

static void skip_ws(parser *ps)
{
    while (ps->pos < ps->n) {
        uint8_t c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->pos++;
    }
}

/* Skips whitespace and consumes `c`, or fails naming it. */
static sm_status expect(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->pos >= ps->n || ps->p[ps->pos] != (uint8_t)c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return perr(ps, what);
    }
    ps->pos++;
    return SM_OK;
}

/* Skips whitespace; returns the next byte without consuming it, or -1 at the end. */
static int peek(parser *ps)
{
    skip_ws(ps);
    return ps->pos < ps->n ? ps->p[ps->pos] : -1;
}

static int hex4(const uint8_t *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(uint8_t *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xC0 | (cp >> 6));
        d[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xE0 | (cp >> 12));
        d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (uint8_t)(0xF0 | (cp >> 18));
    d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string literal into a fresh NUL-terminated buffer. *raw_pos / *raw_len (optional)
 * receive the file offset and length of the text between the quotes. Embedded NULs are refused:
 * names and values are C strings everywhere after this. */
static sm_status parse_string(parser *ps, char **out, size_t *raw_pos, size_t *raw_len)
{
    if (peek(ps) != '"') return perr(ps, "expected a string");
    size_t start = ++ps->pos, end = start;
    /* Find the closing quote first: decoding never grows the text, so its raw length bounds
     * the buffer. */
    for (;;) {
        if (end >= ps->n) {
            ps->pos = end;
            return perr(ps, "unterminated string");
        }
        uint8_t c = ps->p[end];
        if (c == '"') break;
        end += (c == '\\') ? 2 : 1;
    }
    uint8_t *d = sm__malloc(end - start + 1);
    if (!d) return sm__fail(SM_ERR_NOMEM, "out of memory parsing a safetensors header");
    size_t i = start, k = 0;
    while (i < end) {
        uint8_t c = ps->p[i];
        ps->pos = i;
        if (c < 0x20) {
            sm__free(d);
            return perr(ps, "control character in a string");
        }
        if (c != '\\') {
            size_t len = utf8_seq_len(ps->p + i, end - i);
            if (len == 0) {
                sm__free(d);
                return perr(ps, "invalid UTF-8 in a string");
            }
            memcpy(d + k, ps->p + i, len);
            k += len;
            i += len;
            continue;
        }
        uint8_t e = ps->p[i + 1]; /* i + 1 < end: the scan above stepped over it */
        i += 2;
        static const char esc[] = "\"\\/bfnrt", map[] = "\"\\/\b\f\n\r\t";
        const char *simple = e ? strchr(esc, e) : NULL;
        if (simple) {
            d[k++] = (uint8_t)map[simple - esc];
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || end - i < 4 || !hex4(ps->p + i, &cp)) {
            sm__free(d);
            return perr(ps, "invalid escape in a string");
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - i < 6 || ps->p[i] != '\\' || ps->p[i + 1] != 'u' ||
                !hex4(ps->p + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                sm__free(d);
                return perr(ps, "unpaired surrogate escape in a string");
            }
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            sm__free(d);
            return perr(ps, "unpaired surrogate escape in a string");
        }
        if (cp == 0) {
            sm__free(d);
            return perr(ps, "NUL character in a string");
        }
        k += put_utf8(d + k, cp);
    }
    d[k] = 0;
    ps->pos = end + 1;
    if (raw_pos) *raw_pos = ps->base + start;
    if (raw_len) *raw_len = end - start;
    *out = (char *)d;
    return SM_OK;
}

/* A non-negative JSON integer (no fraction, exponent or sign) that fits in 64 bits. */
static sm_status parse_u64(parser *ps, uint64_t *out)
{
    int c = peek(ps);
    if (c == '-') return perr(ps, "negative number where a size is expected");
    if (c < '0' || c > '9') return perr(ps, "expected a number");
    uint64_t v = 0;
    size_t start = ps->pos;
    while (ps->pos < ps->n && ps->p[ps->pos] >= '0' && ps->p[ps->pos] <= '9') {
        unsigned dgt = (unsigned)(ps->p[ps->pos] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return perr(ps, "number too large");
        v = v * 10 + dgt;
        ps->pos++;
    }
    if (ps->p[start] == '0' && ps->pos - start > 1) {
        ps->pos = start;
        return perr(ps, "number with a leading zero");
    }
    if (ps->pos < ps->n) {
        uint8_t t = ps->p[ps->pos];
        if (t == '.' || t == 'e' || t == 'E') return perr(ps, "expected an integer");
    }
    *out = v;
    return SM_OK;
}

/* Consumes ',' (returns 1) or `close` (returns 0); anything else is an error (-1). */
static int next_or_close(parser *ps, char close, sm_status *st)
{
    int c = peek(ps);
    if (c == ',' || c == close) {
        ps->pos++;
        return c == ',';
    }
    char what[40];
    snprintf(what, sizeof what, "expected ',' or '%c'", close);
    *st = perr(ps, what);
    return -1;
}

static sm_status grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return SM_OK;
    size_t nc = *cap ? *cap * 2 : 16, bytes;
    if (nc <= *cap || !sm__mul_size(nc, elem, &bytes))
        return sm__fail(SM_ERR_LIMIT, "too many entries in a safetensors header");
    void *np = sm__realloc(*arr, bytes);
    if (!np) return sm__fail(SM_ERR_NOMEM, "out of memory parsing a safetensors header");
    *arr = np;
    *cap = nc;
    return SM_OK;
}

static sm_status parse_metadata(parser *ps)
{
    if (ps->seen_meta) return perr(ps, "duplicate \"__metadata__\"");
    ps->seen_meta = 1;
    sm_status st = expect(ps, '{');
    if (st != SM_OK) return st;
    if (peek(ps) == '}') {
        ps->pos++;
        return SM_OK;
    }
    for (;;) {
        sm__st_kv kv = {0};
        SM_TRY(grow((void **)&ps->m, &ps->capm, ps->nm, sizeof *ps->m));
        SM_TRY(parse_string(ps, &kv.key, NULL, NULL));
        st = expect(ps, ':');
        if (st == SM_OK && peek(ps) != '"') st = perr(ps, "metadata values must be strings");
        if (st == SM_OK) st = parse_string(ps, &kv.value, &kv.value_pos, &kv.value_rawlen);
        if (st != SM_OK) {
            sm__free(kv.key);
            return st;
        }
        ps->m[ps->nm++] = kv;
        int more = next_or_close(ps, '}', &st);
        if (more < 0) return st;
        if (!more) return SM_OK;
    }
}

static sm_status parse_shape(parser *ps, sm__st_tensor *t)
{
    SM_TRY(expect(ps, '['));
    if (peek(ps) == ']') {
        ps->pos++;
        return SM_OK;
    }
    for (;;) {
        if (t->rank == SM__ST_MAX_RANK)
            return sm__fail(SM_ERR_LIMIT, "tensor '%s' has more than %d dimensions", t->name,
                            SM__ST_MAX_RANK);
        SM_TRY(parse_u64(ps, &t->shape[t->rank]));
        t->rank++;
        sm_status st = SM_OK;
        int more = next_or_close(ps, ']', &st);
        if (more < 0) return st;
        if (!more) return SM_OK;
    }
}

static sm_status parse_tensor_fields(parser *ps, sm__st_tensor *t)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    uint64_t begin = 0, end = 0;
    SM_TRY(expect(ps, '{'));
    if (peek(ps) != '}') {
        for (;;) {
            char *key = NULL;
            SM_TRY(parse_string(ps, &key, NULL, NULL));
            sm_status st = expect(ps, ':');
            if (st == SM_OK && strcmp(key, "dtype") == 0 && !have_dtype) {
                char *dt = NULL;
                have_dtype = 1;
                st = parse_string(ps, &dt, NULL, NULL);
                if (st == SM_OK) {
                    size_t i = 0;
                    while (i < N_DTYPES && strcmp(dtypes[i].name, dt) != 0) i++;
                    if (i == N_DTYPES)
                        st = sm__fail(SM_ERR_FORMAT, "tensor '%s' has unknown dtype '%.32s'",
                                      t->name, dt);
                    t->dtype = (sm__st_dtype)i;
                }
                sm__free(dt);
            } else if (st == SM_OK && strcmp(key, "shape") == 0 && !have_shape) {
                have_shape = 1;
                st = parse_shape(ps, t);
            } else if (st == SM_OK && strcmp(key, "data_offsets") == 0 && !have_offsets) {
                have_offsets = 1;
                st = expect(ps, '[');
                if (st == SM_OK) st = parse_u64(ps, &begin);
                if (st == SM_OK) st = expect(ps, ',');
                if (st == SM_OK) st = parse_u64(ps, &end);
                if (st == SM_OK) st = expect(ps, ']');
            } else if (st == SM_OK) {
                st = sm__fail(SM_ERR_FORMAT, "tensor '%s': unexpected or repeated field '%.32s'",
                              t->name, key);
            }
            sm__free(key);
            if (st != SM_OK) return st;
            int more = next_or_close(ps, '}', &st);
            if (more < 0) return st;
            if (!more) break;
        }
    } else {
        ps->pos++;
    }
    SM_RETURN_IF(!have_dtype || !have_shape || !have_offsets, SM_ERR_FORMAT, "tensor '%s' lacks %s",
                 t->name,
                 !have_dtype   ? "\"dtype\""
                 : !have_shape ? "\"shape\""
                               : "\"data_offsets\"");
    SM_RETURN_IF(begin > end || end > ps->data_size, SM_ERR_FORMAT,
                 "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                 "] do not lie within the %zu-byte data region",
                 t->name, begin, end, ps->data_size);
    int ok;
    uint64_t bytes = shape_bytes(t->shape, t->rank, dtypes[t->dtype].size, &ok);
    SM_RETURN_IF(!ok || bytes != end - begin, SM_ERR_FORMAT,
                 "tensor '%s': its shape and dtype %s need %s%" PRIu64
                 " bytes but its data_offsets span %" PRIu64,
                 t->name, dtypes[t->dtype].name, ok ? "" : "more than ", ok ? bytes : UINT64_MAX,
                 end - begin);
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    return SM_OK;
}

static sm_status parse_top(parser *ps)
{
    SM_TRY(expect(ps, '{'));
    if (peek(ps) == '}') {
        ps->pos++;
    } else {
        for (;;) {
            char *name = NULL;
            SM_TRY(parse_string(ps, &name, NULL, NULL));
            sm_status st = expect(ps, ':');
            if (st == SM_OK && strcmp(name, "__metadata__") == 0) {
                sm__free(name);
                st = parse_metadata(ps);
            } else if (st == SM_OK && ps->nt >= SM__ST_MAX_TENSORS) {
                sm__free(name);
                st = sm__fail(SM_ERR_LIMIT, "safetensors header lists more than %d tensors",
                              SM__ST_MAX_TENSORS);
            } else if (st == SM_OK) {
                st = grow((void **)&ps->t, &ps->capt, ps->nt, sizeof *ps->t);
                if (st == SM_OK) {
                    sm__st_tensor *t = &ps->t[ps->nt++];
                    memset(t, 0, sizeof *t);
                    t->name = name; /* owned by the array from here on */
                    st = parse_tensor_fields(ps, t);
                } else {
                    sm__free(name);
                }
            } else {
                sm__free(name);
            }
            if (st != SM_OK) return st;
            int more = next_or_close(ps, '}', &st);
            if (more < 0) return st;
            if (!more) break;
        }
    }
    skip_ws(ps);
    if (ps->pos != ps->n) return perr(ps, "unexpected text after the header object");
    return SM_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const sm__st_tensor *)a)->name, ((const sm__st_tensor *)b)->name);
}

static int cmp_kv_key(const void *a, const void *b)
{
    return strcmp(((const sm__st_kv *)a)->key, ((const sm__st_kv *)b)->key);
}

static int cmp_tensor_ptr_offsets(const void *a, const void *b)
{
    const sm__st_tensor *x = *(const sm__st_tensor *const *)a;
    const sm__st_tensor *y = *(const sm__st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Names unique, keys unique, and the tensors tile the data region: sorted by offset, each
 * starts where the previous one ended, the first at 0 and the last at the end. So no byte is
 * shared by two tensors and none is unaccounted for. */
static sm_status check_layout(parser *ps)
{
    if (ps->nt > 1) qsort(ps->t, ps->nt, sizeof *ps->t, cmp_tensor_name);
    for (size_t i = 1; i < ps->nt; i++)
        SM_RETURN_IF(strcmp(ps->t[i - 1].name, ps->t[i].name) == 0, SM_ERR_FORMAT,
                     "safetensors header: tensor '%.200s' appears twice", ps->t[i].name);
    if (ps->nm > 1) qsort(ps->m, ps->nm, sizeof *ps->m, cmp_kv_key);
    for (size_t i = 1; i < ps->nm; i++)
        SM_RETURN_IF(strcmp(ps->m[i - 1].key, ps->m[i].key) == 0, SM_ERR_FORMAT,
                     "safetensors header: metadata key '%.200s' appears twice", ps->m[i].key);

    if (ps->nt == 0) {
        SM_RETURN_IF(ps->data_size != 0, SM_ERR_FORMAT,
                     "safetensors file has no tensors but %zu bytes of data", ps->data_size);
        return SM_OK;
    }
    size_t bytes;
    if (!sm__mul_size(ps->nt, sizeof(sm__st_tensor *), &bytes))
        return sm__fail(SM_ERR_LIMIT, "too many tensors");
    const sm__st_tensor **ord = sm__malloc(bytes);
    if (!ord) return sm__fail(SM_ERR_NOMEM, "out of memory checking a safetensors header");
    for (size_t i = 0; i < ps->nt; i++) ord[i] = &ps->t[i];
    qsort(ord, ps->nt, sizeof *ord, cmp_tensor_ptr_offsets);
    size_t at = 0;
    sm_status st = SM_OK;
    for (size_t i = 0; i < ps->nt && st == SM_OK; i++) {
        if (ord[i]->begin != at)
            st = sm__fail(SM_ERR_FORMAT,
                          "safetensors data: tensor '%.200s' starts at byte %zu, expected %zu "
                          "(%s)",
                          ord[i]->name, ord[i]->begin, at,
                          ord[i]->begin < at ? "it overlaps another tensor" : "a gap before it");
        at = ord[i]->end;
    }
    if (st == SM_OK && at != ps->data_size)
        st = sm__fail(SM_ERR_FORMAT,
                      "safetensors data: tensors end at byte %zu but the data region has %zu", at,
                      ps->data_size);
    sm__free(ord);
    return st;
}

static void free_arrays(sm__st_tensor *t, size_t nt, sm__st_kv *m, size_t nm)
{
    for (size_t i = 0; i < nt; i++) sm__free(t[i].name);
    for (size_t i = 0; i < nm; i++) {
        sm__free(m[i].key);
        sm__free(m[i].value);
    }
    sm__free(t);
    sm__free(m);
}

sm_status sm__st_parse(const uint8_t *buf, size_t size, sm__st_file *out)
{
    SM_CHECK_ARG(out && (buf || size == 0), "sm__st_parse: NULL argument");
    SM_RETURN_IF(size < 8, SM_ERR_FORMAT,
                 "safetensors file too short: %zu bytes, the header length alone needs 8", size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    SM_RETURN_IF(n > SM__ST_MAX_HEADER, SM_ERR_LIMIT,
                 "safetensors header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", n,
                 SM__ST_MAX_HEADER);
    SM_RETURN_IF(n > size - 8, SM_ERR_FORMAT,
                 "safetensors header length %" PRIu64 " exceeds the %zu bytes after it "
                 "(truncated file?)",
                 n, size - 8);
    SM_RETURN_IF(n < 2, SM_ERR_FORMAT, "safetensors header length %" PRIu64 " is too small", n);

    parser ps = {.p = buf + 8, .n = (size_t)n, .base = 8, .data_size = size - 8 - (size_t)n};
    sm_status st = parse_top(&ps);
    if (st == SM_OK) st = check_layout(&ps);
    if (st != SM_OK) {
        free_arrays(ps.t, ps.nt, ps.m, ps.nm);
        return st;
    }
    out->tensors = ps.t;
    out->n_tensors = ps.nt;
    out->meta = ps.m;
    out->n_meta = ps.nm;
    out->data_off = 8 + (size_t)n;
    out->data_size = ps.data_size;
    return SM_OK;
}

void sm__st_file_free(sm__st_file *f)
{
    if (!f) return;
    free_arrays(f->tensors, f->n_tensors, f->meta, f->n_meta);
    memset(f, 0, sizeof *f);
}

const sm__st_tensor *sm__st_find(const sm__st_file *f, const char *name)
{
    sm__st_tensor key = {.name = (char *)name};
    if (!f || !name || f->n_tensors == 0) return NULL;
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_tensor_name);
}

const sm__st_kv *sm__st_meta(const sm__st_file *f, const char *key)
{
    sm__st_kv k = {.key = (char *)key};
    if (!f || !key || f->n_meta == 0) return NULL;
    return bsearch(&k, f->meta, f->n_meta, sizeof k, cmp_kv_key);
}

uint32_t sm__crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    uLong c = crc;
    while (n > 0) { /* zlib takes 32-bit lengths */
        uInt k = n > ((size_t)1 << 30) ? (uInt)1 << 30 : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

uint32_t sm__crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    /* z_off_t is 64-bit where files of more than 2 GiB exist (LP64, or _FILE_OFFSET_BITS=64) */
    return (uint32_t)crc32_combine(crc_a, crc_b, (z_off_t)len_b);
}
