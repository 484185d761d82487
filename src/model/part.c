/* Model parts: the pipeline split of layers into stages (balanced by weight bytes)
 * and the tensor-parallel slice of each tensor, as rectangles of the checkpoint's
 * tensors in full-tensor coordinates. The loader and `mpillm shard` both read
 * these rectangles, so what a shard holds is exactly what a rank loads. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/part_dims.h"

void mpl_model__split(int n, int rank, int size, int *begin, int *count) {
  int base = n / size, extra = n % size;
  *count = base + (rank < extra ? 1 : 0);
  *begin = rank * base + (rank < extra ? rank : extra);
}

void mpl_model__part_dims(const struct mpl_model_config *cfg, const struct mpl_model_part *part,
                          struct mpl_part_dims *d) {
  int tp = part->tp_size, r = part->tp_rank;
  int group = cfg->n_heads / cfg->n_kv_heads; /* query heads per KV head */
  if (tp <= cfg->n_kv_heads) {
    /* whole KV groups per rank, so no KV head is held twice */
    mpl_model__split(cfg->n_kv_heads, r, tp, &d->kv_head0, &d->n_kv_heads);
    d->head0 = d->kv_head0 * group;
    d->n_heads = d->n_kv_heads * group;
  } else {
    /* more ranks than KV heads: split query heads, each rank holds the KV heads they use */
    mpl_model__split(cfg->n_heads, r, tp, &d->head0, &d->n_heads);
    d->kv_head0 = d->head0 / group;
    d->n_kv_heads = (d->head0 + d->n_heads - 1) / group - d->kv_head0 + 1;
  }
  mpl_model__split(cfg->intermediate_size, r, tp, &d->ff0, &d->n_ff);
  mpl_model__split(cfg->vocab_size, r, tp, &d->vocab0, &d->n_vocab);
}

/* Elements of weights per layer, and of the embedding and head ends. */
static double layer_elems(const struct mpl_model_config *c) {
  double dim = c->hidden_size, hd = c->head_dim, ff = c->intermediate_size;
  double q = c->n_heads * hd, kv = c->n_kv_heads * hd;
  double attn = dim * (q + 2 * kv) + q * dim, mlp;
  if (c->arch == MPL_ARCH_GPT2) {
    attn += q + 2 * kv + dim;
    mlp = 2 * dim * ff + ff + dim;
    return attn + mlp + 4 * dim;
  }
  if (c->qkv_bias) attn += q + 2 * kv;
  mlp = 3 * dim * ff;
  return attn + mlp + 2 * dim;
}

static double embedding_elems(const struct mpl_model_config *c) {
  double e = (double)c->vocab_size * c->hidden_size;
  if (c->arch == MPL_ARCH_GPT2) e += (double)c->max_position_embeddings * c->hidden_size;
  return e;
}

static double head_elems(const struct mpl_model_config *c) {
  double norm = c->arch == MPL_ARCH_GPT2 ? 2.0 * c->hidden_size : c->hidden_size;
  return norm + (double)c->vocab_size * c->hidden_size; /* tied or not, the last stage holds it */
}

/* first[s] = first layer of stage s, for the contiguous split of n layers into
 * n_stages (each at least one layer) whose largest stage, counting the embedding on
 * stage 0 and the head on the last, is smallest. */
static enum mpl_status balance_by_bytes(const struct mpl_model_config *c, int n_stages, int *first) {
  int n = c->n_layers;
  double per = layer_elems(c), emb = embedding_elems(c), head = head_elems(c);
  /* best[s][l]: smallest max cost splitting layers [0, l) into stages 0..s */
  double *best = malloc(sizeof(double) * (size_t)n_stages * (size_t)(n + 1));
  int *cut = malloc(sizeof(int) * (size_t)n_stages * (size_t)(n + 1));
  if (!best || !cut) {
    free(best);
    free(cut);
    return mpl_error_set(MPL_ERR_NOMEM, "out of memory balancing %d layers over %d stages", n,
                         n_stages);
  }
#define AT(a, s, l) a[(size_t)(s) * (size_t)(n + 1) + (size_t)(l)]
  for (int s = 0; s < n_stages; s++)
    for (int l = 0; l <= n; l++) {
      AT(best, s, l) = 1e300;
      AT(cut, s, l) = -1;
      if (l < s + 1) continue;
      for (int k = s; k < l; k++) { /* stage s holds layers [k, l) */
        if (s == 0 && k != 0) continue;
        double cost = (l - k) * per + (s == 0 ? emb : 0.0) + (s == n_stages - 1 ? head : 0.0);
        double prev = s == 0 ? 0.0 : AT(best, s - 1, k);
        double m = cost > prev ? cost : prev;
        if (m < AT(best, s, l)) {
          AT(best, s, l) = m;
          AT(cut, s, l) = k;
        }
      }
    }
  int l = n;
  for (int s = n_stages - 1; s >= 0; s--) {
    first[s] = AT(cut, s, l);
    l = first[s];
  }
#undef AT
  free(best);
  free(cut);
  return MPL_OK;
}

