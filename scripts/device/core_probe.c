/* What the cores of a host share, measured (the placement behind issue 4's dp figures):
 *   core_probe fma  SECONDS   AVX-512 FMAs on 16 independent accumulators: GFLOP/s
 *   core_probe read SECONDS   sums a 256 MiB buffer over and over: GB/s
 * Prints one number. scripts/device/core_probe.sh runs copies of it pinned to chosen
 * CPUs at once: two CPUs that halve each other's FMA rate are one physical core. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

__attribute__((target("avx512f"))) static double fma_rate(double seconds) {
  __m512 a[16], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int k = 0; k < 16; k++) a[k] = _mm512_set1_ps((float)k);
  long iters = 0;
  double t0 = now(), t;
  do {
    for (int r = 0; r < 4096; r++) {
#pragma GCC unroll 16
      for (int k = 0; k < 16; k++) a[k] = _mm512_fmadd_ps(a[k], m, c);
    }
    iters += 4096;
    t = now() - t0;
  } while (t < seconds);
  float sink = 0;
  for (int k = 0; k < 16; k++) sink += _mm512_reduce_add_ps(a[k]);
  if (sink == 1234.5f) puts("");
  return (double)iters * 16 * 16 * 2 / t / 1e9;
}

__attribute__((target("avx512f"))) static double read_rate(double seconds) {
  size_t n = (size_t)256 << 20 >> 2;
  float *buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return -1;
  memset(buf, 0, n * sizeof(float));
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  double bytes = 0, t0 = now(), t;
  do {
    for (size_t i = 0; i < n; i += 64) {
      s0 = _mm512_add_ps(s0, _mm512_load_ps(buf + i));
      s1 = _mm512_add_ps(s1, _mm512_load_ps(buf + i + 16));
      s2 = _mm512_add_ps(s2, _mm512_load_ps(buf + i + 32));
      s3 = _mm512_add_ps(s3, _mm512_load_ps(buf + i + 48));
    }
    bytes += (double)n * sizeof(float);
    t = now() - t0;
  } while (t < seconds);
  if (_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) != 0) puts("");
  free(buf);
  return bytes / t / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "fma") && strcmp(argv[1], "read"))) {
    fprintf(stderr, "usage: core_probe fma|read SECONDS\n");
    return 2;
  }
  double s = atof(argv[2]);
  printf("%.1f\n", strcmp(argv[1], "fma") == 0 ? fma_rate(s) : read_rate(s));
  return 0;
}
