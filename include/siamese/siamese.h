/* libsiamese: train and run Siamese convolutional networks from C.
 *
 * The whole public API. Conventions, everywhere:
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

#include <stddef.h>
#include <stdint.h>

#include "siamese/status.h"
#include "siamese/version.h"

#if defined(_WIN32)
#  define SM_API __declspec(dllimport)
#elif defined(__GNUC__)
#  define SM_API __attribute__((visibility("default")))
#else
#  define SM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions, statuses, errors, logging
 * ------------------------------------------------------------------------------------------- */

/** SM_VERSION_NUMBER of the library actually loaded (compare with the header's macro). */
SM_API int sm_version_number(void);
/** "MAJOR.MINOR.PATCH" of the loaded library. Static storage. */
SM_API const char *sm_version_string(void);
/** SM_ABI_MAJOR of the loaded library. */
SM_API int sm_abi_version(void);

/** The enum name of a status ("SM_ERR_IO"); "SM_ERR_UNKNOWN" for values not in the enum. */
SM_API const char *sm_status_name(sm_status status);
/** A short fixed description of a status ("input/output error"). Static storage. */
SM_API const char *sm_status_str(sm_status status);
/** The detail of the last call on this thread that failed ("image 'a/b.png' is 64x64, expected
 *  105x105"); "" if none failed yet. Valid until the next failing call on this thread. */
SM_API const char *sm_last_error(void);

typedef enum sm_log_level {
    SM_LOG_DEBUG = 0,
    SM_LOG_INFO = 1,
    SM_LOG_WARN = 2,
    SM_LOG_ERROR = 3
} sm_log_level;

/** Receives the library's log messages. `message` is valid only during the call. May be called
 *  from any thread that calls into the library. */
typedef void (*sm_log_fn)(void *user, sm_log_level level, const char *message);

/** Installs a process-wide log callback (NULL: discard messages, the default). Messages below
 *  `min_level` are not formatted. Not thread-safe against concurrent library calls: install it
 *  before using the library from several threads. */
SM_API void sm_set_log_callback(sm_log_fn fn, void *user, sm_log_level min_level);

/* ---------------------------------------------------------------------------------------------
 * Resource limits: every reader checks sizes against these before it allocates, so a damaged or
 * hostile file (a zip bomb, a header that claims terabytes) is refused with SM_ERR_LIMIT instead
 * of exhausting memory. Process-wide; setting and reading them is thread-safe.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_limit {
    SM_LIMIT_FILE_BYTES = 1,    /* largest checkpoint file read; default 16 GiB */
    SM_LIMIT_ENTRY_BYTES = 2,   /* largest single PNG file or zip entry read; default 64 MiB */
    SM_LIMIT_DATASET_BYTES = 3, /* decoded pixels one dataset may hold; default 16 GiB */
    SM_LIMIT_IMAGE_SIDE = 4     /* largest PNG width or height decoded; default 4096 */
} sm_limit;

/** Sets a limit. SM_ERR_INVALID_ARG for an unknown key or 0. */
SM_API sm_status sm_set_limit(sm_limit key, uint64_t value);
/** The limit in force; 0 for an unknown key. */
SM_API uint64_t sm_get_limit(sm_limit key);

/* ---------------------------------------------------------------------------------------------
 * Backends
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_backend_kind {
    SM_BACKEND_AUTO = 0,    /* the best usable backend: CUDA when usable, else cpu-dnnl when
                               its module loads, else cpu-blas */
    SM_BACKEND_CPU = 1,     /* cpu-blas: OpenBLAS GEMMs and the library's own loops */
    SM_BACKEND_CUDA = 2,    /* cuda: cuDNN + cuBLAS (a separately built module) */
    SM_BACKEND_CPU_DNNL = 3 /* since 0.2: cpu-dnnl: oneDNN convolutions and GEMM, cpu-blas's
                               loops for the rest (a separately built module, meson option
                               -Ddnnl; docs/performance.md) */
} sm_backend_kind;

/** A compute backend: owns the device context, threads and vendor handles. */
typedef struct sm_backend sm_backend;

/** "auto", "cpu", "cuda", "cpu-dnnl" (the names the examples' --backend option takes);
 *  "unknown" for values not in the enum. Static storage. Since 0.2. */
SM_API const char *sm_backend_kind_name(sm_backend_kind kind);

/** Reports whether `kind` can be used here: SM_OK, or SM_ERR_BACKEND_UNAVAILABLE with the
 *  reason in sm_last_error() (not built, no module, no device), or SM_ERR_INVALID_ARG. */
SM_API sm_status sm_backend_probe(sm_backend_kind kind);

/** Creates a backend. Returns SM_ERR_BACKEND_UNAVAILABLE (with the reason) when `kind` cannot
 *  be used here, SM_ERR_INVALID_ARG for an unknown kind or NULL `out`, SM_ERR_NOMEM. */
SM_API sm_status sm_backend_create(sm_backend_kind kind, sm_backend **out);
/** Destroys a backend. Every subnet and head created on it must be destroyed first. NULL: no-op. */
SM_API void sm_backend_destroy(sm_backend *backend);
/** The backend's name ("cpu-blas", "cpu-dnnl", "cuda"); "" for NULL. Static storage. */
SM_API const char *sm_backend_name(const sm_backend *backend);
/** The concrete kind (never SM_BACKEND_AUTO); SM_BACKEND_AUTO for NULL. */
SM_API sm_backend_kind sm_backend_get_kind(const sm_backend *backend);
/** Sets the number of worker threads (BLAS, oneDNN and the library's own loops, which always
 *  run on the same count as the library they sit between, so they never oversubscribe the
 *  cores); 0 = all cores (the default; OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, for cpu-blas
 *  or cpu-dnnl, set the initial count). The setting is process-wide for each CPU backend
 *  (OpenBLAS's and OpenMP's pools are): call it while no other thread is computing. cpu-blas
 *  runs some convolutions with whole images per thread, each on a single-threaded SGEMM: for
 *  those ops it sets OpenBLAS's thread count to 1 and then restores it, so a host calling
 *  OpenBLAS itself from another thread meanwhile gets one thread for that call.
 *  SM_ERR_INVALID_ARG for a negative count or > 1024. */
