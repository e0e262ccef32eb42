/* SPDX-License-Identifier: MIT */
/* The l1_scores slot on the CPU (cpu-blas, and cpu-dnnl, which compiles these loops too): the
 * head's logit sum_d w_d |q_d - g_d| + b of many queries against many gallery rows.
 *
 * Shape of the work, as a GEMM's: the rows are cut into blocks of about L2_BUDGET bytes, the
 * unit a thread takes. Within a block every query passes over the block's rows, in register
 * tiles of QT queries x RT rows (AVX-512: 4 x 4 accumulators of 16 lanes; AVX2: 2 x 2 of two
 * 8-lane halves; C: 1 x 1 of 16 floats), so a row is read from memory once per call, however
 * many queries, and a block from L2 once per query tile. A row stored in bf16, f16 or u8 is
 * decoded in registers as it is loaded.
 *
 * Exactness (backend_plugin.h gives the order): every path keeps the same sixteen lanes, lane j
 * summing the d = j mod 16 in increasing d with one fused multiply-add per step (fmaf in C,
 * vfmadd in SIMD: both round once, so they agree bit for bit; no a * b + c is ever left for the
 * compiler to contract), then folds them with the same adds in the same order. The tail of a
 * dimension that is not a multiple of 16 is read from zero-padded copies: a padded lane adds
 * fmaf(0, |0 - x|, acc) = acc exactly (acc starts at +0 and a sum of two floats is never -0 in
 * round-to-nearest unless both are). A logit therefore does not depend on the tile it fell in,
 * the block or thread that computed it, Q, the row subset or the instruction set.
 *
 * The instruction set is the best the CPU has (__builtin_cpu_supports), or a lower one named by
 * the environment variable SIAMESE_L1_ISA (c, avx2, avx512): for tests and benchmarks; a name
 * the CPU cannot run is taken as the best it can. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "parallel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define L1_X86 1
#else
#define L1_X86 0
#endif

#define L2_BUDGET        ((size_t)256 << 10) /* bytes of rows per block: stays in a core's L2 */
#define MAX_BLOCK        1024                /* rows per block, for short rows */
#define GRAIN_WORK       ((size_t)1 << 21)   /* element pairs a thread should get at least */
#define PREFETCH_ROW_MAX 4096                /* rows this short are prefetched by hand */
#define PREFETCH_TILES   2                   /* how many row tiles ahead */
enum { LANES = 16, ROW_ALIGN = 4 };          /* rows per block: a multiple of every RT */

/* ------------------------------------------------------------------ shared pieces */

typedef struct l1_job {
    const sm_l1_shape *s;
    const float *q; /* n_queries x dim */
    const uint8_t *rows;
    const float *qp; /* U8: (offset, scale) per row */
    const int32_t *idx;
    const float *w; /* dim weights, then the bias */
    float *out;
    size_t es;    /* bytes per stored element */
    size_t block; /* rows per block */
    int isa;
} l1_job;

/* The fold of the sixteen lanes (backend_plugin.h), in plain float adds (the SIMD paths do the
 * same adds in registers: fold_avx2). */
static inline float fold16(const float a[LANES])
{
    float b[8], c[4];
    for (int j = 0; j < 8; j++) b[j] = a[j] + a[j + 8];
    for (int j = 0; j < 4; j++) c[j] = b[j] + b[j + 4];
    float e0 = c[0] + c[2], e1 = c[1] + c[3];
    return e0 + e1;
}

static size_t elem_size(sm_rows_dtype dt)
{
    return dt == SM_ROWS_F32 ? 4 : dt == SM_ROWS_U8 ? 1 : 2;
}

/* Row i of the call: its bytes, and for U8 its scale and offset (else 1 and 0, unused). */
static const uint8_t *row_at(const l1_job *j, size_t i, float *sc, float *off)
{
    size_t r = j->idx ? (size_t)j->idx[i] : i;
    if (j->qp) *off = j->qp[2 * r], *sc = j->qp[2 * r + 1];
    else *off = 0.0f, *sc = 1.0f;
    return j->rows + r * j->s->dim * j->es;
}

