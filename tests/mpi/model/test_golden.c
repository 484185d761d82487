/* The forward pass against transformers (tests/fixtures/<model>/reference.h5), on
 * tp = world size ranks: logits at every prompt position within 1e-4 * max|logit|,
 * greedy continuations identical (prompt once, then one token at a time through the
 * KV cache), three prompts of different lengths in one batch (and their decode steps
 * batched) equal to each prompt alone; with tp > 1, logits within 1e-5 * max|logit|
 * of a tp = 1 copy of the same model; bf16 storage within bounds of f32 (measured
 * values printed). The fixtures are converted into a scratch folder at test time. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpillm/io.h"
#include "mpillm/model.h"
#include "mpillm/parallel.h"
#include "mpillm/tensor.h"
#include "mpl_test.h"

enum { N_PROMPTS = 3, N_GREEDY = 20, MAX_T = 64 };

struct reference {
  int vocab;
  int n_tokens[N_PROMPTS];
  int32_t ids[N_PROMPTS][MAX_T];
  float *logits[N_PROMPTS]; /* [n_tokens][vocab] */
  int32_t greedy[N_PROMPTS][N_GREEDY];
};

static bool read_reference(const char *path, struct reference *r) {
  memset(r, 0, sizeof *r);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return false;
  bool ok = true;
  for (int p = 0; p < N_PROMPTS && ok; p++) {
    char name[64];
    snprintf(name, sizeof name, "/prompt_%d/logits", p);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2];
    H5Sget_simple_extent_dims(s, dims, NULL);
    r->n_tokens[p] = (int)dims[0];
    r->vocab = (int)dims[1];
    r->logits[p] = malloc(sizeof(float) * dims[0] * dims[1]);
    ok = dims[0] <= MAX_T && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->logits[p]) >= 0;
    H5Sclose(s);
    H5Dclose(d);
    snprintf(name, sizeof name, "/prompt_%d/input_ids", p);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ok = ok && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->ids[p]) >= 0;
    H5Dclose(d);
    snprintf(name, sizeof name, "/prompt_%d/greedy", p);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ok = ok && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->greedy[p]) >= 0;
    H5Dclose(d);
  }
  H5Fclose(f);
  return ok;
}

static void free_reference(struct reference *r) {
  for (int p = 0; p < N_PROMPTS; p++) free(r->logits[p]);
}

static struct mpl_grid grid;
static char scratch[4096]; /* rank 0's scratch folder, the same string on every rank */

/* Rank 0 converts fixture's hf folder to <scratch>/<tag>.h5; every rank gets the path
 * and the agreed status. Collective on the world. */
static enum mpl_status convert(const char *fixture, enum mpl_dtype dtype, const char *tag, char *out,
                               size_t out_bytes) {
  if (grid.rank == 0 && !scratch[0]) snprintf(scratch, sizeof scratch, "%s", mpl_test_scratch_dir());
  enum mpl_status st = mpl_par_bcast(grid.world, scratch, sizeof scratch, 0);
  if (st != MPL_OK) return st;
  snprintf(out, out_bytes, "%s/%s.h5", scratch, tag);
  if (grid.rank == 0) {
    char hf[4096];
    snprintf(hf, sizeof hf, "%s", mpl_test_source_path(fixture));
    strncat(hf, "/hf", sizeof hf - strlen(hf) - 1);
    if (access(out, F_OK) != 0) st = mpl_io_convert(hf, out, dtype);
    if (st != MPL_OK) fprintf(stderr, "convert %s: %s\n", hf, mpl_error_message());
  }
  return mpl_par_agree(grid.world, st);
}

/* Loads stage pp_rank of pp_size of the model at path on tp_comm (tp_rank/tp_size
 * from it). Collective on tp_comm. */
static enum mpl_status load_stage(const char *path, MPI_Comm tp_comm, int pp_rank, int pp_size,
                                  struct mpl_model **m) {
  *m = NULL;
  struct mpl_model_file *f = NULL;
  struct mpl_model_config cfg;
  enum mpl_status st = mpl_io_open(path, tp_comm, 0, 1, mpl_par_comm_rank(tp_comm),
                                   mpl_par_comm_size(tp_comm), &f);
  if (st == MPL_OK) st = mpl_io_read_config(f, &cfg);
  if (f) mpl_io_close(f);
  struct mpl_model_part part;
  if (st == MPL_OK)
    st = mpl_model_part_for(&cfg, pp_rank, pp_size, NULL, mpl_par_comm_rank(tp_comm),
                            mpl_par_comm_size(tp_comm), &part);
  st = mpl_par_agree(tp_comm, st);
  if (st == MPL_OK) st = mpl_model_load(path, &part, tp_comm, m);
  if (st != MPL_OK) fprintf(stderr, "load %s: %s\n", path, mpl_error_message());
  return st;
}

