/* SPDX-License-Identifier: MIT */
/* Evaluation: random-pair verification, N-way k-shot episodes and the official one-shot runs
 * (docs/reference.md, "Three numbers, never mixed"; the runs are read by oneshot_runs.c), and the
 * bookkeeping they share.
 *
 * N-way trials embed each image once and score pairs on the host with the head's weights: a
 * 20-way episode is then 40 forward passes instead of 800. The order of the episode RNG draws
 * below fixes what a seed gives: do not reorder them. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"
#include "data/dataset.h"
#include "common/error.h"
#include "evaluation/eval.h"
#include "network/network.h"
#include "common/rng.h"

#define VERIFY_CHUNK 128 /* pairs scored per sm_predict_pairs call: bounds memory */
#define MAX_WAY      1000
#define MAX_SHOT     100
#define MAX_EPISODES 1000000

void sm__tally_score(sm__tally *t, double score)
{
    t->score_n += 1;
    double d = score - t->score_mean;
    t->score_mean += d / t->score_n;
    t->score_m2 += d * (score - t->score_mean);
}

void sm__tally_trial(sm__tally *t, const double *s, size_t n, size_t right)
{
    double best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (s[i] > best) best = s[i];
    size_t tied = 0;
    for (size_t i = 0; i < n; i++) tied += s[i] == best;
    t->trials++;
    t->chance_sum += 1.0 / (double)n;
    if (tied > 1) t->tied++;
    if (tied > 0 && s[right] == best) t->correct += 1.0 / (double)tied;
}

void sm__tally_result(const sm__tally *t, sm_eval_kind kind, int n_way, int k_shot,
                      uint64_t episodes, sm_eval_result *out)
{
    sm_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = out->struct_size;
    r.kind = kind;
    r.n_way = n_way;
    r.k_shot = k_shot;
    r.trials = t->trials;
    r.episodes = episodes;
    r.correct = t->correct;
    r.accuracy = t->trials ? t->correct / (double)t->trials : 0.0;
    r.chance = t->trials ? t->chance_sum / (double)t->trials : 0.0;
    r.tied = t->tied;
    r.score_mean = t->score_mean;
    r.score_std = t->score_n > 0 ? sqrt(t->score_m2 / t->score_n) : 0.0;
    size_t n = out->struct_size < sizeof r ? out->struct_size : sizeof r;
    memcpy(out, &r, n);
}

sm_status sm__check_result(const char *fn, const sm_eval_result *r)
{
    SM_CHECK_ARG(r, "%s: result is NULL", fn);
    SM_CHECK_ARG(r->struct_size >= sizeof(sm_eval_result),
                 "%s: result->struct_size is %zu, expected at least %zu (use "
                 "SM_EVAL_RESULT_INIT)",
                 fn, r->struct_size, sizeof(sm_eval_result));
    return SM_OK;
}

sm_status sm__check_model(const char *fn, const sm_subnet *s, const sm_head *h, int height,
                          int width)
{
    SM_CHECK_ARG(s && h, "%s: NULL subnet or head", fn);
    SM_CHECK_ARG(s->be == h->be, "%s: subnet and head are on different backends", fn);
    SM_RETURN_IF(h->dim != sm_subnet_feature_dim(s), SM_ERR_SHAPE,
                 "%s: the head takes %zu features, the subnet gives %zu", fn, h->dim,
                 sm_subnet_feature_dim(s));
    const sm_arch *a = &s->arch;
    SM_RETURN_IF(a->in_c != 1 || a->in_h != height || a->in_w != width, SM_ERR_SHAPE,
                 "%s: the images are 1x%dx%d, the subnet takes %dx%dx%d", fn, height, width,
                 a->in_c, a->in_h, a->in_w);
    return SM_OK;
}

double sm__host_score(const float *hp, size_t dim, const float *f1, const float *f2)
{
    double z = hp[dim];
    for (size_t j = 0; j < dim; j++) z += (double)hp[j] * fabs((double)f1[j] - (double)f2[j]);
    return 1.0 / (1.0 + exp(-z));
}