SM_API sm_status sm_backend_set_threads(sm_backend *backend, int threads);
/** The thread count in effect, or 0 for NULL. */
SM_API int sm_backend_get_threads(const sm_backend *backend);

/** A backend created with SM_BACKEND_AUTO that is not the CUDA backend: why CUDA was not
 *  taken ("no cuda module at '...'", "module '...' could not be loaded: libcudnn.so.9: ...",
 *  "no NVIDIA driver: ...", "no CUDA device: ..."), followed, when AUTO landed on cpu-blas, by
 *  "; cpu-dnnl: " and why cpu-dnnl was not taken either. "" when the backend was created with an
 *  explicit kind, when AUTO chose CUDA, or for NULL. Valid as long as the backend. Since 0.2. */
SM_API const char *sm_backend_fallback_reason(const sm_backend *backend);

typedef enum sm_backend_option {
    /* 0 (default): float32 matrix products and convolutions are exact float32 (cuDNN
     * CUDNN_FMA_MATH, cuBLAS default math). 1: TensorFloat-32 tensor cores may be used (faster,
     * about 10 bits of mantissa in products; docs/cuda.md). No effect on cpu-blas (reads 0). */
    SM_BACKEND_OPT_TF32 = 1
} sm_backend_option;

/** Sets a backend option; SM_ERR_INVALID_ARG for NULL, an unknown key or a value out of range
 *  (TF32: 0 or 1). Takes effect from the next op. Modifies the backend: call it while no other
 *  thread computes on it. Since 0.2. */
SM_API sm_status sm_backend_set_option(sm_backend *backend, sm_backend_option key,
                                       int64_t value);
/** Reads an option into `*value`; SM_ERR_INVALID_ARG for NULL or an unknown key. Since 0.2. */
SM_API sm_status sm_backend_get_option(const sm_backend *backend, sm_backend_option key,
                                       int64_t *value);

/* ---------------------------------------------------------------------------------------------
 * Architectures: the twin subnetwork as data (a list of layers)
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_arch sm_arch;

typedef enum sm_layer_kind {
    SM_LAYER_CONV = 1,    /* a = out channels, b = kernel size; stride 1, no padding, with bias */
    SM_LAYER_RELU = 2,
    SM_LAYER_MAXPOOL = 3, /* a = window = stride; a trailing odd row/column is dropped */
    SM_LAYER_FLATTEN = 4, /* C x H x W -> C*H*W (no data movement) */
    SM_LAYER_FC = 5       /* a = out features, with bias; input must be flat */
} sm_layer_kind;

/** An empty architecture for `channels` x `height` x `width` inputs (each 1..4096, channels
 *  1..64). */
SM_API sm_status sm_arch_create(int channels, int height, int width, sm_arch **out);
/** The reference (Koch et al. 2015, SPEC.md): 1x105x105, conv 64@10 / relu / pool 2,
 *  conv 128@7 / relu / pool 2, conv 128@4 / relu / pool 2, conv 256@5 / relu, flatten, fc 4096. */
SM_API sm_status sm_arch_create_koch(sm_arch **out);
/** Parses the textual form that sm_arch_to_string writes, e.g.
 *  "1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,conv128k4,relu,pool2,conv256k5,relu,flatten,fc4096",
 *  or a preset name: "koch", "laptop" (since 0.2). SM_ERR_INVALID_ARG (with the offending
 *  token) otherwise. */
SM_API sm_status sm_arch_from_string(const char *text, sm_arch **out);
/** Writes the textual form into `buf` (capacity `cap`, NUL-terminated). `*needed` (optional)
 *  receives the length without NUL; SM_ERR_LIMIT when cap is too small. */
SM_API sm_status sm_arch_to_string(const sm_arch *arch, char *buf, size_t cap, size_t *needed);
/** Appends a layer. Each checks its parameters against the current output shape and returns
 *  SM_ERR_SHAPE when the layer cannot follow (kernel larger than the input, fc on an unflattened
 *  input, ...), SM_ERR_INVALID_ARG for values out of range. The arch is unchanged on error. */
SM_API sm_status sm_arch_add_conv(sm_arch *arch, int out_channels, int kernel_size);
SM_API sm_status sm_arch_add_relu(sm_arch *arch);
SM_API sm_status sm_arch_add_maxpool(sm_arch *arch, int size);
SM_API sm_status sm_arch_add_flatten(sm_arch *arch);
SM_API sm_status sm_arch_add_fc(sm_arch *arch, int out_features);
/** Number of layers, 0 for NULL. */
SM_API size_t sm_arch_num_layers(const sm_arch *arch);
/** Layer `index`: its kind and parameters (a, b as in sm_layer_kind; 0 where unused). */
SM_API sm_status sm_arch_get_layer(const sm_arch *arch, size_t index, sm_layer_kind *kind,
                                   int *a, int *b);
