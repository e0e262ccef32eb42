// SPDX-License-Identifier: MIT
// The index-faiss module (lib/plugin/index_plugin.h): approximate L1 nearest-neighbour search
// with Faiss (Debian libfaiss-dev 1.7.3, linked statically: Debian ships only libfaiss.a), for
// the gallery's candidate search (lib/gallery/gallery_index*.c, docs/gallery.md).
//
//  - HNSW: faiss::IndexHNSW over a flat storage whose distance is ours (l1 below).
//  - IVF: faiss::IndexIVFFlat with an L2 k-means coarse quantizer (faiss's BLAS path) and an
//    L1 scan of the probed lists. Faiss 1.7.3's IndexIVFFlat builds with METRIC_L1 but throws
//    "metric type not supported" at search (from inside an OpenMP region, which terminates the
//    process): the scanner is ours, the lists, the probing and the heaps are faiss's.
//
// Why our own L1 distance: Debian builds faiss for generic x86-64 without -ffast-math, and its
// L1 loop (fvec_L1_ref) is scalar: an HNSW build over 10^5 rows of 112 floats took 180 s
// against 60 s with the kernel below (AMD EPYC, one thread). The kernel sums in 16 fixed lanes,
// each in row order, then the lanes in order: the same bits from the SSE, AVX2 and AVX-512
// clones (target_clones picks one at load), so an index answers alike on every x86-64.
//
// Determinism: single-threaded builds are reproducible (HNSW draws node levels from a fixed
// seed and links nodes in order; k-means samples with `seed`). With several threads HNSW links
// nodes concurrently and the graph depends on timing. Searching an index is deterministic: each
// query is answered alone, whatever the thread count. Faiss 1.7.3 counts search statistics in
// unlocked globals (hnsw_stats, indexIVF_stats), so searches run one at a time here (search_lock).
//
// Exceptions never cross into C: every call catches them (a throw inside an OpenMP region cannot
// be caught, so the core checks every parameter before it calls).
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissException.h>
#include <omp.h>

#include <cstdio>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>

extern "C" {
#include "index_plugin.h"
}

#define STR2(x) #x
#define STR(x) STR2(x)

