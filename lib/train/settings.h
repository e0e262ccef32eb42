/* SPDX-License-Identifier: MIT */
/* Private: the trainer's and Adam's settings, described once. Each row says where the value
 * lives, its public key, its range, its checkpoint key, the library version that added it and
 * the value a file from before then implies; sm_adam_set/get, sm_trainer_set/get_param and
 * _real, checkpoint save and load, and the ranks' comparison at attach all read this table.
 * A new setting is one row (and its field). */
#ifndef SM_LIB_TRAIN_SETTINGS_H
#define SM_LIB_TRAIN_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "siamese/siamese.h"
#include "train/training.h"

typedef enum sm__set_owner { SM__SET_ADAM, SM__SET_TRAINER } sm__set_owner;
/* which public call reaches a row: sm_adam_set (a double), sm_trainer_set_param (an int64),
 * sm_trainer_set_real (a double) */
typedef enum sm__set_api { SM__API_ADAM, SM__API_PARAM, SM__API_REAL } sm__set_api;
/* the field's C type */
typedef enum sm__set_type {
    SM__T_DOUBLE,
    SM__T_I64,
    SM__T_INT,
    SM__T_UNSIGNED,
    SM__T_BOOL
} sm__set_type;

typedef struct sm__setting {
    const char *ck_key; /* checkpoint metadata key */
    const char *what;   /* for messages */
    sm__set_owner owner;
    sm__set_api api;
    int key;    /* the public enum value (sm_adam_param, sm_trainer_param, ...) */
    size_t off; /* of the field in sm_adam or sm_trainer */
    sm__set_type type;
    double lo, hi; /* the range; integer types take whole numbers only */
    bool lo_open, hi_open;
    bool zero_ok;      /* 0 (off) allowed below lo */
    int since;         /* the library version 0.x that added the key (1: there from the
                           * start, so a file must have it) */
    double absent;     /* the value a file without the key implies */
    const char *group; /* keys a file holds all together or not at all (NULL: alone) */
    bool compared;     /* data-parallel ranks must agree on it (sm_trainer_attach_comm) */
    double dflt;       /* at creation (NAN: the create function decides) */
} sm__setting;

/* More than there are rows (settings.c checks it), for arrays indexed by row. */
#define SM__MAX_SETTINGS 64

extern const sm__setting sm__settings[];
extern const size_t sm__n_settings;

/* The row of a public key, or NULL. */
const sm__setting *sm__setting_find(sm__set_api api, int key);
/* The value of a row in its owner (an sm_adam or an sm_trainer), as a double (every integer
 * setting fits exactly). */
double sm__setting_get(const sm__setting *s, const void *owner);
/* Stores v, which sm__setting_check accepted; no other effect. */
void sm__setting_put(const sm__setting *s, void *owner, double v);
/* SM_OK when v is in the row's range (integral for integer types); else SM_ERR_INVALID_ARG
 * naming the setting, or, with `path`, SM_ERR_FORMAT naming the checkpoint and key. */
sm_status sm__setting_check(const sm__setting *s, double v, const char *path);
/* The trainer's settings that depend on each other: P x K within SM__MAX_PK_IMAGES, P not 1
 * (SM_ERR_INVALID_ARG, or SM_ERR_FORMAT naming `path` when not NULL). */
sm_status sm__settings_check_pk(int64_t p, int64_t k, const char *path);

#endif