/** Input shape. Any output pointer may be NULL. */
SM_API sm_status sm_arch_input_shape(const sm_arch *arch, int *channels, int *height, int *width);
/** Output size per image (the feature dimension once the arch ends in fc). */
SM_API size_t sm_arch_output_size(const sm_arch *arch);
/** Total number of trainable parameters. */
SM_API size_t sm_arch_num_params(const sm_arch *arch);
/** Frees an architecture. NULL: no-op. Subnets keep their own copy. */
SM_API void sm_arch_destroy(sm_arch *arch);

/* ---------------------------------------------------------------------------------------------
 * Datasets: labelled greyscale images, decoded once
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_dataset sm_dataset;

/** Opens a dataset laid out as Omniglot ships: `ROOT/<Alphabet>/<character>/<image>.png`, from a
 *  folder or directly from a .zip (with or without directory entries; ROOT may be absent or
 *  nested one level). The class of an image is `<Alphabet>/<character>`. Every image must be a
 *  PNG of exactly `height` x `width` (0, 0 = 105 x 105) pixels (any size 1..4096: build the
 *  architecture for it); colour and alpha PNGs are converted to grey by the grey rule of
 *  "Images" below (since 0.2; 0.1 refused them). Classes may hold any number of images (one
 *  is fine; similar pairs come from the classes with two or more).
 *  `alphabets` (may be NULL when `n_alphabets` is 0) selects alphabets by name; an unknown name
 *  is SM_ERR_DATASET. Classes are sorted by name and images by path, so the order does not
 *  depend on the file system or the zip. Pixels are kept as 8-bit (value / 255).
 *  Statuses: SM_ERR_IO (missing or unreadable path), SM_ERR_FORMAT (corrupt PNG or zip, naming
 *  the file), SM_ERR_SHAPE (wrong image size, naming the file), SM_ERR_DATASET (no images,
 *  fewer than two classes), SM_ERR_LIMIT (a file or zip entry over SM_LIMIT_ENTRY_BYTES, a
 *  PNG side over SM_LIMIT_IMAGE_SIDE, more pixels than SM_LIMIT_DATASET_BYTES: refused before
 *  they are allocated), SM_ERR_INVALID_ARG, SM_ERR_NOMEM. */
SM_API sm_status sm_dataset_open(const char *path, int height, int width,
                                 const char *const *alphabets, size_t n_alphabets,
                                 sm_dataset **out);
/** An empty in-memory dataset of `height` x `width` greyscale images (1..4096 each). */
SM_API sm_status sm_dataset_create(int height, int width, sm_dataset **out);
/** Adds one image with its class label (any non-empty string; "Alphabet/character" makes the
 *  alphabet "Alphabet"). `pixels`: height*width values in [0, 1], stored as round(v * 255).
 *  SM_ERR_INVALID_ARG for NaN or out-of-range values. The dataset copies what it needs.
 *  Modifies the dataset: no other thread may read it (directly, or through a sampler or trainer)
 *  during the call. Samplers and trainers over it see the new image from their next draw. */
SM_API sm_status sm_dataset_add_image(sm_dataset *ds, const char *label, const float *pixels);
/** A generated dataset of handwriting-like glyphs: `n_classes` random stroke figures, each drawn
 *  `per_class` times with random jitter, on white with black ink. The same arguments give the
 *  same images. Classes are grouped into alphabets of 10 ("synthNN"). Used by the examples when
 *  no data is given, and by the tests. */
SM_API sm_status sm_dataset_create_synthetic(int n_classes, int per_class, int height, int width,
                                             uint64_t seed, sm_dataset **out);
/** Frees a dataset and its images. Destroy samplers and trainers over it first. NULL: no-op. */
SM_API void sm_dataset_destroy(sm_dataset *ds);

/** Counts; 0 for NULL. */
SM_API size_t sm_dataset_num_images(const sm_dataset *ds);
SM_API size_t sm_dataset_num_classes(const sm_dataset *ds);
SM_API size_t sm_dataset_num_alphabets(const sm_dataset *ds);
/** Image size; either pointer may be NULL. */
SM_API sm_status sm_dataset_image_size(const sm_dataset *ds, int *height, int *width);
/** Copies image `index` as floats in [0, 1] into `pixels` (height*width values). */
SM_API sm_status sm_dataset_get_image(const sm_dataset *ds, size_t index, float *pixels);
/** Class index of image `index`; SIZE_MAX when out of range. */
SM_API size_t sm_dataset_image_class(const sm_dataset *ds, size_t index);
/** Names, owned by the dataset (valid until it is destroyed); NULL when out of range. */
SM_API const char *sm_dataset_class_name(const sm_dataset *ds, size_t class_index);
SM_API const char *sm_dataset_alphabet_name(const sm_dataset *ds, size_t alphabet_index);
/** Where image `index` came from ("zipfile.zip:inner/path.png", a file path, or "" for images
 *  added in memory). */
SM_API const char *sm_dataset_image_source(const sm_dataset *ds, size_t index);

/** Reads one PNG file of exactly `height` x `width` into `pixels` (floats in [0, 1]); colour
 *  and alpha by the grey rule (since 0.2). sm_image_load_png takes any size. Statuses as
 *  sm_dataset_open. */
SM_API sm_status sm_image_read_png(const char *path, int height, int width, float *pixels);

/* ---------------------------------------------------------------------------------------------
 * Pair sampling (SPEC.md): with probability 1/2 a similar pair (a uniformly chosen class with at
 * least two images, two different images of it; label 1), otherwise a dissimilar pair (two
 * different uniformly chosen classes, one uniformly chosen image of each; label 0).
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_sampler sm_sampler;

/** A seeded sampler over `ds` (borrowed: it must outlive the sampler). SM_ERR_DATASET when the
 *  dataset has fewer than two classes or no class with two images. */