SM_API const char *sm_eval_kind_name(sm_eval_kind kind)
{
    switch (kind) {
    case SM_EVAL_VERIFICATION: return "random-pair verification";
    case SM_EVAL_ONESHOT_RUNS: return "one-shot runs (official format)";
    case SM_EVAL_EPISODES_WITHIN: return "N-way k-shot episodes within alphabets";
    case SM_EVAL_EPISODES_BETWEEN: return "N-way k-shot episodes between alphabets";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ verification */

/* The pairs of sm_sampler_create(ds, seed), scored in chunks: tallied against `threshold`
 * (a pair is "same" when score >= threshold) and, when `all_scores` is set, copied out with
 * their labels. With `as_logits` the head's logits are computed and copied out instead of the
 * scores, and nothing is tallied. */
static sm_status verify_pairs(const char *fn, const sm_subnet *subnet, const sm_head *head,
                              const sm_dataset *ds, size_t n_pairs, uint64_t seed, double threshold,
                              bool as_logits, sm__tally *t, float *all_scores, float *all_labels)
{
    SM_CHECK_ARG(ds, "%s: dataset is NULL", fn);
    SM_CHECK_ARG(n_pairs >= 1 && (uint64_t)n_pairs <= ((uint64_t)1 << 32),
                 "%s: %zu pairs out of range 1..2^32", fn, n_pairs);
    SM_TRY(sm__check_model(fn, subnet, head, ds->height, ds->width));
    sm_sampler *smp = NULL;
    SM_TRY(sm_sampler_create(ds, seed, &smp));
    size_t px = ds->pixels_per_image, chunk = n_pairs < VERIFY_CHUNK ? n_pairs : VERIFY_CHUNK;
    float *left = sm__malloc(chunk * px * sizeof(float));
    float *right = sm__malloc(chunk * px * sizeof(float));
    float *labels = sm__malloc(chunk * sizeof(float)), *scores = sm__malloc(chunk * sizeof(float));
    sm_status st = left && right && labels && scores
                       ? SM_OK
                       : sm__fail(SM_ERR_NOMEM, "out of memory for verification pairs");
    for (size_t done = 0; done < n_pairs && st == SM_OK;) {
        size_t n = n_pairs - done < chunk ? n_pairs - done : chunk;
        st = sm_sampler_next(smp, n, left, right, labels, NULL, NULL);
        if (st == SM_OK)
            st = as_logits ? sm_predict_pairs_logits(subnet, head, n, left, right, scores)
                           : sm_predict_pairs(subnet, head, n, left, right, scores);
        for (size_t i = 0; i < n && st == SM_OK && !as_logits; i++) {
            /* round(score), halves up, at the default threshold 0.5 */
            float pred = (double)scores[i] >= threshold ? 1.0f : 0.0f;
            t->trials++;
            t->correct += pred == labels[i];
            t->chance_sum += 0.5;
            sm__tally_score(t, scores[i]);
        }
        if (st == SM_OK && all_scores) {
            memcpy(all_scores + done, scores, n * sizeof *scores);
            memcpy(all_labels + done, labels, n * sizeof *labels);
        }
        done += n;
    }
    sm__free(left), sm__free(right), sm__free(labels), sm__free(scores);
    sm_sampler_destroy(smp);
    return st;
}

SM_API sm_status sm_verification_accuracy(const sm_subnet *subnet, const sm_head *head,
                                          const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                          sm_eval_result *result)
{
    return sm_verification_accuracy_at(subnet, head, ds, n_pairs, seed, 0.5, result);
}

SM_API sm_status sm_verification_accuracy_at(const sm_subnet *subnet, const sm_head *head,
                                             const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                             double threshold, sm_eval_result *result)
{
    SM_CHECK_ARG(ds, "sm_verification_accuracy: dataset is NULL");
    SM_TRY(sm__check_result("sm_verification_accuracy", result));
    SM_CHECK_ARG(threshold >= 0.0 && threshold <= 1.0,
                 "sm_verification_accuracy_at: threshold %g outside [0, 1]", threshold);
    sm__tally t = {0};
    SM_TRY(verify_pairs("sm_verification_accuracy", subnet, head, ds, n_pairs, seed, threshold,
                        false, &t, NULL, NULL));
    sm__tally_result(&t, SM_EVAL_VERIFICATION, 2, 0, 1, result);
    return SM_OK;
}

SM_API sm_status sm_verification_scores(const sm_subnet *subnet, const sm_head *head,
                                        const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                        float *scores, float *labels)
{
    SM_CHECK_ARG(scores && labels, "sm_verification_scores: NULL argument");
    sm__tally t = {0};
    return verify_pairs("sm_verification_scores", subnet, head, ds, n_pairs, seed, 0.5, false, &t,
                        scores, labels);
}

SM_API sm_status sm_verification_logits(const sm_subnet *subnet, const sm_head *head,
                                        const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                        float *logits, float *labels)
{
    SM_CHECK_ARG(logits && labels, "sm_verification_logits: NULL argument");
    sm__tally t = {0};
    return verify_pairs("sm_verification_logits", subnet, head, ds, n_pairs, seed, 0.5, true, &t,
                        logits, labels);
}

/* ------------------------------------------------------------------ embedding */

/* Embeds `n` 8-bit images of `px` pixels into `feat` (n x dim), through `img` (scratch for
 * sm__subnet_embed_chunk(s) images, the backend's preferred chunk): image i is
 * pixels + idx[i] * px, or pixels + i * px when idx is NULL.
 * Datasets and runs both keep 8-bit pixels; v / 255 is the value sm_dataset_get_image gives. */
static sm_status embed_u8(const sm_subnet *s, const uint8_t *pixels, const size_t *idx, size_t n,
                          size_t px, float *img, float *feat)
{
    size_t d = sm_subnet_feature_dim(s);
    size_t chunk = sm__subnet_embed_chunk(s);
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = n - off < chunk ? n - off : chunk;
        for (size_t i = 0; i < m; i++) {
            const uint8_t *src = pixels + (idx ? idx[off + i] : off + i) * px;
            for (size_t k = 0; k < px; k++) img[i * px + k] = (float)src[k] / 255.0f;
        }
        SM_TRY(sm_embed(s, m, img, feat + off * d));
    }
    return SM_OK;
}

/* ------------------------------------------------------------------ episodes */

/* Scores every query against the n_way classes (mean over k supports) and tallies the trials.
 * Layout of `feat`: class c's query at c (k + 1), its supports after it. */
static void score_episode(const float *hp, size_t d, const float *feat, size_t n_way, size_t k,
                          double *cls, sm__tally *t)
{
    for (size_t q = 0; q < n_way; q++) {
        const float *fq = feat + q * (k + 1) * d;
        for (size_t c = 0; c < n_way; c++) {
            double sum = 0;
            for (size_t j = 0; j < k; j++) {
                double sc = sm__host_score(hp, d, fq, feat + (c * (k + 1) + 1 + j) * d);
                sm__tally_score(t, sc);
                sum += sc;
            }
            cls[c] = sum / (double)k;
        }
        sm__tally_trial(t, cls, n_way, q);
    }
}

/* Draws `m` distinct values of pool[0..n-1] into the front of `pool` (partial Fisher-Yates;
 * m draws). */
static void draw_distinct(sm__rng *r, size_t *pool, size_t n, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        size_t j = i + (size_t)sm__rng_below(r, n - i);
        size_t x = pool[i];
        pool[i] = pool[j];
        pool[j] = x;
    }
}

