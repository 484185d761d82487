/* Tensor kernels against their slow references, for every instruction set this CPU
 * has, f32 and bf16 weights, odd sizes, one and several threads; the thread pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/tensor.h"
#include "mpl_test.h"

static float frand(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float *a, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) a[i] = frand(&seed);
}

/* max |y - ref| relative to the largest possible magnitude sum |w||x| of a row */
static double linear_error(const float *y, const float *ref, int n, int n_out, int ldy, int n_in) {
  double worst = 0;
  for (int t = 0; t < n; t++)
    for (int o = 0; o < n_out; o++) {
      double e = fabs((double)y[t * ldy + o] - ref[t * ldy + o]) / (n_in + 1);
      if (e > worst) worst = e;
    }
  return worst;
}

static const int shapes[][2] = {{1, 1}, {7, 13}, {33, 17}, {64, 100}, {129, 257}, {40, 4096 + 31}, {600, 33},
                             {1000, 301}}; /* the last in several L2 blocks */
static const int batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 17, 40, 70};

static void check_linear_all(const char *what) {
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int n_out = shapes[s][0], n_in = shapes[s][1], ldx = n_in + 3, ldy = n_out + 5;
    int max_n = 70;
    float *w = malloc(sizeof(float) * (size_t)n_out * n_in);
    uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)n_out * n_in);
    float *x = malloc(sizeof(float) * (size_t)max_n * ldx);
    float *y = malloc(sizeof(float) * (size_t)max_n * ldy);
    float *ref = malloc(sizeof(float) * (size_t)max_n * ldy);
    fill(w, (size_t)n_out * n_in, 7u + (unsigned)s);
    for (size_t i = 0; i < (size_t)n_out * n_in; i++) wb[i] = mpl_f32_to_bf16(w[i]);
    fill(x, (size_t)max_n * ldx, 11u + (unsigned)s);
    for (int d = 0; d < 2; d++) {
      enum mpl_dtype dt = d ? MPL_DTYPE_BF16 : MPL_DTYPE_F32;
      const void *wp = d ? (const void *)wb : (const void *)w;
      for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        int n = batches[b];
        mpl_tensor_linear_ref(ref, ldy, x, ldx, wp, dt, n, n_out, n_in);
        for (int path = 0; path < 3; path++) {
          memset(y, 0xff, sizeof(float) * (size_t)max_n * ldy);
          if (path == 0) mpl_tensor_linear_rows(y, ldy, x, ldx, wp, dt, n, n_out, n_in);
          else if (path == 1) mpl_tensor_linear_gemm(y, ldy, x, ldx, wp, dt, n, n_out, n_in);
          else mpl_tensor_linear(y, ldy, x, ldx, wp, dt, n, n_out, n_in);
          double err = linear_error(y, ref, n, n_out, ldy, n_in);
          if (err > 1e-6)
            fprintf(stderr, "%s %s path %d: %dx%d batch %d: error %g\n", what,
                    mpl_dtype_name(dt), path, n_out, n_in, n, err);
          CU_ASSERT(err <= 1e-6);
        }
      }
    }
    free(w);
    free(wb);
    free(x);
    free(y);
    free(ref);
  }
}

static void test_linear_every_isa(void) {
  enum mpl_isa best = mpl_tensor_isa();
  for (int isa = 0; isa < MPL_ISA_COUNT; isa++) {
    if (!mpl_tensor_isa_supported((enum mpl_isa)isa)) {
      fprintf(stderr, "(this CPU has no %s: not tested)\n", mpl_isa_name((enum mpl_isa)isa));
      CU_ASSERT_EQUAL(mpl_tensor_isa_select((enum mpl_isa)isa), MPL_ERR_UNSUPPORTED);
      continue;
    }
    CU_ASSERT_EQUAL_FATAL(mpl_tensor_isa_select((enum mpl_isa)isa), MPL_OK);
    check_linear_all(mpl_isa_name((enum mpl_isa)isa));
  }
  CU_ASSERT_EQUAL(mpl_tensor_isa_select(best), MPL_OK);
}

static void test_linear_three_threads(void) {
  CU_ASSERT_EQUAL_FATAL(mpl_threads_init(3), MPL_OK);
  CU_ASSERT_EQUAL(mpl_threads_count(), 3);
  check_linear_all("3 threads");
  CU_ASSERT_EQUAL(mpl_threads_init(1), MPL_OK);
}

struct count_job {
  int *hits;
  int64_t align;
  int bad_align;
};

static void count_share(void *ctx, int64_t begin, int64_t end, int thread) {
  struct count_job *j = ctx;
  (void)thread;
  if (begin % j->align) __atomic_add_fetch(&j->bad_align, 1, __ATOMIC_RELAXED);
  for (int64_t i = begin; i < end; i++) __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
}