SM_API sm_status sm_sampler_create(const sm_dataset *ds, uint64_t seed, sm_sampler **out);
/** Draws `n` pairs. `left` and `right` receive n images each (n*height*width floats), `labels` n
 *  values (1 similar, 0 dissimilar). `left_index`, `right_index` (optional, may be NULL) receive
 *  the dataset indices of the images. n = 0 does nothing; an n whose buffers could not exist
 *  (n*height*width*sizeof(float) overflows) is SM_ERR_INVALID_ARG. Advances the sampler (one
 *  thread at a time per sampler); only reads the dataset. */
SM_API sm_status sm_sampler_next(sm_sampler *s, size_t n, float *left, float *right,
                                 float *labels, size_t *left_index, size_t *right_index);
/** Frees a sampler (not its dataset). NULL: no-op. */
SM_API void sm_sampler_destroy(sm_sampler *s);

/* ---------------------------------------------------------------------------------------------
 * Models: the twin subnetwork and the FC head
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_subnet sm_subnet;
typedef struct sm_head sm_head;

/** Creates the twin subnetwork for `arch` (copied) on `backend` (borrowed: it must outlive the
 *  subnet), every weight and bias drawn from N(0, 0.01^2) with the library's RNG seeded by
 *  `seed` (the same on every backend). The arch must end in a flat layer (fc).
 *  Statuses: SM_ERR_INVALID_ARG (NULL), SM_ERR_SHAPE (no parameters, output not flat),
 *  SM_ERR_NOMEM. */
SM_API sm_status sm_subnet_create(sm_backend *backend, const sm_arch *arch, uint64_t seed,
                                  sm_subnet **out);
/** Frees a subnet and its backend buffers. Destroy trainers and Adam states using it first.
 *  NULL: no-op. */
SM_API void sm_subnet_destroy(sm_subnet *subnet);
/** A copy of the subnet's architecture (destroy it with sm_arch_destroy). */
SM_API sm_status sm_subnet_get_arch(const sm_subnet *subnet, sm_arch **out);
SM_API size_t sm_subnet_num_params(const sm_subnet *subnet);
/** Length of the feature vector (the last fc's size; 4096 for the reference). */
SM_API size_t sm_subnet_feature_dim(const sm_subnet *subnet);

/** Creates the head: score = sigmoid(w . |F1 - F2| + b), w and b from N(0, 0.01^2) seeded by
 *  `seed`. `backend` is borrowed. SM_ERR_INVALID_ARG (NULL, dim outside 1..2^24), SM_ERR_NOMEM. */
SM_API sm_status sm_head_create(sm_backend *backend, size_t feature_dim, uint64_t seed,
                                sm_head **out);
/** Frees a head and its backend buffers. Destroy trainers and Adam states using it first.
 *  NULL: no-op. */
SM_API void sm_head_destroy(sm_head *head);
SM_API size_t sm_head_feature_dim(const sm_head *head);

/** Embeddings: F = sigmoid(subnet(x)) for `n` images, feature_dim floats each into `features`.
 *  Thread-safe on a const subnet (each call has its own scratch memory), but not while the
 *  subnet trains or loads. Statuses: SM_ERR_INVALID_ARG (NULL pointers, or an n whose buffers
 *  could not exist: n * C*H*W floats overflows size_t), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_embed(const sm_subnet *subnet, size_t n, const float *images, float *features);
/** The similarity score in [0, 1] of two images (1 = same class): sigmoid(w . |F1 - F2| + b),
 *  without the training loss's clip. Each image is C*H*W floats of the subnet's input shape.
 *  Thread-safe on const handles (not while they train or load). Statuses: SM_ERR_INVALID_ARG
 *  (NULL, subnet and head on different backends), SM_ERR_SHAPE (a head of another width),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_predict_pair(const sm_subnet *subnet, const sm_head *head, const float *a,
                                 const float *b, float *score);
/** Scores of `n` pairs (a[i], b[i]) into scores[i]. Works in chunks (16 pairs on the CPU
 *  backends, 32 on cuda), so memory does not grow with n. Statuses as sm_predict_pair; an n whose buffers could not exist (n * C*H*W
 *  floats overflows size_t) is SM_ERR_INVALID_ARG. */
SM_API sm_status sm_predict_pairs(const sm_subnet *subnet, const sm_head *head, size_t n,
                                  const float *a, const float *b, float *scores);

/** Saves subnet + head (architecture included) as a safetensors file, atomically: a failure
 *  (SM_ERR_IO naming the path, SM_ERR_NOMEM) leaves any existing file untouched. SM_ERR_SHAPE
 *  when the head does not fit the subnet. Only reads the model: other threads may predict
 *  with it meanwhile (not train it). */
SM_API sm_status sm_model_save(const sm_subnet *subnet, const sm_head *head, const char *path);
/** Creates a subnet and head on `backend` from a file written by sm_model_save or
 *  sm_trainer_save (format: docs/checkpoint-format.md). Statuses: SM_ERR_IO (missing or
 *  unreadable), SM_ERR_FORMAT (damaged, truncated, checksum mismatch, non-finite values),
 *  SM_ERR_VERSION (a newer format), SM_ERR_SHAPE (a tensor that does not fit the architecture),
 *  SM_ERR_LIMIT (a header or file beyond the size limits), SM_ERR_NOMEM, SM_ERR_INVALID_ARG.
 *  On failure *subnet and *head are not written. */
SM_API sm_status sm_model_load(sm_backend *backend, const char *path, sm_subnet **subnet,
                               sm_head **head);