/* ------------------------------------------------------------------ C */

static inline float bf16_value(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* binary16 to float, exactly as vcvtph2ps (a NaN made quiet). */
static inline float f16_value(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, b;
    if (e == 0) {
        float f = (float)m * 0x1p-24f; /* zero or subnormal: exact */
        return sign ? -f : f;
    }
    if (e == 31) b = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0);
    else b = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline float decode1(sm_rows_dtype dt, const uint8_t *p, size_t d, float sc, float off)
{
    uint16_t h;
    float f;
    switch (dt) {
    case SM_ROWS_F32: memcpy(&f, p + 4 * d, 4); return f;
    case SM_ROWS_BF16: memcpy(&h, p + 2 * d, 2); return bf16_value(h);
    case SM_ROWS_F16: memcpy(&h, p + 2 * d, 2); return f16_value(h);
    case SM_ROWS_U8: return fmaf((float)p[d], sc, off);
    }
    return 0.0f;
}

/* One query against one row: the reference the SIMD paths must equal bit for bit. */
static float pair_c(const l1_job *j, const float *q, const uint8_t *g, float sc, float off)
{
    const size_t dim = j->s->dim;
    const sm_rows_dtype dt = j->s->dtype;
    float acc[LANES] = {0};
    for (size_t d = 0; d < dim; d++) {
        float x = q[d] - decode1(dt, g, d, sc, off);
        acc[d % LANES] = fmaf(j->w[d], fabsf(x), acc[d % LANES]);
    }
    return fold16(acc);
}

/* ------------------------------------------------------------------ AVX2 + FMA + F16C */

#if L1_X86
#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define INL    __attribute__((always_inline)) inline

enum { QT2 = 2, RT2 = 2 };

/* fold16 on lanes 0-7 (lo) and 8-15 (hi) in registers: the same adds in the same order
 * (a_j = lo_j + hi_j; b_j = a_j + a_(j+4); c_j = b_j + b_(j+2); c_0 + c_1). */
T_AVX2 static INL float fold_avx2(__m256 lo, __m256 hi)
{
    __m256 a = _mm256_add_ps(lo, hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}

/* Eight elements of a row from p (element 0 at p), as floats. */
T_AVX2 static INL __m256 dec8_avx2(sm_rows_dtype dt, const uint8_t *p, __m256 sc, __m256 off)
{
    switch (dt) {
    case SM_ROWS_F32: return _mm256_loadu_ps((const float *)(const void *)p);
    case SM_ROWS_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    case SM_ROWS_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case SM_ROWS_U8:
        return _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p))), sc, off);
    }
    return _mm256_setzero_ps();
}

/* One chunk of 16 dims: lanes 0-7 in acc[.][.][0], 8-15 in acc[.][.][1]. */
T_AVX2 static INL void chunk_avx2(sm_rows_dtype dt, int nq, size_t es, const float *w,
                                  const float *const *q, size_t qo, const uint8_t *const *g,
                                  size_t go, const __m256 *sc, const __m256 *off,
                                  __m256 acc[QT2][RT2][2])
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int h = 0; h < 2; h++) {
        __m256 wv = _mm256_loadu_ps(w + 8 * h);
        __m256 gv[RT2];
        for (int r = 0; r < RT2; r++) gv[r] = dec8_avx2(dt, g[r] + go + 8 * h * es, sc[r], off[r]);
        for (int i = 0; i < nq; i++) {
            __m256 qv = _mm256_loadu_ps(q[i] + qo + 8 * h);
            for (int r = 0; r < RT2; r++)
                acc[i][r][h] = _mm256_fmadd_ps(wv, _mm256_and_ps(absmask, _mm256_sub_ps(qv, gv[r])),
                                               acc[i][r][h]);
        }
    }
}

