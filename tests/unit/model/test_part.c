/* Model parts: pipeline splits and the tensor-parallel rectangles. The union of the
 * rectangles over the tp ranks must cover every element of every tensor exactly
 * once, except what is replicated on purpose (norms, KV heads when tp exceeds them). */
#include <stdlib.h>
#include <string.h>

#include "model/part_dims.h"
#include "mpillm/model.h"
#include "mpl_test.h"

static struct mpl_model_config llama_cfg(int n_heads, int n_kv_heads, bool tied, bool bias) {
  struct mpl_model_config c = {0};
  c.arch = bias ? MPL_ARCH_QWEN2 : MPL_ARCH_LLAMA;
  c.vocab_size = 101;
  c.hidden_size = 8 * n_heads;
  c.intermediate_size = 29;
  c.n_layers = 3;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.tie_word_embeddings = tied;
  c.qkv_bias = bias;
  c.bos_token_id = -1;
  return c;
}

static struct mpl_model_config gpt2_cfg(void) {
  struct mpl_model_config c = llama_cfg(5, 5, true, false);
  c.arch = MPL_ARCH_GPT2;
  c.intermediate_size = 4 * c.hidden_size;
  return c;
}

/* The full shape of a checkpoint tensor, from its name; 1-D tensors are one row. */
static void shape_of(const struct mpl_model_config *c, const char *name, int64_t *rows, int64_t *cols) {
  int64_t dim = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim,
          kv = (int64_t)c->n_kv_heads * c->head_dim, ff = c->intermediate_size;
  *rows = 1;
  *cols = dim;
  const char *s = strrchr(name, '.');
  bool bias = s && strcmp(s, ".bias") == 0;
#define HAS(x) (strstr(name, x) != NULL)
  if (HAS("embed_tokens") || HAS("lm_head") || HAS("wte")) *rows = c->vocab_size;
  else if (HAS("wpe")) *rows = c->max_position_embeddings;
  else if (HAS("q_proj")) bias ? (void)(*cols = q) : (void)(*rows = q);
  else if (HAS("k_proj") || HAS("v_proj")) bias ? (void)(*cols = kv) : (void)(*rows = kv);
  else if (HAS("o_proj")) *rows = dim, *cols = q;
  else if (HAS("gate_proj") || HAS("up_proj")) *rows = ff;
  else if (HAS("down_proj")) *rows = dim, *cols = ff;
  else if (HAS("c_attn")) bias ? (void)(*cols = 3 * dim) : (void)(*rows = dim, *cols = 3 * dim);
  else if (HAS("attn.c_proj")) { if (!bias) *rows = dim; }
  else if (HAS("c_fc")) bias ? (void)(*cols = ff) : (void)(*rows = dim, *cols = ff);
  else if (HAS("mlp.c_proj")) { if (!bias) *rows = ff; }
#undef HAS
}

/* held whole by every tp rank: norms, learned positions, biases of row-parallel layers */
static bool is_replicated(const char *name) {
  return strstr(name, "norm") || strstr(name, "ln_") || strstr(name, "wpe") ||
         strstr(name, "c_proj.bias");
}

/* Counts per element of every tensor over all tp ranks of a one-stage layout, and
 * checks the counts: norms tp_size times, KV projections at least once (exactly once
 * when tp <= n_kv_heads), everything else exactly once. */
static void check_coverage(const struct mpl_model_config *c, int tp) {
  /* names seen, with their count grids */
  enum { MAX_T = 128 };
  char names[MAX_T][160];
  int *counts[MAX_T];
  int64_t rows[MAX_T], cols[MAX_T];
  int n_t = 0;
  for (int r = 0; r < tp; r++) {
    struct mpl_model_part part;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(c, 0, 1, NULL, r, tp, &part), MPL_OK);
    struct mpl_tensor_rect *rects;
    int n;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_rects(c, &part, &rects, &n), MPL_OK);
    for (int i = 0; i < n; i++) {
      int t = 0;
      while (t < n_t && strcmp(names[t], rects[i].name) != 0) t++;
      if (t == n_t) {
        CU_ASSERT_FATAL(n_t < MAX_T);
        strcpy(names[t], rects[i].name);
        shape_of(c, rects[i].name, &rows[t], &cols[t]);
        counts[t] = calloc((size_t)(rows[t] * cols[t]), sizeof(int));
        n_t++;
      }
      struct mpl_tensor_rect *q = &rects[i];
      CU_ASSERT(q->row0 >= 0 && q->n_rows >= 0 && q->row0 + q->n_rows <= rows[t]);
      CU_ASSERT(q->col0 >= 0 && q->n_cols >= 0 && q->col0 + q->n_cols <= cols[t]);
      if (q->row0 + q->n_rows > rows[t] || q->col0 + q->n_cols > cols[t]) continue;
      for (int64_t y = q->row0; y < q->row0 + q->n_rows; y++)
        for (int64_t x = q->col0; x < q->col0 + q->n_cols; x++) counts[t][y * cols[t] + x]++;
    }
    free(rects);
  }
  bool kv_replicated = tp > c->n_kv_heads;
  for (int t = 0; t < n_t; t++) {
    bool kv = strstr(names[t], "k_proj") || strstr(names[t], "v_proj");
    bool tied_twice = c->tie_word_embeddings && (strstr(names[t], "embed_tokens") || strstr(names[t], "wte"));
    int bad = 0;
    for (int64_t e = 0; e < rows[t] * cols[t]; e++) {
      int k = counts[t][e];
      if (is_replicated(names[t])) bad += k != tp;
      else if (kv && kv_replicated) bad += k < 1 || k > tp;
      else if (tied_twice) bad += k != 2; /* the embedding and the LM head */
      else bad += k != 1;
    }
    if (bad) fprintf(stderr, "tp=%d %s: %d elements covered wrongly\n", tp, names[t], bad);
    CU_ASSERT_EQUAL(bad, 0);
    free(counts[t]);
  }
}

