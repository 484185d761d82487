/* AVX2 + FMA kernels: weight rows streamed once against up to four activation rows,
 * bf16 widened to f32 in registers (a shift), scalar tails. */
#include <immintrin.h>

#include "tensor/kernels.h"

#define INLINE static inline __attribute__((always_inline))
/* software prefetch distance of the weight stream: measured best of 512..4096 for
 * one thread (the hardware prefetcher alone left ~25% of the bandwidth unused) */
#define PREFETCH_BYTES 2048

INLINE __m256 load8(const void *w, bool bf16, int64_t i) {
  if (bf16) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  return _mm256_loadu_ps((const float *)w + i);
}

INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

INLINE float weight_at(const void *w, bool bf16, int64_t i) {
  return bf16 ? mpl_bf16_to_f32(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

INLINE void rows_n(const int N, const bool bf16, float *y, int64_t ldy, const float *x, int64_t ldx,
                   const void *w, int64_t row0, int64_t row1, int n_in) {
  for (int64_t o = row0; o < row1; o++) {
    const void *wr = bf16 ? (const void *)((const uint16_t *)w + o * n_in)
                          : (const void *)((const float *)w + o * n_in);
    __m256 acc0[4], acc1[4];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < N; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n_in; i += 16) {
      /* the weight stream, PREFETCH_BYTES ahead (past the row's end is harmless) */
      _mm_prefetch((const char *)wr + (bf16 ? 2 : 4) * i + PREFETCH_BYTES, _MM_HINT_T0);
      __m256 w0 = load8(wr, bf16, i), w1 = load8(wr, bf16, i + 8);
      _Pragma("GCC unroll 8")
      for (int t = 0; t < N; t++) {
        acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + i), acc0[t]);
        acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * ldx + i + 8), acc1[t]);
      }
    }
    for (; i + 8 <= n_in; i += 8) {
      __m256 w0 = load8(wr, bf16, i);
      _Pragma("GCC unroll 8")
      for (int t = 0; t < N; t++)
        acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + i), acc0[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < N; t++) {
      float s = hsum(_mm256_add_ps(acc0[t], acc1[t]));
      for (int j = i; j < n_in; j++) s += weight_at(wr, bf16, j) * x[t * ldx + j];
      y[t * ldy + o] = s;
    }
  }
}

MPL_ROWS_KERNEL(avx2) {
  /* the next block's prefetch (struct mpl_prefetch), one line per 16 inputs of a row,
   * left kernel-bench's 8-64 rows as fast or slower here (MPILLM_KERNELS=avx2 on an
   * AVX-512 Xeon, 3 alternations): not taken */
  (void)next;
  bool bf16 = dtype == MPL_DTYPE_BF16;
#define CASE(N)                                                                    \
  case N:                                                                          \
    if (bf16) rows_n(N, true, y, ldy, x, ldx, w, row0, row1, n_in);                \
    else rows_n(N, false, y, ldy, x, ldx, w, row0, row1, n_in);                    \
    return;
  switch (n_x) {
    CASE(1)
    CASE(2)
    CASE(3)
    CASE(4)
  default:
    MPL_ASSERT(0, "rows kernel for %d rows", n_x);
  }
#undef CASE
}

float mpl_tensor__dot_avx2(const float *a, const float *b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

float mpl_tensor__sum_avx2(const float *a, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

void mpl_tensor__bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src, true, (int64_t)i));
  for (; i < n; i++) dst[i] = mpl_bf16_to_f32(src[i]);
}
