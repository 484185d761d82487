/* Layouts against one rank: on every dp x pp x tp layout of the world (pp up to the
 * fixtures' 2 layers), prompt logits within 1e-5 relative of the dp = ranks run
 * (each replica one rank holding the whole model), identical greedy and seeded
 * sampled tokens through continuous batching (4 requests, 2 slots), the same
 * perplexity; the greedy tokens also equal transformers'. Then the failures: a
 * layout that does not fit the world, more stages than layers, a prompt longer
 * than the context: one error on every rank, no hang. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/io.h"
#include "mpillm/runtime.h"
#include "mpl_test.h"

enum { N_PROMPTS = 3, MAX_T = 64, N_GEN = 8, N_REQ = 4 };
static const char *FIXTURES[] = {"llama_gqa", "qwen2_tied", "gpt2"};

struct fixture {
  char model[1024];
  int n_ids[N_PROMPTS];
  int32_t ids[N_PROMPTS][MAX_T];
  int32_t greedy[N_GEN];
};

/* rank 0 converts the fixture and reads its prompts; everyone gets them */
static enum mpl_status load_fixture(const char *name, struct fixture *fx) {
  enum mpl_status st = MPL_OK;
  memset(fx, 0, sizeof *fx);
  if (mpl_par_world_rank() == 0) {
    char path[1024];
    snprintf(path, sizeof path, "tests/fixtures/%s/hf", name);
    snprintf(fx->model, sizeof fx->model, "%s/%s.h5", mpl_test_scratch_dir(), name);
    st = mpl_io_convert(mpl_test_source_path(path), fx->model, MPL_DTYPE_F32);
    snprintf(path, sizeof path, "tests/fixtures/%s/reference.h5", name);
    hid_t f = st == MPL_OK ? H5Fopen(mpl_test_source_path(path), H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (st == MPL_OK && f < 0) st = mpl_error_set(MPL_ERR_IO, "cannot open %s", path);
    for (int p = 0; st == MPL_OK && p < N_PROMPTS; p++) {
      char ds[64];
      snprintf(ds, sizeof ds, "/prompt_%d/input_ids", p);
      hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
      hid_t s = H5Dget_space(d);
      fx->n_ids[p] = (int)H5Sget_simple_extent_npoints(s);
      if (fx->n_ids[p] > MAX_T || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, fx->ids[p]) < 0)
        st = mpl_error_set(MPL_ERR_FORMAT, "cannot read %s of %s", ds, path);
      H5Sclose(s);
      H5Dclose(d);
    }
    if (st == MPL_OK) {
      int32_t all[64];
      hid_t d = H5Dopen2(f, "/prompt_0/greedy", H5P_DEFAULT);
      if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0)
        st = mpl_error_set(MPL_ERR_FORMAT, "cannot read the greedy tokens of %s", path);
      memcpy(fx->greedy, all, sizeof fx->greedy);
      H5Dclose(d);
    }
    if (f >= 0) H5Fclose(f);
  }
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st == MPL_OK) st = mpl_par_bcast(MPI_COMM_WORLD, fx, sizeof *fx, 0);
  return st;
}

struct outcome {
  int32_t tokens[N_REQ][N_GEN];
  int n_tokens[N_REQ];
  float *logits; /* [n_prompt_2][vocab] */
  int n_logits, vocab;
  double ppl;
};

static void request(struct mpl_request *r, const struct fixture *fx, int p, double t, int k,
                    double top_p, double min_p, double pen, uint64_t seed) {
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "p%d", p);
  r->prompt = (int32_t *)fx->ids[p];
  r->n_prompt = fx->n_ids[p];
  r->max_tokens = N_GEN;
  r->sampling = (struct mpl_sampler_params){t, k, top_p, min_p, pen, seed};
}

