/* SPDX-License-Identifier: MIT */
/* Architectures as data: a list of layers whose shapes and parameter offsets are computed as
 * layers are appended, so an arch that exists is always a valid network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "network/network.h"

#define SM_MAX_LAYERS   256
#define SM_MAX_DIM      4096
#define SM_MAX_CHANNELS 65536
#define SM_MAX_TENSOR   ((size_t)1 << 31) /* elements in one tensor: GEMM dimensions are int */

static const char *kind_name(sm_layer_kind k)
{
    switch (k) {
    case SM_LAYER_CONV: return "conv";
    case SM_LAYER_RELU: return "relu";
    case SM_LAYER_MAXPOOL: return "pool";
    case SM_LAYER_FLATTEN: return "flatten";
    case SM_LAYER_FC: return "fc";
    case SM_LAYER_GROUPNORM: return "gn";
    }
    return "?";
}

static int is_flat(const sm_arch *a)
{
    for (size_t i = a->n_layers; i-- > 0;) {
        sm_layer_kind k = a->layers[i].kind;
        if (k == SM_LAYER_FLATTEN || k == SM_LAYER_FC) return 1;
        if (k != SM_LAYER_RELU) return 0;
    }
    return 0;
}

static void current_shape(const sm_arch *a, int *c, int *h, int *w)
{
    if (a->n_layers == 0) {
        *c = a->in_c, *h = a->in_h, *w = a->in_w;
    } else {
        const sm__layer *l = &a->layers[a->n_layers - 1];
        *c = l->out_c, *h = l->out_h, *w = l->out_w;
    }
}

size_t sm__layer_out_size(const sm__layer *l) { return (size_t)l->out_c * l->out_h * l->out_w; }
size_t sm__arch_in_size(const sm_arch *a) { return (size_t)a->in_c * a->in_h * a->in_w; }

/* Appends a layer whose output shape and parameter counts are already checked. */
static sm_status push(sm_arch *a, sm__layer l)
{
    SM_RETURN_IF(a->n_layers >= SM_MAX_LAYERS, SM_ERR_LIMIT, "an arch holds at most %d layers",
                 SM_MAX_LAYERS);
    if (a->n_layers == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        sm__layer *nl = sm__realloc(a->layers, cap * sizeof *nl);
        if (!nl) return sm__fail(SM_ERR_NOMEM, "out of memory growing an arch");
        a->layers = nl;
        a->cap = cap;
    }
    current_shape(a, &l.in_c, &l.in_h, &l.in_w);
    l.w_off = a->n_params;
    l.b_off = a->n_params + l.n_w;
    a->n_params += l.n_w + l.n_b;
    a->layers[a->n_layers++] = l;
    return SM_OK;
}

SM_API sm_status sm_arch_create(int channels, int height, int width, sm_arch **out)
{
    SM_CHECK_ARG(out, "sm_arch_create: out is NULL");
    SM_CHECK_ARG(channels >= 1 && channels <= 64, "arch input channels %d out of range 1..64",
                 channels);
    SM_CHECK_ARG(height >= 1 && height <= SM_MAX_DIM && width >= 1 && width <= SM_MAX_DIM,
                 "arch input size %dx%d out of range 1..%d", height, width, SM_MAX_DIM);
    sm_arch *a = sm__calloc(1, sizeof *a);
    if (!a) return sm__fail(SM_ERR_NOMEM, "out of memory creating an arch");
    a->in_c = channels, a->in_h = height, a->in_w = width;
    *out = a;
    return SM_OK;
}

void sm__arch_clear(sm_arch *a)
{
    sm__free(a->layers);
    memset(a, 0, sizeof *a);
}

SM_API void sm_arch_destroy(sm_arch *a)
{
    if (!a) return;
    sm__arch_clear(a);
    sm__free(a);
}

sm_status sm__arch_copy(sm_arch *dst, const sm_arch *src)
{
    *dst = *src;
    dst->layers = NULL;
    dst->cap = src->n_layers;
    if (src->n_layers) {
        dst->layers = sm__malloc(src->n_layers * sizeof *dst->layers);
        if (!dst->layers) return sm__fail(SM_ERR_NOMEM, "out of memory copying an arch");
        memcpy(dst->layers, src->layers, src->n_layers * sizeof *dst->layers);
    }
    return SM_OK;
}