/* ---------------------------------------------------------------------------------------------
 * Adam (SPEC.md): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_adam sm_adam;

typedef enum sm_adam_param {
    SM_ADAM_LEARNING_RATE = 1, /* default 6e-5, range (0, 1] */
    SM_ADAM_BETA1 = 2,         /* default 0.9,  range [0, 1) */
    SM_ADAM_BETA2 = 3,         /* default 0.99, range [0, 1) */
    SM_ADAM_EPSILON = 4        /* default 1e-8, range (0, 1] */
} sm_adam_param;

/** Adam state (moments, step count) for the parameters of `subnet` and `head` (borrowed: they
 *  must outlive it), with SPEC.md's hyperparameters. SM_ERR_INVALID_ARG (NULL, or subnet and head
 *  on different backends), SM_ERR_NOMEM. */
SM_API sm_status sm_adam_create(sm_subnet *subnet, sm_head *head, sm_adam **out);
/** Frees an Adam state (not the subnet and head it updates). NULL: no-op. */
SM_API void sm_adam_destroy(sm_adam *adam);
/** Sets / gets a hyperparameter; SM_ERR_INVALID_ARG for unknown keys or values out of range. */
SM_API sm_status sm_adam_set(sm_adam *adam, sm_adam_param key, double value);
SM_API sm_status sm_adam_get(const sm_adam *adam, sm_adam_param key, double *value);
/** Number of updates applied (t of the last update); -1 for NULL. */
SM_API int64_t sm_adam_steps(const sm_adam *adam);

/* ---------------------------------------------------------------------------------------------
 * Training
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_trainer sm_trainer;

typedef enum sm_trainer_param {
    SM_TRAINER_BATCH_SIZE = 1,  /* pairs per step, default 180, range 1..65536 */
    SM_TRAINER_MICRO_BATCH = 2, /* pairs per forward/backward chunk, 1..65536; default 16 on
                                   the CPU backends, 32 on cuda; changes memory, not the
                                   result (beyond float rounding) */
    SM_TRAINER_AUGMENT = 3      /* since 0.2: the distortions (an OR of sm_distort_part, below)
                                   sm_train_step applies to each sampled image, each image its
                                   own; 0 = none, the default (the reference); SM_DISTORT_ALL =
                                   Koch et al.'s. Drawn from the trainer's own augmentation RNG
                                   (seeded from the trainer's seed, saved in checkpoints), so
                                   the pairs drawn do not change with it */
} sm_trainer_param;

/** Called after every successful step. */
typedef void (*sm_progress_fn)(void *user, int64_t iteration, float loss);

/** Ties a subnet, head, Adam state and dataset (all borrowed: they must outlive the trainer)
 *  with a pair sampler seeded by `seed`. `dataset` may be NULL if only sm_train_step_batch is
 *  used. SM_ERR_SHAPE if the dataset's images or the head do not fit the subnet,
 *  SM_ERR_INVALID_ARG if the Adam state belongs to another subnet/head. */
SM_API sm_status sm_trainer_create(sm_subnet *subnet, sm_head *head, sm_adam *adam,
                                   const sm_dataset *dataset, uint64_t seed, sm_trainer **out);
/** Frees a trainer and its workspaces; the subnet, head, Adam state and dataset it borrowed
 *  stay. NULL: no-op. */
SM_API void sm_trainer_destroy(sm_trainer *trainer);
/** Sets a trainer parameter (sm_trainer_param gives ranges and defaults). SM_ERR_INVALID_ARG for
 *  an unknown key or a value out of range; SM_ERR_NOMEM when new workspaces cannot be
 *  allocated (the trainer keeps its old sizes). */
SM_API sm_status sm_trainer_set_param(sm_trainer *trainer, sm_trainer_param key, int64_t value);
/** Reads a trainer parameter into `*value`. SM_ERR_INVALID_ARG for NULL or an unknown key. */
SM_API sm_status sm_trainer_get_param(const sm_trainer *trainer, sm_trainer_param key,
                                      int64_t *value);
/** Installs the progress callback called after every successful step (NULL removes it).
 *  It runs on the thread that calls sm_train_step. */
SM_API sm_status sm_trainer_set_progress(sm_trainer *trainer, sm_progress_fn fn, void *user);
/** Completed iterations (0 before the first step); -1 for NULL. */
SM_API int64_t sm_trainer_iteration(const sm_trainer *trainer);

/** One iteration: samples a batch of pairs (distorted when SM_TRAINER_AUGMENT is set), forward,
 *  clipped BCE (mean over the batch), backward, one Adam update. Modifies the trainer, its subnet,
 *  head and Adam state: no other thread may use any of them (predict with the model, step another
 *  trainer of the same subnet) during the call. `loss` (optional) receives the batch loss. Calls
 *  the progress callback on success. Statuses: SM_ERR_NUMERIC if the loss or a gradient is not
 *  finite; SM_ERR_STATE without a dataset; SM_ERR_INVALID_ARG (NULL trainer); SM_ERR_DEVICE. A step
 *  that fails changes nothing: parameters, moments, step count and sampler are as before. */
SM_API sm_status sm_train_step(sm_trainer *trainer, float *loss);
/** One iteration on pairs the caller provides (left[i], right[i], labels[i] in [0, 1], 1 =
 *  similar), each image of the subnet's input shape. Does not advance the sampler.
 *  SM_ERR_INVALID_ARG for NULL buffers, n outside 1..65536 or a label outside [0, 1]; otherwise
 *  as sm_train_step. Never augments (distort them first with sm_image_distort). */
SM_API sm_status sm_train_step_batch(sm_trainer *trainer, size_t n_pairs, const float *left,
                                     const float *right, const float *labels, float *loss);

