/* SPDX-License-Identifier: MIT */
/* Re-initialising a subnet's parameters by a named scheme (sm_subnet_init). The reference's
 * N(0, 0.01^2) for everything trains the two- and four-layer nets; deeper or wider twins start
 * with activations that shrink by about 100x per layer and never leave the flat loss of 0.693
 * (a 52x52 three-conv net did exactly that for 1400 steps), hence He et al.'s scale. */
#include <math.h>

#include "common/error.h"
#include "network/network.h"
#include "common/rng.h"

/* Inputs feeding one output of the layer: a conv's in_c * k * k, an fc's input size. */
static double fan_in(const sm__layer *l)
{
    if (l->kind == SM_LAYER_CONV) return (double)l->in_c * l->b * l->b;
    return (double)l->in_c * l->in_h * l->in_w;
}

SM_API sm_status sm_subnet_init(sm_subnet *subnet, sm_init kind, uint64_t seed)
{
    SM_CHECK_ARG(subnet, "sm_subnet_init: subnet is NULL");
    SM_CHECK_ARG(kind == SM_INIT_REFERENCE || kind == SM_INIT_HE,
                 "sm_subnet_init: unknown scheme %d (SM_INIT_REFERENCE or SM_INIT_HE)", (int)kind);
    /* One stream in state_dict order, as sm_subnet_create: a seed gives the same weights on
     * every backend. */
    sm__rng rng;
    sm__rng_seed(&rng, seed);
    if (kind == SM_INIT_REFERENCE) return sm__init_reference(subnet, &rng);
    for (size_t i = 0; i < subnet->arch.n_layers; i++) {
        const sm__layer *l = &subnet->arch.layers[i];
        if (l->n_w == 0 && l->n_b == 0) continue;
        if (l->kind == SM_LAYER_GROUPNORM) { /* PyTorch's init, with no draw (as reference) */
            SM_TRY(sm__init_fill(subnet->be, subnet->params + l->w_off, l->n_w, 1.0f));
            SM_TRY(sm__init_fill(subnet->be, subnet->params + l->b_off, l->n_b, 0.0f));
            continue;
        }
        SM_TRY(sm__init_normal(subnet->be, subnet->params + l->w_off, l->n_w, sqrt(2.0 / fan_in(l)),
                               &rng));
        /* std 0 would give -0.0 for negative draws: zeros are uploaded as they are */
        SM_TRY(sm__init_normal(subnet->be, subnet->params + l->b_off, l->n_b, 0.0, NULL));
    }
    return SM_OK;
}
