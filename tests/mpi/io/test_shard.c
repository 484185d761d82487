/* io on 4 ranks: shard sets cut by `mpl_io_shard` serve exactly the rectangles the
 * model file does (pp 2 x tp 2 and tp 4), a model loaded from shards gives
 * bit-identical logits; a layout mismatch, a corrupt shard or a missing shard on
 * ONE rank gives the same clear error on every rank without a hang; collective
 * MPI-IO reads (a rank with nothing to read joins) equal independent ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpillm/io.h"
#include "mpillm/model.h"
#include "mpillm/parallel.h"
#include "mpl_test.h"

static char scratch[4096]; /* rank 0's scratch folder, the same string on every rank */

static int world_rank(void) { return mpl_par_comm_rank(MPI_COMM_WORLD); }

/* Rank 0 runs prepare(arg) (convert, shard, spoil); every rank gets the agreed status. */
static enum mpl_status on_rank0(enum mpl_status (*prepare)(const char *), const char *arg) {
  if (world_rank() == 0 && !scratch[0]) snprintf(scratch, sizeof scratch, "%s", mpl_test_scratch_dir());
  enum mpl_status st = mpl_par_bcast(MPI_COMM_WORLD, scratch, sizeof scratch, 0);
  if (st == MPL_OK && world_rank() == 0) {
    st = prepare(arg);
    if (st != MPL_OK) fprintf(stderr, "prepare: %s\n", mpl_error_message());
  }
  return mpl_par_agree(MPI_COMM_WORLD, st);
}

static char path_buf[4400];
static const char *at(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", scratch, name);
  return path_buf;
}

static enum mpl_status prepare_models(const char *unused) {
  (void)unused;
  char out[4400];
  enum mpl_status st = MPL_OK;
  static const char *const fixtures[2] = {"llama_gqa", "gpt2"};
  for (int i = 0; i < 2 && st == MPL_OK; i++) {
    char hf[4096];
    snprintf(hf, sizeof hf, "tests/fixtures/%s/hf", fixtures[i]);
    snprintf(hf, sizeof hf, "%s", mpl_test_source_path(hf));
    snprintf(out, sizeof out, "%s/%s.h5", scratch, fixtures[i]);
    st = mpl_io_convert(hf, out, MPL_DTYPE_COUNT);
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/%s-pp2-tp2", scratch, fixtures[i]);
    if (st == MPL_OK) st = mpl_io_shard(out, 2, NULL, 2, dir);
    snprintf(dir, sizeof dir, "%s/%s-tp4", scratch, fixtures[i]);
    if (st == MPL_OK) st = mpl_io_shard(out, 1, NULL, 4, dir);
  }
  return st;
}

