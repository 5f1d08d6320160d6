// bench_vector's hnswlib reference (issue 7): a C interface over
// hnswlib::HierarchicalNSW<float> with L2 distance, compiled into
// bench_vector with -O3 -march=native.  Only built when the hnswlib headers
// (Debian libhnswlib-dev) are found; see tools/bench/CMakeLists.txt.
#include <hnswlib/hnswlib.h>
#include <cstdint>
#include <cstdio>
#include <exception>

namespace {
struct ref {
    hnswlib::L2Space space;
    hnswlib::HierarchicalNSW<float> *index;
    ref(int dim, size_t maxn, int M, int efc) : space((size_t)dim), index(nullptr)
    {
        index = new hnswlib::HierarchicalNSW<float>(&space, maxn, (size_t)M, (size_t)efc, 100);
    }
    ~ref() { delete index; }
};
}  // namespace

extern "C" {

void *vref_hnsw_new(int dim, size_t maxn, int M, int efc)
{
    try { return new ref(dim, maxn, M, efc); } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib: %s\n", e.what());
        return nullptr;
    }
}

int vref_hnsw_add(void *h, const float *v, size_t label)
{
    try { static_cast<ref *>(h)->index->addPoint(v, (hnswlib::labeltype)label); } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib add: %s\n", e.what());
        return -1;
    }
    return 0;
}

int vref_hnsw_delete(void *h, size_t label)
{
    try { static_cast<ref *>(h)->index->markDelete((hnswlib::labeltype)label); } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib delete: %s\n", e.what());
        return -1;
    }
    return 0;
}

void vref_hnsw_set_ef(void *h, int ef) { static_cast<ref *>(h)->index->setEf((size_t)ef); }

// The k nearest labels, nearest first; returns how many.
int vref_hnsw_search(void *h, const float *q, int k, int64_t *labels)
{
    auto res = static_cast<ref *>(h)->index->searchKnn(q, (size_t)k);
    int n = (int)res.size();
    for (int i = n - 1; i >= 0; i--) {
        labels[i] = (int64_t)res.top().second;
        res.pop();
    }
    return n;
}

int vref_hnsw_save(void *h, const char *path)
{
    try { static_cast<ref *>(h)->index->saveIndex(path); } catch (const std::exception &e) {
        std::fprintf(stderr, "hnswlib save: %s\n", e.what());
        return -1;
    }
    return 0;
}

void vref_hnsw_free(void *h) { delete static_cast<ref *>(h); }

}  // extern "C"
