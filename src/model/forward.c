/* The forward pass of a model part on a batch of tokens from several sequences, and
 * the KV cache. Compute is f32 whatever the weights' dtype. With tensor parallelism
 * (Megatron): q/k/v, gate and up are column-parallel (this rank's heads and
 * channels), o and down are row-parallel, their partial sums joined by one
 * all-reduce each on the stage's tp_comm; the embedding and LM head are split by
 * vocabulary rows. Nothing here allocates per token: scratch grows only when a
 * larger batch than any before comes. */
#include <math.h>
#include <string.h>

#include "model/model_internal.h"
#include "mpillm/parallel.h"

enum mpl_status mpl_kv_create(const struct mpl_model *m, int n_slots, int n_ctx,
                              struct mpl_kv_cache **out) {
  *out = NULL;
  if (n_slots < 1 || n_ctx < 1)
    return mpl_error_set(MPL_ERR_ARG, "a KV cache of %d slots of %d positions", n_slots, n_ctx);
  if (n_ctx > m->cfg.max_position_embeddings)
    return mpl_error_set(MPL_ERR_RANGE,
                         "a context of %d positions is past the model's limit "
                         "(max_position_embeddings %d)",
                         n_ctx, m->cfg.max_position_embeddings);
  struct mpl_kv_cache *kv = mpl_alloc(sizeof *kv, "the KV cache");
  if (!kv) return MPL_ERR_NOMEM;
  kv->n_slots = n_slots;
  kv->n_ctx = n_ctx;
  kv->n_layers = m->part.layer_end - m->part.layer_begin;
  kv->n_kv_heads = m->dims.n_kv_heads;
  kv->head_dim = m->cfg.head_dim;
  size_t n = (size_t)kv->n_layers * (size_t)n_slots * (size_t)kv->n_kv_heads * (size_t)n_ctx *
             (size_t)kv->head_dim;
  kv->k = mpl_alloc(n * sizeof(float), "the KV cache's keys");
  kv->v = kv->k ? mpl_alloc(n * sizeof(float), "the KV cache's values") : NULL;
  if (!kv->v) {
    mpl_kv_destroy(kv);
    return MPL_ERR_NOMEM;
  }
  kv->n_bytes = 2 * n * sizeof(float);
  *out = kv;
  return MPL_OK;
}

void mpl_kv_destroy(struct mpl_kv_cache *kv) {
  if (!kv) return;
  mpl_free(kv->k);
  mpl_free(kv->v);
  mpl_free(kv);
}

size_t mpl_kv_bytes(const struct mpl_kv_cache *kv) { return kv ? kv->n_bytes : 0; }

/* Grows one scratch buffer to n floats (contents not kept). */
static enum mpl_status grow(float **buf, size_t n, const char *what) {
  mpl_free(*buf);
  *buf = mpl_alloc(n * sizeof(float), what);
  return *buf ? MPL_OK : MPL_ERR_NOMEM;
}

static enum mpl_status ensure_scratch(struct mpl_model *m, int n_rows, int n_ctx) {
  const struct mpl_part_dims *d = &m->dims;
  size_t dim = (size_t)m->cfg.hidden_size, hd = (size_t)m->cfg.head_dim;
  size_t q = (size_t)d->n_heads * hd, qkv = q + 2 * (size_t)d->n_kv_heads * hd;
  enum mpl_status st = MPL_OK;
  if (n_rows > m->cap_tokens) {
    size_t n = (size_t)n_rows;
    m->cap_tokens = 0;
    if (st == MPL_OK) st = grow(&m->x, n * dim, "the residual stream");
    if (st == MPL_OK) st = grow(&m->h, n * dim, "the normed activations");
    if (st == MPL_OK) st = grow(&m->qkv, n * qkv, "the q/k/v activations");
    if (st == MPL_OK) st = grow(&m->att, n * q, "the attention output");
    if (st == MPL_OK) st = grow(&m->mlp, n * 2 * (size_t)d->n_ff, "the MLP activations");
    if (st == MPL_OK) st = grow(&m->rope_cos, n * (hd / 2 + 1), "the RoPE table");
    if (st == MPL_OK) st = grow(&m->rope_sin, n * (hd / 2 + 1), "the RoPE table");
    if (st != MPL_OK) return st;
    m->cap_tokens = n_rows;
  }
  int n_threads = mpl_threads_count();
  if (n_ctx > m->cap_ctx || n_threads > m->cap_threads) {
    m->cap_ctx = 0;
    st = grow(&m->scores, (size_t)n_threads * (size_t)n_ctx, "the attention scores");
    if (st != MPL_OK) return st;
    m->cap_ctx = n_ctx;
    m->cap_threads = n_threads;
  }
  return MPL_OK;
}