/** Saves everything needed to resume exactly (subnet, head, Adam moments and hyperparameters,
 *  iteration, sampler RNG state, batch sizes; since 0.2 the augmentation setting and its RNG
 *  state) as one safetensors file, atomically (temporary file, fsync, rename): a failure
 *  leaves any existing file untouched. Health reports' smoothed loss is not saved: it starts
 *  afresh after a load. */
SM_API sm_status sm_trainer_save(const sm_trainer *trainer, const char *path);
/** Restores a file written by sm_trainer_save into this trainer. The file must match the
 *  subnet's architecture (SM_ERR_SHAPE otherwise); a model-only file is SM_ERR_FORMAT. Other
 *  statuses as sm_model_load. On any error nothing in memory changed. Modifies the subnet,
 *  head and Adam state as sm_train_step does (same threading rules). */
SM_API sm_status sm_trainer_load(sm_trainer *trainer, const char *path);

/* ---------------------------------------------------------------------------------------------
 * Images: any PNG, any size (since 0.2)
 *
 * The grey rule. Every PNG the library reads (sm_dataset_open, sm_image_read_png,
 * sm_image_load_png, one-shot run files) becomes one grey level per pixel:
 *  - greyscale PNGs (any bit depth) keep their stored levels exactly, as in 0.1;
 *  - colour, palette and alpha PNGs are composited over white (Omniglot is ink on white):
 *    c' = a c + (1 - a) for each channel c and alpha a in [0, 1] (a = 1 without alpha; the
 *    transparency of a palette or of a colour image's tRNS chunk counts as alpha; greyscale
 *    images ignore tRNS, as in 0.1), then reduced to grey with the
 *    ITU-R BT.601 luma weights on the stored (gamma-encoded) values:
 *    grey = 0.299 R' + 0.587 G' + 0.114 B', and rounded to 8 bits.
 * ------------------------------------------------------------------------------------------- */

/** Reads any PNG (greyscale, colour, palette, with or without alpha, any bit depth, any size up
 *  to SM_LIMIT_IMAGE_SIDE on a side), converts it to grey by the grey rule above and resizes it
 *  to `height` x `width` (1..4096 each) with sm_image_resize, into `pixels` (height*width floats
 *  in [0, 1]). For comparing a user's own images with a model built for that size. `pixels` is
 *  written only on success. Statuses: SM_ERR_IO (missing, unreadable), SM_ERR_FORMAT (not a
 *  valid PNG, naming the file), SM_ERR_LIMIT (a side over SM_LIMIT_IMAGE_SIDE, a file over
 *  SM_LIMIT_ENTRY_BYTES), SM_ERR_INVALID_ARG, SM_ERR_NOMEM. Thread-safe. Since 0.2. */
SM_API sm_status sm_image_load_png(const char *path, int height, int width, float *pixels);

/** Resizes one grey image `src` (src_height x src_width floats) to `dst` (dst_height x
 *  dst_width floats), each axis on its own: an axis that shrinks is area-averaged (each output
 *  pixel is the mean of the source pixels its footprint covers, weighted by the overlap); an
 *  axis that grows or keeps its size is interpolated linearly between pixel centres (centres
 *  aligned, edges clamped), so an unchanged size is an exact copy. `src` and `dst` must not
 *  overlap. Sides 1..4096. SM_ERR_INVALID_ARG, SM_ERR_NOMEM. Thread-safe. Since 0.2. */
SM_API sm_status sm_image_resize(const float *src, int src_height, int src_width, float *dst,
                                 int dst_height, int dst_width);

/* ---------------------------------------------------------------------------------------------
 * Augmentation: Koch et al.'s affine distortions (SPEC.md) (since 0.2)
 *
 * One distortion of an image: each part allowed by the `parts` mask is switched on with
 * probability 1/2, independently: rotation by an angle uniform in +-10 degrees, shear
 * [[1, sx], [sy, 1]] with sx, sy uniform in +-0.3, scale diag(kx, ky) with kx, ky uniform in
 * 0.8..1.2, shift (tx, ty) uniform in +-2 pixels. The map is x' = R Sh Sc (x - c) + c + t about
 * the image centre c; the output is resampled bilinearly from the source, with white (1.0)
 * where it falls outside. Every distortion draws the same 11 random numbers whichever parts
 * are on, so the stream of a seed does not depend on the mask.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_distort_part {
    SM_DISTORT_ROTATE = 1,
    SM_DISTORT_SHEAR = 2,
    SM_DISTORT_SCALE = 4,
    SM_DISTORT_SHIFT = 8,
    SM_DISTORT_ALL = 15 /* Koch et al.'s distortions */
} sm_distort_part;

/** Applies one random distortion (the parts of `parts`, an OR of sm_distort_part; 0 = an exact
 *  copy) drawn from the library's RNG seeded by `seed`, to `src` (height x width floats) into
 *  `dst` (must not overlap `src`). The same seed gives the same distortion on every machine.
 *  SM_ERR_INVALID_ARG (NULL, sides outside 1..4096, unknown bits in `parts`). Thread-safe.
 *  Since 0.2. */
SM_API sm_status sm_image_distort(const float *src, int height, int width, unsigned parts,
                                  uint64_t seed, float *dst);

/* ---------------------------------------------------------------------------------------------
 * Architecture presets (since 0.2)
 * ------------------------------------------------------------------------------------------- */

/** The CPU-friendly preset "laptop": 1x105x105:conv32k10,relu,pool4,conv64k5,relu,pool2,
 *  flatten,fc128 (0.87 M parameters against koch's 27.7 M, about 1/18 of its compute per image),
 *  also reachable as sm_arch_from_string("laptop"). The reference ("koch") stays the default of the
 *  examples. Since 0.2. */