static enum mpl_status load(const char *path, MPI_Comm tp_comm, struct mpl_model **m) {
  return load_stage(path, tp_comm, 0, 1, m);
}

/* The token with the largest logit over the whole vocabulary (split over tp_comm). */
static int argmax(const struct mpl_model *m, MPI_Comm tp_comm, const float *row) {
  int v0, v1;
  mpl_model_vocab_range(m, &v0, &v1);
  float best = row[0];
  int64_t at = v0;
  for (int v = v0 + 1; v < v1; v++)
    if (row[v - v0] > best) best = row[v - v0], at = v;
  if (mpl_par_comm_size(tp_comm) > 1) mpl_par_allreduce_maxloc(tp_comm, &best, &at, 1);
  return (int)at;
}

/* Runs the prompts (alone, or all in one batch) and 19 greedy steps (one token per
 * sequence per step, the sequences batched together when batched), recording the
 * prompt logits [T][local vocab] and the greedy tokens. Collective on the model's comm. */
static enum mpl_status run(struct mpl_model *m, MPI_Comm tp_comm, const struct reference *r,
                           bool batched, float *logits[N_PROMPTS], int32_t greedy[N_PROMPTS][N_GREEDY]) {
  int v0, v1;
  mpl_model_vocab_range(m, &v0, &v1);
  int nv = v1 - v0;
  struct mpl_kv_cache *kv = NULL;
  enum mpl_status st = mpl_kv_create(m, N_PROMPTS, MAX_T, &kv);
  int32_t tok[N_PROMPTS * MAX_T], pos[N_PROMPTS * MAX_T], seq[N_PROMPTS * MAX_T], rows[N_PROMPTS * MAX_T];
  float *out = malloc(sizeof(float) * N_PROMPTS * MAX_T * (size_t)nv);
  for (int p0 = 0; st == MPL_OK && p0 < N_PROMPTS; p0 += batched ? N_PROMPTS : 1) {
    int p1 = batched ? N_PROMPTS : p0 + 1, n = 0;
    for (int p = p0; p < p1; p++)
      for (int t = 0; t < r->n_tokens[p]; t++, n++) {
        tok[n] = r->ids[p][t];
        pos[n] = t;
        seq[n] = p;
        rows[n] = n;
      }
    struct mpl_batch b = {n, tok, pos, seq, n, rows};
    st = mpl_model_forward(m, kv, &b, NULL, NULL, out);
    n = 0;
    for (int p = p0; st == MPL_OK && p < p1; p++) {
      memcpy(logits[p], out + (size_t)n * nv, sizeof(float) * (size_t)r->n_tokens[p] * nv);
      n += r->n_tokens[p];
      greedy[p][0] = argmax(m, tp_comm, out + (size_t)(n - 1) * nv);
    }
    /* decode: one token per sequence per step */
    for (int step = 1; st == MPL_OK && step < N_GREEDY; step++) {
      n = 0;
      for (int p = p0; p < p1; p++, n++) {
        tok[n] = greedy[p][step - 1];
        pos[n] = r->n_tokens[p] + step - 1;
        seq[n] = p;
        rows[n] = n;
      }
      struct mpl_batch d = {n, tok, pos, seq, n, rows};
      st = mpl_model_forward(m, kv, &d, NULL, NULL, out);
      for (int p = p0, i = 0; st == MPL_OK && p < p1; p++, i++)
        greedy[p][step] = argmax(m, tp_comm, out + (size_t)i * nv);
    }
  }
  if (st != MPL_OK) fprintf(stderr, "forward: %s\n", mpl_error_message());
  free(out);
  mpl_kv_destroy(kv);
  return st;
}

/* max |a - b| over the prompt's local logits, divided by max |ref| over the prompt */
static double rel_error(const float *a, const float *b, const float *ref_full, int n_tokens,
                        int vocab, int v0, int nv) {
  double err = 0, scale = 0;
  for (int t = 0; t < n_tokens; t++) {
    for (int v = 0; v < vocab; v++) scale = fmax(scale, fabs(ref_full[(size_t)t * vocab + v]));
    for (int v = 0; v < nv; v++) err = fmax(err, fabs((double)a[(size_t)t * nv + v] - b[(size_t)t * nv + v]));
  }
  (void)v0;
  return err / scale;
}

