/* SPDX-License-Identifier: MIT */
/* libsiamese: status codes.
 *
 * Values are part of the ABI: they are never renumbered or reused, and new codes are only
 * appended. There is deliberately no "count" sentinel. */
#ifndef SIAMESE_STATUS_H
#define SIAMESE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sm_status {
    SM_OK = 0,
    SM_ERR_INVALID_ARG = 1, /* NULL handle, out-of-range option, wrong size argument */
    SM_ERR_NOMEM = 2,       /* an allocation failed; handles are left usable */
    SM_ERR_IO = 3,          /* a file or folder could not be opened, read or written */
    SM_ERR_FORMAT = 4,      /* a file is damaged or not what it claims (PNG, zip, checkpoint) */
    SM_ERR_SHAPE = 5,       /* sizes do not match (image size, checkpoint vs. model) */
    SM_ERR_VERSION = 6,     /* a file or module from an incompatible version */
    SM_ERR_BACKEND_UNAVAILABLE = 7, /* the requested backend is not built or not usable here */
    SM_ERR_DEVICE = 8,              /* the backend's device or vendor library failed */
    SM_ERR_NUMERIC = 9,             /* a non-finite loss or gradient (the step was not applied), or
                                   a model's non-finite output (a gallery is left unchanged) */
    SM_ERR_DATASET = 10,    /* a dataset cannot serve the request (too few classes/images) */
    SM_ERR_LIMIT = 11,      /* a size exceeds a documented resource limit */
    SM_ERR_STATE = 12,      /* a call in the wrong order (for example before any data) */
    SM_ERR_INTERNAL = 13,   /* a bug in libsiamese: please report it */
    SM_ERR_COMM = 14,       /* since 0.3: a collective between training ranks failed or
                                   timed out (a peer died or stalled); the communicator is
                                   failed for good (siamese/comm.h) */
    SM_ERR_UNSUPPORTED = 15 /* since 0.3: this backend or this machine cannot do what was
                                   asked (bf16 on a CPU without bf16 instructions) */
} sm_status;

#ifdef __cplusplus
}
#endif

#endif