static enum mpl_status run_layout(const struct fixture *fx, int dp, int pp, int tp,
                                  struct outcome *out) {
  struct mpl_rt *rt = NULL;
  /* micro-batches of one token: a step alone in the pipeline is cut as far as it goes
   * (the default keeps 8 tokens and more, which these short prompts never reach) */
  struct mpl_rt_options o = {dp, pp, tp, NULL, 1};
  enum mpl_status st = mpl_rt_create(fx->model, &o, &rt);
  if (st != MPL_OK) return st;
  int vocab = mpl_rt_config(rt)->vocab_size;
  bool rank0 = mpl_par_world_rank() == 0;
  struct mpl_request reqs[N_REQ];
  request(&reqs[0], fx, 0, 0.0, 0, 1.0, 0.0, 1.0, 0);            /* greedy */
  request(&reqs[1], fx, 1, 0.9, 50, 0.95, 0.0, 1.0, 11);         /* top-k, top-p */
  request(&reqs[2], fx, 2, 1.2, 0, 1.0, 0.02, 1.3, 5);           /* min-p, penalty */
  request(&reqs[3], fx, 0, 1.0, 0, 1.0, 0.0, 1.0, 99);           /* plain sampling */
  struct mpl_rt_generate_options go = {2, NULL, 0, NULL, NULL, NULL};
  struct mpl_rt_result *res = NULL;
  st = mpl_rt_generate(rt, rank0 ? reqs : NULL, rank0 ? N_REQ : 0, &go, &res);
  for (int i = 0; st == MPL_OK && rank0 && i < N_REQ; i++) {
    out->n_tokens[i] = res[i].n_tokens;
    memcpy(out->tokens[i], res[i].tokens, (size_t)res[i].n_tokens * sizeof(int32_t));
  }
  mpl_rt_results_free(res, rank0 ? N_REQ : 0);
  res = NULL;
  /* the prompt's logits, as --logits-out takes them */
  out->n_logits = fx->n_ids[2];
  out->vocab = vocab;
  out->logits = rank0 ? calloc((size_t)out->n_logits * vocab, sizeof(float)) : NULL;
  go.prompt_logits = out->logits;
  if (st == MPL_OK) st = mpl_rt_generate(rt, rank0 ? &reqs[2] : NULL, rank0 ? 1 : 0, &go, &res);
  mpl_rt_results_free(res, rank0 ? 1 : 0);
  /* perplexity of the three prompts end to end, in windows of 7 */
  int32_t text[3 * MAX_T];
  int n_text = 0;
  for (int p = 0; p < N_PROMPTS; p++)
    for (int k = 0; k < fx->n_ids[p]; k++) text[n_text++] = fx->ids[p][k];
  struct mpl_rt_eval_result ev;
  if (st == MPL_OK) st = mpl_rt_eval(rt, text, n_text, 7, &ev);
  if (st == MPL_OK && rank0) out->ppl = ev.perplexity;
  mpl_rt_destroy(rt);
  return st;
}