typedef struct episode_plan {
    size_t *usable;      /* usable classes, grouped by alphabet (increasing within a group) */
    size_t *group_start; /* per eligible group: its first index in usable; groups[n] = end */
    size_t *group_len;
    size_t n_groups;
    size_t largest; /* most usable classes in one group, for the message */
} episode_plan;

static void plan_free(episode_plan *p)
{
    sm__free(p->usable), sm__free(p->group_start), sm__free(p->group_len);
}

/* Lists the classes with >= k + 1 images and, within alphabets, the alphabets that have n_way
 * of them (between alphabets: one group of all). */
static sm_status plan_episodes(const sm_dataset *ds, size_t n_way, size_t k, int within,
                               episode_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t na = ds->n_alphabets ? ds->n_alphabets : 1;
    p->usable = sm__malloc((ds->n_classes ? ds->n_classes : 1) * sizeof *p->usable);
    p->group_start = sm__malloc(na * sizeof *p->group_start);
    p->group_len = sm__malloc(na * sizeof *p->group_len);
    if (!p->usable || !p->group_start || !p->group_len) {
        plan_free(p);
        return sm__fail(SM_ERR_NOMEM, "out of memory planning episodes");
    }
    size_t n = 0;
    for (size_t g = 0; g < (within ? ds->n_alphabets : 1); g++) {
        size_t start = n;
        for (size_t c = 0; c < ds->n_classes; c++)
            if ((!within || ds->classes[c].alphabet == g) && ds->classes[c].n_images >= k + 1)
                p->usable[n++] = c;
        size_t len = n - start;
        if (len > p->largest) p->largest = len;
        if (len >= n_way) {
            p->group_start[p->n_groups] = start;
            p->group_len[p->n_groups++] = len;
        } else {
            n = start; /* not eligible: drop its classes */
        }
    }
    if (p->n_groups == 0) {
        plan_free(p);
        if (within)
            return sm__fail(SM_ERR_DATASET,
                            "%zu-way %zu-shot episodes within an alphabet need an alphabet with "
                            "%zu classes of at least %zu images; the most any alphabet has is %zu",
                            n_way, k, n_way, k + 1, p->largest);
        return sm__fail(SM_ERR_DATASET,
                        "%zu-way %zu-shot episodes need %zu classes of at least %zu images; the "
                        "dataset has %zu",
                        n_way, k, n_way, k + 1, p->largest);
    }
    return SM_OK;
}

