/* bfloat16 <-> float32 for the engine's C kernels (decode_attention.c,
 * prefill_attention.c), bit for bit as torch converts. inference/c_kernel.py hashes
 * the headers beside a kernel's source into its library's name, so a change here
 * rebuilds both. */
#ifndef RAGSERVE_BF16_H
#define RAGSERVE_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even, as torch does */
    return (uint16_t)(u >> 16);
}

#endif