static void test_every_layout_matches_one_rank(void) {
  int n = mpl_par_world_size();
  bool rank0 = mpl_par_world_rank() == 0;
  for (int f = 0; f < 3; f++) {
    struct fixture fx;
    enum mpl_status st = load_fixture(FIXTURES[f], &fx);
    CU_ASSERT_EQUAL(st, MPL_OK);
    if (st != MPL_OK) {
      if (rank0) fprintf(stderr, "%s\n", mpl_error_message());
      continue;
    }
    struct outcome ref = {0};
    st = run_layout(&fx, n, 1, 1, &ref);
    CU_ASSERT_EQUAL(st, MPL_OK);
    if (st != MPL_OK) {
      if (rank0) fprintf(stderr, "%s dp%d: %s\n", FIXTURES[f], n, mpl_error_message());
      continue;
    }
    if (rank0) {
      CU_ASSERT_EQUAL(ref.n_tokens[0], N_GEN);
      CU_ASSERT_EQUAL(memcmp(ref.tokens[0], fx.greedy, sizeof fx.greedy), 0); /* transformers' */
    }
    for (int pp = 1; pp <= 2; pp++)
      for (int tp = 1; tp <= n; tp++) {
        if (n % (pp * tp) != 0 || (pp == 1 && tp == 1)) continue;
        int dp = n / (pp * tp);
        struct outcome got = {0};
        st = run_layout(&fx, dp, pp, tp, &got);
        CU_ASSERT_EQUAL(st, MPL_OK);
        if (rank0 && st != MPL_OK) fprintf(stderr, "%s dp%d pp%d tp%d: %s\n", FIXTURES[f], dp, pp, tp, mpl_error_message());
        if (rank0 && st == MPL_OK) {
          bool same = true;
          for (int i = 0; i < N_REQ; i++)
            same &= got.n_tokens[i] == ref.n_tokens[i] &&
                    memcmp(got.tokens[i], ref.tokens[i], (size_t)ref.n_tokens[i] * sizeof(int32_t)) == 0;
          /* relative to the largest logit, as the engine's own tolerance is */
          double max_ref = 0, max_diff = 0;
          size_t n_vals = (size_t)ref.n_logits * ref.vocab;
          for (size_t i = 0; i < n_vals; i++) {
            if (fabs(ref.logits[i]) > max_ref) max_ref = fabs(ref.logits[i]);
            if (fabs(ref.logits[i] - got.logits[i]) > max_diff) max_diff = fabs(ref.logits[i] - got.logits[i]);
          }
          CU_ASSERT(max_ref > 0 && max_diff <= 1e-5 * max_ref);
          if (max_diff > 1e-5 * max_ref)
            fprintf(stderr, "%s dp%d pp%d tp%d: logits differ by %g (max |logit| %g)\n", FIXTURES[f],
                    dp, pp, tp, max_diff, max_ref);
          CU_ASSERT(same);
          CU_ASSERT_DOUBLE_EQUAL(got.ppl, ref.ppl, 1e-5 * ref.ppl);
          if (!same) fprintf(stderr, "%s dp%d pp%d tp%d: tokens differ from dp%d\n", FIXTURES[f], dp, pp, tp, n);
        }
        free(got.logits);
      }
    free(ref.logits);
  }
}

/* every rank returns the same failure, and the message says what is wrong */
static void expect_failure(enum mpl_status st, enum mpl_status want, const char *needle) {
  int all = mpl_par_agree(MPI_COMM_WORLD, st == want ? MPL_OK : MPL_ERR_ARG) == MPL_OK;
  CU_ASSERT(all);
  CU_ASSERT_EQUAL(st, want);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), needle));
  if (mpl_par_world_rank() == 0 && !strstr(mpl_error_message(), needle))
    fprintf(stderr, "wanted '%s' in: %s\n", needle, mpl_error_message());
}

/* One step of the tokens 5, token, 7 with the logits of row `row`, which must fail:
 * the drivers step and finish, the other ranks serve; the world's agreed outcome. */
static enum mpl_status failing_step(struct mpl_rt *rt, int32_t token, int32_t row) {
  enum mpl_status st;
  if (mpl_rt_is_driver(rt)) {
    int32_t tok[3] = {5, token, 7}, pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0}, rows[1] = {row}, argmax[1];
    struct mpl_batch b = {3, tok, pos, seq, 1, rows};
    st = mpl_rt_step(rt, &b, MPL_RT_LOGITS_ARGMAX, NULL, argmax);
    CU_ASSERT_NOT_EQUAL(st, MPL_OK);
    enum mpl_status s = mpl_rt_finish(rt);
    if (s != MPL_OK) st = s;
  } else {
    st = mpl_rt_serve(rt);
  }
  return mpl_par_agree(MPI_COMM_WORLD, st);
}

