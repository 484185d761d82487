/* The seed network on however many ranks mpiexec gives (registered at 1, 2, 3, 4, 5
 * and 7): the Keras fixtures convert, every mode at several alphas matches the numpy
 * reference within 1e-5 (probabilities and z), sharded files work, and bad input
 * fails on every rank with one message naming the culprit. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "mpillm/blend.h"
#include "mpillm/parallel.h"
#include "mpl_test.h"

#define TOL 1e-5

/* rank 0's scratch folder, known to all ranks */
static const char *shared_dir(void) {
  static char dir[512];
  if (!dir[0]) {
    if (mpl_par_world_rank() == 0) snprintf(dir, sizeof dir, "%s", mpl_test_scratch_dir());
    mpl_par_bcast(MPI_COMM_WORLD, dir, sizeof dir, 0);
  }
  return dir;
}

/* Converts fixture NAME.keras.h5 into <scratch>/NAME.h5 on rank 0; the path on all ranks. */
static enum mpl_status convert(const char *name, char *out, size_t out_bytes) {
  snprintf(out, out_bytes, "%s/%s.h5", shared_dir(), name);
  enum mpl_status st = MPL_OK;
  if (mpl_par_world_rank() == 0) {
    char src[256];
    snprintf(src, sizeof src, "tests/fixtures/blend/%s.keras.h5", name);
    struct mpl_blend_model model;
    st = mpl_blend_keras_read(mpl_test_source_path(src), &model);
    if (st == MPL_OK) st = mpl_blend_file_write(out, &model);
    mpl_blend_model_free(&model);
  }
  return mpl_par_agree(MPI_COMM_WORLD, st);
}

static enum mpl_status infer(const char *model, const char *input, const char *mode,
                             const char *alpha, const char *out) {
  const char *args[] = {"infer", "-m",   model, "--input", input, "--dataset", "x", "--mode",
                        mode,    "--alpha", alpha, "-o",      out,   "--save-z"};
  struct mpl_cli_ctx ctx = {mpl_par_world_rank(), mpl_par_world_size()};
  mpl_error_clear();
  enum mpl_status st = mpl_cmd_infer((int)(sizeof args / sizeof args[0]), (char **)args, &ctx);
  return mpl_par_agree(MPI_COMM_WORLD, st);
}

/* Largest |a - b| over dataset name of two files; -1 when they cannot be compared. */
static double max_diff(const char *a_path, const char *b_path, const char *name) {
  float *a = NULL, *b = NULL;
  int64_t ar = 0, ac = 0, br = 0, bc = 0;
  double diff = -1.0;
  if (mpl_blend_read_matrix(a_path, name, &a, &ar, &ac) == MPL_OK &&
      mpl_blend_read_matrix(b_path, name, &b, &br, &bc) == MPL_OK && ar == br && ac == bc) {
    diff = 0.0;
    for (int64_t i = 0; i < ar * ac; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
  }
  mpl_free(a);
  mpl_free(b);
  return diff;
}

static void check_all_modes(const char *fixture) {
  char model[512], ref[512], out[512];
  enum mpl_status st = convert(fixture, model, sizeof model);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) {
    fprintf(stderr, "%s\n", mpl_error_message());
    return;
  }
  char rel[256];
  snprintf(rel, sizeof rel, "tests/fixtures/blend/%s.ref.h5", fixture);
  snprintf(ref, sizeof ref, "%s", mpl_test_source_path(rel));
  snprintf(out, sizeof out, "%s/out.h5", shared_dir());
  const char *modes[] = {"model", "data", "split", "mix"};
  const char *alphas[] = {"0", "0.3", "0.5", "1"};
  for (int m = 0; m < 4; m++)
    for (int a = 0; a < 4; a++) {
      if (m < 2 && a > 0) continue; /* model and data do not look at alpha */
      st = infer(model, ref, modes[m], alphas[a], out);
      CU_ASSERT_EQUAL(st, MPL_OK);
      if (st != MPL_OK) fprintf(stderr, "%s: %s\n", modes[m], mpl_error_message());
      if (st != MPL_OK || mpl_par_world_rank() != 0) continue;
      double dp = max_diff(out, ref, "probs"), dz = max_diff(out, ref, "z");
      if (!(dp >= 0 && dp <= TOL && dz >= 0 && dz <= TOL))
        fprintf(stderr, "%s %d ranks mode %s alpha %s: |probs - ref| %.3g, |z - ref| %.3g\n",
                fixture, mpl_par_world_size(), modes[m], alphas[a], dp, dz);
      CU_ASSERT(dp >= 0 && dp <= TOL);
      CU_ASSERT(dz >= 0 && dz <= TOL);
    }
}