enum mpl_status mpl_model_part_for(const struct mpl_model_config *cfg, int pp_rank, int pp_size,
                                   const int *layers_per_stage, int tp_rank, int tp_size,
                                   struct mpl_model_part *part) {
  memset(part, 0, sizeof *part);
  if (pp_size < 1 || pp_rank < 0 || pp_rank >= pp_size || tp_size < 1 || tp_rank < 0 ||
      tp_rank >= tp_size)
    return mpl_error_set(MPL_ERR_ARG, "bad part: pp rank %d of %d, tp rank %d of %d", pp_rank,
                         pp_size, tp_rank, tp_size);
  if (pp_size > cfg->n_layers)
    return mpl_error_set(MPL_ERR_ARG, "a pipeline of %d stages needs at least %d layers, the model has %d",
                         pp_size, pp_size, cfg->n_layers);
  if (tp_size > cfg->n_heads)
    return mpl_error_set(MPL_ERR_ARG,
                         "tensor parallelism over %d ranks needs at least %d attention heads, "
                         "the model has %d",
                         tp_size, tp_size, cfg->n_heads);
  if (tp_size > cfg->intermediate_size || tp_size > cfg->vocab_size)
    return mpl_error_set(MPL_ERR_ARG, "tensor parallelism over %d ranks: the model is too small",
                         tp_size);
  int begin = 0, end = 0;
  if (layers_per_stage) {
    int sum = 0;
    for (int s = 0; s < pp_size; s++) {
      if (layers_per_stage[s] < 1)
        return mpl_error_set(MPL_ERR_ARG, "pipeline stage %d is given %d layers (at least 1)", s,
                             layers_per_stage[s]);
      if (s == pp_rank) begin = sum;
      sum += layers_per_stage[s];
      if (s == pp_rank) end = sum;
    }
    if (sum != cfg->n_layers)
      return mpl_error_set(MPL_ERR_ARG, "the layers per stage add up to %d, the model has %d layers",
                           sum, cfg->n_layers);
  } else {
    int *first = malloc(sizeof(int) * (size_t)pp_size);
    if (!first) return mpl_error_set(MPL_ERR_NOMEM, "out of memory splitting the pipeline");
    enum mpl_status st = balance_by_bytes(cfg, pp_size, first);
    if (st == MPL_OK) {
      begin = first[pp_rank];
      end = pp_rank + 1 < pp_size ? first[pp_rank + 1] : cfg->n_layers;
    }
    free(first);
    if (st != MPL_OK) return st;
  }
  part->tp_rank = tp_rank;
  part->tp_size = tp_size;
  part->pp_rank = pp_rank;
  part->pp_size = pp_size;
  part->layer_begin = begin;
  part->layer_end = end;
  part->has_embedding = pp_rank == 0;
  part->has_head = pp_rank == pp_size - 1;
  return MPL_OK;
}

/* A growing list of rectangles. */
struct rect_list {
  struct mpl_tensor_rect *v;
  int n, cap;
  bool failed;
};

MPL_PRINTF(6, 7)
static void add(struct rect_list *l, int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols,
                const char *fmt, ...) {
  if (l->failed) return;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    struct mpl_tensor_rect *v = realloc(l->v, sizeof *v * (size_t)cap);
    if (!v) {
      l->failed = true;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  struct mpl_tensor_rect *r = &l->v[l->n++];
  memset(r, 0, sizeof *r);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->name, sizeof r->name, fmt, ap);
  va_end(ap);
  r->row0 = row0;
  r->n_rows = n_rows;
  r->col0 = col0;
  r->n_cols = n_cols;
}

/* A 1-D tensor's elements [col0, col0 + n): one row. */
#define ADD_VEC(l, col0, n, ...) add(l, 0, 1, col0, n, __VA_ARGS__)