T_AVX2 static INL void tile_avx2_body(sm_rows_dtype dt, int nq, size_t dim, size_t es,
                                      const float *w, const float *const *q,
                                      const uint8_t *const *g, const float *scf, const float *offf,
                                      float *res)
{
    __m256 acc[QT2][RT2][2], sc[RT2], off[RT2];
    for (int i = 0; i < QT2; i++)
        for (int r = 0; r < RT2; r++) acc[i][r][0] = acc[i][r][1] = _mm256_setzero_ps();
    for (int r = 0; r < RT2; r++) sc[r] = _mm256_set1_ps(scf[r]), off[r] = _mm256_set1_ps(offf[r]);
    size_t d = 0;
    for (; d + LANES <= dim; d += LANES)
        chunk_avx2(dt, nq, es, w + d, q, d, g, d * es, sc, off, acc);
    if (d < dim) {
        const size_t t = dim - d;
        float wt[LANES] = {0}, qt[QT2][LANES] = {{0}};
        uint8_t gt[RT2][LANES * 4] = {{0}};
        const float *qp[QT2];
        const uint8_t *gp[RT2];
        memcpy(wt, w + d, t * sizeof(float));
        for (int i = 0; i < nq; i++) memcpy(qt[i], q[i] + d, t * sizeof(float)), qp[i] = qt[i];
        for (int r = 0; r < RT2; r++) memcpy(gt[r], g[r] + d * es, t * es), gp[r] = gt[r];
        chunk_avx2(dt, nq, es, wt, qp, 0, gp, 0, sc, off, acc);
    }
    for (int i = 0; i < nq; i++)
        for (int r = 0; r < RT2; r++) res[i * RT2 + r] = fold_avx2(acc[i][r][0], acc[i][r][1]);
}

#define TILE_CASES(BODY, NQ)                                                                       \
    switch (dt) {                                                                                  \
    case SM_ROWS_F32: BODY(SM_ROWS_F32, NQ, dim, es, w, q, g, sc, off, res); break;                \
    case SM_ROWS_BF16: BODY(SM_ROWS_BF16, NQ, dim, es, w, q, g, sc, off, res); break;              \
    case SM_ROWS_F16: BODY(SM_ROWS_F16, NQ, dim, es, w, q, g, sc, off, res); break;                \
    case SM_ROWS_U8: BODY(SM_ROWS_U8, NQ, dim, es, w, q, g, sc, off, res); break;                  \
    }

/* res[i * RT2 + r]: query i (< nq) against row r, without the bias. */
T_AVX2 static void tile_avx2(sm_rows_dtype dt, int nq, size_t dim, size_t es, const float *w,
                             const float *const *q, const uint8_t *const *g, const float *sc,
                             const float *off, float *res)
{
    if (nq == 1) TILE_CASES(tile_avx2_body, 1) else TILE_CASES(tile_avx2_body, 2)
}

/* ------------------------------------------------------------------ AVX-512F */

#define T_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

enum { QT5 = 4, RT5 = 4 };

T_AVX512 static INL __m512 dec16_avx512(sm_rows_dtype dt, const uint8_t *p, __m512 sc, __m512 off)
{
    switch (dt) {
    case SM_ROWS_F32: return _mm512_loadu_ps(p);
    case SM_ROWS_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    case SM_ROWS_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    case SM_ROWS_U8:
        return _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p))), sc, off);
    }
    return _mm512_setzero_ps();
}

T_AVX512 static INL void chunk_avx512(sm_rows_dtype dt, int nq, const float *w,
                                      const float *const *q, size_t qo, const uint8_t *const *g,
                                      size_t go, const __m512 *sc, const __m512 *off,
                                      __m512 acc[QT5][RT5])
{
    __m512 wv = _mm512_loadu_ps(w);
    __m512 gv[RT5];
    for (int r = 0; r < RT5; r++) gv[r] = dec16_avx512(dt, g[r] + go, sc[r], off[r]);
    for (int i = 0; i < nq; i++) {
        __m512 qv = _mm512_loadu_ps(q[i] + qo);
        for (int r = 0; r < RT5; r++)
            acc[i][r] = _mm512_fmadd_ps(wv, _mm512_abs_ps(_mm512_sub_ps(qv, gv[r])), acc[i][r]);
    }
}

