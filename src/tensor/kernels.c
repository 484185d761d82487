/* Kernels: the run-time choice of instruction set, the scalar versions and the slow
 * references, linear layers split over the thread pool, and the element-wise pieces
 * of a transformer (norms, RoPE, softmax, activations). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/tensor.h"
#include "tensor/kernels.h"

/* --- choice of instruction set --------------------------------------------------- */
static const char *const isa_names[MPL_ISA_COUNT] = {"scalar", "avx2", "avx512"};
static enum mpl_isa current_isa;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

const char *mpl_isa_name(enum mpl_isa isa) {
  return (unsigned)isa < MPL_ISA_COUNT ? isa_names[isa] : "unknown";
}

bool mpl_tensor_isa_supported(enum mpl_isa isa) {
  switch (isa) {
  case MPL_ISA_SCALAR:
    return true;
#if defined(__x86_64__)
  case MPL_ISA_AVX2:
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case MPL_ISA_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
  default:
    return false;
  }
}

static void choose_best_isa(void) {
  __builtin_cpu_init();
  current_isa = mpl_tensor_isa_supported(MPL_ISA_AVX512) ? MPL_ISA_AVX512
                : mpl_tensor_isa_supported(MPL_ISA_AVX2) ? MPL_ISA_AVX2
                                                         : MPL_ISA_SCALAR;
  /* MPILLM_KERNELS=scalar|avx2 picks a lesser set (checks, comparisons) */
  const char *want = getenv("MPILLM_KERNELS");
  for (int i = 0; want && i < MPL_ISA_COUNT; i++)
    if (strcmp(want, isa_names[i]) == 0 && i < (int)current_isa) current_isa = (enum mpl_isa)i;
}

enum mpl_isa mpl_tensor_isa(void) {
  pthread_once(&isa_once, choose_best_isa);
  return current_isa;
}

enum mpl_status mpl_tensor_isa_select(enum mpl_isa isa) {
  pthread_once(&isa_once, choose_best_isa);
  if (!mpl_tensor_isa_supported(isa))
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "this CPU cannot run the %s kernels", mpl_isa_name(isa));
  current_isa = isa;
  return MPL_OK;
}

bool mpl_tensor_blas_generic(char *message, size_t size) {
  /* OpenBLAS's DYNAMIC_ARCH falls back to one of these on a CPU newer than itself */
  static const char *const sse_only[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                         "Katmai", "Coppermine", "Northwood", "Banias"};
  const char *core = mpl_tensor__blas_core();
  bool generic = false;
  for (size_t i = 0; i < sizeof sse_only / sizeof *sse_only; i++) generic |= strcmp(core, sse_only[i]) == 0;
  if (!generic || mpl_tensor_isa() == MPL_ISA_SCALAR) return false;
  bool avx512 = mpl_tensor_isa_supported(MPL_ISA_AVX512);
  snprintf(message, size,
           "OpenBLAS uses its %s kernels (SSE) on this %s CPU, so prompts of %d tokens or more run several "
           "times slower than they could: set OPENBLAS_CORETYPE=%s",
           core, avx512 ? "AVX-512" : "AVX2", MPL_TENSOR_GEMM_MIN_ROWS, avx512 ? "SkylakeX" : "Haswell");
  return true;
}