static void test_coverage_llama_qwen2_gpt2(void) {
  for (int tp = 1; tp <= 6; tp++) {
    struct mpl_model_config c = llama_cfg(6, 2, false, false);
    check_coverage(&c, tp);
    c = llama_cfg(6, 2, true, true);
    check_coverage(&c, tp);
    c = llama_cfg(6, 6, false, false);
    check_coverage(&c, tp);
    if (tp <= 5) {
      c = gpt2_cfg();
      check_coverage(&c, tp);
    }
  }
}

static void test_uneven_three_way(void) {
  struct mpl_model_config c = llama_cfg(6, 6, false, false); /* ff 29, vocab 101 */
  int ff[3], vocab[3], heads[3];
  for (int r = 0; r < 3; r++) {
    struct mpl_model_part p;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, r, 3, &p), MPL_OK);
    struct mpl_part_dims d;
    mpl_model__part_dims(&c, &p, &d);
    ff[r] = d.n_ff;
    vocab[r] = d.n_vocab;
    heads[r] = d.n_heads;
  }
  CU_ASSERT(ff[0] == 10 && ff[1] == 10 && ff[2] == 9);
  CU_ASSERT(vocab[0] == 34 && vocab[1] == 34 && vocab[2] == 33);
  CU_ASSERT(heads[0] == 2 && heads[1] == 2 && heads[2] == 2);
  /* 7 heads over 3 ranks: 3, 2, 2 */
  c = llama_cfg(7, 7, false, false);
  int expect[3] = {3, 2, 2}, begin[3] = {0, 3, 5};
  for (int r = 0; r < 3; r++) {
    struct mpl_model_part p;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, r, 3, &p), MPL_OK);
    struct mpl_part_dims d;
    mpl_model__part_dims(&c, &p, &d);
    CU_ASSERT_EQUAL(d.n_heads, expect[r]);
    CU_ASSERT_EQUAL(d.head0, begin[r]);
    CU_ASSERT_EQUAL(d.kv_head0, begin[r]);
  }
}

static void test_kv_replication_tp4(void) {
  /* 6 heads, 2 KV heads (groups of 3), 4 ranks: heads 2,2,1,1 */
  struct mpl_model_config c = llama_cfg(6, 2, false, false);
  int h0[4] = {0, 2, 4, 5}, nh[4] = {2, 2, 1, 1}, k0[4] = {0, 0, 1, 1}, nk[4] = {1, 2, 1, 1};
  for (int r = 0; r < 4; r++) {
    struct mpl_model_part p;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, r, 4, &p), MPL_OK);
    struct mpl_part_dims d;
    mpl_model__part_dims(&c, &p, &d);
    CU_ASSERT_EQUAL(d.head0, h0[r]);
    CU_ASSERT_EQUAL(d.n_heads, nh[r]);
    CU_ASSERT_EQUAL(d.kv_head0, k0[r]);
    CU_ASSERT_EQUAL(d.n_kv_heads, nk[r]);
    /* the k_proj rows are those KV heads */
    struct mpl_tensor_rect *rects;
    int n;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_rects(&c, &p, &rects, &n), MPL_OK);
    for (int i = 0; i < n; i++)
      if (strcmp(rects[i].name, "model.layers.0.self_attn.k_proj.weight") == 0) {
        CU_ASSERT_EQUAL(rects[i].row0, k0[r] * 8);
        CU_ASSERT_EQUAL(rects[i].n_rows, nk[r] * 8);
      }
    free(rects);
  }
  /* 2 ranks with 2 KV heads: whole groups, nothing replicated */
  for (int r = 0; r < 2; r++) {
    struct mpl_model_part p;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, r, 2, &p), MPL_OK);
    struct mpl_part_dims d;
    mpl_model__part_dims(&c, &p, &d);
    CU_ASSERT_EQUAL(d.n_kv_heads, 1);
    CU_ASSERT_EQUAL(d.kv_head0, r);
    CU_ASSERT_EQUAL(d.head0, 3 * r);
  }
}