static void test_layouts_that_cannot_run(void) {
  int n = mpl_par_world_size();
  struct fixture fx;
  enum mpl_status st = load_fixture("llama_gqa", &fx);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  struct mpl_rt *rt = NULL;
  /* a product that is not the world size */
  struct mpl_rt_options o = {n + 1, 1, 1, NULL, 0};
  expect_failure(mpl_rt_create(fx.model, &o, &rt), MPL_ERR_ARG, "does not fit");
  CU_ASSERT_PTR_NULL(rt);
  /* more stages than the fixture's 2 layers */
  if (n >= 3) {
    o = (struct mpl_rt_options){0, n, 1, NULL, 0};
    expect_failure(mpl_rt_create(fx.model, &o, &rt), MPL_ERR_ARG, "layers");
    CU_ASSERT_PTR_NULL(rt);
  }
  /* a missing model file */
  o = (struct mpl_rt_options){n, 1, 1, NULL, 0};
  st = mpl_rt_create("/nonexistent/model.h5", &o, &rt);
  CU_ASSERT_NOT_EQUAL(st, MPL_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "/nonexistent/model.h5"));
  /* a prompt beyond the 128-position context, on a layout with every axis used */
  o = (struct mpl_rt_options){0, n % 2 == 0 ? 2 : 1, 1, NULL, 0};
  st = mpl_rt_create(fx.model, &o, &rt);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (st != MPL_OK) return;
  int32_t long_prompt[200];
  for (int i = 0; i < 200; i++) long_prompt[i] = 5 + i % 50;
  struct mpl_request r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "too-long");
  r.prompt = long_prompt;
  r.n_prompt = 200;
  r.max_tokens = 4;
  mpl_sampler_params_default(&r.sampling);
  struct mpl_rt_generate_options go = {0};
  struct mpl_rt_result *res = NULL;
  bool rank0 = mpl_par_world_rank() == 0;
  expect_failure(mpl_rt_generate(rt, rank0 ? &r : NULL, rank0 ? 1 : 0, &go, &res), MPL_ERR_RANGE,
                 "too-long");
  CU_ASSERT_PTR_NULL(res);
  /* a step that fails on the last stage only (a logit row before the batch, which only
   * the stage with the head checks): the driver learns it from the step's status, the
   * replica's agreement brings the last stage's own message, every rank fails alike */
  if (mpl_rt_grid(rt)->pp_size > 1) {
    st = mpl_rt_reserve(rt, 2, 16);
    CU_ASSERT_EQUAL(st, MPL_OK);
    expect_failure(failing_step(rt, 6, -1), MPL_ERR_ARG, "logits asked for row -1 of a batch of 3");
    /* the last stage's first rank: world rank pp_size - 1 of the first replica */
    char where[32];
    snprintf(where, sizeof where, "[rank %d]", (mpl_rt_grid(rt)->pp_size - 1) * mpl_rt_grid(rt)->tp_size);
    CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), where));
    /* and one that fails on the driver's own stage (a token outside the vocabulary,
     * which only the stage with the embedding reads): the later stages run on what it
     * passes on, the status says it failed, the message is the driver's */
    expect_failure(failing_step(rt, 1 << 30, 2), MPL_ERR_ARG, "outside the vocabulary");
    CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "[rank 0]"));
  }
  /* the runtime is still usable after a refused request and a failed step */
  r.n_prompt = 20;
  st = mpl_rt_generate(rt, rank0 ? &r : NULL, rank0 ? 1 : 0, &go, &res);
  CU_ASSERT_EQUAL(st, MPL_OK);
  if (rank0 && st == MPL_OK) CU_ASSERT_EQUAL(res[0].n_tokens, 4);
  mpl_rt_results_free(res, rank0 ? 1 : 0);
  mpl_rt_destroy(rt);
}

MPL_TEST_SUITE(runtime_layouts, MPL_TEST(test_every_layout_matches_one_rank),
               MPL_TEST(test_layouts_that_cannot_run))
