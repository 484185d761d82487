/* AVX-512 kernels: weight rows streamed against one activation row, or in tiles of 4
 * weight rows x up to 6 activation rows; bf16 widened to f32 in registers (a shift),
 * tails by masked loads. A tile loop also fetches the next block of weights into L2,
 * a line per step, when the caller passes one (struct mpl_prefetch). */
#include <immintrin.h>

#include "tensor/kernels.h"

#define INLINE static inline __attribute__((always_inline))
/* software prefetch distance of the weight stream: measured best of 512..4096 for
 * one thread (the hardware prefetcher alone left ~25% of the bandwidth unused) */
#define PREFETCH_BYTES 2048

INLINE __m512 load16(const void *w, bool bf16, int64_t i) {
  if (bf16) {
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_loadu_ps((const float *)w + i);
}

INLINE __m512 load16_mask(const void *w, bool bf16, int64_t i, __mmask16 m) {
  if (bf16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_maskz_loadu_ps(m, (const float *)w + i);
}

/* One activation row over weight rows [row0, row1): each row streamed once, two
 * accumulators to hide the FMA latency (batch-1 decode, bandwidth-bound). */
INLINE void stream_row(const bool bf16, float *y, const float *x, const void *w, int64_t row0, int64_t row1,
                       int n_in) {
  for (int64_t o = row0; o < row1; o++) {
    const void *wr = bf16 ? (const void *)((const uint16_t *)w + o * n_in)
                          : (const void *)((const float *)w + o * n_in);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    int i = 0;
    for (; i + 32 <= n_in; i += 32) {
      /* the weight stream, PREFETCH_BYTES ahead (past the row's end is harmless) */
      _mm_prefetch((const char *)wr + (bf16 ? 2 : 4) * i + PREFETCH_BYTES, _MM_HINT_T0);
      if (!bf16) _mm_prefetch((const char *)wr + 4 * i + PREFETCH_BYTES + 64, _MM_HINT_T0);
      acc0 = _mm512_fmadd_ps(load16(wr, bf16, i), _mm512_loadu_ps(x + i), acc0);
      acc1 = _mm512_fmadd_ps(load16(wr, bf16, i + 16), _mm512_loadu_ps(x + i + 16), acc1);
    }
    for (; i < n_in; i += 16) {
      int rem = n_in - i;
      __mmask16 m = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1);
      acc0 = _mm512_fmadd_ps(load16_mask(wr, bf16, i, m), _mm512_maskz_loadu_ps(m, x + i), acc0);
    }
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

/* R weight rows against N activation rows at once: each weight vector serves N rows and
 * each activation vector R rows, so the loads per FMA fall from (N + 1) / N to
 * (R + N) / (R N) and the activations' traffic from the caches by R. R x N <= 24 sums. */
INLINE void tile_rn(const int R, const int N, const bool bf16, float *y, int64_t ldy, const float *x,
                    int64_t ldx, const void *w, int64_t o, int n_in, struct mpl_prefetch *next) {
  const size_t wsize = bf16 ? 2 : 4;
  const char *wr[4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++) wr[r] = (const char *)w + (size_t)(o + r) * (size_t)n_in * wsize;
  __m512 acc[4][6];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++) {
    _Pragma("GCC unroll 6")
    for (int t = 0; t < N; t++) acc[r][t] = _mm512_setzero_ps();
  }
  const char *ahead = next ? next->at : NULL, *ahead_end = next ? next->end : NULL;
  int i = 0;
  for (; i + 16 <= n_in; i += 16) {
    if (ahead < ahead_end) { /* a line of the next block into L2 */
      _mm_prefetch(ahead, _MM_HINT_T1);
      ahead += 64;
    }
    __m512 wv[4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
      /* one prefetch per row per cache line of the weight stream */
      if (!bf16 || (i & 16) == 0) _mm_prefetch(wr[r] + wsize * i + PREFETCH_BYTES, _MM_HINT_T0);
      wv[r] = load16(wr[r], bf16, i);
    }
    _Pragma("GCC unroll 6")
    for (int t = 0; t < N; t++) {
      __m512 xv = _mm512_loadu_ps(x + t * ldx + i);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (i < n_in) {
    __mmask16 m = (__mmask16)((1u << (n_in - i)) - 1);
    __m512 wv[4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) wv[r] = load16_mask(wr[r], bf16, i, m);
    _Pragma("GCC unroll 6")
    for (int t = 0; t < N; t++) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + i);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (next) next->at = ahead;
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R; r++) {
    _Pragma("GCC unroll 6")
    for (int t = 0; t < N; t++) y[t * ldy + o + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

/* N activation rows (2..6) over weight rows [row0, row1): four at a time, then one. */
INLINE void tiles_n(const int N, const bool bf16, float *y, int64_t ldy, const float *x, int64_t ldx,
                    const void *w, int64_t row0, int64_t row1, int n_in, struct mpl_prefetch *next) {
  int64_t o = row0;
  for (; o + 4 <= row1; o += 4) tile_rn(4, N, bf16, y, ldy, x, ldx, w, o, n_in, next);
  for (; o < row1; o++) tile_rn(1, N, bf16, y, ldy, x, ldx, w, o, n_in, next);
}

static void tiles(int n_x, bool bf16, float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                  int64_t row0, int64_t row1, int n_in, struct mpl_prefetch *next) {
#define CASE(N)                                                                    \
  case N:                                                                          \
    if (bf16) tiles_n(N, true, y, ldy, x, ldx, w, row0, row1, n_in, next);         \
    else tiles_n(N, false, y, ldy, x, ldx, w, row0, row1, n_in, next);             \
    return;
  switch (n_x) {
    CASE(2)
    CASE(3)
    CASE(4)
    CASE(5)
    CASE(6)
  default:
    MPL_ASSERT(0, "tile kernel for %d rows", n_x);
  }
#undef CASE
}

MPL_ROWS_KERNEL(avx512) {
  bool bf16 = dtype == MPL_DTYPE_BF16;
  if (n_x == 1) { /* one row: the plain stream (batch-1 decode, bandwidth-bound) */
    (void)ldy, (void)ldx, (void)next;
    if (bf16) stream_row(true, y, x, w, row0, row1, n_in);
    else stream_row(false, y, x, w, row0, row1, n_in);
    return;
  }
  tiles(n_x, bf16, y, ldy, x, ldx, w, row0, row1, n_in, next);
}

float mpl_tensor__dot_avx512(const float *a, const float *b, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    int rem = n - i;
    __mmask16 m = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

float mpl_tensor__sum_avx512(const float *a, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

void mpl_tensor__bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, load16(src, true, (int64_t)i));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, load16_mask(src, true, (int64_t)i, m));
  }
}