SM_API sm_status sm_arch_create_laptop(sm_arch **out);

/* ---------------------------------------------------------------------------------------------
 * Evaluation: the three numbers of SPEC.md, never mixed (since 0.2)
 *
 * Every evaluation fills an sm_eval_result that says which kind of number it holds. In N-way
 * trials a query is given to the candidate class with the highest score; when several share
 * the highest score the trial earns 1/(number tied) if the correct class is among them, else
 * 0. So a model whose scores are all equal scores exactly chance (1/N), whatever the order of
 * the candidates. Verification: a pair is right when round(score) equals its label (a score
 * of exactly 0.5 rounds up to "same"). docs/evaluation.md gives the protocols.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_eval_kind {
    SM_EVAL_VERIFICATION = 1,     /* random pairs, same/different; chance 50 % */
    SM_EVAL_ONESHOT_RUNS = 2,     /* the official 20-way within-alphabet runs; chance 5 % */
    SM_EVAL_EPISODES_WITHIN = 3,  /* N-way k-shot episodes, classes of one alphabet */
    SM_EVAL_EPISODES_BETWEEN = 4  /* N-way k-shot episodes, classes from any alphabets */
} sm_eval_kind;

/** What an evaluation reports. The caller sets `struct_size` to sizeof(sm_eval_result) before
 *  the call (SM_EVAL_RESULT_INIT does it); the library writes only the fields that fit in it,
 *  so later versions can append fields without breaking older callers. Fields are only ever
 *  appended. */
typedef struct sm_eval_result {
    size_t struct_size;   /* set by the caller */
    sm_eval_kind kind;    /* which of the three numbers this is */
    int n_way;            /* candidate classes per trial (2 for verification: same/different) */
    int k_shot;           /* support images per candidate class (1 for runs, 0 verification) */
    uint64_t trials;      /* queries classified (pairs judged for verification) */
    uint64_t episodes;    /* episodes or runs the trials came from (batches: 1) */
    double correct;       /* credit earned: ties give fractions (see above) */
    double accuracy;      /* correct / trials, in [0, 1] */
    double chance;        /* what a constant model scores: the mean of 1/candidates per trial */
    uint64_t tied;        /* trials whose highest score was shared */
    double score_mean;    /* mean of every score computed */
    double score_std;     /* their standard deviation (0: the model's output is constant) */
} sm_eval_result;

#define SM_EVAL_RESULT_INIT {sizeof(sm_eval_result), (sm_eval_kind)0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/** A short fixed description ("random-pair verification", "20-way one-shot runs",
 *  "N-way episodes within alphabets", ...); "unknown" otherwise. Static storage. Since 0.2. */
SM_API const char *sm_eval_kind_name(sm_eval_kind kind);

/** Verification accuracy, SPEC.md's protocol: `n_pairs` random pairs drawn by a pair sampler
 *  over `ds` seeded by `seed` (the pairs of sm_sampler_create(ds, seed) + sm_sampler_next, so
 *  5 batches of 150 are the first 750 pairs), accuracy = fraction where round(score) == label.
 *  Memory is bounded whatever n_pairs. Only reads its handles (thread rules of
 *  sm_predict_pairs). Statuses: SM_ERR_INVALID_ARG (NULL, n_pairs 0 or over 2^32, result's
 *  struct_size too small), SM_ERR_SHAPE (images do not fit the subnet), SM_ERR_DATASET (the
 *  dataset cannot give pairs), SM_ERR_NOMEM, SM_ERR_DEVICE. `result` is written only on
 *  success. Since 0.2. */
SM_API sm_status sm_verification_accuracy(const sm_subnet *subnet, const sm_head *head,
                                          const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                          sm_eval_result *result);

/** N-way k-shot episodes drawn from `ds`, seeded: each episode picks `n_way` different classes
 *  (within_alphabet != 0: all from one alphabet, chosen uniformly among the alphabets that have
 *  n_way usable classes; else from all usable classes), a class being usable when it has at
 *  least k_shot + 1 images; from each class it picks k_shot + 1 different images: k_shot
 *  support images and one query. Each query is scored against every support image; a class's
 *  score is the mean of its k_shot scores; the query goes to the highest (ties as above). So an
 *  episode is n_way trials. n_way 2..1000, k_shot 1..100, n_episodes 1..1e6. Only reads its
 *  handles. Statuses: SM_ERR_INVALID_ARG, SM_ERR_SHAPE, SM_ERR_DATASET (fewer than n_way usable
 *  classes, in any one alphabet when within_alphabet: the message says how many there are),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. `result` is written only on success. Since 0.2. */
SM_API sm_status sm_oneshot_episodes(const sm_subnet *subnet, const sm_head *head,
                                     const sm_dataset *ds, int n_way, int k_shot,
                                     size_t n_episodes, int within_alphabet, uint64_t seed,
                                     sm_eval_result *result);

/** The official one-shot runs (Lake et al.), decoded once. */
typedef struct sm_oneshot_runs sm_oneshot_runs;

