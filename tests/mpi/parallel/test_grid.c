/* The process grid and the status agreement on 4 ranks: layouts resolve, every
 * axis communicator has the right members, and a failure on one rank (a file only
 * rank 1 cannot open) reaches every rank as one message naming rank 1 and the file. */
#include <stdio.h>
#include <string.h>

#include "mpillm/parallel.h"
#include "mpl_test.h"

static void test_layout_resolve(void) {
  int dp = 0, pp = 0, tp = 0;
  CU_ASSERT_EQUAL(mpl_par_layout_resolve(4, &dp, &pp, &tp), MPL_OK);
  CU_ASSERT(dp == 1 && pp == 1 && tp == 4);
  dp = 0, pp = 0, tp = 2;
  CU_ASSERT_EQUAL(mpl_par_layout_resolve(4, &dp, &pp, &tp), MPL_OK);
  CU_ASSERT(dp == 2 && pp == 1 && tp == 2);
  dp = 0, pp = 2, tp = 0;
  CU_ASSERT_EQUAL(mpl_par_layout_resolve(4, &dp, &pp, &tp), MPL_OK);
  CU_ASSERT(dp == 1 && pp == 2 && tp == 2);
  dp = 3, pp = 0, tp = 0;
  CU_ASSERT_EQUAL(mpl_par_layout_resolve(4, &dp, &pp, &tp), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "does not fit 4 ranks"));
  dp = 2, pp = 2, tp = 2;
  CU_ASSERT_EQUAL(mpl_par_layout_resolve(4, &dp, &pp, &tp), MPL_ERR_ARG);
}

static void test_grid_axes(void) {
  struct mpl_grid g;
  enum mpl_status st = mpl_par_grid_init(&g, 1, 2, 2);
  CU_ASSERT_EQUAL(mpl_par_agree(MPI_COMM_WORLD, st), MPL_OK);
  if (st != MPL_OK) return;
  CU_ASSERT_EQUAL(g.tp_rank, g.rank % 2);
  CU_ASSERT_EQUAL(g.pp_rank, g.rank / 2);
  CU_ASSERT_EQUAL(mpl_par_comm_size(g.tp_comm), 2);
  CU_ASSERT_EQUAL(mpl_par_comm_size(g.pp_comm), 2);
  CU_ASSERT_EQUAL(mpl_par_comm_size(g.dp_comm), 1);
  CU_ASSERT_EQUAL(mpl_par_comm_size(g.replica_comm), 4);
  /* sum of world ranks over the tp communicator: stage 0 has {0,1}, stage 1 {2,3} */
  double v = g.rank;
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f64(g.tp_comm, &v, 1), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(v, g.pp_rank == 0 ? 1.0 : 5.0, 0);
  mpl_par_grid_free(&g);
  mpl_par_grid_free(&g); /* idempotent */
}

static void test_failure_on_rank_1_reaches_all(void) {
  int rank = mpl_par_world_rank();
  char path[256];
  /* every rank opens its own file; rank 1's does not exist */
  snprintf(path, sizeof path, rank == 1 ? "/nonexistent/rank1-weights.h5" : "/dev/null");
  enum mpl_status st = MPL_OK;
  FILE *f = fopen(path, "r");
  if (!f)
    st = mpl_error_set(MPL_ERR_IO, "cannot open %s", path);
  else
    fclose(f);
  enum mpl_status agreed = mpl_par_agree(MPI_COMM_WORLD, st);
  CU_ASSERT_EQUAL(agreed, MPL_ERR_IO);
  CU_ASSERT_STRING_EQUAL(mpl_error_message(), "[rank 1] cannot open /nonexistent/rank1-weights.h5");
  /* and everyone is still in step: a collective after the agreement completes */
  double one = 1.0;
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f64(MPI_COMM_WORLD, &one, 1), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(one, 4.0, 0);
}

static void test_failures_counted(void) {
  int rank = mpl_par_world_rank();
  enum mpl_status st = rank >= 2 ? mpl_error_set(MPL_ERR_FORMAT, "bad shard %d", rank) : MPL_OK;
  CU_ASSERT_EQUAL(mpl_par_agree(MPI_COMM_WORLD, st), MPL_ERR_FORMAT);
  CU_ASSERT_STRING_EQUAL(mpl_error_message(), "[rank 2] bad shard 2 (and 1 more ranks failed)");
  st = mpl_error_set(MPL_ERR_RANGE, "too long");
  CU_ASSERT_EQUAL(mpl_par_agree(MPI_COMM_WORLD, st), MPL_ERR_RANGE);
  CU_ASSERT_STRING_EQUAL(mpl_error_message(), "[rank 0] too long (on all 4 ranks)");
  CU_ASSERT_EQUAL(mpl_par_agree(MPI_COMM_WORLD, MPL_OK), MPL_OK);
}

MPL_TEST_SUITE(parallel_grid, MPL_TEST(test_layout_resolve), MPL_TEST(test_grid_axes),
               MPL_TEST(test_failure_on_rank_1_reaches_all), MPL_TEST(test_failures_counted))
