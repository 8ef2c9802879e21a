/* Prefill attention over the slot KV cache: a prompt chunk's query rows, causal,
 * grouped-query heads.
 *
 * Built and loaded by inference/prefill_attention.py (inference/c_kernel.py: the
 * compiler on the machine, -march=native, OpenMP from the runtime torch already
 * loaded). First each KV head's keys, transposed, and values are copied as float32
 * into tiles of KT positions. Then a work item is one KV head and a block of QB query
 * positions: their `rep` query heads each (the item's rows) walk the head's tiles
 * from position 0 with an online softmax (flash attention's running maximum and sum),
 * RB rows a pass so a tile is read once for RB rows. Arithmetic is float32 whatever
 * the cache holds. Tiles start at multiples of KT from the sequence's start, not the
 * chunk's, so a row's result does not depend on where its chunk begins: a prompt
 * prefilled in one chunk or in several gives the same bits.
 *
 * Vectors are GCC's vector extensions (16 floats): AVX-512 registers where the CPU
 * has them, pairs of AVX2 registers where it does not.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define KT 16      /* key positions a tile: one vector of scores a row */
#define RB 6       /* rows that share one pass over a tile */
#define QB 8       /* query positions a work item */
#define MAX_REP 16 /* query heads a KV head */
#define NEG (-1e30f) /* a masked score (-ffast-math assumes no infinities) */
#define MAX_ROWS (QB * MAX_REP + RB)

#define LOAD_F32(x) (x)
#define STORE_F32(x) (x)