SM_API sm_status sm_arch_add_conv(sm_arch *a, int out_channels, int kernel)
{
    SM_CHECK_ARG(a, "sm_arch_add_conv: arch is NULL");
    SM_CHECK_ARG(out_channels >= 1 && out_channels <= SM_MAX_CHANNELS,
                 "conv out channels %d out of range 1..%d", out_channels, SM_MAX_CHANNELS);
    SM_CHECK_ARG(kernel >= 1 && kernel <= SM_MAX_DIM, "conv kernel %d out of range", kernel);
    SM_RETURN_IF(is_flat(a), SM_ERR_SHAPE, "conv cannot follow a flat (flatten/fc) layer");
    int c, h, w;
    current_shape(a, &c, &h, &w);
    SM_RETURN_IF(kernel > h || kernel > w, SM_ERR_SHAPE,
                 "conv kernel %dx%d is larger than its %dx%d input", kernel, kernel, h, w);
    sm__layer l = {.kind = SM_LAYER_CONV, .a = out_channels, .b = kernel};
    l.out_c = out_channels, l.out_h = h - kernel + 1, l.out_w = w - kernel + 1;
    l.n_w = (size_t)out_channels * c * kernel * kernel;
    l.n_b = (size_t)out_channels;
    SM_RETURN_IF(l.n_w >= SM_MAX_TENSOR || sm__layer_out_size(&l) >= SM_MAX_TENSOR, SM_ERR_LIMIT,
                 "conv layer is too large");
    return push(a, l);
}

SM_API sm_status sm_arch_add_relu(sm_arch *a)
{
    SM_CHECK_ARG(a, "sm_arch_add_relu: arch is NULL");
    sm__layer l = {.kind = SM_LAYER_RELU};
    current_shape(a, &l.out_c, &l.out_h, &l.out_w);
    return push(a, l);
}

SM_API sm_status sm_arch_add_maxpool(sm_arch *a, int size)
{
    SM_CHECK_ARG(a, "sm_arch_add_maxpool: arch is NULL");
    SM_CHECK_ARG(size >= 1 && size <= SM_MAX_DIM, "max-pool size %d out of range", size);
    SM_RETURN_IF(is_flat(a), SM_ERR_SHAPE, "max-pool cannot follow a flat (flatten/fc) layer");
    int c, h, w;
    current_shape(a, &c, &h, &w);
    SM_RETURN_IF(size > h || size > w, SM_ERR_SHAPE, "max-pool %d is larger than its %dx%d input",
                 size, h, w);
    sm__layer l = {.kind = SM_LAYER_MAXPOOL, .a = size};
    l.out_c = c, l.out_h = h / size, l.out_w = w / size;
    return push(a, l);
}

SM_API sm_status sm_arch_add_flatten(sm_arch *a)
{
    SM_CHECK_ARG(a, "sm_arch_add_flatten: arch is NULL");
    int c, h, w;
    current_shape(a, &c, &h, &w);
    sm__layer l = {.kind = SM_LAYER_FLATTEN};
    l.out_c = c * h * w, l.out_h = 1, l.out_w = 1;
    return push(a, l);
}

SM_API sm_status sm_arch_add_fc(sm_arch *a, int out_features)
{
    SM_CHECK_ARG(a, "sm_arch_add_fc: arch is NULL");
    SM_CHECK_ARG(out_features >= 1 && out_features <= (1 << 24),
                 "fc out features %d out of range 1..%d", out_features, 1 << 24);
    SM_RETURN_IF(!is_flat(a), SM_ERR_SHAPE, "fc needs a flat input: add a flatten layer first");
    int c, h, w;
    current_shape(a, &c, &h, &w);
    sm__layer l = {.kind = SM_LAYER_FC, .a = out_features};
    l.out_c = out_features, l.out_h = 1, l.out_w = 1;
    SM_RETURN_IF(!sm__mul_size((size_t)out_features, (size_t)c, &l.n_w) || l.n_w >= SM_MAX_TENSOR,
                 SM_ERR_LIMIT, "fc layer %d x %d is too large", out_features, c);
    l.n_b = (size_t)out_features;
    return push(a, l);
}

/* GroupNorm's parameters are one weight (gamma) and one bias (beta) per channel, as
 * torch.nn.GroupNorm(groups, C) with affine=True. */
