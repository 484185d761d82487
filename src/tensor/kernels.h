/* Private to src/tensor: the per-ISA kernels behind mpl_tensor_linear and friends,
 * and the BLAS file's entry points. */
#ifndef MPILLM_TENSOR_KERNELS_H
#define MPILLM_TENSOR_KERNELS_H

#include "mpillm/tensor.h"

/* Memory a kernel may pull into L2 while it works on what is already there: the next
 * block of weights, during the later passes over the current one. A kernel that can
 * advances `at` by the lines it asked for (at most one per step of its loop); NULL or
 * at == end: nothing to fetch. */
struct mpl_prefetch {
  const char *at, *end;
};

/* y[t][o] = dot(w[o], x[t]) for t < n_x (1..4; 1..6 for AVX-512), o in [row0, row1).
 * w: [..][n_in]. */
#define MPL_ROWS_KERNEL(isa)                                                                 \
  void mpl_tensor__rows_##isa(float *y, int64_t ldy, const float *x, int64_t ldx, int n_x,  \
                              const void *w, enum mpl_dtype dtype, int64_t row0, int64_t row1, \
                              int n_in, struct mpl_prefetch *next)
MPL_ROWS_KERNEL(scalar);
MPL_ROWS_KERNEL(avx2);
MPL_ROWS_KERNEL(avx512);

float mpl_tensor__dot_scalar(const float *a, const float *b, int n);
float mpl_tensor__dot_avx2(const float *a, const float *b, int n);
float mpl_tensor__dot_avx512(const float *a, const float *b, int n);
/* Sum of n_bytes (a multiple of 64) read as f32: the bandwidth probe's loop. */
float mpl_tensor__sum_scalar(const float *a, size_t n);
float mpl_tensor__sum_avx2(const float *a, size_t n);
float mpl_tensor__sum_avx512(const float *a, size_t n);

/* bf16 widened to f32 (mpl_tensor_to_f32 with the vector kernels). */
void mpl_tensor__bf16_to_f32(float *dst, const uint16_t *src, size_t n);
void mpl_tensor__bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void mpl_tensor__bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n);

/* blas.c: y[n][ldy] = x[n][ldx] * w^T for w [n_rows][n_in] f32, one thread. */
void mpl_tensor__sgemm_nt(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                          int n, int n_rows, int n_in);
/* blas.c: y[n][ldy] = x[n][ldx] * w[k][ldw] (+ beta y): m columns, one thread. */
void mpl_tensor__sgemm_nn(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                          int n, int k, int m, float beta);
/* blas.c: the name of the kernel set OpenBLAS chose for this CPU ("SkylakeX", ...). */
const char *mpl_tensor__blas_core(void);
/* Tells OpenBLAS how many threads the pool has (it runs single-threaded beside a pool). */
void mpl_tensor__blas_threads(int n_pool_threads);

#endif
