/* Decode attention over the slot KV cache: one query token a row, grouped-query heads.
 *
 * Built and loaded by inference/decode_attention.py (the compiler on the machine,
 * -march=native, OpenMP from the runtime torch already loaded). Each (row, KV head)
 * is one work item: the row's `rep` query heads of that KV head read the head's keys
 * once (scores into a buffer), take the softmax, and read its values once. Only the
 * row's own `length` positions are read, so no row pays for a longer neighbour and
 * nothing unwritten is touched. Arithmetic is float32 whatever the cache holds.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

#define MAX_REP 16
#define MAX_DIM 256

/* One (row, KV head) item. T is the cache's element type, LOAD reads one as float. */
#define ITEM_BODY(T, LOAD)                                                              \
    const T *kbase = keys + slot * slot_stride + head * head_stride;                   \
    const T *vbase = values + slot * slot_stride + head * head_stride;                 \
    float qf[MAX_REP][MAX_DIM];                                                         \
    for (int64_t r = 0; r < rep; r++)                                                   \
        for (int64_t d = 0; d < dim; d++) qf[r][d] = LOAD(qrow[r * dim + d]) * scale;   \
    for (int64_t pos = 0; pos < length; pos++) {                                        \
        const T *k = kbase + pos * dim;                                                 \
        float kf[MAX_DIM];                                                              \
        _Pragma("omp simd")                                                             \
        for (int64_t d = 0; d < dim; d++) kf[d] = LOAD(k[d]);                           \
        for (int64_t r = 0; r < rep; r++) {                                             \
            float s = 0.0f;                                                             \
            _Pragma("omp simd reduction(+ : s)")                                        \
            for (int64_t d = 0; d < dim; d++) s += qf[r][d] * kf[d];                    \
            scores[r * length + pos] = s;                                               \
        }                                                                               \
    }                                                                                   \
    float acc[MAX_REP][MAX_DIM];                                                        \
    for (int64_t r = 0; r < rep; r++) {                                                 \
        float *row_scores = scores + r * length;                                        \
        float top = row_scores[0];                                                        \
        for (int64_t pos = 0; pos < length; pos++)                                      \
            top = row_scores[pos] > top ? row_scores[pos] : top;                        \
        float total = 0.0f;                                                             \
        _Pragma("omp simd reduction(+ : total)")                                        \
        for (int64_t pos = 0; pos < length; pos++) {                                    \
            float e = expf(row_scores[pos] - top);                                      \
            row_scores[pos] = e;                                                        \
            total += e;                                                                 \
        }                                                                               \
        float inv = 1.0f / total;                                                       \
        for (int64_t pos = 0; pos < length; pos++) row_scores[pos] *= inv;              \
        for (int64_t d = 0; d < dim; d++) acc[r][d] = 0.0f;                             \
    }                                                                                   \
    for (int64_t pos = 0; pos < length; pos++) {                                        \
        const T *v = vbase + pos * dim;                                                 \
        for (int64_t r = 0; r < rep; r++) {                                             \
            float p = scores[r * length + pos];                                         \
            _Pragma("omp simd")                                                         \
            for (int64_t d = 0; d < dim; d++) acc[r][d] += p * LOAD(v[d]);              \
        }                                                                               \
    }

#define DEFINE_KERNEL(NAME, T, LOAD, STORE)                                             \
    int NAME(const T *q, const T *keys, const T *values, const int64_t *slots,          \
             const int64_t *lengths, T *out, int64_t rows, int64_t kv_heads,            \
             int64_t rep, int64_t dim, int64_t slot_stride, int64_t head_stride,        \
             int64_t max_length, float scale, int threads) {                            \
        if (rep > MAX_REP || dim > MAX_DIM) return 1;                                   \
        int failed = 0;                                                                 \
        _Pragma("omp parallel num_threads(threads)")                                    \
        {                                                                               \
            float *scores = malloc(sizeof(float) * (size_t)(rep * max_length));         \
            if (scores == NULL) {                                                       \
                _Pragma("omp atomic write") failed = 2;                                 \
            }                                                                           \
            _Pragma("omp for schedule(dynamic, 1)")                                     \
            for (int64_t item = 0; item < rows * kv_heads; item++) {                    \
                if (scores == NULL) continue;                                           \
                int64_t row = item / kv_heads, head = item % kv_heads;                  \
                int64_t slot = slots[row], length = lengths[row];                       \
                const T *qrow = q + (row * kv_heads + head) * rep * dim;                \
                T *orow = out + (row * kv_heads + head) * rep * dim;                    \
                ITEM_BODY(T, LOAD)                                                      \
                for (int64_t r = 0; r < rep; r++)                                       \
                    for (int64_t d = 0; d < dim; d++) orow[r * dim + d] = STORE(acc[r][d]); \
            }                                                                           \
            free(scores);                                                               \
        }                                                                               \
        return failed;                                                                  \
    }

#define LOAD_F32(x) (x)
#define STORE_F32(x) (x)

DEFINE_KERNEL(decode_attention_bf16, uint16_t, bf16_to_f32, f32_to_bf16)
DEFINE_KERNEL(decode_attention_f32, float, LOAD_F32, STORE_F32)