enum mpl_status mpl_model_reserve(struct mpl_model *m, int n_rows, int n_ctx) {
  return ensure_scratch(m, n_rows < 1 ? 1 : n_rows, n_ctx < 1 ? 1 : n_ctx);
}

static enum mpl_status check_batch(const struct mpl_model *m, const struct mpl_kv_cache *kv,
                                   const struct mpl_batch *b, const float *x_in, const float *x_out,
                                   const float *logits) {
  if (kv->n_layers != m->part.layer_end - m->part.layer_begin || kv->n_kv_heads != m->dims.n_kv_heads ||
      kv->head_dim != m->cfg.head_dim)
    return mpl_error_set(MPL_ERR_ARG, "the KV cache was made for another model part");
  if (b->n_tokens < 1) return mpl_error_set(MPL_ERR_ARG, "an empty batch");
  int limit = kv->n_ctx < m->cfg.max_position_embeddings ? kv->n_ctx : m->cfg.max_position_embeddings;
  for (int i = 0; i < b->n_tokens; i++) {
    if (b->seq[i] < 0 || b->seq[i] >= kv->n_slots)
      return mpl_error_set(MPL_ERR_ARG, "token %d of the batch is in KV slot %d of %d", i, b->seq[i],
                           kv->n_slots);
    if (b->pos[i] < 0 || b->pos[i] >= limit)
      return mpl_error_set(MPL_ERR_RANGE,
                           "position %d (token %d of the batch, slot %d) is past the context "
                           "limit of %d positions",
                           b->pos[i], i, b->seq[i], limit);
    if (m->part.has_embedding && (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab_size))
      return mpl_error_set(MPL_ERR_ARG, "token id %d (token %d of the batch) is outside the vocabulary of %d",
                           b->tokens[i], i, m->cfg.vocab_size);
  }
  if (!m->part.has_embedding && !x_in)
    return mpl_error_set(MPL_ERR_ARG, "a later pipeline stage needs its input activations");
  if (m->part.has_head) {
    if (!logits && b->n_logits > 0) return mpl_error_set(MPL_ERR_ARG, "no buffer for the logits");
    for (int r = 0; r < b->n_logits; r++)
      if (b->logit_rows[r] < 0 || b->logit_rows[r] >= b->n_tokens)
        return mpl_error_set(MPL_ERR_ARG, "logits asked for row %d of a batch of %d", b->logit_rows[r],
                             b->n_tokens);
  } else if (!x_out) {
    return mpl_error_set(MPL_ERR_ARG, "a pipeline stage before the last needs an output buffer");
  }
  return MPL_OK;
}

/* --- attention ------------------------------------------------------------------------ */
struct attn_job {
  struct mpl_model *m;
  struct mpl_kv_cache *kv;
  const struct mpl_batch *b;
  int layer; /* local index */
  float scale;
};

/* Items are (token, head) pairs: each attends over its own slot's positions 0..pos. */
static void attn_share(void *ctx, int64_t begin, int64_t end, int thread) {
  const struct attn_job *j = ctx;
  const struct mpl_model *m = j->m;
  const struct mpl_kv_cache *kv = j->kv;
  int hd = m->cfg.head_dim, nh = m->dims.n_heads, nkv = m->dims.n_kv_heads;
  int group = m->cfg.n_heads / m->cfg.n_kv_heads;
  size_t qkv_w = (size_t)(nh + 2 * nkv) * hd;
  float *s = m->scores + (size_t)thread * (size_t)m->cap_ctx;
  for (int64_t item = begin; item < end; item++) {
    int t = (int)(item / nh), h = (int)(item % nh);
    int pos = j->b->pos[t], slot = j->b->seq[t];
    int kvh = (m->dims.head0 + h) / group - m->dims.kv_head0;
    size_t base = ((((size_t)j->layer * kv->n_slots + slot) * nkv + kvh) * kv->n_ctx) * hd;
    const float *q = m->qkv + t * qkv_w + (size_t)h * hd;
    const float *K = kv->k + base, *V = kv->v + base;
    for (int p = 0; p <= pos; p++) s[p] = mpl_tensor_dot(q, K + (size_t)p * hd, hd) * j->scale;
    mpl_tensor_softmax(s, pos + 1);
    float *o = m->att + (size_t)t * nh * hd + (size_t)h * hd;
    memset(o, 0, sizeof(float) * (size_t)hd);
    for (int p = 0; p <= pos; p++) mpl_tensor_axpy(o, s[p], V + (size_t)p * hd, hd);
  }
}