/* Every rectangle of this rank's part read from the shard set equals the model file's. */
static void compare_rects(const char *model, const char *shards, int pp_rank, int pp_size, int tp_rank,
                          int tp_size) {
  struct mpl_model_file *file = NULL, *set = NULL;
  enum mpl_status st = mpl_io_open(model, MPI_COMM_SELF, 0, 1, 0, 1, &file);
  if (st == MPL_OK) st = mpl_io_open(shards, MPI_COMM_SELF, pp_rank, pp_size, tp_rank, tp_size, &set);
  struct mpl_model_config cfg;
  struct mpl_model_part part;
  struct mpl_tensor_rect *rects = NULL;
  int n_rects = 0, n_diff = 0;
  if (st == MPL_OK) st = mpl_io_read_config(set, &cfg);
  if (st == MPL_OK) st = mpl_model_part_for(&cfg, pp_rank, pp_size, NULL, tp_rank, tp_size, &part);
  if (st == MPL_OK) st = mpl_model_part_rects(&cfg, &part, &rects, &n_rects);
  for (int i = 0; st == MPL_OK && i < n_rects; i++) {
    size_t n = (size_t)(rects[i].n_rows * rects[i].n_cols);
    float *a = malloc(n * sizeof(float) + 4), *b = malloc(n * sizeof(float) + 4);
    st = mpl_io_read_rect(file, rects[i].name, rects[i].row0, rects[i].n_rows, rects[i].col0, rects[i].n_cols,
                          MPL_DTYPE_F32, a);
    if (st == MPL_OK)
      st = mpl_io_read_rect(set, rects[i].name, rects[i].row0, rects[i].n_rows, rects[i].col0, rects[i].n_cols,
                            MPL_DTYPE_F32, b);
    if (st == MPL_OK && memcmp(a, b, n * sizeof(float)) != 0) n_diff++;
    free(a);
    free(b);
  }
  /* a part of a rectangle (a row slice of the first) is served too */
  if (st == MPL_OK && n_rects > 0 && rects[0].n_rows > 1) {
    float *a = malloc((size_t)rects[0].n_cols * sizeof(float)), *b = malloc((size_t)rects[0].n_cols * sizeof(float));
    st = mpl_io_read_rect(file, rects[0].name, rects[0].row0 + 1, 1, rects[0].col0, rects[0].n_cols, MPL_DTYPE_F32, a);
    if (st == MPL_OK)
      st = mpl_io_read_rect(set, rects[0].name, rects[0].row0 + 1, 1, rects[0].col0, rects[0].n_cols, MPL_DTYPE_F32, b);
    if (st == MPL_OK && memcmp(a, b, (size_t)rects[0].n_cols * sizeof(float)) != 0) n_diff++;
    free(a);
    free(b);
  }
  if (st != MPL_OK) fprintf(stderr, "compare %s: %s\n", shards, mpl_error_message());
  CU_ASSERT_EQUAL(st, MPL_OK);
  CU_ASSERT(n_rects > 0);
  CU_ASSERT_EQUAL(n_diff, 0);
  free(rects);
  mpl_io_close(file);
  mpl_io_close(set);
}

static void test_shard_rects(void) {
  enum mpl_status st = on_rank0(prepare_models, NULL);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  int r = world_rank();
  char model[4400], shards[4400];
  static const char *const fixtures[2] = {"llama_gqa", "gpt2"};
  for (int i = 0; i < 2; i++) {
    snprintf(model, sizeof model, "%s/%s.h5", scratch, fixtures[i]);
    snprintf(shards, sizeof shards, "%s/%s-pp2-tp2", scratch, fixtures[i]);
    compare_rects(model, shards, r / 2, 2, r % 2, 2);
    snprintf(shards, sizeof shards, "%s/%s-tp4", scratch, fixtures[i]);
    compare_rects(model, shards, 0, 1, r, 4);
  }
}

/* Loads with tp = 4 from path and runs one batch; logits [n][local vocab]. */
static enum mpl_status forward(const char *path, float **logits, size_t *n_logits) {
  struct mpl_model_file *f = NULL;
  struct mpl_model_config cfg;
  struct mpl_model_part part;
  struct mpl_model *m = NULL;
  struct mpl_kv_cache *kv = NULL;
  int r = world_rank();
  enum mpl_status st = mpl_io_open(path, MPI_COMM_WORLD, 0, 1, r, 4, &f);
  if (st == MPL_OK) st = mpl_io_read_config(f, &cfg);
  mpl_io_close(f);
  if (st == MPL_OK) st = mpl_model_part_for(&cfg, 0, 1, NULL, r, 4, &part);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st == MPL_OK) st = mpl_model_load(path, &part, MPI_COMM_WORLD, &m);
  if (st == MPL_OK) st = mpl_kv_create(m, 1, 16, &kv);
  if (st == MPL_OK) {
    int v0, v1;
    mpl_model_vocab_range(m, &v0, &v1);
    int32_t tok[5] = {5, 17, 3, 42, 9}, pos[5] = {0, 1, 2, 3, 4}, seq[5] = {0}, rows[5] = {0, 1, 2, 3, 4};
    struct mpl_batch b = {5, tok, pos, seq, 5, rows};
    *n_logits = (size_t)5 * (size_t)(v1 - v0);
    *logits = malloc(*n_logits * sizeof(float));
    st = mpl_model_forward(m, kv, &b, NULL, NULL, *logits);
  }
  if (st != MPL_OK) fprintf(stderr, "forward %s: %s\n", path, mpl_error_message());
  mpl_kv_destroy(kv);
  mpl_model_destroy(m);
  return st;
}