/* --- scalar kernels ---------------------------------------------------------------- */
static inline float weight_at(const void *w, enum mpl_dtype dtype, int64_t i) {
  return dtype == MPL_DTYPE_BF16 ? mpl_bf16_to_f32(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

MPL_ROWS_KERNEL(scalar) {
  (void)next;
  for (int64_t o = row0; o < row1; o++) {
    float s[4] = {0, 0, 0, 0};
    for (int i = 0; i < n_in; i++) {
      float wv = weight_at(w, dtype, o * n_in + i);
      for (int t = 0; t < n_x; t++) s[t] += wv * x[t * ldx + i];
    }
    for (int t = 0; t < n_x; t++) y[t * ldy + o] = s[t];
  }
}

float mpl_tensor__dot_scalar(const float *a, const float *b, int n) {
  float s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

float mpl_tensor__sum_scalar(const float *a, size_t n) {
  float s[8] = {0};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) s[j] += a[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void rows_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, int n_x, const void *w,
                        enum mpl_dtype dtype, int64_t row0, int64_t row1, int n_in, struct mpl_prefetch *next) {
  switch (mpl_tensor_isa()) {
#if defined(__x86_64__)
  case MPL_ISA_AVX512:
    mpl_tensor__rows_avx512(y, ldy, x, ldx, n_x, w, dtype, row0, row1, n_in, next);
    return;
  case MPL_ISA_AVX2:
    mpl_tensor__rows_avx2(y, ldy, x, ldx, n_x, w, dtype, row0, row1, n_in, next);
    return;
#endif
  default:
    mpl_tensor__rows_scalar(y, ldy, x, ldx, n_x, w, dtype, row0, row1, n_in, next);
  }
}

float mpl_tensor_dot(const float *a, const float *b, int n) {
  switch (mpl_tensor_isa()) {
#if defined(__x86_64__)
  case MPL_ISA_AVX512:
    return mpl_tensor__dot_avx512(a, b, n);
  case MPL_ISA_AVX2:
    return mpl_tensor__dot_avx2(a, b, n);
#endif
  default:
    return mpl_tensor__dot_scalar(a, b, n);
  }
}

void mpl_tensor__bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
  switch (mpl_tensor_isa()) {
#if defined(__x86_64__)
  case MPL_ISA_AVX512:
    mpl_tensor__bf16_to_f32_avx512(dst, src, n);
    return;
  case MPL_ISA_AVX2:
    mpl_tensor__bf16_to_f32_avx2(dst, src, n);
    return;
#endif
  default:
    for (size_t i = 0; i < n; i++) dst[i] = mpl_bf16_to_f32(src[i]);
  }
}

/* --- linear layers ------------------------------------------------------------------ */
struct linear_job {
  float *y;
  int64_t ldy;
  const float *x;
  int64_t ldx;
  const void *w;
  enum mpl_dtype dtype;
  int n, n_in;
};

static size_t row_bytes(enum mpl_dtype dtype, int n_in) { return mpl_dtype_bytes(dtype) * (size_t)n_in; }

static void check_dtype(enum mpl_dtype dtype) {
  MPL_ASSERT(dtype == MPL_DTYPE_F32 || dtype == MPL_DTYPE_BF16, "linear weights in %s",
             mpl_dtype_name(dtype));
}

/* Activation rows one pass of a rows kernel takes (registers hold their sums). */
static int rows_per_pass(void) { return mpl_tensor_isa() == MPL_ISA_AVX512 ? 6 : 4; }

/* Weights per block for more than one activation row: a block stays in the core's L2
 * while every group of activation rows (and the kernel's own passes) goes over it, so
 * the weights come from memory once per call, whatever the batch (the activations,
 * n x n_in floats, share L2). */
#define ROWS_BLOCK_BYTES (256 * 1024)

/* Each thread streams its own rows of w once, in blocks, for all the activation rows. */
static void rows_share(void *ctx, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct linear_job *j = ctx;
  int per = rows_per_pass();
  int64_t block = end - begin;
  if (j->n > 1) {
    block = ROWS_BLOCK_BYTES / (int64_t)row_bytes(j->dtype, j->n_in) / 4 * 4;
    if (block < 4) block = 4;
  }
  const char *w = j->w;
  size_t rb = row_bytes(j->dtype, j->n_in);
  for (int64_t o0 = begin; o0 < end; o0 += block) {
    int64_t o1 = end - o0 < block ? end : o0 + block, o2 = end - o1 < block ? end : o1 + block;
    /* the first pass reads the block from memory; the later ones, from L2, bring the
     * next block in beside it, so that its first pass finds it there too */
    struct mpl_prefetch next = {w + (size_t)o1 * rb, w + (size_t)o2 * rb};
    for (int t0 = 0; t0 < j->n; t0 += per) {
      int n_x = j->n - t0 < per ? j->n - t0 : per;
      rows_kernel(j->y + t0 * j->ldy, j->ldy, j->x + t0 * j->ldx, j->ldx, n_x, j->w, j->dtype, o0, o1,
                  j->n_in, t0 > 0 ? &next : NULL);
    }
  }
}

/* Below this many multiply-adds a job is not worth waking the pool for. */
#define MIN_PARALLEL_WORK (1 << 15)

void mpl_tensor_linear_rows(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                            enum mpl_dtype dtype, int n, int n_out, int n_in) {
  check_dtype(dtype);
  struct linear_job j = {y, ldy, x, ldx, w, dtype, n, n_in};
  if ((int64_t)n_out * n_in * n < MIN_PARALLEL_WORK) rows_share(&j, 0, n_out, 0);
  else mpl_threads_for(n_out, 16, rows_share, &j);
}

/* Threads take GEMM_ALIGN-row blocks of w (so that 16 threads share even a 2048-row
 * matrix); each does sgemm on tiles of up to GEMM_TILE rows, bf16 tiles widened into a
 * buffer per thread that grows to the largest tile seen (allocated on the first
 * prompt, not per token). Larger tiles keep OpenBLAS's packing overhead small. */
#define GEMM_ALIGN 64
#define GEMM_TILE 256
#define MAX_POOL 256
static float *tile_buf[MAX_POOL];
static size_t tile_cap[MAX_POOL];

static void gemm_share(void *ctx, int64_t begin, int64_t end, int thread) {
  const struct linear_job *j = ctx;
  if (j->dtype == MPL_DTYPE_F32) {
    mpl_tensor__sgemm_nt(j->y + begin, j->ldy, j->x, j->ldx, (const float *)j->w + begin * j->n_in,
                         j->n, (int)(end - begin), j->n_in);
    return;
  }
  size_t need = (size_t)GEMM_TILE * (size_t)j->n_in;
  if (tile_cap[thread] < need) {
    mpl_free(tile_buf[thread]);
    tile_buf[thread] = mpl_alloc(need * sizeof(float), "a bf16 weight tile");
    tile_cap[thread] = tile_buf[thread] ? need : 0;
  }
  for (int64_t r0 = begin; r0 < end; r0 += GEMM_TILE) {
    int rows = end - r0 < GEMM_TILE ? (int)(end - r0) : GEMM_TILE;
    const void *wt = (const char *)j->w + (size_t)r0 * row_bytes(j->dtype, j->n_in);
    if (!tile_buf[thread]) { /* no memory for a tile: stream the rows instead */
      struct linear_job k = *j;
      rows_share(&k, r0, r0 + rows, thread);
      continue;
    }
    mpl_tensor_to_f32(tile_buf[thread], wt, j->dtype, (size_t)rows * (size_t)j->n_in);
    mpl_tensor__sgemm_nt(j->y + r0, j->ldy, j->x, j->ldx, tile_buf[thread], j->n, rows, j->n_in);
  }
}

void mpl_tensor_linear_gemm(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                            enum mpl_dtype dtype, int n, int n_out, int n_in) {
  check_dtype(dtype);
  struct linear_job j = {y, ldy, x, ldx, w, dtype, n, n_in};
  mpl_threads_for(n_out, GEMM_ALIGN, gemm_share, &j);
}

void mpl_tensor_linear(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                       enum mpl_dtype dtype, int n, int n_out, int n_in) {
  if (n < MPL_TENSOR_GEMM_MIN_ROWS) mpl_tensor_linear_rows(y, ldy, x, ldx, w, dtype, n, n_out, n_in);
  else mpl_tensor_linear_gemm(y, ldy, x, ldx, w, dtype, n, n_out, n_in);
}

struct matmul_job {
  float *y;
  int64_t ldy;
  const float *x;
  int64_t ldx;
  const float *w;
  int64_t ldw;
  int n, k;
  float beta;
};

static void matmul_share(void *ctx, int64_t begin, int64_t end, int thread) {
  (void)thread;
  const struct matmul_job *j = ctx;
  mpl_tensor__sgemm_nn(j->y + begin, j->ldy, j->x, j->ldx, j->w + begin, j->ldw, j->n, j->k, (int)(end - begin),
                       j->beta);
}

void mpl_tensor_matmul(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw, int n,
                       int k, int m, float beta) {
  if (n == 0 || m == 0) return;
  struct matmul_job j = {y, ldy, x, ldx, w, ldw, n, k, beta};
  if ((int64_t)n * k * m < MIN_PARALLEL_WORK) matmul_share(&j, 0, m, 0);
  else mpl_threads_for(m, GEMM_ALIGN, matmul_share, &j);
}

void mpl_tensor_linear_ref(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                           enum mpl_dtype dtype, int n, int n_out, int n_in) {
  check_dtype(dtype);
  for (int t = 0; t < n; t++)
    for (int o = 0; o < n_out; o++) {
      double s = 0;
      for (int i = 0; i < n_in; i++) s += (double)weight_at(w, dtype, (int64_t)o * n_in + i) * x[t * ldx + i];
      y[t * ldy + o] = (float)s;
    }
}

/* --- element-wise pieces ------------------------------------------------------------- */
void mpl_tensor_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  float scale = (float)(1.0 / sqrt(ss / n + eps));
  for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void mpl_tensor_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps) {
  double mean = 0, var = 0;
  for (int i = 0; i < n; i++) mean += x[i];
  mean /= n;
  for (int i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
  var /= n;
  float scale = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
  for (int i = 0; i < n; i++) y[i] = (x[i] - m) * scale * w[i] + b[i];
}

void mpl_tensor_rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta) {
  for (int i = 0; i < head_dim / 2; i++) {
    float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
    float angle = (float)pos * inv_freq;
    cos_t[i] = cosf(angle);
    sin_t[i] = sinf(angle);
  }
}

void mpl_tensor_rope(float *x, int n_heads, int head_dim, const float *cos_t, const float *sin_t) {
  int half = head_dim / 2;
  for (int h = 0; h < n_heads; h++) {
    float *v = x + (size_t)h * head_dim;
    for (int i = 0; i < half; i++) {
      float a = v[i], b = v[i + half];
      v[i] = a * cos_t[i] - b * sin_t[i];
      v[i + half] = b * cos_t[i] + a * sin_t[i];
    }
  }
}

void mpl_tensor_softmax(float *x, int n) {
  float max = x[0];
  for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int i = 0; i < n; i++) x[i] *= inv;
}

