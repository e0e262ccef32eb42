/* SPDX-License-Identifier: MIT */
/* The settings table (lib/train/settings.c), row by row, through the public API: each row's
 * setting takes a value other than the one it has, reads it back, survives a trainer checkpoint
 * into a fresh trainer, is refused out of range (the value unchanged), and makes two
 * data-parallel ranks that differ in it refuse to attach, naming it. A new row is covered
 * without touching this file. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dist_model.h"
#include "fixtures.h"
#include "train/settings.h"

#define ARCH "1x12x12:conv4k3,relu,flatten,fc8"

static sm_status set(dm_model *m, const sm__setting *row, double v)
{
    switch (row->api) {
    case SM__API_ADAM: return sm_adam_set(m->adam, (sm_adam_param)row->key, v);
    case SM__API_PARAM: return sm_trainer_set_param(m->tr, (sm_trainer_param)row->key, (int64_t)v);
    case SM__API_REAL: return sm_trainer_set_real(m->tr, (sm_trainer_real)row->key, v);
    }
    return SM_ERR_INVALID_ARG;
}

static double get(const dm_model *m, const sm__setting *row)
{
    double v = NAN;
    int64_t i = 0;
    switch (row->api) {
    case SM__API_ADAM:
        assert_int_equal(sm_adam_get(m->adam, (sm_adam_param)row->key, &v), SM_OK);
        break;
    case SM__API_PARAM:
        assert_int_equal(sm_trainer_get_param(m->tr, (sm_trainer_param)row->key, &i), SM_OK);
        v = (double)i;
        break;
    case SM__API_REAL:
        assert_int_equal(sm_trainer_get_real(m->tr, (sm_trainer_real)row->key, &v), SM_OK);
        break;
    }
    return v;
}

/* A valid value other than the current one. */
static double other_value(const sm__setting *row, double current)
{
    double v;
    if (row->type == SM__T_DOUBLE) {
        v = (row->lo + row->hi) / 2;
        if (v == current) v = (row->lo + v) / 2;
    } else {
        v = row->lo + 1 <= row->hi ? row->lo + 1 : row->lo;
        if (v == current) v = row->lo;
    }
    return v;
}

static void each_row_round_trips(void **state)
{
    (void)state;
    char *dir = fx_tempdir(), *ck = fx_join(dir, "settings.safetensors");
    for (size_t i = 0; i < sm__n_settings; i++) {
        const sm__setting *row = &sm__settings[i];
        dm_model m, fresh;
        assert_int_equal(dm_create(&m, ARCH, 8, 4, 1, 0, 3), SM_OK);
        const double before = get(&m, row);
        const double v = other_value(row, before);
        assert_true(v != before);
        if (set(&m, row, v) != SM_OK)
            fail_msg("%s = %g refused: %s", row->ck_key, v, sm_last_error());
        assert_true(get(&m, row) == v);
        /* out of range: refused, unchanged */
        const double bad = row->hi_open ? row->hi : row->hi + 1;
        assert_int_equal(set(&m, row, bad), SM_ERR_INVALID_ARG);
        assert_non_null(strstr(sm_last_error(), row->what));
        assert_true(get(&m, row) == v);
        /* a checkpoint carries it */
        assert_int_equal(sm_trainer_save(m.tr, ck), SM_OK);
        assert_int_equal(dm_create(&fresh, ARCH, 8, 4, 1, 0, 3), SM_OK);
        assert_int_equal(sm_trainer_load(fresh.tr, ck), SM_OK);
        if (get(&fresh, row) != v)
            fail_msg("%s: saved %g, loaded %g", row->ck_key, v, get(&fresh, row));
        printf("%-24s was %-8g set %-8g refused %-8g saved and loaded\n", row->ck_key, before, v,
               bad);
        dm_destroy(&fresh);
        dm_destroy(&m);
    }
    unlink(ck);
    fx_rmtree(dir);
    free(ck), free(dir);
}

typedef struct rank_job {
    sm_comm *comm;
    const sm__setting *row; /* NULL: as created */
    sm_status st;
    char msg[512];
} rank_job;

static void *attach_rank(void *arg)
{
    rank_job *j = arg;
    dm_model m;
    j->st = dm_create(&m, ARCH, 8, 4, 2, 0, 3);
    if (j->st == SM_OK && j->row) j->st = set(&m, j->row, other_value(j->row, get(&m, j->row)));
    if (j->st == SM_OK) j->st = sm_trainer_attach_comm(m.tr, j->comm);
    snprintf(j->msg, sizeof j->msg, "%s", sm_last_error());
    if (m.tr) dm_destroy(&m);
    return NULL;
}

static void ranks_that_differ_refuse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sm__n_settings; i++) {
        const sm__setting *row = &sm__settings[i];
        if (!row->compared) continue;
        /* K = 2 shards must stay divisible by 2 ranks: another even value */
        if (row->api == SM__API_PARAM && row->key == SM_TRAINER_GRAD_SHARDS) continue;
        sm_comm *c[2];
        assert_int_equal(sm_comm_local_create(2, c), SM_OK);
        rank_job j[2] = {{c[0], NULL, SM_OK, ""}, {c[1], row, SM_OK, ""}};
        pthread_t t[2];
        for (int r = 0; r < 2; r++)
            assert_int_equal(pthread_create(&t[r], NULL, attach_rank, &j[r]), 0);
        for (int r = 0; r < 2; r++) pthread_join(t[r], NULL);
        for (int r = 0; r < 2; r++) {
            if (j[r].st != SM_ERR_STATE || !strstr(j[r].msg, row->what))
                fail_msg("%s differs on rank 1: rank %d got %s (%s)", row->ck_key, r,
                         sm_status_name(j[r].st), j[r].msg);
        }
        for (int r = 0; r < 2; r++) sm_comm_destroy(c[r]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_row_round_trips),
        cmocka_unit_test(ranks_that_differ_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
