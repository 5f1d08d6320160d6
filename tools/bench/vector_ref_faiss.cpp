// bench_vector's FAISS reference (issue 7): a C interface over
// faiss::IndexHNSWFlat (L2).  OpenMP is held to one thread per call so the
// build is single-threaded and each query thread of the benchmark runs its
// own searches.  Only built when the FAISS headers and library (Debian
// libfaiss-dev) are found; see tools/bench/CMakeLists.txt.
#include <faiss/IndexHNSW.h>
#include <faiss/index_io.h>
#include <omp.h>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

extern "C" {

void *vref_faiss_new(int dim, int M, int efc)
{
    try {
        auto *ix = new faiss::IndexHNSWFlat(dim, M);
        ix->hnsw.efConstruction = efc;
        return ix;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss: %s\n", e.what());
        return nullptr;
    }
}

int vref_faiss_add(void *h, size_t n, const float *v)
{
    omp_set_num_threads(1);
    try { static_cast<faiss::IndexHNSWFlat *>(h)->add((faiss::Index::idx_t)n, v); } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss add: %s\n", e.what());
        return -1;
    }
    return 0;
}

void vref_faiss_set_ef(void *h, int ef) { static_cast<faiss::IndexHNSWFlat *>(h)->hnsw.efSearch = ef; }

// The k nearest ids, nearest first; returns how many.
int vref_faiss_search(void *h, const float *q, int k, int64_t *labels)
{
    omp_set_num_threads(1);
    float d[1024];
    faiss::Index::idx_t l[1024];
    if (k > 1024) k = 1024;
    static_cast<faiss::IndexHNSWFlat *>(h)->search(1, q, k, d, l);
    int n = 0;
    for (int i = 0; i < k; i++)
        if (l[i] >= 0) labels[n++] = (int64_t)l[i];
    return n;
}

int vref_faiss_save(void *h, const char *path)
{
    try { faiss::write_index(static_cast<faiss::IndexHNSWFlat *>(h), path); } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss save: %s\n", e.what());
        return -1;
    }
    return 0;
}

void vref_faiss_free(void *h) { delete static_cast<faiss::IndexHNSWFlat *>(h); }

}  // extern "C"