/* Sums the row-parallel partial results of the stage's ranks. Collective on tp_comm.
 * A rank alone in its stage lets MPI serve the others instead (the request counter it
 * may hold for the replicas), twice a layer. */
static enum mpl_status tp_sum(struct mpl_model *m, float *buf, size_t n) {
  if (m->part.tp_size == 1) {
    mpl_par_progress();
    return MPL_OK;
  }
  return mpl_par_allreduce_sum_f32(m->tp_comm, buf, n);
}

static void add_rows(float *y, const float *b, int n, int width, size_t ld) {
  for (int t = 0; t < n; t++)
    for (int i = 0; i < width; i++) y[(size_t)t * ld + i] += b[i];
}

static void norm_rows(const struct mpl_model *m, float *y, const float *x, const float *w,
                      const float *b, int n) {
  int dim = m->cfg.hidden_size;
  for (int t = 0; t < n; t++) {
    if (m->cfg.arch == MPL_ARCH_GPT2)
      mpl_tensor_layernorm(y + (size_t)t * dim, x + (size_t)t * dim, w, b, dim, m->cfg.norm_eps);
    else
      mpl_tensor_rmsnorm(y + (size_t)t * dim, x + (size_t)t * dim, w, dim, m->cfg.norm_eps);
  }
}

static void linear(float *y, size_t ldy, const float *x, size_t ldx, const struct mpl_mat *w, int n,
                   int n_out, int n_in) {
  mpl_tensor_linear(y, (int64_t)ldy, x, (int64_t)ldx, w->w, w->dtype, n, n_out, n_in);
}

static enum mpl_status embed(struct mpl_model *m, const struct mpl_batch *b) {
  int dim = m->cfg.hidden_size, v0 = m->dims.vocab0, nv = m->dims.n_vocab;
  size_t row_bytes = (size_t)dim * mpl_dtype_bytes(m->embed.dtype);
  for (int t = 0; t < b->n_tokens; t++) {
    float *x = m->x + (size_t)t * dim;
    int tok = b->tokens[t];
    if (tok >= v0 && tok < v0 + nv)
      mpl_tensor_to_f32(x, (const char *)m->embed.w + (size_t)(tok - v0) * row_bytes, m->embed.dtype,
                        (size_t)dim);
    else
      memset(x, 0, sizeof(float) * (size_t)dim); /* another rank holds this row */
    if (m->pos_embed && m->part.tp_rank == 0) {
      const float *pe = m->pos_embed + (size_t)b->pos[t] * dim;
      for (int i = 0; i < dim; i++) x[i] += pe[i];
    }
  }
  return tp_sum(m, m->x, (size_t)b->n_tokens * dim);
}