static void test_keras_L5_all_modes(void) { check_all_modes("keras_L5"); }
static void test_keras_L3_all_modes(void) { check_all_modes("keras_L3"); }

/* The converted L5 model with one change made through HDF5 by rank 0. */
enum damage { DAMAGE_N_FEATURES, DAMAGE_WIDTH, DAMAGE_DROP_SUBMODEL };

static enum mpl_status damaged_model(enum damage what, char *path, size_t path_bytes) {
  char good[512];
  enum mpl_status st = convert("keras_L5", good, sizeof good);
  snprintf(path, path_bytes, "%s/damaged.h5", shared_dir());
  if (st != MPL_OK || mpl_par_world_rank() != 0) return mpl_par_agree(MPI_COMM_WORLD, st);
  if (rename(good, path) != 0) st = mpl_error_set(MPL_ERR_IO, "rename %s", good);
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (st == MPL_OK && file >= 0) {
    hid_t config = H5Gopen2(file, "config", H5P_DEFAULT);
    if (what == DAMAGE_N_FEATURES) {
      int n = 26; /* the widths add up to 25 */
      hid_t attr = H5Aopen(config, "n_features", H5P_DEFAULT);
      H5Awrite(attr, H5T_NATIVE_INT, &n);
      H5Aclose(attr);
    } else if (what == DAMAGE_WIDTH) {
      /* widths 6,4,5,3,7 -> 6,5,4,3,7: same sum, but sub-model 1's kernel has 4 rows */
      int widths[5] = {6, 5, 4, 3, 7};
      hid_t attr = H5Aopen(config, "in_widths", H5P_DEFAULT);
      H5Awrite(attr, H5T_NATIVE_INT, widths);
      H5Aclose(attr);
    } else {
      H5Ldelete(file, "tensors/submodel_3.dense_1.kernel", H5P_DEFAULT);
    }
    H5Gclose(config);
    H5Fclose(file);
  }
  return mpl_par_agree(MPI_COMM_WORLD, st);
}

static const char *ref_path(const char *fixture) {
  static char path[512];
  char rel[256];
  snprintf(rel, sizeof rel, "tests/fixtures/blend/%s.ref.h5", fixture);
  snprintf(path, sizeof path, "%s", mpl_test_source_path(rel));
  return path;
}

/* Every rank gets status want and the message holds every needle. */
static void expect_failure(enum mpl_status st, enum mpl_status want, const char *needle1,
                           const char *needle2) {
  CU_ASSERT_EQUAL(st, want);
  const char *msg = mpl_error_message();
  bool ok = strstr(msg, needle1) && (!needle2 || strstr(msg, needle2));
  if (!ok) fprintf(stderr, "unexpected message: %s\n", msg);
  CU_ASSERT(ok);
}

static void test_alpha_outside_range(void) {
  char model[512], out[512];
  CU_ASSERT_EQUAL(convert("keras_L5", model, sizeof model), MPL_OK);
  snprintf(out, sizeof out, "%s/never.h5", shared_dir());
  expect_failure(infer(model, ref_path("keras_L5"), "split", "1.5", out), MPL_ERR_RANGE,
                 "--alpha 1.5 is outside [0, 1]", NULL);
  expect_failure(infer(model, ref_path("keras_L5"), "mix", "-0.1", out), MPL_ERR_RANGE,
                 "outside [0, 1]", NULL);
  FILE *f = fopen(out, "r"); /* nothing written */
  CU_ASSERT_PTR_NULL(f);
  if (f) fclose(f);
}

static void test_feature_count_mismatch(void) {
  char model[512], out[512];
  CU_ASSERT_EQUAL(convert("keras_L5", model, sizeof model), MPL_OK);
  snprintf(out, sizeof out, "%s/never.h5", shared_dir());
  /* the L3 fixture's rows have 20 features; the L5 model takes 25 */
  expect_failure(infer(model, ref_path("keras_L3"), "data", "0", out), MPL_ERR_FORMAT,
                 "has 20 features per row but the model", "takes 25");
}

