/* The one CUnit runner: -s SUITE and -t TEST filter, -v is verbose; the exit code
 * is the number of failures (summed over ranks in MPI tests). */
#include <CUnit/Basic.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpl_test.h"
#ifdef MPL_TEST_MPI
#include "mpillm/parallel.h"
#endif

#define MAX_SUITES 64
static struct {
  const char *name;
  const struct mpl_test_case *cases;
} suites[MAX_SUITES];
static int n_suites = 0;

void mpl_test_register_suite(const char *suite, const struct mpl_test_case *cases) {
  if (n_suites == MAX_SUITES) {
    fprintf(stderr, "runner: more than %d suites\n", MAX_SUITES);
    exit(2);
  }
  suites[n_suites].name = suite;
  suites[n_suites].cases = cases;
  n_suites++;
}

const char *mpl_test_source_path(const char *rel) {
  static _Thread_local char path[4096];
  const char *root = getenv("MPILLM_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
  return path;
}

static char scratch_dir[4096];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* After the run: the scratch folder goes, unless a test failed (then it is named). */
static void scratch_cleanup(long failures) {
  if (!scratch_dir[0]) return;
  if (failures > 0) fprintf(stderr, "runner: scratch files kept in %s\n", scratch_dir);
  else nftw(scratch_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *mpl_test_scratch_dir(void) {
  char *dir = scratch_dir;
  if (dir[0]) return dir;
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof scratch_dir, "%s/mpillm-test-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    exit(2);
  }
  return dir;
}

int main(int argc, char **argv) {
  const char *only_suite = NULL, *only_test = NULL;
  int verbose = 0, opt;
  while ((opt = getopt(argc, argv, "s:t:vh")) != -1) {
    if (opt == 's') only_suite = optarg;
    else if (opt == 't') only_test = optarg;
    else if (opt == 'v') verbose = 1;
    else {
      printf("usage: %s [-s SUITE] [-t TEST] [-v]\n", argv[0]);
      return opt == 'h' ? 0 : 2;
    }
  }
  int rank = 0;
#ifdef MPL_TEST_MPI
  if (mpl_par_init(&argc, &argv) != MPL_OK) {
    fprintf(stderr, "runner: MPI start failed\n");
    return 2;
  }
  rank = mpl_par_world_rank();
  /* one summary for CI: the other ranks' stdout goes nowhere */
  if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 2;
#endif
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  int n_added = 0;
  for (int s = 0; s < n_suites; s++) {
    if (only_suite && strcmp(only_suite, suites[s].name) != 0) continue;
    CU_pSuite suite = CU_add_suite(suites[s].name, NULL, NULL);
    for (const struct mpl_test_case *c = suites[s].cases; c->name; c++) {
      if (only_test && strcmp(only_test, c->name) != 0) continue;
      CU_add_test(suite, c->name, c->fn);
      n_added++;
    }
  }
  if (n_added == 0) fprintf(stderr, "runner: no test matches the filter\n");
  CU_basic_set_mode(verbose ? CU_BRM_VERBOSE : CU_BRM_NORMAL);
  CU_basic_run_tests();
  long failures = (long)CU_get_number_of_failures() + (n_added == 0);
  CU_cleanup_registry();
#ifdef MPL_TEST_MPI
  long total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0 && total != failures)
    printf("runner: %ld failures on the other ranks (rerun with MPILLM_LOG_ALL_RANKS=1)\n",
           total - failures);
  failures = total;
  mpl_par_finalize();
#endif
  scratch_cleanup(failures);
  (void)rank;
  return failures > 255 ? 255 : (int)failures;
}