SM_API sm_status sm_arch_add_groupnorm(sm_arch *a, int groups)
{
    SM_CHECK_ARG(a, "sm_arch_add_groupnorm: arch is NULL");
    SM_CHECK_ARG(groups >= 1 && groups <= SM_MAX_CHANNELS, "groupnorm groups %d out of range 1..%d",
                 groups, SM_MAX_CHANNELS);
    SM_RETURN_IF(is_flat(a), SM_ERR_SHAPE,
                 "groupnorm cannot follow a flat (flatten/fc) layer: it normalises channels");
    int c, h, w;
    current_shape(a, &c, &h, &w);
    SM_RETURN_IF(c % groups != 0, SM_ERR_SHAPE,
                 "groupnorm: %d groups do not divide the input's %d channels", groups, c);
    sm__layer l = {.kind = SM_LAYER_GROUPNORM, .a = groups};
    l.out_c = c, l.out_h = h, l.out_w = w;
    l.n_w = l.n_b = (size_t)c;
    return push(a, l);
}

SM_API sm_status sm_arch_create_koch(sm_arch **out) { return sm_arch_from_string("koch", out); }

SM_API sm_status sm_arch_create_laptop(sm_arch **out) { return sm_arch_from_string("laptop", out); }

SM_API size_t sm_arch_num_layers(const sm_arch *a) { return a ? a->n_layers : 0; }

SM_API sm_status sm_arch_get_layer(const sm_arch *a, size_t index, sm_layer_kind *kind, int *pa,
                                   int *pb)
{
    SM_CHECK_ARG(a, "sm_arch_get_layer: arch is NULL");
    SM_CHECK_ARG(index < a->n_layers, "layer %zu out of range (arch has %zu)", index, a->n_layers);
    const sm__layer *l = &a->layers[index];
    if (kind) *kind = l->kind;
    if (pa) *pa = l->a;
    if (pb) *pb = l->b;
    return SM_OK;
}

SM_API sm_status sm_arch_input_shape(const sm_arch *a, int *c, int *h, int *w)
{
    SM_CHECK_ARG(a, "sm_arch_input_shape: arch is NULL");
    if (c) *c = a->in_c;
    if (h) *h = a->in_h;
    if (w) *w = a->in_w;
    return SM_OK;
}

SM_API size_t sm_arch_output_size(const sm_arch *a)
{
    if (!a) return 0;
    if (a->n_layers == 0) return sm__arch_in_size(a);
    return sm__layer_out_size(&a->layers[a->n_layers - 1]);
}

SM_API size_t sm_arch_num_params(const sm_arch *a) { return a ? a->n_params : 0; }

/* ---- text form ---- */

static const char koch_text[] = "1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,"
                                "conv128k4,relu,pool2,conv256k5,relu,flatten,fc4096";
/* On a 2-core CPU: 87.7 % verification after 8000 steps of 32 pairs at lr 1e-3 (docs/results.md);
 * the 4x4 first pool is what makes it cheap (conv2 sees 24x24 instead of 48x48 maps). */
static const char laptop_text[] = "1x105x105:conv32k10,relu,pool4,conv64k5,relu,pool2,flatten,"
                                  "fc128";

/* Parses a decimal in 1..limit at *p, advancing it. */
static int parse_int(const char **p, int limit, int *out)
{
    const char *s = *p;
    long v = 0;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > limit) return 0;
        s++;
    }
    if (v < 1) return 0;
    *p = s;
    *out = (int)v;
    return 1;
}

static sm_status parse_layer(sm_arch *a, const char *tok, size_t len)
{
    char t[64];
    SM_RETURN_IF(len == 0 || len >= sizeof t, SM_ERR_INVALID_ARG, "arch text: bad layer '%.*s'",
                 (int)(len < 60 ? len : 60), tok);
    memcpy(t, tok, len);
    t[len] = 0;
    const char *p = t;
    int x, y;
    if (strcmp(t, "relu") == 0) return sm_arch_add_relu(a);
    if (strcmp(t, "flatten") == 0) return sm_arch_add_flatten(a);
    if (strncmp(t, "conv", 4) == 0) {
        p += 4;
        if (parse_int(&p, SM_MAX_CHANNELS, &x) && *p == 'k' &&
            (p++, parse_int(&p, SM_MAX_DIM, &y)) && *p == 0)
            return sm_arch_add_conv(a, x, y);
    } else if (strncmp(t, "pool", 4) == 0) {
        p += 4;
        if (parse_int(&p, SM_MAX_DIM, &x) && *p == 0) return sm_arch_add_maxpool(a, x);
    } else if (strncmp(t, "fc", 2) == 0) {
        p += 2;
        if (parse_int(&p, 1 << 24, &x) && *p == 0) return sm_arch_add_fc(a, x);
    } else if (strncmp(t, "gn", 2) == 0) {
        p += 2;
        if (parse_int(&p, SM_MAX_CHANNELS, &x) && *p == 0) return sm_arch_add_groupnorm(a, x);
    }
    return sm__fail(SM_ERR_INVALID_ARG,
                    "arch text: bad layer '%s' (expected convNkK, relu, poolN, flatten, fcN, gnG)",
                    t);
}