static void llama_rects(const struct mpl_model_config *c, const struct mpl_model_part *p,
                        const struct mpl_part_dims *d, struct rect_list *l) {
  int64_t dim = c->hidden_size, hd = c->head_dim;
  int64_t q0 = d->head0 * hd, nq = d->n_heads * hd, k0 = d->kv_head0 * hd, nk = d->n_kv_heads * hd;
  if (p->has_embedding) add(l, d->vocab0, d->n_vocab, 0, dim, "model.embed_tokens.weight");
  for (int i = p->layer_begin; i < p->layer_end; i++) {
    const char *pre = "model.layers";
    ADD_VEC(l, 0, dim, "%s.%d.input_layernorm.weight", pre, i);
    add(l, q0, nq, 0, dim, "%s.%d.self_attn.q_proj.weight", pre, i);
    add(l, k0, nk, 0, dim, "%s.%d.self_attn.k_proj.weight", pre, i);
    add(l, k0, nk, 0, dim, "%s.%d.self_attn.v_proj.weight", pre, i);
    if (c->qkv_bias) {
      ADD_VEC(l, q0, nq, "%s.%d.self_attn.q_proj.bias", pre, i);
      ADD_VEC(l, k0, nk, "%s.%d.self_attn.k_proj.bias", pre, i);
      ADD_VEC(l, k0, nk, "%s.%d.self_attn.v_proj.bias", pre, i);
    }
    add(l, 0, dim, q0, nq, "%s.%d.self_attn.o_proj.weight", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.post_attention_layernorm.weight", pre, i);
    add(l, d->ff0, d->n_ff, 0, dim, "%s.%d.mlp.gate_proj.weight", pre, i);
    add(l, d->ff0, d->n_ff, 0, dim, "%s.%d.mlp.up_proj.weight", pre, i);
    add(l, 0, dim, d->ff0, d->n_ff, "%s.%d.mlp.down_proj.weight", pre, i);
  }
  if (p->has_head) {
    ADD_VEC(l, 0, dim, "model.norm.weight");
    add(l, d->vocab0, d->n_vocab, 0, dim,
        c->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  }
}

/* GPT-2 stores its linear layers as Conv1D, [in, out]: a column-parallel split takes
 * columns, a row-parallel one rows. Biases of row-parallel layers and the learned
 * positions are added once, by tp rank 0, but every rank reads them (they are small)
 * so that all tp ranks read the same list of tensors in the same order: reads are
 * collective on the stage's ranks. */
static void gpt2_rects(const struct mpl_model_config *c, const struct mpl_model_part *p,
                       const struct mpl_part_dims *d, struct rect_list *l) {
  int64_t dim = c->hidden_size, hd = c->head_dim, qdim = (int64_t)c->n_heads * hd;
  int64_t q0 = d->head0 * hd, nq = d->n_heads * hd;
  if (p->has_embedding) {
    add(l, d->vocab0, d->n_vocab, 0, dim, "transformer.wte.weight");
    add(l, 0, c->max_position_embeddings, 0, dim, "transformer.wpe.weight");
  }
  for (int i = p->layer_begin; i < p->layer_end; i++) {
    const char *pre = "transformer.h";
    ADD_VEC(l, 0, dim, "%s.%d.ln_1.weight", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.ln_1.bias", pre, i);
    for (int s = 0; s < 3; s++) add(l, 0, dim, s * qdim + q0, nq, "%s.%d.attn.c_attn.weight", pre, i);
    for (int s = 0; s < 3; s++) ADD_VEC(l, s * qdim + q0, nq, "%s.%d.attn.c_attn.bias", pre, i);
    add(l, q0, nq, 0, dim, "%s.%d.attn.c_proj.weight", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.attn.c_proj.bias", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.ln_2.weight", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.ln_2.bias", pre, i);
    add(l, 0, dim, d->ff0, d->n_ff, "%s.%d.mlp.c_fc.weight", pre, i);
    ADD_VEC(l, d->ff0, d->n_ff, "%s.%d.mlp.c_fc.bias", pre, i);
    add(l, d->ff0, d->n_ff, 0, dim, "%s.%d.mlp.c_proj.weight", pre, i);
    ADD_VEC(l, 0, dim, "%s.%d.mlp.c_proj.bias", pre, i);
  }
  if (p->has_head) {
    ADD_VEC(l, 0, dim, "transformer.ln_f.weight");
    ADD_VEC(l, 0, dim, "transformer.ln_f.bias");
    add(l, d->vocab0, d->n_vocab, 0, dim,
        c->tie_word_embeddings ? "transformer.wte.weight" : "lm_head.weight");
  }
}

enum mpl_status mpl_model_part_rects(const struct mpl_model_config *cfg,
                                     const struct mpl_model_part *part,
                                     struct mpl_tensor_rect **rects, int *n_rects) {
  *rects = NULL;
  *n_rects = 0;
  if (cfg->arch != MPL_ARCH_LLAMA && cfg->arch != MPL_ARCH_QWEN2 && cfg->arch != MPL_ARCH_GPT2)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "architecture '%s' has no tensor parts",
                         mpl_arch_name(cfg->arch));
  if (cfg->arch == MPL_ARCH_GPT2 && cfg->n_kv_heads != cfg->n_heads)
    return mpl_error_set(MPL_ERR_FORMAT, "gpt2 with %d KV heads for %d heads", cfg->n_kv_heads,
                         cfg->n_heads);
  struct mpl_part_dims d;
  mpl_model__part_dims(cfg, part, &d);
  struct rect_list l = {0};
  if (cfg->arch == MPL_ARCH_GPT2)
    gpt2_rects(cfg, part, &d, &l);
  else
    llama_rects(cfg, part, &d, &l);
  if (l.failed) {
    free(l.v);
    return mpl_error_set(MPL_ERR_NOMEM, "out of memory listing the part's tensors");
  }
  *rects = l.v;
  *n_rects = l.n;
  return MPL_OK;
}