void mpl_tensor_silu_mul(float *g, const float *u, int n) {
  for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void mpl_tensor_gelu_tanh(float *x, int n) {
  const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
  for (int i = 0; i < n; i++) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
}

void mpl_tensor_axpy(float *y, float alpha, const float *x, int n) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* --- the bandwidth probe ---------------------------------------------------------------- */
struct probe_job {
  const float *buf;
  size_t n_floats;
  int n_slices;
  float sums[MAX_POOL];
};

static void probe_share(void *ctx, int64_t begin, int64_t end, int thread) {
  struct probe_job *p = ctx;
  size_t per = p->n_floats / (size_t)p->n_slices / 64 * 64;
  float s = 0;
  for (int64_t k = begin; k < end && k < p->n_slices; k++) {
    const float *a = p->buf + (size_t)k * per;
    switch (mpl_tensor_isa()) {
#if defined(__x86_64__)
    case MPL_ISA_AVX512:
      s += mpl_tensor__sum_avx512(a, per);
      break;
    case MPL_ISA_AVX2:
      s += mpl_tensor__sum_avx2(a, per);
      break;
#endif
    default:
      s += mpl_tensor__sum_scalar(a, per);
    }
  }
  p->sums[thread] += s;
}

double mpl_tensor_read_bandwidth(size_t n_bytes, int threads) {
  int pool_n = mpl_threads_count();
  if (threads <= 0 || threads > pool_n) threads = pool_n;
  struct probe_job p;
  memset(&p, 0, sizeof p);
  p.n_slices = threads;
  p.n_floats = n_bytes / sizeof(float);
  float *buf = mpl_alloc(p.n_floats * sizeof(float), "the bandwidth probe's buffer");
  if (!buf) return -1.0;
  for (size_t i = 0; i < p.n_floats; i += 1024) buf[i] = 1.0f;
  p.buf = buf;
  size_t read = p.n_floats / (size_t)threads / 64 * 64 * (size_t)threads * sizeof(float);
  double best = 1e30;
  for (int pass = 0; pass < 5; pass++) {
    double t0 = mpl_time_now();
    /* pool thread k reads slice k; those past `threads` sit this one out */
    mpl_threads_for(pool_n, 1, probe_share, &p);
    double dt = mpl_time_now() - t0;
    if (dt < best) best = dt;
  }
  volatile float sink = p.sums[0];
  (void)sink;
  mpl_free(buf);
  return (double)read / best / 1e9;
}