static void test_thread_pool_covers_once(void) {
  CU_ASSERT_EQUAL_FATAL(mpl_threads_init(4), MPL_OK);
  int hits[1000];
  int64_t sizes[] = {1, 3, 4, 17, 64, 1000};
  int64_t aligns[] = {1, 16, 64};
  for (int rep = 0; rep < 200; rep++)
    for (size_t s = 0; s < 6; s++)
      for (size_t a = 0; a < 3; a++) {
        memset(hits, 0, sizeof hits);
        struct count_job j = {hits, aligns[a], 0};
        mpl_threads_for(sizes[s], aligns[a], count_share, &j);
        int bad = j.bad_align;
        for (int64_t i = 0; i < sizes[s]; i++) bad += hits[i] != 1;
        if (bad) {
          CU_FAIL("a range was missed, repeated or misaligned");
          rep = 1000;
        }
      }
  CU_ASSERT_EQUAL(mpl_threads_init(1), MPL_OK);
}

static void test_dot_every_isa(void) {
  enum mpl_isa best = mpl_tensor_isa();
  float a[301], b[301];
  fill(a, 301, 3);
  fill(b, 301, 4);
  for (int isa = 0; isa < MPL_ISA_COUNT; isa++) {
    if (mpl_tensor_isa_select((enum mpl_isa)isa) != MPL_OK) continue;
    for (int n = 0; n <= 301; n += 7) {
      double ref = 0;
      for (int i = 0; i < n; i++) ref += (double)a[i] * b[i];
      CU_ASSERT(fabs(mpl_tensor_dot(a, b, n) - ref) <= 1e-5 * (n + 1));
    }
  }
  mpl_tensor_isa_select(best);
}

static void test_bf16_widening_every_isa(void) {
  enum mpl_isa best = mpl_tensor_isa();
  uint16_t src[77];
  float dst[78];
  unsigned seed = 5;
  for (int i = 0; i < 77; i++) src[i] = mpl_f32_to_bf16(frand(&seed) * 100.0f);
  for (int isa = 0; isa < MPL_ISA_COUNT; isa++) {
    if (mpl_tensor_isa_select((enum mpl_isa)isa) != MPL_OK) continue;
    for (int n = 0; n <= 77; n += 11) {
      dst[n] = 12345.0f; /* must stay */
      mpl_tensor_to_f32(dst, src, MPL_DTYPE_BF16, (size_t)n);
      int bad = dst[n] != 12345.0f;
      for (int i = 0; i < n; i++) bad += dst[i] != mpl_bf16_to_f32(src[i]);
      CU_ASSERT_EQUAL(bad, 0);
    }
  }
  mpl_tensor_isa_select(best);
}

static void test_norms(void) {
  float x[67], w[67], b[67], y[67];
  fill(x, 67, 1);
  fill(w, 67, 2);
  fill(b, 67, 5);
  mpl_tensor_rmsnorm(y, x, w, 67, 1e-6f);
  double ss = 0;
  for (int i = 0; i < 67; i++) ss += (double)x[i] * x[i];
  for (int i = 0; i < 67; i++) CU_ASSERT(fabs(y[i] - x[i] / sqrt(ss / 67 + 1e-6) * w[i]) < 1e-6);
  mpl_tensor_layernorm(y, x, w, b, 67, 1e-5f);
  double mean = 0, var = 0;
  for (int i = 0; i < 67; i++) mean += x[i];
  mean /= 67;
  for (int i = 0; i < 67; i++) var += (x[i] - mean) * (x[i] - mean);
  var /= 67;
  for (int i = 0; i < 67; i++)
    CU_ASSERT(fabs(y[i] - ((x[i] - mean) / sqrt(var + 1e-5) * w[i] + b[i])) < 1e-5);
  /* in place */
  float z[67];
  memcpy(z, x, sizeof z);
  mpl_tensor_rmsnorm(z, z, w, 67, 1e-6f);
  mpl_tensor_rmsnorm(y, x, w, 67, 1e-6f);
  CU_ASSERT(memcmp(z, y, sizeof z) == 0);
}

static void test_rope_rotate_half(void) {
  enum { HD = 10, NH = 3 };
  float cos_t[HD / 2], sin_t[HD / 2], x[NH * HD], orig[NH * HD];
  fill(x, NH * HD, 9);
  memcpy(orig, x, sizeof x);
  mpl_tensor_rope_table(cos_t, sin_t, 0, HD, 10000.0f);
  mpl_tensor_rope(x, NH, HD, cos_t, sin_t);
  CU_ASSERT(memcmp(x, orig, sizeof x) == 0); /* position 0 is the identity */
  int pos = 37;
  mpl_tensor_rope_table(cos_t, sin_t, pos, HD, 10000.0f);
  mpl_tensor_rope(x, NH, HD, cos_t, sin_t);
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < HD / 2; i++) {
      double ang = pos * pow(10000.0, -2.0 * i / HD);
      double a = orig[h * HD + i], b = orig[h * HD + i + HD / 2];
      CU_ASSERT(fabs(x[h * HD + i] - (a * cos(ang) - b * sin(ang))) < 1e-5);
      CU_ASSERT(fabs(x[h * HD + i + HD / 2] - (b * cos(ang) + a * sin(ang))) < 1e-5);
    }
}

