/* The emulated network on 4 ranks as 2 hosts of 2 ranks: messages between hosts wait
 * the modelled time (latency + bytes / bandwidth, per the algorithm's crossing
 * steps), messages inside a host wait nothing, and turning it off removes the delay.
 * The delay each rank added is checked exactly; wall time is checked only from below. */
#include <string.h>

#include "mpillm/parallel.h"
#include "mpl_test.h"

#define LATENCY_US 20000.0 /* large enough to see on a loaded 2-core machine */

static double delta_since(double *mark) {
  double now = mpl_par_net_delay_seconds();
  double d = now - *mark;
  *mark = now;
  return d;
}

static void test_point_to_point_only_across_hosts(void) {
  CU_ASSERT_EQUAL(mpl_par_net_configure(LATENCY_US, 0, 2), MPL_OK);
  int rank = mpl_par_world_rank();
  char buf[100] = {0};
  double mark = 0;
  /* inside a host: 0 -> 1 and 2 -> 3 */
  enum mpl_status st = MPL_OK;
  if (rank == 0 || rank == 2) st = mpl_par_send(MPI_COMM_WORLD, buf, sizeof buf, rank + 1, 1);
  if (rank == 1 || rank == 3) st = mpl_par_recv(MPI_COMM_WORLD, buf, sizeof buf, rank - 1, 1);
  CU_ASSERT_EQUAL(st, MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), 0.0, 1e-12);
  /* across hosts: 0 -> 2 and 1 -> 3; only the receivers wait */
  double t0 = mpl_time_now();
  if (rank == 0 || rank == 1) st = mpl_par_send(MPI_COMM_WORLD, buf, sizeof buf, rank + 2, 2);
  if (rank == 2 || rank == 3) st = mpl_par_recv(MPI_COMM_WORLD, buf, sizeof buf, rank - 2, 2);
  double wall = mpl_time_now() - t0;
  CU_ASSERT_EQUAL(st, MPL_OK);
  double added = delta_since(&mark);
  if (rank >= 2) {
    CU_ASSERT_DOUBLE_EQUAL(added, LATENCY_US * 1e-6, 1e-12);
    CU_ASSERT(wall >= LATENCY_US * 1e-6);
  } else {
    CU_ASSERT_DOUBLE_EQUAL(added, 0.0, 1e-12);
  }
}

static void test_collectives_by_crossing_steps(void) {
  CU_ASSERT_EQUAL(mpl_par_net_configure(LATENCY_US, 0, 2), MPL_OK);
  int rank = mpl_par_world_rank();
  double mark = 0;
  /* a communicator inside each host: no delay */
  MPI_Comm host_comm;
  MPI_Comm_split(MPI_COMM_WORLD, rank / 2, rank, &host_comm);
  float v[4] = {1, 2, 3, 4};
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f32(host_comm, v, 4), MPL_OK);
  CU_ASSERT_EQUAL(mpl_par_bcast(host_comm, v, sizeof v, 0), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), 0.0, 1e-12);
  MPI_Comm_free(&host_comm);
  /* the world spans 2 hosts: one crossing step each (log2 2 = 1) */
  double t0 = mpl_time_now();
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f32(MPI_COMM_WORLD, v, 4), MPL_OK);
  CU_ASSERT(mpl_time_now() - t0 >= LATENCY_US * 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), LATENCY_US * 1e-6, 1e-12);
  CU_ASSERT_EQUAL(mpl_par_bcast(MPI_COMM_WORLD, v, sizeof v, 0), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), LATENCY_US * 1e-6, 1e-12);
  CU_ASSERT_EQUAL(mpl_par_barrier(MPI_COMM_WORLD), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), LATENCY_US * 1e-6, 1e-12);
  /* 4 hosts of 1 rank: allreduce of 16 bytes by recursive doubling, 2 steps */
  CU_ASSERT_EQUAL(mpl_par_net_configure(LATENCY_US, 0, 1), MPL_OK);
  mark = 0;
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f32(MPI_COMM_WORLD, v, 4), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), 2 * LATENCY_US * 1e-6, 1e-12);
}

static void test_bandwidth_term(void) {
  /* 8 Mbit/s = 1e6 bytes/s, no latency */
  CU_ASSERT_EQUAL(mpl_par_net_configure(0, 8, 2), MPL_OK);
  int rank = mpl_par_world_rank();
  double mark = 0;
  static char buf[10000];
  enum mpl_status st = MPL_OK;
  if (rank == 1) st = mpl_par_send(MPI_COMM_WORLD, buf, sizeof buf, 2, 3);
  if (rank == 2) st = mpl_par_recv(MPI_COMM_WORLD, buf, sizeof buf, 1, 3);
  CU_ASSERT_EQUAL(st, MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), rank == 2 ? 0.01 : 0.0, 1e-12);
  /* gatherv of 1000 bytes per rank to rank 0: 2000 bytes come from the other host */
  size_t counts[4] = {1000, 1000, 1000, 1000}, displs[4] = {0, 1000, 2000, 3000};
  static char all[4000];
  CU_ASSERT_EQUAL(mpl_par_gatherv(MPI_COMM_WORLD, buf, 1000, all, counts, displs, 0), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(delta_since(&mark), rank == 0 ? 0.002 : 0.0, 1e-12);
}

static void test_off_and_bad_values(void) {
  CU_ASSERT_EQUAL(mpl_par_net_configure(-1, 0, 2), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "must not be negative"));
  CU_ASSERT_EQUAL(mpl_par_net_configure(0, 0, 0), MPL_OK);
  float v = 1;
  CU_ASSERT_EQUAL(mpl_par_allreduce_sum_f32(MPI_COMM_WORLD, &v, 1), MPL_OK);
  CU_ASSERT_DOUBLE_EQUAL(mpl_par_net_delay_seconds(), 0.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(v, 4.0, 0);
}

MPL_TEST_SUITE(parallel_net_delay, MPL_TEST(test_point_to_point_only_across_hosts),
               MPL_TEST(test_collectives_by_crossing_steps), MPL_TEST(test_bandwidth_term),
               MPL_TEST(test_off_and_bad_values));