static void test_gpt2_fused_qkv_columns(void) {
  struct mpl_model_config c = gpt2_cfg(); /* 5 heads of 8, dim 40 */
  struct mpl_model_part p;
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, 1, 2, &p), MPL_OK);
  struct mpl_tensor_rect *rects;
  int n, found = 0;
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_rects(&c, &p, &rects, &n), MPL_OK);
  for (int i = 0; i < n; i++) {
    if (strcmp(rects[i].name, "transformer.h.0.attn.c_attn.weight") == 0) {
      /* rank 1 has heads 3..4: columns 24..39 of q, k and v */
      CU_ASSERT_EQUAL(rects[i].col0, 24 + 40 * found);
      CU_ASSERT_EQUAL(rects[i].n_cols, 16);
      CU_ASSERT_EQUAL(rects[i].n_rows, 40);
      found++;
    }
    if (strcmp(rects[i].name, "transformer.h.0.attn.c_proj.weight") == 0) {
      CU_ASSERT_EQUAL(rects[i].row0, 24);
      CU_ASSERT_EQUAL(rects[i].n_rows, 16);
    }
  }
  CU_ASSERT_EQUAL(found, 3);
  free(rects);
  /* every tp rank lists the same tensors in the same order (reads are collective) */
  struct mpl_tensor_rect *r0;
  int n0;
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, 0, 2, &p), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_rects(&c, &p, &r0, &n0), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 1, NULL, 1, 2, &p), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_rects(&c, &p, &rects, &n), MPL_OK);
  CU_ASSERT_EQUAL(n, n0);
  for (int i = 0; i < n && i < n0; i++) CU_ASSERT_STRING_EQUAL(rects[i].name, r0[i].name);
  free(r0);
  free(rects);
}

static void test_pipeline_split(void) {
  struct mpl_model_config c = llama_cfg(6, 2, false, false);
  c.n_layers = 10;
  c.vocab_size = 50;
  /* with a small vocabulary, the layers spread evenly */
  int covered[10] = {0};
  for (int s = 0; s < 3; s++) {
    struct mpl_model_part p;
    CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, s, 3, NULL, 0, 1, &p), MPL_OK);
    CU_ASSERT(p.layer_end - p.layer_begin >= 3 && p.layer_end - p.layer_begin <= 4);
    CU_ASSERT_EQUAL(p.has_embedding, s == 0);
    CU_ASSERT_EQUAL(p.has_head, s == 2);
    CU_ASSERT_EQUAL(p.pp_rank, s);
    for (int l = p.layer_begin; l < p.layer_end; l++) covered[l]++;
  }
  for (int l = 0; l < 10; l++) CU_ASSERT_EQUAL(covered[l], 1);
  /* a huge vocabulary weighs on the end stages: the middle takes more layers */
  c.vocab_size = 20000;
  struct mpl_model_part p0, p1;
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 0, 3, NULL, 0, 1, &p0), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 1, 3, NULL, 0, 1, &p1), MPL_OK);
  CU_ASSERT(p1.layer_end - p1.layer_begin > p0.layer_end - p0.layer_begin);
  CU_ASSERT(p0.layer_end - p0.layer_begin >= 1);
  /* a given split */
  int given[3] = {1, 6, 3};
  CU_ASSERT_EQUAL_FATAL(mpl_model_part_for(&c, 2, 3, given, 0, 1, &p0), MPL_OK);
  CU_ASSERT(p0.layer_begin == 7 && p0.layer_end == 10 && p0.has_head);
  int bad[3] = {1, 6, 2};
  CU_ASSERT_EQUAL(mpl_model_part_for(&c, 0, 3, bad, 0, 1, &p0), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "add up to 9"));
  /* layouts the model cannot take */
  CU_ASSERT_EQUAL(mpl_model_part_for(&c, 0, 11, NULL, 0, 1, &p0), MPL_ERR_ARG);
  CU_ASSERT_EQUAL(mpl_model_part_for(&c, 0, 1, NULL, 0, 7, &p0), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "attention heads, the model has 6"));
}

MPL_TEST_SUITE(model_part, MPL_TEST(test_coverage_llama_qwen2_gpt2), MPL_TEST(test_uneven_three_way),
               MPL_TEST(test_kv_replication_tp4), MPL_TEST(test_gpt2_fused_qkv_columns),
               MPL_TEST(test_pipeline_split))
