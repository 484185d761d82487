/* The tensor-parallel sum through node shared memory (src/parallel/shm_sum.c) on 4
 * ranks: on tp 4 and on tp 2 x dp 2 every rank gets, bit for bit, the sum of the
 * ranks' vectors added in rank order, over 300 calls whose vectors change each time
 * while the ranks arrive at different moments (the two alternating buffers); a vector
 * longer than the window and MPILLM_SHM_ALLREDUCE=0 take MPI_Allreduce and agree
 * with that sum within rounding. */
#include <math.h>
#include <stdlib.h>

#include "mpillm/parallel.h"
#include "mpl_test.h"

/* the value rank r contributes at element i in call k: not exactly representable
 * sums, so the order of the additions shows in the bits */
static float part(int r, size_t i, int k) { return (float)(1.0 / (3.0 + r + 0.37 * (double)(i % 97) + 0.11 * k)); }

static float rank_order_sum(int size, size_t i, int k) {
  float s = part(0, i, k);
  for (int r = 1; r < size; r++) s += part(r, i, k);
  return s;
}

static void spin_us(double us) {
  double end = mpl_time_now() + us * 1e-6;
  while (mpl_time_now() < end) {
  }
}

/* n floats per call, `calls` calls on g's tp_comm; exact: bitwise rank-order sum */
static int check_sums(const struct mpl_grid *g, size_t n, int calls, bool exact) {
  int size = g->tp_size, bad = 0;
  float *v = malloc(n * sizeof *v);
  if (!v) return 1;
  unsigned seed = 17u + (unsigned)g->rank;
  for (int k = 0; k < calls; k++) {
    for (size_t i = 0; i < n; i++) v[i] = part(g->tp_rank, i, k);
    spin_us((double)(rand_r(&seed) % 200)); /* arrive at different moments */
    if (mpl_par_allreduce_sum_f32(g->tp_comm, v, n) != MPL_OK) {
      bad++;
      break;
    }
    for (size_t i = 0; i < n; i++) {
      float want = rank_order_sum(size, i, k);
      if (exact ? v[i] != want : fabsf(v[i] - want) > 1e-6f * fabsf(want)) bad++;
    }
  }
  free(v);
  return bad;
}

static void run_layout(int dp, int tp, size_t n, int calls, bool exact) {
  struct mpl_grid g;
  enum mpl_status st = mpl_par_grid_init(&g, dp, 1, tp);
  CU_ASSERT_EQUAL_FATAL(mpl_par_agree(MPI_COMM_WORLD, st), MPL_OK);
  CU_ASSERT_EQUAL(check_sums(&g, n, calls, exact), 0);
  mpl_par_grid_free(&g);
}

static void test_tp4_bitwise(void) {
  run_layout(1, 4, 1, 50, true);
  run_layout(1, 4, 2048, 300, true);
  run_layout(1, 4, 65536, 6, true); /* the window's whole length */
}

static void test_tp2_dp2_bitwise(void) { run_layout(2, 2, 4096, 300, true); }

static void test_through_mpi(void) {
  run_layout(1, 4, 65537, 3, false); /* longer than the window */
  setenv("MPILLM_SHM_ALLREDUCE", "0", 1);
  run_layout(1, 4, 2048, 50, false);
  unsetenv("MPILLM_SHM_ALLREDUCE");
}

MPL_TEST_SUITE(parallel_shm_sum, MPL_TEST(test_tp4_bitwise), MPL_TEST(test_tp2_dp2_bitwise),
               MPL_TEST(test_through_mpi))