/* The local columns [v0, v0 + nv) of the reference logits. */
static void local_reference(const struct reference *r, int p, int v0, int nv, float *dst) {
  for (int t = 0; t < r->n_tokens[p]; t++)
    memcpy(dst + (size_t)t * nv, r->logits[p] + (size_t)t * r->vocab + v0, sizeof(float) * (size_t)nv);
}

static double max_over_ranks(double v) {
  mpl_par_allreduce_max_f64(grid.world, &v, 1);
  return v;
}

/* The whole check of one fixture stored as dtype (MPL_DTYPE_COUNT: as in the checkpoint). */
static void check_fixture(const char *fixture, enum mpl_dtype dtype, double tol) {
  char ref_path[4096], model_path[4096], tag[128];
  snprintf(ref_path, sizeof ref_path, "%s/reference.h5", mpl_test_source_path(fixture));
  snprintf(tag, sizeof tag, "%s_%s", fixture, dtype == MPL_DTYPE_COUNT ? "asis" : mpl_dtype_name(dtype));
  for (char *c = tag; *c; c++)
    if (*c == '/') *c = '_';
  struct reference r;
  bool have_ref = read_reference(ref_path, &r);
  CU_ASSERT(have_ref);
  enum mpl_status st = mpl_par_agree(grid.world, have_ref ? MPL_OK : MPL_ERR_IO);
  if (st == MPL_OK) st = convert(fixture, dtype, tag, model_path, sizeof model_path);
  CU_ASSERT_EQUAL(st, MPL_OK);
  struct mpl_model *m = NULL, *solo = NULL;
  if (st == MPL_OK) st = load(model_path, grid.tp_comm, &m);
  if (st == MPL_OK && grid.tp_size > 1) st = load(model_path, MPI_COMM_SELF, &solo);
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) goto out;
  int v0, v1;
  mpl_model_vocab_range(m, &v0, &v1);
  int nv = v1 - v0;
  float *alone[N_PROMPTS], *batch[N_PROMPTS], *one[N_PROMPTS], *ref[N_PROMPTS];
  int32_t g_alone[N_PROMPTS][N_GREEDY], g_batch[N_PROMPTS][N_GREEDY], g_one[N_PROMPTS][N_GREEDY];
  for (int p = 0; p < N_PROMPTS; p++) {
    alone[p] = malloc(sizeof(float) * (size_t)r.n_tokens[p] * nv);
    batch[p] = malloc(sizeof(float) * (size_t)r.n_tokens[p] * nv);
    ref[p] = malloc(sizeof(float) * (size_t)r.n_tokens[p] * nv);
    one[p] = malloc(sizeof(float) * (size_t)r.n_tokens[p] * r.vocab);
    local_reference(&r, p, v0, nv, ref[p]);
  }
  st = run(m, grid.tp_comm, &r, false, alone, g_alone);
  if (st == MPL_OK) st = run(m, grid.tp_comm, &r, true, batch, g_batch);
  if (st == MPL_OK && solo) st = run(solo, MPI_COMM_SELF, &r, false, one, g_one);
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK) {
    double e_ref = 0, e_batch = 0, e_tp = 0;
    int greedy_bad = 0;
    for (int p = 0; p < N_PROMPTS; p++) {
      e_ref = fmax(e_ref, rel_error(alone[p], ref[p], r.logits[p], r.n_tokens[p], r.vocab, v0, nv));
      e_batch = fmax(e_batch, rel_error(batch[p], alone[p], r.logits[p], r.n_tokens[p], r.vocab, v0, nv));
      if (solo) {
        /* the tp = 1 copy's logits, columns of this rank */
        float *loc = malloc(sizeof(float) * (size_t)r.n_tokens[p] * nv);
        for (int t = 0; t < r.n_tokens[p]; t++)
          memcpy(loc + (size_t)t * nv, one[p] + (size_t)t * r.vocab + v0, sizeof(float) * (size_t)nv);
        e_tp = fmax(e_tp, rel_error(alone[p], loc, r.logits[p], r.n_tokens[p], r.vocab, v0, nv));
        free(loc);
      }
      for (int s = 0; s < N_GREEDY; s++)
        greedy_bad += (g_alone[p][s] != r.greedy[p][s]) + (g_batch[p][s] != r.greedy[p][s]);
    }
    e_ref = max_over_ranks(e_ref);
    e_batch = max_over_ranks(e_batch);
    e_tp = max_over_ranks(e_tp);
    if (grid.rank == 0)
      fprintf(stderr,
              "%-28s %-5s %s tp=%d: logits vs transformers %.2e (limit %.0e), batched vs alone %.2e, "
              "tp vs tp=1 %.2e, greedy mismatches %d\n",
              fixture, dtype == MPL_DTYPE_COUNT ? "as-is" : mpl_dtype_name(dtype),
              mpl_isa_name(mpl_tensor_isa()), grid.tp_size, e_ref,
              tol, e_batch, e_tp, greedy_bad);
    CU_ASSERT(e_ref <= tol);
    CU_ASSERT(e_batch <= 1e-5);
    CU_ASSERT(e_tp <= 1e-5);
    CU_ASSERT_EQUAL(greedy_bad, 0);
  }
  for (int p = 0; p < N_PROMPTS; p++) {
    free(alone[p]);
    free(batch[p]);
    free(ref[p]);
    free(one[p]);
  }