static void test_load_from_shards(void) {
  static const char *const fixtures[2] = {"llama_gqa", "gpt2"};
  for (int i = 0; i < 2; i++) {
    char model[4400], shards[4400];
    snprintf(model, sizeof model, "%s/%s.h5", scratch, fixtures[i]);
    snprintf(shards, sizeof shards, "%s/%s-tp4", scratch, fixtures[i]);
    float *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    enum mpl_status st = forward(model, &a, &na);
    CU_ASSERT_EQUAL(st, MPL_OK);
    if (st == MPL_OK) st = forward(shards, &b, &nb);
    CU_ASSERT_EQUAL(st, MPL_OK);
    if (st == MPL_OK) CU_ASSERT(na == nb && memcmp(a, b, na * sizeof(float)) == 0);
    free(a);
    free(b);
  }
}

static void test_layout_mismatch(void) {
  struct mpl_model_file *f = NULL;
  const char *shards = at("llama_gqa-pp2-tp2");
  char copy[4400];
  snprintf(copy, sizeof copy, "%s", shards);
  enum mpl_status st = mpl_io_open(copy, MPI_COMM_WORLD, 0, 1, world_rank(), 4, &f);
  CU_ASSERT_EQUAL(st, MPL_ERR_ARG);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT(strstr(mpl_error_message(), "pp 2 x tp 2") && strstr(mpl_error_message(), "pp 1 x tp 4"));
  mpl_io_close(f);
}

/* A fresh copy of the tp 4 set in scratch/name. */
static enum mpl_status copy_set(const char *name) {
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && cp -r '%s/llama_gqa-tp4' '%s/%s'", scratch, name, scratch, scratch, name);
  return system(cmd) == 0 ? MPL_OK : mpl_error_set(MPL_ERR_IO, "cannot copy the shard set");
}

/* The tp 4 set with one file spoilt: "flip" a byte or "drop" the file of tp_rank 3, in a
 * fresh copy; "flip-in-place": flip in the copy "kept" that copy_set made (same inode). */
static enum mpl_status spoil(const char *how) {
  if (strcmp(how, "flip-in-place") == 0) how = "kept";
  else if (copy_set(how) != MPL_OK) return MPL_ERR_IO;
  char file[4400];
  snprintf(file, sizeof file, "%s/%s/shard-pp0-tp3.h5", scratch, how);
  if (strcmp(how, "drop") == 0) return unlink(file) == 0 ? MPL_OK : mpl_error_set(MPL_ERR_IO, "unlink");
  FILE *fp = fopen(file, "r+b");
  if (!fp) return mpl_error_set(MPL_ERR_IO, "cannot open %s", file);
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fseek(fp, size / 2, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, size / 2, SEEK_SET);
  fputc(c ^ 0x01, fp);
  fclose(fp);
  return MPL_OK;
}

static void expect_all_fail(const char *how, enum mpl_status want) {
  enum mpl_status st = on_rank0(spoil, how);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  char dir[4400];
  snprintf(dir, sizeof dir, "%s/%s", scratch, how);
  int r = world_rank();
  /* through mpl_io_open on every rank, agreed over the world */
  struct mpl_model_file *f = NULL;
  st = mpl_io_open(dir, MPI_COMM_WORLD, 0, 1, r, 4, &f);
  CU_ASSERT_EQUAL(st, want);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT(strstr(mpl_error_message(), "shard-pp0-tp3.h5") != NULL);
  CU_ASSERT(strstr(mpl_error_message(), "[rank 3]") != NULL);
  mpl_io_close(f);
  /* and through the model loader */
  char model[4400];
  snprintf(model, sizeof model, "%s/llama_gqa.h5", scratch);
  struct mpl_model_config cfg;
  struct mpl_model_part part;
  st = mpl_io_open(model, MPI_COMM_SELF, 0, 1, 0, 1, &f);
  if (st == MPL_OK) st = mpl_io_read_config(f, &cfg);
  mpl_io_close(f);
  if (st == MPL_OK) st = mpl_model_part_for(&cfg, 0, 1, NULL, r, 4, &part);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  struct mpl_model *m = NULL;
  st = mpl_model_load(dir, &part, MPI_COMM_WORLD, &m);
  CU_ASSERT_EQUAL(st, want);
  CU_ASSERT(strstr(mpl_error_message(), "shard-pp0-tp3.h5") != NULL);
  if (r == 0) printf("\n  %s: %s\n", how, mpl_error_message());
  mpl_model_destroy(m);
}

