/* The shared option parser: long, short and = forms, numbers, flags, positional
 * arguments, errors that name the option, and INI config files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/cli.h"
#include "mpl_test.h"

static long n_tokens;
static double temperature;
static const char *model;
static bool json;
static const struct mpl_opt opts[] = {
    {"model", 'm', MPL_OPT_STRING, &model, "FILE", "model file"},
    {"n", 'n', MPL_OPT_INT, &n_tokens, "N", "tokens to generate"},
    {"temperature", 0, MPL_OPT_DOUBLE, &temperature, "T", "sampling temperature"},
    {"json", 0, MPL_OPT_FLAG, &json, NULL, "print JSON"},
};
static const struct mpl_cmd_spec spec = {"generate", "mpillm generate [options] [PROMPT]",
                                         "test", opts, 4, 0, 1};

static void reset(void) {
  n_tokens = 16;
  temperature = 1.0;
  model = NULL;
  json = false;
}

static enum mpl_status parse(int argc, char **argv, int *n_pos, char **first) {
  char **pos = NULL;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, n_pos, &help);
  *first = (st == MPL_OK && *n_pos > 0) ? pos[0] : NULL;
  free(pos);
  return st;
}

static void test_forms(void) {
  reset();
  char *argv[] = {"generate", "-m", "a.h5", "--n=7", "--temperature", "0.5", "--json", "hi", NULL};
  int n_pos = 0;
  char *first = NULL;
  CU_ASSERT_EQUAL(parse(8, argv, &n_pos, &first), MPL_OK);
  CU_ASSERT_STRING_EQUAL(model, "a.h5");
  CU_ASSERT_EQUAL(n_tokens, 7);
  CU_ASSERT_DOUBLE_EQUAL(temperature, 0.5, 1e-12);
  CU_ASSERT(json);
  CU_ASSERT_EQUAL(n_pos, 1);
  CU_ASSERT_STRING_EQUAL(first, "hi");
}

static void test_errors_name_the_option(void) {
  reset();
  int n_pos;
  char *first;
  char *bad_number[] = {"generate", "-n", "seven", NULL};
  CU_ASSERT_EQUAL(parse(3, bad_number, &n_pos, &first), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "--n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "seven"));
  char *unknown[] = {"generate", "--tempreature", "1", NULL};
  CU_ASSERT_EQUAL(parse(3, unknown, &n_pos, &first), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "--tempreature"));
  char *missing[] = {"generate", "-m", NULL};
  CU_ASSERT_EQUAL(parse(2, missing, &n_pos, &first), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "needs a value"));
  char *too_many[] = {"generate", "a", "b", NULL};
  CU_ASSERT_EQUAL(parse(3, too_many, &n_pos, &first), MPL_ERR_ARG);
}

static void test_config_file_and_override(void) {
  reset();
  char path[4200];
  snprintf(path, sizeof path, "%s/run.ini", mpl_test_scratch_dir());
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "; shared by all commands\n[mpillm]\nmodel = from-file.h5\nthreads = 4\n"
             "[generate]\nn = 32\ntemperature = 0.25\njson = true\n[bench]\nreps = 3\n");
  fclose(f);
  char *argv[] = {"generate", "--config", path, "-n", "5", NULL};
  int n_pos;
  char *first;
  CU_ASSERT_EQUAL(parse(5, argv, &n_pos, &first), MPL_OK);
  CU_ASSERT_STRING_EQUAL(model, "from-file.h5");
  CU_ASSERT_EQUAL(n_tokens, 5); /* the command line wins */
  CU_ASSERT_DOUBLE_EQUAL(temperature, 0.25, 1e-12);
  CU_ASSERT(json);

  f = fopen(path, "w");
  fprintf(f, "[generate]\ntemprature = 2\n");
  fclose(f);
  CU_ASSERT_EQUAL(parse(3, argv, &n_pos, &first), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "temprature"));
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), path));
  remove(path);
  char *missing_file[] = {"generate", "--config", "/nonexistent/x.ini", NULL};
  CU_ASSERT_EQUAL(parse(3, missing_file, &n_pos, &first), MPL_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "/nonexistent/x.ini"));
}

MPL_TEST_SUITE(cli_options, MPL_TEST(test_forms), MPL_TEST(test_errors_name_the_option),
               MPL_TEST(test_config_file_and_override))