out:
  mpl_model_destroy(m);
  mpl_model_destroy(solo);
  if (have_ref) free_reference(&r);
}

static void test_llama_gqa(void) { check_fixture("tests/fixtures/llama_gqa", MPL_DTYPE_F32, 1e-4); }
static void test_qwen2_tied(void) { check_fixture("tests/fixtures/qwen2_tied", MPL_DTYPE_F32, 1e-4); }
static void test_gpt2(void) { check_fixture("tests/fixtures/gpt2", MPL_DTYPE_F32, 1e-4); }
/* the references of these were computed in f32 on exactly the stored weights: kept
 * bf16 runs the bf16 kernels; f16 becomes f32 */
static void test_import_bf16_weights(void) {
  check_fixture("tests/fixtures/import/llama_bf16_sharded", MPL_DTYPE_COUNT, 1e-4);
}
static void test_import_f16_weights(void) {
  check_fixture("tests/fixtures/import/llama_f16", MPL_DTYPE_COUNT, 1e-4);
}

/* bf16 storage of f32 checkpoints: top-1 agreement and mean KL(f32 || bf16) over every
 * prompt position, against transformers' f32 logits. One rank. */
static void check_bf16(const char *fixture) {
  char ref_path[4096], model_path[4096], tag[128];
  snprintf(ref_path, sizeof ref_path, "%s/reference.h5", mpl_test_source_path(fixture));
  snprintf(tag, sizeof tag, "%s_bf16", strrchr(fixture, '/') + 1);
  struct reference r;
  bool have_ref = read_reference(ref_path, &r);
  CU_ASSERT(have_ref);
  enum mpl_status st = mpl_par_agree(grid.world, have_ref ? MPL_OK : MPL_ERR_IO);
  if (st == MPL_OK) st = convert(fixture, MPL_DTYPE_BF16, tag, model_path, sizeof model_path);
  struct mpl_model *m = NULL;
  if (st == MPL_OK) st = load(model_path, MPI_COMM_SELF, &m);
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK) {
    float *got[N_PROMPTS];
    int32_t greedy[N_PROMPTS][N_GREEDY];
    for (int p = 0; p < N_PROMPTS; p++) got[p] = malloc(sizeof(float) * (size_t)r.n_tokens[p] * r.vocab);
    st = run(m, MPI_COMM_SELF, &r, true, got, greedy);
    CU_ASSERT_EQUAL(st, MPL_OK);
    int agree = 0, n = 0;
    double kl = 0;
    for (int p = 0; st == MPL_OK && p < N_PROMPTS; p++)
      for (int t = 0; t < r.n_tokens[p]; t++, n++) {
        const float *a = r.logits[p] + (size_t)t * r.vocab, *b = got[p] + (size_t)t * r.vocab;
        int ia = 0, ib = 0;
        double ma = a[0], mb = b[0], za = 0, zb = 0;
        for (int v = 1; v < r.vocab; v++) {
          if (a[v] > a[ia]) ia = v;
          if (b[v] > b[ib]) ib = v;
          ma = fmax(ma, a[v]);
          mb = fmax(mb, b[v]);
        }
        agree += ia == ib;
        for (int v = 0; v < r.vocab; v++) za += exp(a[v] - ma), zb += exp(b[v] - mb);
        for (int v = 0; v < r.vocab; v++) {
          double la = a[v] - ma - log(za), lb = b[v] - mb - log(zb);
          kl += exp(la) * (la - lb);
        }
      }
    if (n > 0) {
      double top1 = (double)agree / n;
      kl /= n;
      if (grid.rank == 0)
        fprintf(stderr, "%-28s bf16 storage: top-1 agreement %.3f, mean KL %.2e over %d positions\n",
                fixture, top1, kl, n);
      CU_ASSERT(top1 >= 0.9);
      CU_ASSERT(kl <= 0.02);
    }
    for (int p = 0; p < N_PROMPTS; p++) free(got[p]);
  }
  mpl_model_destroy(m);
  if (have_ref) free_reference(&r);
}

