/* `mpillm info`: what this run sees (ranks, layout, threads, libraries), so that a
 * launch can be checked before a long job. */
#include <cblas.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "mpillm/tensor.h"

/* microbenchmarks of the wrappers the runtime uses, between all ranks of the world
 * (sendrecv: a ping-pong between rank 0 and the last rank, usually on another node) */
static enum mpl_status comm_bench(struct mpl_grid *grid) {
  static const size_t sizes[] = {8, 1024, 64 * 1024, 1024 * 1024};
  const int n_sizes = (int)(sizeof sizes / sizeof sizes[0]);
  const size_t max_bytes = sizes[n_sizes - 1];
  char *buf = mpl_alloc(max_bytes, "the communication benchmark buffer");
  enum mpl_status st = mpl_par_agree(grid->world, buf ? MPL_OK : MPL_ERR_NOMEM);
  if (st != MPL_OK) {
    mpl_free(buf);
    return st;
  }
  int last = grid->size - 1;
  if (grid->rank == 0)
    printf("comm-bench %d ranks (sendrecv: rank 0 <-> rank %d), microseconds per call:\n"
           "%10s %12s %12s %12s %14s\n",
           grid->size, last, "bytes", "allreduce", "bcast", "sendrecv", "sendrecv MB/s");
  for (int i = 0; i < n_sizes && st == MPL_OK; i++) {
    size_t n = sizes[i];
    int reps = n >= 1024 * 1024 ? 5 : n >= 64 * 1024 ? 20 : 100;
    double t[3] = {0, 0, 0};
    st = mpl_par_barrier(grid->world);
    double t0 = mpl_time_now();
    for (int r = 0; r < reps && st == MPL_OK; r++)
      st = mpl_par_allreduce_sum_f32(grid->world, (float *)buf, n / sizeof(float) ? n / sizeof(float) : 1);
    t[0] = (mpl_time_now() - t0) / reps;
    if (st == MPL_OK) st = mpl_par_barrier(grid->world);
    t0 = mpl_time_now();
    for (int r = 0; r < reps && st == MPL_OK; r++) st = mpl_par_bcast(grid->world, buf, n, 0);
    t[1] = (mpl_time_now() - t0) / reps;
    if (st == MPL_OK) st = mpl_par_barrier(grid->world);
    t0 = mpl_time_now();
    for (int r = 0; r < reps && st == MPL_OK && last > 0; r++) {
      if (grid->rank == 0) {
        st = mpl_par_send(grid->world, buf, n, last, 7);
        if (st == MPL_OK) st = mpl_par_recv(grid->world, buf, n, last, 7);
      } else if (grid->rank == last) {
        st = mpl_par_recv(grid->world, buf, n, 0, 7);
        if (st == MPL_OK) st = mpl_par_send(grid->world, buf, n, 0, 7);
      }
    }
    t[2] = (mpl_time_now() - t0) / reps / 2; /* one way */
    st = mpl_par_agree(grid->world, st);
    if (st == MPL_OK && grid->rank == 0)
      printf("%10zu %12.1f %12.1f %12.1f %14.1f\n", n, t[0] * 1e6, t[1] * 1e6,
             last > 0 ? t[2] * 1e6 : 0.0, last > 0 ? n / t[2] / 1e6 : 0.0);
  }
  mpl_free(buf);
  return st;
}

/* GFLOP/s of one linear path on n activation rows: calls cycle through the weight
 * copies (far more than the caches hold, so weights come from memory) for ~0.3 s. */
typedef void (*linear_fn)(float *, int64_t, const float *, int64_t, const void *, enum mpl_dtype, int,
                          int, int);
static double linear_rate(linear_fn f, enum mpl_dtype dtype, void *const *w, int n_copies, const float *x,
                          float *y, int n, int n_out, int n_in) {
  f(y, n_out, x, n_in, w[0], dtype, n, n_out, n_in); /* the pool and the tiles, warm */
  long calls = 0;
  double t0 = mpl_time_now(), t;
  do f(y, n_out, x, n_in, w[calls++ % n_copies], dtype, n, n_out, n_in);
  while ((t = mpl_time_now() - t0) < 0.3);
  return 2.0 * n * (double)n_out * n_in * (double)calls / t / 1e9;
}

/* The linear layer behind every projection, on this rank's threads: decode-sized to
 * prompt-sized batches of rows against bf16 weights of an MLP projection, next to
 * sgemm's own rate on f32 (the ceiling the batched paths aim at). Rank 0 only. */