T_AVX512 static INL void tile_avx512_body(sm_rows_dtype dt, int nq, size_t dim, size_t es,
                                          const float *w, const float *const *q,
                                          const uint8_t *const *g, const float *scf,
                                          const float *offf, float *res)
{
    __m512 acc[QT5][RT5], sc[RT5], off[RT5];
    for (int i = 0; i < QT5; i++)
        for (int r = 0; r < RT5; r++) acc[i][r] = _mm512_setzero_ps();
    for (int r = 0; r < RT5; r++) sc[r] = _mm512_set1_ps(scf[r]), off[r] = _mm512_set1_ps(offf[r]);
    size_t d = 0;
    for (; d + LANES <= dim; d += LANES) chunk_avx512(dt, nq, w + d, q, d, g, d * es, sc, off, acc);
    if (d < dim) {
        const size_t t = dim - d;
        float wt[LANES] = {0}, qt[QT5][LANES] = {{0}};
        uint8_t gt[RT5][LANES * 4] = {{0}};
        const float *qp[QT5];
        const uint8_t *gp[RT5];
        memcpy(wt, w + d, t * sizeof(float));
        for (int i = 0; i < nq; i++) memcpy(qt[i], q[i] + d, t * sizeof(float)), qp[i] = qt[i];
        for (int r = 0; r < RT5; r++) memcpy(gt[r], g[r] + d * es, t * es), gp[r] = gt[r];
        chunk_avx512(dt, nq, wt, qp, 0, gp, 0, sc, off, acc);
    }
    for (int i = 0; i < nq; i++)
        for (int r = 0; r < RT5; r++) {
            const __m512 a = acc[i][r];
            res[i * RT5 + r] =
                fold_avx2(_mm512_castps512_ps256(a),
                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
        }
}

T_AVX512 static void tile_avx512(sm_rows_dtype dt, int nq, size_t dim, size_t es, const float *w,
                                 const float *const *q, const uint8_t *const *g, const float *sc,
                                 const float *off, float *res)
{
    switch (nq) {
    case 1: TILE_CASES(tile_avx512_body, 1) break;
    case 2: TILE_CASES(tile_avx512_body, 2) break;
    case 3: TILE_CASES(tile_avx512_body, 3) break;
    default: TILE_CASES(tile_avx512_body, 4) break;
    }
}
#endif /* L1_X86 */

/* ------------------------------------------------------------------ choice and driver */

int sm__cpu_l1_isa(void)
{
    int best = SM__L1_ISA_C;
#if L1_X86
    /* libgcc's constructor has read the CPU's features by now (__builtin_cpu_init is only for
     * code that runs before it): these are reads of that table, safe from any thread */
    unsigned a, b, c, d; /* F16C by cpuid: not every compiler's __builtin_cpu_supports knows it */
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) {
        best = SM__L1_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f")) best = SM__L1_ISA_AVX512;
    }
#endif
    const char *want = getenv("SIAMESE_L1_ISA");
    if (want) {
        int w = !strcmp(want, "c") ? SM__L1_ISA_C : !strcmp(want, "avx2") ? SM__L1_ISA_AVX2 : best;
        if (w < best) best = w;
    }
    return best;
}

static void tile_shape(int isa, int *qt, int *rt)
{
#if L1_X86
    if (isa == SM__L1_ISA_AVX512) {
        *qt = QT5, *rt = RT5;
        return;
    }
    if (isa == SM__L1_ISA_AVX2) {
        *qt = QT2, *rt = RT2;
        return;
    }
#endif
    (void)isa;
    *qt = 1, *rt = 1;
}