/* one rank, one thread: the other variants of this program repeat it identically */
static bool is_plain_run(void) { return grid.size == 1 && mpl_threads_count() == 1; }

static void test_bf16_storage(void) {
  if (!is_plain_run()) return;
  check_bf16("tests/fixtures/llama_gqa");
  check_bf16("tests/fixtures/qwen2_tied");
  check_bf16("tests/fixtures/gpt2");
}

/* A position at the KV cache's end is refused, naming the position and the limit. */
static void test_context_limit(void) {
  char path[4096];
  enum mpl_status st = convert("tests/fixtures/llama_gqa", MPL_DTYPE_F32, "tests_fixtures_llama_gqa_f32",
                               path, sizeof path);
  struct mpl_model *m = NULL;
  if (st == MPL_OK) st = load(path, grid.tp_comm, &m);
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  struct mpl_kv_cache *kv = NULL;
  CU_ASSERT_EQUAL(mpl_kv_create(m, 1, 8, &kv), MPL_OK);
  CU_ASSERT_EQUAL(mpl_kv_create(m, 1, 100000, &(struct mpl_kv_cache *){NULL}), MPL_ERR_RANGE);
  if (kv) {
    int32_t tok = 5, pos = 8, seq = 0, row = 0;
    float logits[512];
    struct mpl_batch b = {1, &tok, &pos, &seq, 1, &row};
    CU_ASSERT_EQUAL(mpl_model_forward(m, kv, &b, NULL, NULL, logits), MPL_ERR_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "position 8"));
    CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "limit of 8"));
    pos = 7;
    CU_ASSERT_EQUAL(mpl_model_forward(m, kv, &b, NULL, NULL, logits), MPL_OK);
  }
  mpl_kv_destroy(kv);
  mpl_model_destroy(m);
}

/* Two pipeline stages in one process (the first embeds, the second holds the head,
 * tied or not) give the logits of the whole model: the three prompts in one batch. */
static void check_two_stages(const char *fixture) {
  char path[4096], tag[128];
  snprintf(tag, sizeof tag, "%s_f32", fixture);
  for (char *c = tag; *c; c++)
    if (*c == '/') *c = '_';
  struct reference r;
  char ref_path[4096];
  snprintf(ref_path, sizeof ref_path, "%s/reference.h5", mpl_test_source_path(fixture));
  bool have_ref = read_reference(ref_path, &r);
  enum mpl_status st = mpl_par_agree(grid.world, have_ref ? MPL_OK : MPL_ERR_IO);
  if (st == MPL_OK) st = convert(fixture, MPL_DTYPE_F32, tag, path, sizeof path);
  struct mpl_model *whole = NULL, *s0 = NULL, *s1 = NULL;
  if (st == MPL_OK) st = load(path, grid.tp_comm, &whole);
  if (st == MPL_OK) st = load_stage(path, grid.tp_comm, 0, 2, &s0);
  if (st == MPL_OK) st = load_stage(path, grid.tp_comm, 1, 2, &s1);
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st == MPL_OK) {
    CU_ASSERT(mpl_model_part(s0)->has_embedding && !mpl_model_part(s0)->has_head);
    CU_ASSERT(!mpl_model_part(s1)->has_embedding && mpl_model_part(s1)->has_head);
    int v0, v1, n = 0, dim = mpl_model_config(whole)->hidden_size;
    mpl_model_vocab_range(whole, &v0, &v1);
    int32_t tok[N_PROMPTS * MAX_T], pos[N_PROMPTS * MAX_T], seq[N_PROMPTS * MAX_T], rows[N_PROMPTS * MAX_T];
    for (int p = 0; p < N_PROMPTS; p++)
      for (int t = 0; t < r.n_tokens[p]; t++, n++) tok[n] = r.ids[p][t], pos[n] = t, seq[n] = p, rows[n] = n;
    struct mpl_batch b = {n, tok, pos, seq, n, rows};
    float *a = malloc(sizeof(float) * (size_t)n * (v1 - v0)), *c = malloc(sizeof(float) * (size_t)n * (v1 - v0));
    float *x = malloc(sizeof(float) * (size_t)n * dim);
    struct mpl_kv_cache *kw = NULL, *k0 = NULL, *k1 = NULL;
    st = mpl_kv_create(whole, N_PROMPTS, MAX_T, &kw);
    if (st == MPL_OK) st = mpl_kv_create(s0, N_PROMPTS, MAX_T, &k0);
    if (st == MPL_OK) st = mpl_kv_create(s1, N_PROMPTS, MAX_T, &k1);
    if (st == MPL_OK) st = mpl_model_forward(whole, kw, &b, NULL, NULL, a);
    if (st == MPL_OK) st = mpl_model_forward(s0, k0, &b, NULL, x, NULL);
    if (st == MPL_OK) st = mpl_model_forward(s1, k1, &b, x, NULL, c);
    CU_ASSERT_EQUAL(st, MPL_OK);
    double err = 0, scale = 0;
    for (size_t i = 0; st == MPL_OK && i < (size_t)n * (v1 - v0); i++) {
      err = fmax(err, fabs((double)a[i] - c[i]));
      scale = fmax(scale, fabs(a[i]));
    }
    CU_ASSERT(err <= 1e-6 * scale);
    mpl_kv_destroy(kw);
    mpl_kv_destroy(k0);
    mpl_kv_destroy(k1);
    free(a);
    free(c);
    free(x);
  }
  mpl_model_destroy(whole);
  mpl_model_destroy(s0);
  mpl_model_destroy(s1);
  if (have_ref) free_reference(&r);
}

