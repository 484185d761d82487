/* The shared CUnit runner's registration: a test file lists its cases with
 * MPL_TEST_SUITE and the runner (tests/runner/runner.c) finds them at start-up.
 * In MPI tests (LABEL mpi) the runner starts MPI with mpl_par_init, reduces the
 * failure count over ranks and prints one summary on rank 0. Never put a fatal
 * CU_ASSERT_*_FATAL before a collective: its longjmp skips the collective and the
 * other ranks hang; check, agree, then assert. */
#ifndef MPILLM_TEST_H
#define MPILLM_TEST_H

#include <CUnit/CUnit.h>

struct mpl_test_case {
  const char *name;
  CU_TestFunc fn;
};

void mpl_test_register_suite(const char *suite, const struct mpl_test_case *cases);

/* Path of a file under the source tree (fixtures): "$MPILLM_SOURCE_DIR/<rel>". */
const char *mpl_test_source_path(const char *rel);
/* A fresh scratch directory for this test process (removed by the caller's choice). */
const char *mpl_test_scratch_dir(void);

#define MPL_TEST(fn) {#fn, fn}
#define MPL_TEST_SUITE(suite, ...)                                               \
  static const struct mpl_test_case suite##_cases[] = {__VA_ARGS__, {0, 0}};    \
  __attribute__((constructor)) static void suite##_register(void) {             \
    mpl_test_register_suite(#suite, suite##_cases);                             \
  }

#endif
