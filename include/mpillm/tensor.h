/* mpillm tensor: element types, bf16/f16 conversion, the thread pool and the
 * kernels the models are built from (matrix-vector products that stream bf16 or
 * f32 weights, sgemm for prompts, norms, RoPE, softmax, activations). Kernels are
 * chosen at run time for the CPU (AVX-512, AVX2 or scalar); each fast kernel has a
 * slow obvious reference beside it that the tests compare against.
 * OpenBLAS is called from one file of this module only. */
#ifndef MPILLM_TENSOR_H
#define MPILLM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mpillm/core.h"

enum mpl_dtype { MPL_DTYPE_F32 = 0, MPL_DTYPE_BF16, MPL_DTYPE_F16, MPL_DTYPE_COUNT };

/* "f32", "bf16", "f16"; bytes per element. Local. */
const char *mpl_dtype_name(enum mpl_dtype dtype);
size_t mpl_dtype_bytes(enum mpl_dtype dtype);
/* Parses a name; MPL_ERR_ARG naming the value when unknown. Local. */
enum mpl_status mpl_dtype_parse(const char *name, enum mpl_dtype *out);

/* bf16 is the top half of an f32; rounding to nearest even on the way down. */
static inline float mpl_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}
static inline uint16_t mpl_f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = {f};
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
  return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
float mpl_f16_to_f32(uint16_t h);
/* n elements of src (dtype) into dst as f32. Local. */
void mpl_tensor_to_f32(float *dst, const void *src, enum mpl_dtype dtype, size_t n);

#endif