static void test_two_stages(void) {
  if (!is_plain_run()) return;
  check_two_stages("tests/fixtures/llama_gqa");
  check_two_stages("tests/fixtures/qwen2_tied");
  check_two_stages("tests/fixtures/gpt2");
}

/* A file whose config disagrees with a tensor's shape is refused on every rank with
 * one message naming the tensor (the config's intermediate_size is rewritten here). */
static void test_shape_mismatch(void) {
  char good[4096], bad[4096];
  enum mpl_status st = convert("tests/fixtures/llama_gqa", MPL_DTYPE_F32, "tests_fixtures_llama_gqa_f32",
                               good, sizeof good);
  snprintf(bad, sizeof bad, "%s/bad_shape.h5", scratch);
  if (st == MPL_OK && grid.rank == 0) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, bad);
    st = system(cmd) == 0 ? MPL_OK : MPL_ERR_IO;
    hid_t f = st == MPL_OK ? H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT) : -1;
    hid_t g = f >= 0 ? H5Gopen2(f, "/config", H5P_DEFAULT) : -1;
    hid_t a = g >= 0 ? H5Aopen(g, "intermediate_size", H5P_DEFAULT) : -1;
    int64_t v = 512;
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &v) < 0) st = MPL_ERR_IO;
    if (st != MPL_OK) H5Eprint2(H5E_DEFAULT, stderr);
    if (a >= 0) H5Aclose(a);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
  }
  st = mpl_par_agree(grid.world, st);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  struct mpl_model *m = NULL;
  st = load(bad, grid.tp_comm, &m);
  CU_ASSERT_EQUAL(st, MPL_ERR_FORMAT);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "mlp.gate_proj.weight"));
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "[520, 96]"));
  mpl_model_destroy(m);
}

static void test_setup(void) {
  int n = mpl_par_world_size();
  CU_ASSERT_EQUAL_FATAL(mpl_par_grid_init(&grid, 1, 1, n), MPL_OK);
}

static void test_cleanup(void) {
  mpl_par_barrier(grid.world);
  if (grid.rank == 0 && scratch[0]) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    CU_ASSERT_EQUAL(system(cmd), 0);
  }
  mpl_par_grid_free(&grid);
}

MPL_TEST_SUITE(model_golden, MPL_TEST(test_setup), MPL_TEST(test_llama_gqa), MPL_TEST(test_qwen2_tied),
               MPL_TEST(test_gpt2), MPL_TEST(test_import_bf16_weights), MPL_TEST(test_import_f16_weights),
               MPL_TEST(test_bf16_storage), MPL_TEST(test_two_stages), MPL_TEST(test_context_limit), MPL_TEST(test_shape_mismatch),
               MPL_TEST(test_cleanup))