static enum mpl_status kernel_bench(int n_threads) {
  enum { N_OUT = 5632, N_IN = 2048, MAX_ROWS = 256, COPIES = 48 }; /* 48 x 23 MB = 1.1 GB */
  static const int rows[] = {1, 2, 4, 8, 16, 32, 48, 64, 128, 256};
  enum mpl_status st = mpl_threads_init(n_threads);
  void *w[COPIES] = {0};
  float *x = mpl_alloc(sizeof(float) * MAX_ROWS * N_IN, "kernel-bench activations");
  float *y = mpl_alloc(sizeof(float) * MAX_ROWS * N_OUT, "kernel-bench outputs");
  for (int c = 0; st == MPL_OK && c < COPIES; c++) {
    w[c] = mpl_alloc(sizeof(uint16_t) * N_OUT * N_IN, "kernel-bench weights");
    if (!w[c]) st = MPL_ERR_NOMEM;
    for (size_t i = 0; w[c] && i < (size_t)N_OUT * N_IN; i++) ((uint16_t *)w[c])[i] = (uint16_t)(0x3c00 ^ (i & 0x7f));
  }
  if (!x || !y) st = MPL_ERR_NOMEM;
  if (st == MPL_OK) {
    for (size_t i = 0; i < (size_t)MAX_ROWS * N_IN; i++) x[i] = (float)(i % 7) * 0.1f;
    /* sgemm's rate: f32 weights of one L2-sized 256 x 2048 block, 256 rows */
    float *wf = mpl_alloc(sizeof(float) * 256 * N_IN, "kernel-bench f32 block");
    if (!wf) st = MPL_ERR_NOMEM;
    for (size_t i = 0; wf && i < (size_t)256 * N_IN; i++) wf[i] = 0.01f * (float)(i % 13);
    void *wfs[1] = {wf};
    double peak = wf ? linear_rate(mpl_tensor_linear_gemm, MPL_DTYPE_F32, wfs, 1, x, y, 256, 256, N_IN) : 0;
    mpl_free(wf);
    printf("kernel-bench: %d thread%s, %s kernels; bf16 weights [%d x %d] from memory (%d copies)\n"
           "sgemm on f32 from cache (256 x 256 x %d): %.1f GFLOP/s\n",
           n_threads, n_threads == 1 ? "" : "s", mpl_isa_name(mpl_tensor_isa()), N_OUT, N_IN, COPIES, N_IN, peak);
    printf("| rows | linear GFLOP/s | of sgemm | weights GB/s | rows path | sgemm path |\n");
    for (size_t k = 0; st == MPL_OK && k < sizeof rows / sizeof *rows; k++) {
      int n = rows[k];
      double r = linear_rate(mpl_tensor_linear_rows, MPL_DTYPE_BF16, w, COPIES, x, y, n, N_OUT, N_IN);
      double g = linear_rate(mpl_tensor_linear_gemm, MPL_DTYPE_BF16, w, COPIES, x, y, n, N_OUT, N_IN);
      double best = n < MPL_TENSOR_GEMM_MIN_ROWS ? r : g; /* what mpl_tensor_linear takes */
      printf("| %4d | %14.1f | %7.0f%% | %12.1f | %9.1f | %10.1f |\n", n, best, 100.0 * best / peak,
             best / n, r, g);
    }
  }
  for (int c = 0; c < COPIES; c++) mpl_free(w[c]);
  mpl_free(x);
  mpl_free(y);
  return st == MPL_ERR_NOMEM ? mpl_error_set(st, "kernel-bench: no memory for its 1.1 GB of weights") : st;
}

enum mpl_status mpl_cmd_info(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  long dp = 0, pp = 0, tp = 0;
  bool bench = false, kbench = false;
  const struct mpl_opt opts[] = {
      {"comm-bench", 0, MPL_OPT_FLAG, &bench, NULL, "also time allreduce, bcast and send/recv at 8 B..1 MiB"},
      {"kernel-bench", 0, MPL_OPT_FLAG, &kbench, NULL,
       "also time the linear layer at 1..256 rows on rank 0's threads (GFLOP/s, against sgemm)"},
      {"dp", 0, MPL_OPT_INT, &dp, "D", "data-parallel replicas (default: inferred)"},
      {"pp", 0, MPL_OPT_INT, &pp, "P", "pipeline stages (default 1)"},
      {"tp", 0, MPL_OPT_INT, &tp, "T", "tensor-parallel ranks per stage (default: the rest)"},
  };
  const struct mpl_cmd_spec spec = {"info", "mpillm info [--dp D --pp P --tp T] [--comm-bench] [--kernel-bench]",
                                    "Show the layout, threads and libraries this run sees.", opts,
                                    (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  int d = (int)dp, p = (int)pp, t = (int)tp;
  st = mpl_par_layout_resolve(ctx->world_size, &d, &p, &t);
  if (st != MPL_OK) return st;
  struct mpl_grid grid;
  st = mpl_par_grid_init(&grid, d, p, t);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st != MPL_OK) return st;
  int n_threads = 0;
  const char *threads_from = NULL;
  char launch[1024];
  st = mpl_par_threads_resolve(grid.world, &n_threads, &threads_from);
  if (st == MPL_OK) st = mpl_par_launch_report(grid.world, n_threads, threads_from, launch, sizeof launch);
  st = mpl_par_agree(grid.world, st);
  if (st != MPL_OK) {
    mpl_par_grid_free(&grid);
    return st;
  }
  if (grid.rank == 0) {
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi_version, &len);
    for (int i = 0; i < len; i++)
      if (mpi_version[i] == '\n' || mpi_version[i] == ',') {
        mpi_version[i] = '\0';
        break;
      }
    printf("mpillm %s\n", MPILLM_VERSION);
    printf("ranks      %d (dp %d x pp %d x tp %d)\n", grid.size, d, p, t);
    printf("MPI        %s\n", mpi_version);
    printf("HDF5       %u.%u.%u (%s)\n", maj, min, rel,
#ifdef MPILLM_HDF5_PARALLEL
           "parallel"
#else
           "serial"
#endif
    );
    printf("OpenBLAS   %s, %d threads\n", openblas_get_config(), openblas_get_num_threads());
    char blas[512];
    if (mpl_tensor_blas_generic(blas, sizeof blas)) printf("           warning: %s\n", blas);
    printf("threads    %d per rank (from %s)\n", n_threads, threads_from);
    printf("%s\n", launch);
  }
  if (bench) st = comm_bench(&grid);
  if (kbench && st == MPL_OK) {
    if (grid.rank == 0) st = kernel_bench(n_threads);
    st = mpl_par_agree(grid.world, st);
  }
  mpl_par_grid_free(&grid);
  return st;
}