namespace {

using idx_t = faiss::Index::idx_t;

enum { LANES = 16 };

__attribute__((target_clones("avx512f", "avx2", "default"))) float l1(const float *a,
                                                                     const float *b, size_t d)
{
    float acc[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= d; j += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += __builtin_fabsf(a[j + l] - b[j + l]);
    for (int l = 0; j < d; j++, l++) acc[l] += __builtin_fabsf(a[j] - b[j]);
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

// Rows stored as faiss::IndexFlat stores them, compared by l1.
struct L1Distance : faiss::FlatCodesDistanceComputer {
    size_t d;
    const float *q = nullptr;
    L1Distance(const uint8_t *codes, size_t dim)
        : FlatCodesDistanceComputer(codes, dim * sizeof(float)), d(dim)
    {
    }
    void set_query(const float *x) override { q = x; }
    float distance_to_code(const uint8_t *code) override
    {
        return l1(q, reinterpret_cast<const float *>(code), d);
    }
    float symmetric_dis(idx_t i, idx_t j) override
    {
        return l1(reinterpret_cast<const float *>(codes + i * code_size),
                  reinterpret_cast<const float *>(codes + j * code_size), d);
    }
};

struct FlatL1 : faiss::IndexFlat {
    explicit FlatL1(idx_t dim) : faiss::IndexFlat(dim, faiss::METRIC_L1) {}
    faiss::FlatCodesDistanceComputer *get_FlatCodesDistanceComputer() const override
    {
        return new L1Distance(codes.data(), (size_t)d);
    }
};

struct L1Scanner : faiss::InvertedListScanner {
    size_t d;
    const float *q = nullptr;
    L1Scanner(size_t dim, bool store_pairs, const faiss::IDSelector *sel)
        : faiss::InvertedListScanner(store_pairs, sel), d(dim)
    {
        keep_max = false; // smaller is nearer
        code_size = dim * sizeof(float);
    }
    void set_query(const float *x) override { q = x; }
    void set_list(idx_t list, float) override { list_no = list; }
    float distance_to_code(const uint8_t *code) const override
    {
        return l1(q, reinterpret_cast<const float *>(code), d);
    }
};

struct IVFL1 : faiss::IndexIVFFlat {
    IVFL1(faiss::Index *quantizer, size_t dim, size_t lists)
        : faiss::IndexIVFFlat(quantizer, dim, lists, faiss::METRIC_L1)
    {
    }
    faiss::InvertedListScanner *get_InvertedListScanner(bool store_pairs,
                                                        const faiss::IDSelector *sel) const override
    {
        return new L1Scanner((size_t)d, store_pairs, sel);
    }
};

struct Handle {
    int kind = 0;
    faiss::Index *index = nullptr;
    ~Handle() { delete index; }
};

std::mutex search_lock;

// Sets the calling thread's OpenMP team size for one call, and restores it.
struct OmpThreads {
    int before;
    explicit OmpThreads(int n) : before(omp_get_max_threads()) { omp_set_num_threads(n < 1 ? 1 : n); }
    ~OmpThreads() { omp_set_num_threads(before); }
};

template <typename F> int guarded(const char *what, char *err, size_t cap, F f)
{
    try {
        f();
        return SM_INDEX_OK;
    } catch (const std::bad_alloc &) {
        std::snprintf(err, cap, "%s: out of memory", what);
        return SM_INDEX_NOMEM;
    } catch (const faiss::FaissException &e) {
        std::snprintf(err, cap, "%s: faiss: %s", what, e.what());
    } catch (const std::exception &e) {
        std::snprintf(err, cap, "%s: %s", what, e.what());
    } catch (...) {
        std::snprintf(err, cap, "%s: unknown C++ exception", what);
    }
    return SM_INDEX_FAILED;
}

int build(const sm_index_build_args *a, void **out, char *err, size_t cap)
{
    Handle *h = nullptr;
    int rc = guarded("building the index", err, cap, [&] {
        h = new Handle;
        h->kind = a->kind;
        const idx_t d = (idx_t)a->dim, n = (idx_t)a->n;
        OmpThreads threads(a->threads);
        if (a->kind == SM_INDEX_HNSW) {
            auto *hnsw = new faiss::IndexHNSW(new FlatL1(d), (int)a->hnsw_m);
            h->index = hnsw;
            hnsw->own_fields = true;
            hnsw->hnsw.efConstruction = (int)a->hnsw_ef_construction;
            hnsw->add(n, a->rows);
        } else if (a->kind == SM_INDEX_IVF) {
            auto *quantizer = new faiss::IndexFlatL2(d);
            IVFL1 *ivf;
            try {
                ivf = new IVFL1(quantizer, (size_t)d, a->ivf_lists);
            } catch (...) {
                delete quantizer;
                throw;
            }
            h->index = ivf;
            ivf->own_fields = true;
            // k-means on at most 64 rows per list, 10 rounds: about 1 % of recall below faiss's
            // defaults (256 rows, 25 rounds) at a tenth of the time; no warning printed for
            // fewer than 39 rows per list (the library never prints)
            ivf->cp.niter = 10;
            ivf->cp.max_points_per_centroid = 64;
            ivf->cp.min_points_per_centroid = 1;
            ivf->cp.seed = (int)(a->seed & 0x7fffffff);
            ivf->train(n, a->rows);
            ivf->add(n, a->rows);
        } else {
            throw std::invalid_argument("unknown index kind");
        }
    });
    if (rc != SM_INDEX_OK) {
        delete h;
        return rc;
    }
    *out = h;
    return SM_INDEX_OK;
}

int search(const void *index, const sm_index_search_args *a, char *err, size_t cap)
{
    const Handle *h = static_cast<const Handle *>(index);
    return guarded("searching the index", err, cap, [&] {
        std::lock_guard<std::mutex> lock(search_lock);
        OmpThreads threads(a->threads);
        static_assert(sizeof(idx_t) == sizeof(int64_t), "faiss ids are 64-bit");
        idx_t *ids = reinterpret_cast<idx_t *>(a->ids);
        if (h->kind == SM_INDEX_HNSW) {
            faiss::SearchParametersHNSW p;
            p.efSearch = (int)a->effort;
            h->index->search((idx_t)a->n_queries, a->queries, (idx_t)a->k, a->distances, ids, &p);
        } else {
            faiss::SearchParametersIVF p;
            p.nprobe = a->effort;
            h->index->search((idx_t)a->n_queries, a->queries, (idx_t)a->k, a->distances, ids, &p);
        }
    });
}

size_t bytes(const void *index)
{
    const Handle *h = static_cast<const Handle *>(index);
    if (!h || !h->index) return 0;
    if (h->kind == SM_INDEX_HNSW) {
        const auto *x = static_cast<const faiss::IndexHNSW *>(h->index);
        const auto *flat = static_cast<const faiss::IndexFlat *>(x->storage);
        return flat->codes.size() + x->hnsw.neighbors.size() * sizeof(x->hnsw.neighbors[0]) +
               x->hnsw.offsets.size() * sizeof(size_t) + x->hnsw.levels.size() * sizeof(int);
    }
    const auto *x = static_cast<const faiss::IndexIVF *>(h->index);
    size_t total = (size_t)x->quantizer->ntotal * (size_t)x->d * sizeof(float);
    for (size_t l = 0; l < x->nlist; l++)
        total += x->invlists->list_size(l) * (x->code_size + sizeof(idx_t));
    return total;
}

void destroy(void *index) { delete static_cast<Handle *>(index); }

} // namespace

extern "C" __attribute__((visibility("default"))) int sm_index_module_entry(uint32_t abi,
                                                                          sm_index_module_ops *ops)
{
    if (!ops) return 1;
    ops->abi = SM_INDEX_MODULE_ABI; // the core compares it and names both on a mismatch
    ops->name = "faiss " STR(FAISS_VERSION_MAJOR) "." STR(FAISS_VERSION_MINOR) "." STR(
        FAISS_VERSION_PATCH);
    ops->build = build;
    ops->search = search;
    ops->bytes = bytes;
    ops->destroy = destroy;
    return abi == SM_INDEX_MODULE_ABI ? 0 : 1;
}
