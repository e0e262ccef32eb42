/* SPDX-License-Identifier: MIT */
/* SM_CONV_ALGO_AUTO's choice between oneDNN's direct convolution and the frequency domain: a
 * cost model of the two, computed from the layer's shape, the direction and the precision
 * alone. Nothing is timed, so the choice cannot depend on the machine's load, the thread count,
 * the batch or which handle sized the shape first: the same command gives the same bits in
 * every run and on every rank (measuring is SM_CONV_ALGO_MEASURED, the user's opt-in).
 *
 * Both sides are counted in multiply-adds per image. Direct: k c oh ow kh kw. FFT, as conv_fft.c
 * computes it (transforms as products against cos/sin tables, half spectrum, per-bin complex
 * products of 4 real multiply-adds): a forward transform of a plane of r x q values into an
 * lh-row half spectrum of nv columns costs 2 r nv (q + 2 lh), an inverse to r x q the same,
 * and the products 4 c k lh nv. The FFT's multiply-adds run slower than oneDNN's direct
 * kernels (small matrix products); the rates below are measured ratios, per direction, from
 * docs/performance.md's table (2-core AMD EPYC, 32 images): with them the model makes every
 * choice that table's timings made, except where the two were within its 10 % margin. */
#include "dnnl_internal.h"

enum { FFT_MAX_SIDE = 512 };    /* a transform this large per plane costs more than it saves */
enum { FFT_MIN_TAPS = 9 };      /* below 3x3 a direct kernel does 4 or fewer multiply-adds */
enum { FFT_CHUNK_IMAGES = 32 }; /* conv_fft.c's chunk: once-per-chunk costs are shared by it */
/* Direct convolutions of fewer multiply-adds per image stay direct: at under about 2 ms for 32
 * images the most FFT could save is small, and direct's results are the reference's. */
#define MIN_DIRECT_MACS 8e6
/* FFT must come out this much cheaper; a near tie stays direct */
#define MARGIN 0.9
/* FFT multiply-adds per direct multiply-add of time, per direction (forward, backward-data,
 * backward-filter: its products have only the chunk's images as inner dimension) */
static const double fft_rate[3] = {0.45, 0.80, 0.30};
/* bf16 direct kernels' speed-up over float32 per direction (the FFT stays float32) */
static const double bf16_speedup[3] = {2.0, 1.8, 1.6};

bool smd_fft_possible(const sm_conv_shape *s)
{
    return s->h <= FFT_MAX_SIDE && s->w <= FFT_MAX_SIDE && s->kh * s->kw >= FFT_MIN_TAPS;
}

/* multiply-adds of the forward (or inverse) transform of one r x q plane */
static double transform(double r, double q, double lh, double nv)
{
    return 2.0 * r * nv * (q + 2.0 * lh);
}

double smd_conv_direct_macs(const sm_conv_shape *s)
{
    return (double)s->k * s->c * s->oh * s->ow * s->kh * s->kw;
}

/* The same count in every direction (what is transformed in and out differs, not how much:
 * forward x -> y, backward-data dy -> dx, backward-filter x and dy -> dw); the kernel's
 * spectrum (made per call, or inverted once per chunk for dw) is shared by a chunk's images.
 * The directions' different speeds are in fft_rate. */
double smd_conv_fft_macs(const sm_conv_shape *s)
{
    const double lh = s->h, nv = s->w / 2 + 1, c = s->c, k = s->k;
    const double in = transform(s->h, s->w, lh, nv), out = transform(s->oh, s->ow, lh, nv);
    const double kernel = transform(s->kh, s->kw, lh, nv) * c * k / FFT_CHUNK_IMAGES;
    return c * in + k * out + 4.0 * c * k * lh * nv + kernel;
}

int smd_conv_modeled(int op, int precision, const sm_conv_shape *s)
{
    if (!smd_fft_possible(s) || op < 0 || op > 2) return SM_CONV_ALGO_DIRECT;
    const double direct = smd_conv_direct_macs(s);
    if (direct < MIN_DIRECT_MACS) return SM_CONV_ALGO_DIRECT;
    const double direct_time = precision == SM_PRECISION_BF16 ? direct / bf16_speedup[op] : direct;
    const double fft_time = smd_conv_fft_macs(s) / fft_rate[op];
    return fft_time < MARGIN * direct_time ? SM_CONV_ALGO_FFT : SM_CONV_ALGO_DIRECT;
}
