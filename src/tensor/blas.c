/* The one file that calls OpenBLAS: single-threaded sgemm for the pool's tiles and columns. */
#include <cblas.h>

#include "tensor/kernels.h"

/* OpenBLAS's own (declared in its cblas.h; repeated for cblas.h files without it) */
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

void mpl_tensor__sgemm_nt(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int n,
                          int n_rows, int n_in) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n_rows, n_in, 1.0f, x, (int)ldx, w,
              (int)n_in, 0.0f, y, (int)ldy);
}

void mpl_tensor__sgemm_nn(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                          int n, int k, int m, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, k, 1.0f, x, (int)ldx, w, (int)ldw, beta, y,
              (int)ldy);
}

const char *mpl_tensor__blas_core(void) {
  const char *name = openblas_get_corename();
  return name ? name : "";
}

void mpl_tensor__blas_threads(int n_pool_threads) {
  /* the pool's threads each call sgemm on their own tiles: OpenBLAS threads on top
   * would oversubscribe the cores (and with one pool thread, the rank was given one
   * core: several ranks per node must not each start a thread per core) */
  (void)n_pool_threads;
  openblas_set_num_threads(1);
}
