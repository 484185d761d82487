/* The shared counter: every rank takes values as fast as it can, rank r r % 3 + 1 at
 * a time, with rank 0 busy computing for part of the time; together they get 0..N-1,
 * each exactly once. And the others' takes complete while rank 0 computes, calling
 * only mpl_par_progress: with osc/sm that holds anyway; the _pt2pt registration (Open
 * MPI's osc/pt2pt, which needs the holder to enter MPI) is where the progress calls
 * are what serves them. */
#include <stdlib.h>

#include "mpillm/parallel.h"
#include "mpl_test.h"

static void test_every_value_once(void) {
  struct mpl_par_counter c;
  CU_ASSERT_EQUAL_FATAL(mpl_par_counter_create(MPI_COMM_WORLD, &c), MPL_OK);
  int rank = mpl_par_comm_rank(MPI_COMM_WORLD), size = mpl_par_comm_size(MPI_COMM_WORLD);
  enum { N = 400 };
  int mine[N], n_mine = 0;
  int64_t first = 0, chunk = rank % 3 + 1;
  volatile double sink = 0;
  while (mpl_par_counter_next(&c, chunk, &first) == MPL_OK && first < N) {
    for (int64_t v = first; v < first + chunk && v < N; v++) mine[n_mine++] = (int)v;
    /* rank 0 works between takes, so the others take while it is not in MPI */
    if (rank == 0)
      for (int k = 0; k < 20000; k++) sink += k * 1e-9;
  }
  CU_ASSERT(first >= N);
  int *all = calloc(N, sizeof(int));
  CU_ASSERT_FATAL(size <= 64 && all != NULL);
  int n_all = 0;
  size_t n_counts[64], displs[64];
  int64_t my_n = n_mine, ns[64];
  CU_ASSERT_EQUAL(mpl_par_allgather(MPI_COMM_WORLD, &my_n, sizeof my_n, ns), MPL_OK);
  size_t off = 0;
  for (int r = 0; r < size; r++) {
    n_counts[r] = (size_t)ns[r] * sizeof(int);
    displs[r] = off;
    off += n_counts[r];
    n_all += (int)ns[r];
  }
  CU_ASSERT_EQUAL(n_all, N);
  CU_ASSERT_EQUAL(mpl_par_gatherv(MPI_COMM_WORLD, mine, (size_t)n_mine * sizeof(int), all, n_counts, displs, 0),
                  MPL_OK);
  if (rank == 0) {
    int seen[N] = {0};
    for (int i = 0; i < n_all && i < N; i++)
      if (all[i] >= 0 && all[i] < N) seen[all[i]]++;
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(seen[i], 1);
  }
  free(all);
  mpl_par_counter_free(&c);
}

static void test_takes_served_while_holder_computes(void) {
  struct mpl_par_counter c;
  CU_ASSERT_EQUAL_FATAL(mpl_par_counter_create(MPI_COMM_WORLD, &c), MPL_OK);
  int rank = mpl_par_comm_rank(MPI_COMM_WORLD), size = mpl_par_comm_size(MPI_COMM_WORLD);
  enum { K = 50 };
  CU_ASSERT_EQUAL(c.host, rank == 0);
  if (rank == 0) {
    /* computes, reading the value in its own memory, until every take is in; the
     * deadline only ends a failing run (without progress, osc/pt2pt never serves) */
    const volatile int64_t *value = c.base;
    volatile double sink = 0;
    double t0 = mpl_time_now();
    while (*value < (int64_t)(size - 1) * K && mpl_time_now() - t0 < 20) {
      for (int k = 0; k < 2000; k++) sink += k * 1e-9;
      mpl_par_progress();
    }
    CU_ASSERT_EQUAL(*value, (int64_t)(size - 1) * K);
  } else {
    int64_t v = -1;
    for (int k = 0; k < K; k++) CU_ASSERT_EQUAL(mpl_par_counter_next(&c, 1, &v), MPL_OK);
    CU_ASSERT(v >= 0 && v < (int64_t)(size - 1) * K);
  }
  mpl_par_counter_free(&c);
  CU_ASSERT_FALSE(c.host);
}

MPL_TEST_SUITE(parallel_counter, MPL_TEST(test_every_value_once),
               MPL_TEST(test_takes_served_while_holder_computes))