static void run_blocks(void *arg, size_t b0, size_t b1)
{
    const l1_job *j = arg;
    const sm_l1_shape *s = j->s;
    const size_t dim = s->dim, es = j->es, row_bytes = dim * es;
    const float bias = j->w[dim];
    int qt, rt;
    tile_shape(j->isa, &qt, &rt);
    for (size_t b = b0; b < b1; b++) {
        const size_t i0 = b * j->block, i1 = i0 + j->block < s->n_rows ? i0 + j->block : s->n_rows;
        for (size_t q0 = 0; q0 < s->n_queries; q0 += (size_t)qt) {
            const int nq = s->n_queries - q0 < (size_t)qt ? (int)(s->n_queries - q0) : qt;
            const float *qp[4];
            for (int i = 0; i < nq; i++) qp[i] = j->q + (q0 + (size_t)i) * dim;
            for (size_t i = i0; i < i1; i += (size_t)rt) {
                const int nr = i1 - i < (size_t)rt ? (int)(i1 - i) : rt;
                const uint8_t *g[4];
                float sc[4], off[4], res[16];
                /* a short tile repeats its last row: the same sums, stored once */
                for (int r = 0; r < rt; r++)
                    g[r] = row_at(j, i + (size_t)(r < nr ? r : nr - 1), &sc[r], &off[r]);
                /* short rows: the tile's few lines per row are too short a stream for the
                 * hardware prefetchers, so ask for the rows PREFETCH_TILES tiles ahead */
                if (row_bytes <= PREFETCH_ROW_MAX)
                    for (size_t k = i + PREFETCH_TILES * (size_t)rt;
                         k < i + (PREFETCH_TILES + 1) * (size_t)rt && k < i1; k++) {
                        const uint8_t *p = j->rows + (j->idx ? (size_t)j->idx[k] : k) * row_bytes;
                        for (size_t l = 0; l < row_bytes; l += 64) __builtin_prefetch(p + l, 0, 3);
                    }
#if L1_X86
                if (j->isa == SM__L1_ISA_AVX512)
                    tile_avx512(s->dtype, nq, dim, es, j->w, qp, g, sc, off, res);
                else if (j->isa == SM__L1_ISA_AVX2)
                    tile_avx2(s->dtype, nq, dim, es, j->w, qp, g, sc, off, res);
                else
#endif
                    res[0] = pair_c(j, qp[0], g[0], sc[0], off[0]);
                for (int k = 0; k < nq; k++)
                    for (int r = 0; r < nr; r++)
                        j->out[(q0 + (size_t)k) * s->ld_out + i + (size_t)r] =
                            res[k * rt + r] + bias;
            }
        }
    }
}

sm_status sm__cpu_l1_scores(void *ctx, const sm_l1_shape *s, const float *queries, const void *rows,
                            const float *row_qp, const int32_t *row_index, const float *w,
                            float *out)
{
    (void)ctx;
    l1_job j = {.s = s,
                .q = queries,
                .rows = rows,
                .qp = s->dtype == SM_ROWS_U8 ? row_qp : NULL,
                .idx = row_index,
                .w = w,
                .out = out,
                .es = elem_size(s->dtype),
                .isa = sm__cpu_l1_isa()};
    size_t row_bytes = s->dim * j.es, block = L2_BUDGET / (row_bytes ? row_bytes : 1);
    block = block / ROW_ALIGN * ROW_ALIGN;
    if (block < ROW_ALIGN) block = ROW_ALIGN;
    if (block > MAX_BLOCK) block = MAX_BLOCK;
    j.block = block;
    const size_t blocks = (s->n_rows + block - 1) / block;
    /* threads only where each gets a few million element pairs: a thread costs tens of us */
    const size_t per_block = s->n_queries * block * s->dim;
    size_t grain = GRAIN_WORK / (per_block ? per_block : 1);
    sm__cpu_parallel_for(blocks, grain ? grain : 1, run_blocks, &j);
    return SM_OK;
}