SM_API sm_status sm_oneshot_episodes(const sm_subnet *subnet, const sm_head *head,
                                     const sm_dataset *ds, int n_way, int k_shot, size_t n_episodes,
                                     int within_alphabet, uint64_t seed, sm_eval_result *result)
{
    SM_CHECK_ARG(ds, "sm_oneshot_episodes: dataset is NULL");
    SM_TRY(sm__check_result("sm_oneshot_episodes", result));
    SM_CHECK_ARG(n_way >= 2 && n_way <= MAX_WAY, "sm_oneshot_episodes: n_way %d out of range 2..%d",
                 n_way, MAX_WAY);
    SM_CHECK_ARG(k_shot >= 1 && k_shot <= MAX_SHOT,
                 "sm_oneshot_episodes: k_shot %d out of range 1..%d", k_shot, MAX_SHOT);
    SM_CHECK_ARG(n_episodes >= 1 && n_episodes <= MAX_EPISODES,
                 "sm_oneshot_episodes: %zu episodes out of range 1..%d", n_episodes, MAX_EPISODES);
    SM_TRY(sm__check_model("sm_oneshot_episodes", subnet, head, ds->height, ds->width));
    const size_t nw = (size_t)n_way, k = (size_t)k_shot, per = nw * (k + 1);
    const size_t d = head->dim, px = ds->pixels_per_image;
    episode_plan plan;
    SM_TRY(plan_episodes(ds, nw, k, within_alphabet != 0, &plan));

    size_t biggest = 0;
    for (size_t c = 0; c < ds->n_classes; c++)
        if (ds->classes[c].n_images > biggest) biggest = ds->classes[c].n_images;
    size_t feat_n = 0, img_n = 0;
    float *hp = NULL, *feat = NULL, *img = NULL;
    size_t *classes = NULL, *pool = NULL, *idx = NULL;
    double *cls = NULL;
    sm_status st = SM_OK;
    if (!sm__mul_size(per, d, &feat_n) || !sm__mul_size(feat_n, sizeof(float), &feat_n) ||
        !sm__mul_size(sm__subnet_embed_chunk(subnet) * sizeof(float), px, &img_n))
        st = sm__fail(SM_ERR_LIMIT, "sm_oneshot_episodes: an episode is too large");
    if (st == SM_OK) {
        hp = sm__malloc((d + 1) * sizeof *hp);
        feat = sm__malloc(feat_n);
        img = sm__malloc(img_n);
        classes = sm__malloc(plan.largest * sizeof *classes);
        pool = sm__malloc(biggest * sizeof *pool);
        idx = sm__malloc(per * sizeof *idx);
        cls = sm__malloc(nw * sizeof *cls);
        if (!hp || !feat || !img || !classes || !pool || !idx || !cls)
            st = sm__fail(SM_ERR_NOMEM, "out of memory for %zu-way %zu-shot episodes", nw, k);
    }
    if (st == SM_OK) st = sm__head_read_params(head, hp);
    sm__rng rng;
    sm__rng_seed(&rng, seed);
    sm__tally t = {0};
    for (size_t e = 0; e < n_episodes && st == SM_OK; e++) {
        size_t g = plan.n_groups > 1 ? (size_t)sm__rng_below(&rng, plan.n_groups) : 0;
        size_t glen = plan.group_len[g];
        memcpy(classes, plan.usable + plan.group_start[g], glen * sizeof *classes);
        draw_distinct(&rng, classes, glen, nw);
        for (size_t c = 0; c < nw; c++) {
            const sm__class *cl = &ds->classes[classes[c]];
            memcpy(pool, cl->images, cl->n_images * sizeof *pool);
            draw_distinct(&rng, pool, cl->n_images, k + 1); /* query, then k supports */
            memcpy(idx + c * (k + 1), pool, (k + 1) * sizeof *idx);
        }
        st = embed_u8(subnet, ds->pixels, idx, per, px, img, feat);
        if (st == SM_OK) score_episode(hp, d, feat, nw, k, cls, &t);
    }
    sm__free(hp), sm__free(feat), sm__free(img), sm__free(classes), sm__free(pool);
    sm__free(idx), sm__free(cls);
    plan_free(&plan);
    if (st == SM_OK)
        sm__tally_result(&t, within_alphabet ? SM_EVAL_EPISODES_WITHIN : SM_EVAL_EPISODES_BETWEEN,
                         n_way, k_shot, n_episodes, result);
    return st;
}