static void test_corrupt_shard_one_rank(void) { expect_all_fail("flip", MPL_ERR_CHECKSUM); }

/* A file checked at one open and changed before the next is checked again: the
 * process remembers a file's crc32 only while its inode, size and mtime stay. */
static void test_shard_changed_between_opens(void) {
  CU_ASSERT_EQUAL_FATAL(on_rank0(copy_set, "kept"), MPL_OK);
  char dir[4400];
  snprintf(dir, sizeof dir, "%s/kept", scratch);
  struct mpl_model_file *f = NULL;
  enum mpl_status st = mpl_io_open(dir, MPI_COMM_WORLD, 0, 1, world_rank(), 4, &f);
  CU_ASSERT_EQUAL(st, MPL_OK);
  mpl_io_close(f);
  f = NULL;
  CU_ASSERT_EQUAL_FATAL(on_rank0(spoil, "flip-in-place"), MPL_OK);
  st = mpl_io_open(dir, MPI_COMM_WORLD, 0, 1, world_rank(), 4, &f);
  CU_ASSERT_EQUAL(st, MPL_ERR_CHECKSUM);
  CU_ASSERT(strstr(mpl_error_message(), "shard-pp0-tp3.h5") != NULL);
  mpl_io_close(f);
}
static void test_missing_shard_one_rank(void) { expect_all_fail("drop", MPL_ERR_IO); }

/* Row slices read together through MPI-IO (rank 3 reads nothing) equal those read alone. */
static void collective_vs_alone(void) {
  char model[4400];
  snprintf(model, sizeof model, "%s/llama_gqa.h5", scratch);
  const char *name = "model.layers.0.mlp.up_proj.weight"; /* [520, 96] */
  int r = world_rank();
  int64_t row0 = r * 173, n_rows = r == 3 ? 0 : 173;
  float *a = malloc(173 * 96 * sizeof(float)), *b = malloc(173 * 96 * sizeof(float));
  struct mpl_model_file *together = NULL, *alone = NULL;
  enum mpl_status st = mpl_io_open(model, MPI_COMM_WORLD, 0, 1, r, 4, &together);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK) {
    st = mpl_io_read_rect(together, name, row0, n_rows, 0, 96, MPL_DTYPE_F32, a);
    CU_ASSERT_EQUAL(st, MPL_OK);
    /* a bad request on one rank: every rank gets the error, nobody hangs */
    enum mpl_status bad = mpl_io_read_rect(together, name, r == 2 ? 500 : row0, n_rows, 0, 96, MPL_DTYPE_F32, a + 0);
    CU_ASSERT_EQUAL(bad, MPL_ERR_RANGE);
    CU_ASSERT(strstr(mpl_error_message(), "[rank 2]") != NULL);
    st = mpl_io_read_rect(together, name, row0, n_rows, 0, 96, MPL_DTYPE_F32, a);
  }
  mpl_io_close(together);
  if (st == MPL_OK) st = mpl_io_open(model, MPI_COMM_SELF, 0, 1, 0, 1, &alone);
  if (st == MPL_OK) st = mpl_io_read_rect(alone, name, row0, n_rows, 0, 96, MPL_DTYPE_F32, b);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK) CU_ASSERT(memcmp(a, b, (size_t)n_rows * 96 * sizeof(float)) == 0);
  mpl_io_close(alone);
  free(a);
  free(b);
}

static void test_collective_reads(void) { collective_vs_alone(); }
static void test_independent_reads(void) {
  setenv("MPILLM_HDF5_MPIO", "0", 1);
  collective_vs_alone();
  unsetenv("MPILLM_HDF5_MPIO");
}

MPL_TEST_SUITE(io_shard, MPL_TEST(test_shard_rects), MPL_TEST(test_load_from_shards), MPL_TEST(test_layout_mismatch),
               MPL_TEST(test_corrupt_shard_one_rank), MPL_TEST(test_missing_shard_one_rank),
               MPL_TEST(test_shard_changed_between_opens),
               MPL_TEST(test_collective_reads), MPL_TEST(test_independent_reads))
