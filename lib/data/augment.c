/* SPDX-License-Identifier: MIT */
/* Koch et al.'s affine distortions (docs/reference.md), for sm_image_distort and the trainer.
 * The order of the RNG draws below fixes what a seed gives: do not reorder them. Per image:
 * four on/off draws (rotate, shear, scale, shift), then angle, sx, sy, kx, ky, tx, ty. */
#include <math.h>
#include <string.h>

#include "data/dataset.h"
#include "common/error.h"
#include "data/image.h"

static double in_range(sm__rng *r, double lo, double hi)
{
    return lo + (hi - lo) * sm__rng_uniform(r);
}

/* Bilinear sample at (x, y) in pixel-centre coordinates; white outside the image, so borders
 * fade into the paper rather than smearing the edge pixels. */
static float sample(const float *src, int h, int w, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int x0 = (int)fx, y0 = (int)fy;
    double ax = x - fx, ay = y - fy;
    double acc = 0;
    for (int dy = 0; dy < 2; dy++) {
        for (int dx = 0; dx < 2; dx++) {
            double wgt = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
            if (wgt == 0) continue;
            int xi = x0 + dx, yi = y0 + dy;
            float v = (xi >= 0 && xi < w && yi >= 0 && yi < h) ? src[(size_t)yi * w + xi] : 1.0f;
            acc += wgt * v;
        }
    }
    return (float)acc;
}

/* The draws sm__distort makes for one image (4 switches, 7 parameters), without the warp: a
 * rank of a data-parallel run skips the images of other ranks' shards this way and stays in
 * step with them (lib/train/trainer_shards.c). Keep in step with sm__distort. */
void sm__distort_skip(sm__rng *rng)
{
    for (int i = 0; i < 4 + 7; i++) (void)sm__rng_u64(rng);
}

void sm__distort(sm__rng *rng, unsigned parts, const float *src, int h, int w, float *dst)
{
    int on[4];
    for (int i = 0; i < 4; i++) on[i] = (int)(sm__rng_u64(rng) >> 63) && (parts & (1u << i));
    const double deg = 3.14159265358979323846 / 180.0;
    double angle = in_range(rng, -10.0, 10.0) * deg;
    double sx = in_range(rng, -0.3, 0.3), sy = in_range(rng, -0.3, 0.3);
    double kx = in_range(rng, 0.8, 1.2), ky = in_range(rng, 0.8, 1.2);
    double tx = in_range(rng, -2.0, 2.0), ty = in_range(rng, -2.0, 2.0);
    if (!on[0]) angle = 0;
    if (!on[1]) sx = sy = 0;
    if (!on[2]) kx = ky = 1;
    if (!on[3]) tx = ty = 0;
    if (!on[0] && !on[1] && !on[2] && !on[3]) {
        memcpy(dst, src, (size_t)h * (size_t)w * sizeof *dst);
        return;
    }
    /* A = R Sh Sc maps source offsets from the centre to output offsets; the output pixel p
     * reads the source at A^-1 (p - c - t) + c. */
    double c = cos(angle), s = sin(angle);
    double r[4] = {c, -s, s, c}, shr[4] = {1, sx, sy, 1};
    double rs[4] = {r[0] * shr[0] + r[1] * shr[2], r[0] * shr[1] + r[1] * shr[3],
                    r[2] * shr[0] + r[3] * shr[2], r[2] * shr[1] + r[3] * shr[3]};
    double a[4] = {rs[0] * kx, rs[1] * ky, rs[2] * kx, rs[3] * ky};
    double det = a[0] * a[3] - a[1] * a[2]; /* >= (1 - 0.3^2) 0.8^2 > 0: always invertible */
    double inv[4] = {a[3] / det, -a[1] / det, -a[2] / det, a[0] / det};
    double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            double px = x - cx - tx, py = y - cy - ty;
            double qx = inv[0] * px + inv[1] * py + cx, qy = inv[2] * px + inv[3] * py + cy;
            dst[(size_t)y * w + x] = sample(src, h, w, qx, qy);
        }
    }
}

SM_API sm_status sm_image_distort(const float *src, int height, int width, unsigned parts,
                                  uint64_t seed, float *dst)
{
    SM_CHECK_ARG(src && dst, "sm_image_distort: NULL argument");
    SM_CHECK_ARG(height >= 1 && height <= SM__MAX_IMAGE_SIDE && width >= 1 &&
                     width <= SM__MAX_IMAGE_SIDE,
                 "sm_image_distort: image size %dx%d out of range (1..%d each)", width, height,
                 SM__MAX_IMAGE_SIDE);
    const unsigned unknown = parts & ~(unsigned)SM_DISTORT_ALL;
    SM_CHECK_ARG(unknown == 0, "sm_image_distort: unknown distortion bits 0x%x", unknown);
    sm__rng rng;
    sm__rng_seed(&rng, seed);
    sm__distort(&rng, parts, src, height, width, dst);
    return SM_OK;
}