static enum mpl_status layer_forward(struct mpl_model *m, struct mpl_kv_cache *kv,
                                     const struct mpl_batch *b, int li) {
  const struct mpl_layer *L = &m->layers[li];
  const struct mpl_model_config *c = &m->cfg;
  int n = b->n_tokens, dim = c->hidden_size, hd = c->head_dim, half = hd / 2;
  int nh = m->dims.n_heads, nkv = m->dims.n_kv_heads, nf = m->dims.n_ff;
  int qw = nh * hd, kvw = nkv * hd, qkv_w = qw + 2 * kvw;
  bool gpt2 = c->arch == MPL_ARCH_GPT2, lead = m->part.tp_rank == 0;

  /* attention: x += o(attend(rope(qkv(norm(x))))) */
  norm_rows(m, m->h, m->x, L->norm1_w, L->norm1_b, n);
  linear(m->qkv, (size_t)qkv_w, m->h, (size_t)dim, &L->qkv, n, qkv_w, dim);
  if (L->qkv_b) add_rows(m->qkv, L->qkv_b, n, qkv_w, (size_t)qkv_w);
  for (int t = 0; t < n; t++) {
    float *q = m->qkv + (size_t)t * qkv_w, *k = q + qw, *v = k + kvw;
    if (!gpt2) {
      const float *cs = m->rope_cos + (size_t)t * half, *sn = m->rope_sin + (size_t)t * half;
      mpl_tensor_rope(q, nh, hd, cs, sn);
      mpl_tensor_rope(k, nkv, hd, cs, sn);
    }
    for (int j = 0; j < nkv; j++) {
      size_t at = ((((size_t)li * kv->n_slots + b->seq[t]) * nkv + j) * kv->n_ctx + b->pos[t]) * hd;
      memcpy(kv->k + at, k + (size_t)j * hd, sizeof(float) * (size_t)hd);
      memcpy(kv->v + at, v + (size_t)j * hd, sizeof(float) * (size_t)hd);
    }
  }
  struct attn_job aj = {m, kv, b, li, 1.0f / sqrtf((float)hd)};
  mpl_threads_for((int64_t)n * nh, 1, attn_share, &aj);
  linear(m->h, (size_t)dim, m->att, (size_t)qw, &L->o, n, dim, qw);
  if (L->o_b && lead) add_rows(m->h, L->o_b, n, dim, (size_t)dim); /* once, before the sum */
  enum mpl_status st = tp_sum(m, m->h, (size_t)n * dim);
  if (st != MPL_OK) return st;
  for (size_t i = 0; i < (size_t)n * dim; i++) m->x[i] += m->h[i];

  /* MLP: x += down(act(up(norm(x)))) */
  norm_rows(m, m->h, m->x, L->norm2_w, L->norm2_b, n);
  int up_w = gpt2 ? nf : 2 * nf;
  linear(m->mlp, (size_t)up_w, m->h, (size_t)dim, &L->up, n, up_w, dim);
  for (int t = 0; t < n; t++) {
    float *g = m->mlp + (size_t)t * up_w;
    if (gpt2) {
      for (int i = 0; i < nf; i++) g[i] += L->up_b[i];
      mpl_tensor_gelu_tanh(g, nf);
    } else {
      mpl_tensor_silu_mul(g, g + nf, nf);
    }
  }
  linear(m->h, (size_t)dim, m->mlp, (size_t)up_w, &L->down, n, dim, nf);
  if (L->down_b && lead) add_rows(m->h, L->down_b, n, dim, (size_t)dim);
  st = tp_sum(m, m->h, (size_t)n * dim);
  if (st != MPL_OK) return st;
  for (size_t i = 0; i < (size_t)n * dim; i++) m->x[i] += m->h[i];
  return MPL_OK;
}

enum mpl_status mpl_model_forward(struct mpl_model *m, struct mpl_kv_cache *kv,
                                  const struct mpl_batch *b, const float *x_in, float *x_out,
                                  float *logits) {
  enum mpl_status st = check_batch(m, kv, b, x_in, x_out, logits);
  if (st != MPL_OK) return st;
  int n = b->n_tokens, dim = m->cfg.hidden_size, hd = m->cfg.head_dim;
  int rows = n > b->n_logits ? n : b->n_logits;
  st = ensure_scratch(m, rows, kv->n_ctx);
  if (st != MPL_OK) return st;
  if (m->cfg.arch != MPL_ARCH_GPT2)
    for (int t = 0; t < n; t++)
      mpl_tensor_rope_table(m->rope_cos + (size_t)t * (hd / 2), m->rope_sin + (size_t)t * (hd / 2),
                            b->pos[t], hd, m->cfg.rope_theta);
  if (m->part.has_embedding) st = embed(m, b);
  else memcpy(m->x, x_in, sizeof(float) * (size_t)n * dim);
  for (int li = 0; st == MPL_OK && li < m->part.layer_end - m->part.layer_begin; li++)
    st = layer_forward(m, kv, b, li);
  if (st != MPL_OK) return st;
  if (!m->part.has_head) {
    memcpy(x_out, m->x, sizeof(float) * (size_t)n * dim);
    return MPL_OK;
  }
  for (int r = 0; r < b->n_logits; r++)
    norm_rows(m, m->h + (size_t)r * dim, m->x + (size_t)b->logit_rows[r] * dim, m->final_w,
              m->final_b, 1);
  linear(logits, (size_t)m->dims.n_vocab, m->h, (size_t)dim, &m->head, b->n_logits, m->dims.n_vocab,
         dim);
  return MPL_OK;
}
