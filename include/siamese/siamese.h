/* SPDX-License-Identifier: MIT */
/* libsiamese: train and run Siamese convolutional networks from C.
 *
 * The whole public API in one include. The declarations live in topic headers, each complete
 * on its own (a file that needs one topic may include just that one):
 *  - siamese/common.h: the SM_API macro, versions, status names, sm_last_error(), logging,
 *    resource limits;
 *  - siamese/backends.h: compute backends (cpu-blas, cpu-dnnl, cuda): choice, threads, options;
 *  - siamese/arch.h: architectures (layer lists, their text form, the koch and laptop presets);
 *  - siamese/data.h: datasets, pair sampling, reading and resizing PNGs, random distortions;
 *  - siamese/network.h: the twin subnetwork and the head, embeddings and scores, model files;
 *  - siamese/train.h: Adam, the trainer and its step, checkpoints, health reports;
 *  - siamese/evaluation.h: verification accuracy, N-way episodes, the official one-shot runs,
 *    ROC curves and calibrated thresholds;
 *  - siamese/gallery.h: galleries of enrolled examples: identification, verification, files;
 *  - siamese/gallery_index.h: approximate identification for large galleries through a
 *    candidate index (HNSW, IVF) and exact scores of the labels it proposes;
 *  - siamese/comm.h: communicators for data-parallel training over several processes (MPI,
 *    NCCL, host callbacks, threads); the trainer's gradient shards;
 *  - siamese/status.h and siamese/version.h: the status codes and the version macros.
 *
 * Conventions, everywhere:
 *  - Every fallible call returns sm_status (SM_OK == 0). Outputs go through pointers that are
 *    only written on success. sm_last_error() then gives a human-readable detail.
 *  - Handles are opaque. Each *_create/_open has a *_destroy that accepts NULL. Destroy a
 *    handle before anything it borrows: trainer, then Adam state, head and subnet, then
 *    dataset and backend (a sampler before its dataset; an arch any time, subnets copy it).
 *    A handle destroyed twice, or used after its destroy, cannot be detected: don't.
 *  - The library never prints, exits or aborts; it reports through statuses, sm_last_error()
 *    and the log / progress callbacks.
 *  - Caller-owned buffers are never kept after a call returns.
 *  - Images at the API are float32, row-major C x H x W per image (C = 1 for greyscale), values
 *    in [0, 1] (Omniglot: 1 = white background, 0 = ink); N images lie contiguously.
 *
 * Threads. Handles are not locked; the rules are those of plain data:
 *  - A call that takes a handle by non-const pointer modifies it, or what it borrows: no other
 *    thread may use that handle (or what it borrows) during the call. sm_train_step,
 *    sm_train_step_batch and sm_trainer_load change the trainer's subnet, head and Adam state:
 *    predicting with a model while it trains is a data race. Trainers that share a subnet share
 *    its gradient buffers: they must not step at the same time either.
 *  - Calls that take only const handles only read them, each with its own scratch memory: any
 *    number of threads may run them at once on the same handles, as long as no thread modifies
 *    those handles meanwhile. Many threads predicting or embedding with one trained model
 *    (sm_predict_pair, sm_predict_pairs, sm_embed on the same subnet and head), saving it
 *    (sm_model_save) or reading one dataset (sm_dataset_get_image, sm_dataset_num_*, names):
 *    yes. Training and predicting on the same model at once: no.
 *  - Different handles are independent, even on one backend: threads may each build and train
 *    their own model on a shared backend, reading a shared dataset, as long as no thread adds
 *    images to it meanwhile (sm_dataset_add_image modifies the dataset, and so what every sampler
 *    and trainer over it reads).
 *  - Backends may be created and destroyed from any thread. sm_backend_set_threads changes a
 *    process-wide setting: call it while no other thread is computing.
 *  - sm_set_log_callback: call it before other threads use the library (it is not
 *    synchronised); the callback may then be called from several threads at once.
 *  - sm_set_limit / sm_get_limit are atomic: any thread, any time.
 *  - sm_last_error() is per thread; the version and status functions are pure.
 * tests/test_threads.c exercises these rules under ThreadSanitizer (tests/test_tsan.sh).
 */
#ifndef SIAMESE_SIAMESE_H
#define SIAMESE_SIAMESE_H

#include "siamese/common.h"
#include "siamese/status.h"
#include "siamese/version.h"

#include "siamese/arch.h"
#include "siamese/backends.h"
#include "siamese/data.h"
#include "siamese/evaluation.h"
#include "siamese/gallery.h"
#include "siamese/gallery_index.h"
#include "siamese/network.h"
#include "siamese/train.h"
#include "siamese/comm.h"

#endif