/** Opens runs laid out as the official all_runs: `runNN/training/<name>.png` (the candidates, one
 *  per class), `runNN/test/<name>.png` (the queries) and `runNN/class_labels.txt`, whose lines read
 *  `runNN/test/itemAA.png runNN/training/classBB.png` (query, its correct candidate; one space, LF
 *  or CRLF line ends, the last line end optional). `path` is a folder or a .zip holding the runNN
 *  folders directly or inside one folder (all_runs/runNN/...), or a single run folder. Runs are
 *  sorted by name; a run's candidates by file name; its queries in the file's order. Images must be
 *  PNGs of `height` x `width` (0, 0 = 105 x 105), grey rule above. The parser is strict: a line
 *  that is not two such paths, a path into another run, a file that does not exist, a query listed
 *  twice, a run with fewer than two candidates or no query, ... are SM_ERR_FORMAT naming the file
 *  and line. Other statuses as sm_dataset_open (SM_ERR_IO, SM_ERR_SHAPE, SM_ERR_LIMIT,
 *  SM_ERR_DATASET when no run is found, SM_ERR_NOMEM). Since 0.2. */
SM_API sm_status sm_oneshot_runs_open(const char *path, int height, int width,
                                      sm_oneshot_runs **out);
/** Frees the runs and their images. NULL: no-op. Since 0.2. */
SM_API void sm_oneshot_runs_destroy(sm_oneshot_runs *runs);
/** Number of runs; 0 for NULL. */
SM_API size_t sm_oneshot_runs_count(const sm_oneshot_runs *runs);
/** Total queries over all runs; 0 for NULL. */
SM_API size_t sm_oneshot_runs_num_trials(const sm_oneshot_runs *runs);
/** Run `run`'s name ("run01", owned by the runs) and sizes (either pointer may be NULL).
 *  SM_ERR_INVALID_ARG for NULL runs or an index out of range. */
SM_API sm_status sm_oneshot_run_info(const sm_oneshot_runs *runs, size_t run, const char **name,
                                     size_t *n_candidates, size_t *n_queries);
/** Copies one image of run `run` into `pixels` (height*width floats): candidate `index` when
 *  `query` is 0, else query `index`. `answer` (optional, queries only, else SIZE_MAX) receives
 *  the index of the query's correct candidate. SM_ERR_INVALID_ARG out of range. */
SM_API sm_status sm_oneshot_run_image(const sm_oneshot_runs *runs, size_t run, int query,
                                      size_t index, float *pixels, size_t *answer);
/** Classifies every query of every run against its run's candidates (one-shot, ties as above).
 *  `n_way` in the result is the largest run's candidate count. Only reads its handles.
 *  Statuses: SM_ERR_INVALID_ARG, SM_ERR_SHAPE (the runs' images do not fit the subnet),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. Since 0.2. */
SM_API sm_status sm_oneshot_evaluate_runs(const sm_subnet *subnet, const sm_head *head,
                                          const sm_oneshot_runs *runs, sm_eval_result *result);

/* ---------------------------------------------------------------------------------------------
 * Training health (since 0.2): every so often the trainer measures itself and warns in plain
 * words about the classic failures. Thresholds (docs/evaluation.md):
 *  - SM_HEALTH_STUCK: from iteration 500 on, the smoothed loss (an exponential moving average
 *    of the batch losses with weight 0.02 per step) is within 0.02 of ln 2 = 0.693: the network
 *    still answers 50/50 for every pair ("stuck at 50 %").
 *  - SM_HEALTH_COLLAPSED: from iteration 500 on, the validation scores' standard deviation is
 *    below 1e-3: the scores collapsed to a constant (the accuracy then is chance). (A freshly
 *    initialised network gives nearly equal scores too, hence the wait.)
 *  - SM_HEALTH_VALIDATION_FAILED: measuring the validation set failed (the status is in the
 *    report); the training step itself had succeeded and stays applied.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_health_flag {
    SM_HEALTH_HAS_VALIDATION = 1,     /* the val_* fields hold a fresh measurement */
    SM_HEALTH_STUCK = 2,
    SM_HEALTH_COLLAPSED = 4,
    SM_HEALTH_VALIDATION_FAILED = 8
} sm_health_flag;

/** One health report, valid only during the callback. Fields are only ever appended;
 *  `struct_size` says how many bytes the library filled. */
typedef struct sm_health {
    size_t struct_size;
    int64_t iteration;       /* completed iterations */
    float loss;              /* this iteration's batch loss */
    float smoothed_loss;     /* the moving average described above */
    double val_accuracy;     /* verification accuracy on the validation pairs (with the flag) */
    double val_score_mean;   /* mean and std of their scores */
    double val_score_std;
    uint64_t val_pairs;      /* pairs measured (0 without validation) */
    unsigned flags;          /* an OR of sm_health_flag */
    sm_status val_status;    /* SM_OK, or why validation failed */
    const char *message;     /* plain-words warnings and advice, "" when all is well */
} sm_health;

/** Receives health reports, on the thread that called sm_train_step. It must not call back
 *  into the trainer. */
typedef void (*sm_health_fn)(void *user, const sm_health *health);

/** Asks for a health report after every `every` successful iterations (1..2^31; fn NULL: no
 *  reports, the default). Reports come from sm_train_step and sm_train_step_batch. Since 0.2. */
SM_API sm_status sm_trainer_set_health(sm_trainer *trainer, int64_t every, sm_health_fn fn,
                                       void *user);
/** Measures verification accuracy on `n_pairs` (1..65536) random pairs of `dataset` (borrowed:
 *  it must outlive the trainer or be replaced; NULL: no validation) for each health report,
 *  the same pairs each time (a sampler seeded by `seed` each time), with sm_verification_accuracy.
 *  Validation has its own sampler and never touches the training RNG streams: training with
 *  and without it gives bit-identical parameters. SM_ERR_SHAPE if the images do not fit the
 *  subnet, SM_ERR_DATASET if the dataset cannot give pairs, SM_ERR_INVALID_ARG. Since 0.2. */
SM_API sm_status sm_trainer_set_validation(sm_trainer *trainer, const sm_dataset *dataset,
                                           size_t n_pairs, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