static void test_widths_do_not_add_up(void) {
  char model[512], out[512];
  snprintf(out, sizeof out, "%s/never.h5", shared_dir());
  CU_ASSERT_EQUAL(damaged_model(DAMAGE_N_FEATURES, model, sizeof model), MPL_OK);
  expect_failure(infer(model, ref_path("keras_L5"), "model", "0", out), MPL_ERR_FORMAT,
                 "in_widths add up to 25 features but n_features is 26", NULL);
  /* widths with the right sum that disagree with a kernel: only the rank that owns
   * sub-model 1 sees it in model mode, every rank reports it */
  CU_ASSERT_EQUAL(damaged_model(DAMAGE_WIDTH, model, sizeof model), MPL_OK);
  expect_failure(infer(model, ref_path("keras_L5"), "model", "0", out), MPL_ERR_FORMAT,
                 "tensor submodel_1.dense_0.kernel is [4, 8], the config says [5, 8]", NULL);
}

static void test_submodel_missing(void) {
  char model[512], out[512];
  snprintf(out, sizeof out, "%s/never.h5", shared_dir());
  CU_ASSERT_EQUAL(damaged_model(DAMAGE_DROP_SUBMODEL, model, sizeof model), MPL_OK);
  /* with n ranks in one group of L=5, rank k owns [5k/n, 5(k+1)/n): sub-model 3 is on
   * the rank below; 7 ranks: groups 0-4 and 5-6, ranks 3 and 6 own it */
  int n = mpl_par_world_size(), owner = 0;
  for (int k = 0; k < (n < 5 ? n : 5); k++)
    if (k * 5 / (n < 5 ? n : 5) <= 3 && 3 < (k + 1) * 5 / (n < 5 ? n : 5)) owner = k;
  char who[32];
  snprintf(who, sizeof who, "[rank %d]", owner);
  expect_failure(infer(model, ref_path("keras_L5"), "model", "0", out), MPL_ERR_FORMAT,
                 "tensor submodel_3.dense_1.kernel is missing", who);
  expect_failure(infer(model, ref_path("keras_L5"), "data", "0", out), MPL_ERR_FORMAT,
                 "sub-model 3 of 5", NULL);
}

/* Sharded: each sub-model in its own file; model mode still matches numpy, and a
 * missing shard fails on the rank that owns it, reported on every rank. */
static void test_shards(void) {
  char model[512], out[512], shard[512], away[512];
  snprintf(model, sizeof model, "%s/sharded.h5", shared_dir());
  snprintf(out, sizeof out, "%s/sharded_out.h5", shared_dir());
  snprintf(shard, sizeof shard, "%s/sharded.sub3.h5", shared_dir());
  snprintf(away, sizeof away, "%s/away.h5", shared_dir());
  enum mpl_status st = MPL_OK;
  if (mpl_par_world_rank() == 0) {
    struct mpl_blend_model m;
    st = mpl_blend_keras_read(mpl_test_source_path("tests/fixtures/blend/keras_L5.keras.h5"), &m);
    if (st == MPL_OK) st = mpl_blend_file_write_shards(model, &m);
    mpl_blend_model_free(&m);
  }
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  st = infer(model, ref_path("keras_L5"), "model", "0", out);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK && mpl_par_world_rank() == 0) {
    double dp = max_diff(out, ref_path("keras_L5"), "probs");
    CU_ASSERT(dp >= 0 && dp <= TOL);
  }
  if (mpl_par_world_rank() == 0) rename(shard, away);
  mpl_par_barrier(MPI_COMM_WORLD);
  int n = mpl_par_world_size() < 5 ? mpl_par_world_size() : 5, owner = 0;
  for (int k = 0; k < n; k++)
    if (k * 5 / n <= 3 && 3 < (k + 1) * 5 / n) owner = k;
  char who[32];
  snprintf(who, sizeof who, "[rank %d]", owner);
  expect_failure(infer(model, ref_path("keras_L5"), "model", "0", out), MPL_ERR_FORMAT,
                 "lives in shard file sharded.sub3.h5", who);
}

MPL_TEST_SUITE(blend_modes, MPL_TEST(test_keras_L5_all_modes), MPL_TEST(test_keras_L3_all_modes));
MPL_TEST_SUITE(blend_errors, MPL_TEST(test_alpha_outside_range),
               MPL_TEST(test_feature_count_mismatch), MPL_TEST(test_widths_do_not_add_up),
               MPL_TEST(test_submodel_missing), MPL_TEST(test_shards));
