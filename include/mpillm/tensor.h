/* mpillm tensor: element types, bf16/f16 conversion, the thread pool and the
 * kernels the models are built from (matrix-vector products that stream bf16 or
 * f32 weights, sgemm for prompts, norms, RoPE, softmax, activations). Kernels are
 * chosen at run time for the CPU (AVX-512, AVX2 or scalar); each fast kernel has a
 * slow obvious reference beside it that the tests compare against.
 * OpenBLAS is called from one file of this module only. */
#ifndef MPILLM_TENSOR_H
#define MPILLM_TENSOR_H

#include <stdbool.h>
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

/* --- the thread pool ---------------------------------------------------------------
 * One persistent pool per process. Its size is, in order: the argument of
 * mpl_threads_init, $MPILLM_THREADS, $OPENBLAS_NUM_THREADS, else 1 (the calling
 * thread alone, no workers). OpenBLAS is set to one thread: the pool splits prompts'
 * sgemm into row tiles instead. Idle workers spin briefly, then sleep. */
/* Starts the pool with n_threads (0: from the environment as above); a second call
 * with another size restarts it. Local (call from the main thread). */
enum mpl_status mpl_threads_init(int n_threads);
/* Threads in the pool (starts it from the environment on first use). Local. */
int mpl_threads_count(void);
/* Joins the workers. Local. */
void mpl_threads_shutdown(void);
/* Runs fn(ctx, begin, end, thread) over [0, n) cut into chunks (about four per
 * thread; bounds multiples of align, except n) that the pool's threads, the caller
 * included, claim as they come, so one delayed thread does not hold up the rest;
 * `thread` (< mpl_threads_count()) names the thread running a chunk, for scratch
 * buffers per thread. Returns when all chunks are done (one join). Not reentrant:
 * call it from the main thread only, never from inside fn. */
void mpl_threads_for(int64_t n, int64_t align,
                     void (*fn)(void *ctx, int64_t begin, int64_t end, int thread), void *ctx);

/* --- kernels ---------------------------------------------------------------------- */
enum mpl_isa { MPL_ISA_SCALAR = 0, MPL_ISA_AVX2, MPL_ISA_AVX512, MPL_ISA_COUNT };
/* "scalar", "avx2", "avx512". The best supported ISA is chosen on first use
 * ($MPILLM_KERNELS=scalar|avx2 asks for a lesser one); select overrides it (tests),
 * MPL_ERR_UNSUPPORTED when the CPU lacks it. Local. */
const char *mpl_isa_name(enum mpl_isa isa);
bool mpl_tensor_isa_supported(enum mpl_isa isa);
enum mpl_isa mpl_tensor_isa(void);
enum mpl_status mpl_tensor_isa_select(enum mpl_isa isa);

/* Whether OpenBLAS runs its generic SSE kernels on a CPU with AVX2 or AVX-512 (an
 * OpenBLAS older than the CPU); then message says so and names the
 * OPENBLAS_CORETYPE that fixes it. Local. */
bool mpl_tensor_blas_generic(char *message, size_t size);

/* A linear layer without bias: y[t][o] = sum_i x[t][i] * w[o][i] for t < n, o < n_out.
 * y: [n][ldy], x: [n][ldx] f32; w: [n_out][n_in] in dtype (f32 or bf16), rows
 * contiguous (torch's Linear layout). Fewer than MPL_TENSOR_GEMM_MIN_ROWS rows (decode,
 * short prompts) take the vector kernels, threads splitting the output rows: weights
 * in blocks that stay in L2 while every group of activation rows (four; six with
 * AVX-512, in tiles of 4 weight rows) passes over them, so they are read from memory
 * once per call; more rows go to sgemm, bf16 weights converted to f32 in tiles. Local. */
void mpl_tensor_linear(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                       enum mpl_dtype dtype, int n, int n_out, int n_in);
/* The two paths of mpl_tensor_linear, forced (tests, benchmarks), and the slow
 * obvious reference (double accumulation, one thread). Local. */
void mpl_tensor_linear_rows(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                            enum mpl_dtype dtype, int n, int n_out, int n_in);
void mpl_tensor_linear_gemm(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                            enum mpl_dtype dtype, int n, int n_out, int n_in);
void mpl_tensor_linear_ref(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                           enum mpl_dtype dtype, int n, int n_out, int n_in);
/* Batches of fewer rows take the vector kernels, the others sgemm (measured with
 * `mpillm info --kernel-bench`: with AVX-512 the tiles lead up to 128 rows). */
#define MPL_TENSOR_GEMM_MIN_ROWS 128

/* y[n][ldy] = x[n][ldx] @ w[k][ldw] + beta * y: f32 sgemm with w in [in][out] order
 * (Keras' Dense kernels), the pool's threads splitting the m output columns. Local. */
void mpl_tensor_matmul(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw, int n,
                       int k, int m, float beta);

/* y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (LLaMA's RMSNorm); y may be x. Local. */
void mpl_tensor_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* y = (x - mean) / sqrt(var + eps) * w + b (GPT-2's LayerNorm); y may be x. Local. */
void mpl_tensor_layernorm(float *y, const float *x, const float *w, const float *b, int n,
                          float eps);
/* cos/sin [head_dim / 2] of the rotary angles pos * theta^(-2i/head_dim), computed
 * as transformers does (f32 inverse frequencies and angles). Local. */
void mpl_tensor_rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta);
/* Rotates n_heads heads of x (head h at x + h * head_dim) by the table, in the
 * "rotate_half" convention of transformers (pairs i and i + head_dim / 2). Local. */
void mpl_tensor_rope(float *x, int n_heads, int head_dim, const float *cos_t, const float *sin_t);
/* In place, max-subtracted. Local. */
void mpl_tensor_softmax(float *x, int n);
/* g[i] = silu(g[i]) * u[i] (SwiGLU). Local. */
void mpl_tensor_silu_mul(float *g, const float *u, int n);
/* x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2's "gelu_new"). Local. */
void mpl_tensor_gelu_tanh(float *x, int n);
/* sum_i a[i] * b[i] with the vector kernels (attention scores). Local. */
float mpl_tensor_dot(const float *a, const float *b, int n);
/* y[i] += alpha * x[i] (attention's weighted sum of values). Local. */
void mpl_tensor_axpy(float *y, float alpha, const float *x, int n);

/* Memory read bandwidth in GB/s (1e9 bytes/s): the best of a few passes of
 * `threads` pool threads (0: all) summing a buffer of n_bytes, allocated and
 * touched first. Use a buffer well beyond the caches (e.g. 1 GiB). Negative with
 * MPL_ERR_NOMEM recorded when the buffer cannot be had. Local. */
double mpl_tensor_read_bandwidth(size_t n_bytes, int threads);

#endif