static inline float hmax(v16f x) {
    float m = x[0];
    for (int i = 1; i < 16; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static inline float hsum(v16f x) {
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += x[i];
    return s;
}

static inline v16f vexp(v16f x) {
    v16f y;
    _Pragma("omp simd")
    for (int i = 0; i < 16; i++) y[i] = expf(x[i]);
    return y;
}

/* One thread's rows: queries (scaled), running sums and maxima, each row's position. */
typedef struct {
    v16f acc[MAX_ROWS][256 / 16];
    float qv[MAX_ROWS][256];
    float top[MAX_ROWS], total[MAX_ROWS];
    int32_t pos[MAX_ROWS];
} Rows;

/* DIM: the head's width (a multiple of 16, at most 256); T: the cache's element type.
 * q row p (p < length) is at q + p * q_stride, laid out [kv_heads][rep][DIM]; out
 * likewise with out_stride; keys and values are one slot's [kv_heads][...][DIM] with
 * head_stride between heads, positions 0 .. start + length - 1 written. */
#define DEFINE_KERNEL(NAME, T, LOAD, STORE, DIM)                                          \
    int NAME(const T *q, int64_t q_stride, const T *keys, const T *values,               \
             int64_t head_stride, T *out, int64_t out_stride, int64_t length,            \
             int64_t start, int64_t kv_heads, int64_t rep, float scale, int threads) {    \
        enum { NV = (DIM) / 16 };                                                         \
        if (rep > MAX_REP) return 1;                                                      \
        int64_t end = start + length, tiles = (end + KT - 1) / KT, span = tiles * KT;     \
        size_t bytes = sizeof(float) * (size_t)(kv_heads * span * (DIM));                 \
        float *kt = aligned_alloc(64, bytes), *vt = aligned_alloc(64, bytes);             \
        if (kt == NULL || vt == NULL) {                                                   \
            free(kt);                                                                     \
            free(vt);                                                                     \
            return 2;                                                                     \
        }                                                                                 \
        int64_t blocks = (length + QB - 1) / QB;                                          \
        int failed = 0;                                                                   \
        _Pragma("omp parallel num_threads(threads)")                                      \
        {                                                                                 \
            _Pragma("omp for schedule(static)")                                           \
            for (int64_t ht = 0; ht < kv_heads * tiles; ht++) {                           \
                int64_t head = ht / tiles, j0 = (ht % tiles) * KT;                        \
                const T *kb = keys + head * head_stride, *vb = values + head * head_stride; \
                float *ktile = kt + (head * span + j0) * (DIM); /* [DIM][KT] */           \
                float *vtile = vt + (head * span + j0) * (DIM); /* [KT][DIM] */           \
                for (int64_t j = 0; j < KT; j++) {                                        \
                    int in = j0 + j < end; /* past `end`: zeros, never garbage */         \
                    for (int64_t d = 0; d < (DIM); d++) {                                 \
                        ktile[d * KT + j] = in ? LOAD(kb[(j0 + j) * (DIM) + d]) : 0.0f;   \
                        vtile[j * (DIM) + d] = in ? LOAD(vb[(j0 + j) * (DIM) + d]) : 0.0f; \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
            Rows *w = aligned_alloc(64, sizeof(Rows));                                    \
            if (w == NULL) {                                                              \
                _Pragma("omp atomic write") failed = 2;                                   \
            }                                                                             \
            /* the longest blocks first: dynamic scheduling then evens out the causal     \
               triangle */                                                                \
            _Pragma("omp for schedule(dynamic, 1)")                                       \
            for (int64_t item = 0; item < kv_heads * blocks; item++) {                    \
                if (w == NULL) continue;                                                  \
                int64_t head = item % kv_heads, first = (blocks - 1 - item / kv_heads) * QB; \
                int64_t count = length - first < QB ? length - first : QB;                \
                int64_t rows = count * rep, padded = (rows + RB - 1) / RB * RB;           \
                for (int64_t r = 0; r < padded; r++) { /* padding repeats the last row */ \
                    int64_t src = r < rows ? r : rows - 1;                                \
                    int64_t p = first + src / rep, h = src % rep;                         \
                    const T *qrow = q + p * q_stride + (head * rep + h) * (DIM);          \
                    for (int64_t d = 0; d < (DIM); d++) w->qv[r][d] = LOAD(qrow[d]) * scale; \
                    for (int v = 0; v < NV; v++) w->acc[r][v] = (v16f){0};                \
                    w->top[r] = NEG;                                                      \
                    w->total[r] = 0.0f;                                                   \
                    w->pos[r] = (int32_t)(start + p);                                     \
                }                                                                         \
                const v16i iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; \
                const v16i neg = (v16i)((v16f){0} + NEG);                                 \
                int64_t last = start + first + count - 1; /* the block's last position */ \
                for (int64_t j0 = 0; j0 <= last; j0 += KT) {                              \
                    const v16f *ktile = (const v16f *)(kt + (head * span + j0) * (DIM));  \
                    const v16f *vtile = (const v16f *)(vt + (head * span + j0) * (DIM));  \
                    for (int64_t g = 0; g < padded; g += RB) {                            \
                        if (w->pos[g + RB - 1] < j0) continue; /* sees none of it */      \
                        v16f s[RB];                                                       \
                        for (int r = 0; r < RB; r++) s[r] = (v16f){0};                    \
                        for (int64_t d = 0; d < (DIM); d++) {                             \
                            v16f k = ktile[d];                                            \
                            for (int r = 0; r < RB; r++) s[r] += w->qv[g + r][d] * k;     \
                        }                                                                 \
                        int whole = w->pos[g] >= j0 + KT - 1; /* every row sees it all */ \
                        for (int r = 0; r < RB; r++) {                                    \
                            if (!whole) {                                                 \
                                v16i seen = iota <= (v16i){0} + (w->pos[g + r] - (int32_t)j0); \
                                s[r] = (v16f)(((v16i)s[r] & seen) | (neg & ~seen));       \
                            }                                                             \
                            float m = hmax(s[r]), before = w->top[g + r];                 \
                            m = m > before ? m : before;                                  \
                            float corr = expf(before - m);                                \
                            s[r] = vexp(s[r] - m);                                        \
                            w->top[g + r] = m;                                            \
                            w->total[g + r] = w->total[g + r] * corr + hsum(s[r]);        \
                            for (int v = 0; v < NV; v++) w->acc[g + r][v] *= corr;        \
                        }                                                                 \
                        for (int64_t j = 0; j < KT; j++)                                  \
                            for (int v = 0; v < NV; v++) {                                \
                                v16f vv = vtile[j * NV + v];                              \
                                for (int r = 0; r < RB; r++) w->acc[g + r][v] += s[r][j] * vv; \
                            }                                                             \
                    }                                                                     \
                }                                                                         \
                for (int64_t r = 0; r < rows; r++) {                                      \
                    int64_t p = first + r / rep, h = r % rep;                             \
                    T *orow = out + p * out_stride + (head * rep + h) * (DIM);            \
                    float inv = 1.0f / w->total[r];                                       \
                    for (int v = 0; v < NV; v++)                                          \
                        for (int64_t e = 0; e < 16; e++)                                  \
                            orow[v * 16 + e] = STORE(w->acc[r][v][e] * inv);              \
                }                                                                         \
            }                                                                             \
            free(w);                                                                      \
        }                                                                                 \
        free(kt);                                                                         \
        free(vt);                                                                         \
        return failed;                                                                    \
    }

DEFINE_KERNEL(prefill_attention_bf16_64, uint16_t, bf16_to_f32, f32_to_bf16, 64)
DEFINE_KERNEL(prefill_attention_f32_64, float, LOAD_F32, STORE_F32, 64)
DEFINE_KERNEL(prefill_attention_bf16_128, uint16_t, bf16_to_f32, f32_to_bf16, 128)
DEFINE_KERNEL(prefill_attention_f32_128, float, LOAD_F32, STORE_F32, 128)