static void test_softmax_and_activations(void) {
  float x[5] = {1000.0f, 1001.0f, -5.0f, 1000.0f, 999.0f};
  mpl_tensor_softmax(x, 5);
  double sum = 0;
  for (int i = 0; i < 5; i++) sum += x[i];
  CU_ASSERT(fabs(sum - 1.0) < 1e-6);
  double e = exp(1.0), denom = 2 + e + exp(-1.0);
  CU_ASSERT(fabs(x[1] - e / denom) < 1e-6);
  CU_ASSERT(x[2] == 0.0f);
  float g[3] = {0.0f, 2.0f, -3.0f}, u[3] = {5.0f, 0.5f, 2.0f};
  mpl_tensor_silu_mul(g, u, 3);
  CU_ASSERT(fabs(g[0]) < 1e-7);
  CU_ASSERT(fabs(g[1] - 2.0 / (1 + exp(-2.0)) * 0.5) < 1e-6);
  CU_ASSERT(fabs(g[2] - (-3.0 / (1 + exp(3.0)) * 2.0)) < 1e-6);
  float v[3] = {0.0f, 1.0f, -2.0f};
  mpl_tensor_gelu_tanh(v, 3);
  /* torch.nn.functional.gelu(x, approximate="tanh") */
  CU_ASSERT(fabs(v[0]) < 1e-7);
  CU_ASSERT(fabs(v[1] - 0.8411920070648193) < 1e-6);
  CU_ASSERT(fabs(v[2] - (-0.04540228843688965)) < 1e-6);
  float y[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, xa[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  mpl_tensor_axpy(y, 2.0f, xa, 9);
  CU_ASSERT(y[8] == 19.0f);
}

static void test_bandwidth_probe(void) {
  double gbs = mpl_tensor_read_bandwidth(16u << 20, 0);
  fprintf(stderr, "(read bandwidth of a 16 MiB buffer, 1 thread: %.1f GB/s)\n", gbs);
  CU_ASSERT(gbs > 0.1);
}

/* matmul (the seed network's Dense layers): [n][k] @ [k][m] + beta y, strided, on 1 and
 * 3 threads (columns split), against a double-precision loop */
static void test_matmul(void) {
  static const int dims[][3] = {{1, 5, 1}, {7, 300, 130}, {70, 33, 1000}, {3, 64, 64}};
  for (int threads = 1; threads <= 3; threads += 2) {
    CU_ASSERT_EQUAL_FATAL(mpl_threads_init(threads), MPL_OK);
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
      for (int b = 0; b < 2; b++) {
        int n = dims[d][0], k = dims[d][1], m = dims[d][2], ldx = k + 2, ldw = m + 3, ldy = m + 1;
        float *x = malloc(sizeof(float) * (size_t)n * ldx), *w = malloc(sizeof(float) * (size_t)k * ldw);
        float *y = malloc(sizeof(float) * (size_t)n * ldy);
        fill(x, (size_t)n * ldx, 3u + (unsigned)d);
        fill(w, (size_t)k * ldw, 5u + (unsigned)d);
        fill(y, (size_t)n * ldy, 9u + (unsigned)d);
        float beta = b ? 1.0f : 0.0f;
        double worst = 0;
        double *ref = malloc(sizeof(double) * (size_t)n * m);
        for (int r = 0; r < n; r++)
          for (int c = 0; c < m; c++) {
            double s = beta * y[r * ldy + c];
            for (int i = 0; i < k; i++) s += (double)x[r * ldx + i] * w[i * ldw + c];
            ref[r * m + c] = s;
          }
        mpl_tensor_matmul(y, ldy, x, ldx, w, ldw, n, k, m, beta);
        for (int r = 0; r < n; r++)
          for (int c = 0; c < m; c++) {
            double e = fabs(y[r * ldy + c] - ref[r * m + c]) / (k + 1);
            if (e > worst) worst = e;
          }
        if (worst > 1e-6) fprintf(stderr, "matmul %dx%dx%d beta %g, %d threads: error %g\n", n, k, m, beta, threads, worst);
        CU_ASSERT(worst <= 1e-6);
        free(x), free(w), free(y), free(ref);
      }
  }
  CU_ASSERT_EQUAL(mpl_threads_init(1), MPL_OK);
}

MPL_TEST_SUITE(tensor_kernels, MPL_TEST(test_linear_every_isa), MPL_TEST(test_linear_three_threads),
               MPL_TEST(test_matmul),
               MPL_TEST(test_thread_pool_covers_once), MPL_TEST(test_dot_every_isa),
               MPL_TEST(test_bf16_widening_every_isa),
               MPL_TEST(test_norms), MPL_TEST(test_rope_rotate_half),
               MPL_TEST(test_softmax_and_activations), MPL_TEST(test_bandwidth_probe))