SM_API sm_status sm_arch_from_string(const char *text, sm_arch **out)
{
    SM_CHECK_ARG(text && out, "sm_arch_from_string: NULL argument");
    if (strcmp(text, "koch") == 0) text = koch_text;
    else if (strcmp(text, "laptop") == 0) text = laptop_text;
    const char *p = text;
    int c, h, w;
    SM_RETURN_IF(!(parse_int(&p, 64, &c) && *p++ == 'x' && parse_int(&p, SM_MAX_DIM, &h) &&
                   *p++ == 'x' && parse_int(&p, SM_MAX_DIM, &w) && *p++ == ':'),
                 SM_ERR_INVALID_ARG,
                 "arch text '%.80s' must start with CxHxW: (for example 1x105x105:) or be a "
                 "preset name (koch, laptop)",
                 text);
    sm_arch *a;
    SM_TRY(sm_arch_create(c, h, w, &a));
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        sm_status s = parse_layer(a, p, len);
        if (s != SM_OK) {
            sm_arch_destroy(a);
            return s;
        }
        p += len;
        if (*p == ',' && *++p == '\0') {
            sm_arch_destroy(a);
            return sm__fail(SM_ERR_INVALID_ARG, "arch text '%.80s' ends in a comma", text);
        }
    }
    *out = a;
    return SM_OK;
}

SM_API sm_status sm_arch_to_string(const sm_arch *a, char *buf, size_t cap, size_t *needed)
{
    SM_CHECK_ARG(a, "sm_arch_to_string: arch is NULL");
    SM_CHECK_ARG(buf || cap == 0, "sm_arch_to_string: buf is NULL");
    char tmp[32];
    size_t len = 0;
    int n = snprintf(tmp, sizeof tmp, "%dx%dx%d:", a->in_c, a->in_h, a->in_w);
    if (cap > (size_t)n) memcpy(buf, tmp, (size_t)n);
    len += (size_t)n;
    for (size_t i = 0; i < a->n_layers; i++) {
        const sm__layer *l = &a->layers[i];
        switch (l->kind) {
        case SM_LAYER_CONV: n = snprintf(tmp, sizeof tmp, "conv%dk%d", l->a, l->b); break;
        case SM_LAYER_MAXPOOL: n = snprintf(tmp, sizeof tmp, "pool%d", l->a); break;
        case SM_LAYER_FC: n = snprintf(tmp, sizeof tmp, "fc%d", l->a); break;
        case SM_LAYER_GROUPNORM: n = snprintf(tmp, sizeof tmp, "gn%d", l->a); break;
        default: n = snprintf(tmp, sizeof tmp, "%s", kind_name(l->kind)); break;
        }
        if (i > 0) {
            if (cap > len + 1) buf[len] = ',';
            len++;
        }
        if (cap > len + (size_t)n) memcpy(buf + len, tmp, (size_t)n);
        len += (size_t)n;
    }
    if (needed) *needed = len;
    if (cap <= len) {
        if (cap) buf[0] = 0;
        return sm__fail(SM_ERR_LIMIT, "arch text needs %zu bytes, buffer has %zu", len + 1, cap);
    }
    buf[len] = 0;
    return SM_OK;
}

sm_status sm__arch_text(const sm_arch *a, char **out)
{
    size_t need = 0;
    sm_arch_to_string(a, NULL, 0, &need);
    char *s = sm__malloc(need + 1);
    if (!s) return sm__fail(SM_ERR_NOMEM, "out of memory formatting an architecture");
    sm_status st = sm_arch_to_string(a, s, need + 1, NULL);
    if (st != SM_OK) {
        sm__free(s);
        return st;
    }
    *out = s;
    return SM_OK;
}
