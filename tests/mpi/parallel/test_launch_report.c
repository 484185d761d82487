/* The start-up report on 2 ranks of one node: threads per rank follow the documented
 * order of variables, the line names ranks per node and each rank's binding, and it
 * warns when ranks x threads exceed the node's cores. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpillm/parallel.h"
#include "mpl_test.h"

static void test_threads_order(void) {
  int n = 0;
  const char *from = NULL;
  setenv("MPILLM_THREADS", "5", 1);
  setenv("OPENBLAS_NUM_THREADS", "4", 1);
  setenv("SLURM_CPUS_PER_TASK", "3", 1);
  CU_ASSERT_EQUAL(mpl_par_threads_resolve(MPI_COMM_WORLD, &n, &from), MPL_OK);
  CU_ASSERT(n == 5 && strcmp(from, "MPILLM_THREADS") == 0);
  unsetenv("MPILLM_THREADS");
  CU_ASSERT_EQUAL(mpl_par_threads_resolve(MPI_COMM_WORLD, &n, &from), MPL_OK);
  CU_ASSERT(n == 4 && strcmp(from, "OPENBLAS_NUM_THREADS") == 0);
  setenv("OPENBLAS_NUM_THREADS", "zero", 1); /* not a number: skipped */
  CU_ASSERT_EQUAL(mpl_par_threads_resolve(MPI_COMM_WORLD, &n, &from), MPL_OK);
  CU_ASSERT(n == 3 && strcmp(from, "SLURM_CPUS_PER_TASK") == 0);
  unsetenv("OPENBLAS_NUM_THREADS");
  unsetenv("SLURM_CPUS_PER_TASK");
  CU_ASSERT_EQUAL(mpl_par_threads_resolve(MPI_COMM_WORLD, &n, &from), MPL_OK);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  CU_ASSERT_EQUAL(n, cores / 2 > 0 ? cores / 2 : 1);
  CU_ASSERT_STRING_EQUAL(from, "cores/ranks-per-node");
}

static void test_report_line_and_warning(void) {
  char line[1024];
  int rank = mpl_par_world_rank();
  CU_ASSERT_EQUAL(mpl_par_launch_report(MPI_COMM_WORLD, 1, "test", line, sizeof line), MPL_OK);
  if (rank == 0) {
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "2 ranks on 1 node (2 per node)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "1 thread per rank (from test)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " r0:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " r1:"));
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) CU_ASSERT_PTR_NULL(strstr(line, "oversubscribed"));
  } else {
    CU_ASSERT_STRING_EQUAL(line, "");
  }
  /* 2 ranks x 4096 threads exceed any node */
  CU_ASSERT_EQUAL(mpl_par_launch_report(MPI_COMM_WORLD, 4096, "test", line, sizeof line), MPL_OK);
  if (rank == 0) {
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "WARNING oversubscribed: node "));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "runs 2 ranks x 4096 threads = 8192 >"));
  }
}

MPL_TEST_SUITE(parallel_launch_report, MPL_TEST(test_threads_order),
               MPL_TEST(test_report_line_and_warning));