/* ------------------------------------------------------------------ official runs */

SM_API sm_status sm_oneshot_evaluate_runs(const sm_subnet *subnet, const sm_head *head,
                                          const sm_oneshot_runs *runs, sm_eval_result *result)
{
    SM_CHECK_ARG(runs, "sm_oneshot_evaluate_runs: runs is NULL");
    SM_TRY(sm__check_result("sm_oneshot_evaluate_runs", result));
    SM_TRY(sm__check_model("sm_oneshot_evaluate_runs", subnet, head, runs->height, runs->width));
    size_t d = head->dim, most = 0, way = 0;
    for (size_t i = 0; i < runs->n_runs; i++) {
        const sm__run *u = &runs->runs[i];
        if (u->n_cand > way) way = u->n_cand;
        if (u->n_cand > most) most = u->n_cand;
        if (u->n_query > most) most = u->n_query;
    }
    float *hp = sm__malloc((d + 1) * sizeof *hp);
    float *img = sm__malloc(sm__subnet_embed_chunk(subnet) * runs->px * sizeof *img);
    float *fc = sm__malloc(most * d * sizeof *fc), *fq = sm__malloc(most * d * sizeof *fq);
    double *cls = sm__malloc(most * sizeof *cls);
    sm_status st = hp && img && fc && fq && cls
                       ? sm__head_read_params(head, hp)
                       : sm__fail(SM_ERR_NOMEM, "out of memory evaluating one-shot runs");
    sm__tally t = {0};
    for (size_t i = 0; i < runs->n_runs && st == SM_OK; i++) {
        const sm__run *u = &runs->runs[i];
        st = embed_u8(subnet, u->cand, NULL, u->n_cand, runs->px, img, fc);
        if (st == SM_OK) st = embed_u8(subnet, u->query, NULL, u->n_query, runs->px, img, fq);
        for (size_t q = 0; q < u->n_query && st == SM_OK; q++) {
            for (size_t c = 0; c < u->n_cand; c++) {
                cls[c] = sm__host_score(hp, d, fq + q * d, fc + c * d);
                sm__tally_score(&t, cls[c]);
            }
            sm__tally_trial(&t, cls, u->n_cand, u->answer[q]);
        }
    }
    sm__free(hp), sm__free(img), sm__free(fc), sm__free(fq), sm__free(cls);
    if (st == SM_OK)
        sm__tally_result(&t, SM_EVAL_ONESHOT_RUNS, (int)(way > INT32_MAX ? INT32_MAX : way), 1,
                         runs->n_runs, result);
    return st;
}
