/* Loading a model part: the rectangles of mpl_model_part_rects read straight into one
 * slab, matrices in their stored dtype with rows contiguous ([out][in], torch's
 * Linear layout; GPT-2's Conv1D [in][out] tensors are transposed on the way in),
 * norms and biases as f32. Q/K/V rows share one matrix, and so do gate and up, so
 * that a decode step streams each layer in few passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/model_internal.h"
#include "mpillm/io.h"
#include "mpillm/parallel.h"

#define IS2(a, b) (strcmp(a, b) == 0)

/* The full shape a checkpoint tensor must have under cfg; a 1-D tensor has
 * *n_dims = 1 and its length in *cols. */
static void expected_shape(const struct mpl_model_config *c, const char *name, int *n_dims,
                           int64_t *rows, int64_t *cols) {
  int64_t dim = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim,
          kv = (int64_t)c->n_kv_heads * c->head_dim, ff = c->intermediate_size;
  const char *dot = strrchr(name, '.');
  bool bias = dot && strcmp(dot, ".bias") == 0;
  *n_dims = 2;
  *rows = dim;
  *cols = dim;
#define HAS(x) (strstr(name, x) != NULL)
  /* 2-D: [out][in] for Linear, [in][out] for GPT-2's Conv1D; 1-D: the length in *cols */
  int64_t r = dim, k = dim;
  if (HAS("embed_tokens") || HAS("lm_head") || HAS("wte")) r = c->vocab_size;
  else if (HAS("wpe")) r = c->max_position_embeddings;
  else if (HAS("q_proj")) r = q;
  else if (HAS("k_proj") || HAS("v_proj")) r = kv;
  else if (HAS("o_proj")) k = q;
  else if (HAS("gate_proj") || HAS("up_proj")) r = ff;
  else if (HAS("down_proj")) k = ff;
  else if (HAS("c_attn")) k = 3 * dim;           /* Conv1D [dim][3 dim] */
  else if (HAS("mlp.c_proj")) r = ff;            /* Conv1D [ff][dim] */
  else if (HAS("c_fc")) k = ff;                  /* Conv1D [dim][ff] */
  if (HAS("norm") || HAS("ln_") || bias) {
    *n_dims = 1;
    /* a bias has the layer's output length */
    *cols = c->arch == MPL_ARCH_GPT2 ? (HAS("mlp.c_proj") ? dim : k) : r;
    if (!bias) *cols = dim;
  } else {
    *rows = r;
    *cols = k;
  }
#undef HAS
  if (*n_dims == 1) *rows = 1;
}

/* Hands out 64-byte aligned pieces of the slab; with no slab it only counts. */
struct bump {
  char *base;
  size_t used;
};

static void *take(struct bump *b, size_t n_bytes) {
  size_t at = b->used;
  b->used += (n_bytes + 63) / 64 * 64;
  return b->base ? b->base + at : NULL;
}

/* The slab, aligned to 2 MiB and offered to the kernel for transparent huge pages:
 * decode streams every weight once per token, and fewer TLB misses help it. Every
 * byte the model uses is written by the reads. Freed with mpl_free (free). */
static void *alloc_slab(size_t n_bytes) {
  size_t huge = (size_t)2 << 20, rounded = (n_bytes + huge - 1) / huge * huge;
  void *p = NULL;
  if (posix_memalign(&p, huge, rounded) != 0) {
    char size[32];
    mpl_error_set(MPL_ERR_NOMEM, "cannot allocate %s for the model's weights",
                  mpl_format_bytes((double)n_bytes, size, sizeof size));
    return NULL;
  }
#ifdef MADV_HUGEPAGE
  (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: refused is fine */
#endif
  return p;
}

static enum mpl_dtype matrix_dtype(struct mpl_model_file *f, const char *name) {
  struct mpl_tensor_info info;
  if (mpl_io_tensor_info(f, name, &info) != MPL_OK) return MPL_DTYPE_F32; /* reported when read */
  return info.dtype == MPL_DTYPE_BF16 ? MPL_DTYPE_BF16 : MPL_DTYPE_F32;
}

/* The dtypes of the four matrices of a layer and of the embedding and head, taken
 * from the first layer's tensors (all layers are read in those dtypes). */
struct dtypes {
  enum mpl_dtype qkv, o, up, down, embed, head;
};

static void choose_dtypes(struct mpl_model *m, struct mpl_model_file *f, struct dtypes *dt) {
  char name[160];
  bool gpt2 = m->cfg.arch == MPL_ARCH_GPT2;
  int l = m->part.layer_begin;
#define DT(field, llama, gpt)                                                                   \
  snprintf(name, sizeof name, gpt2 ? "transformer.h.%d." gpt : "model.layers.%d." llama, l);   \
  dt->field = matrix_dtype(f, name)
  DT(qkv, "self_attn.q_proj.weight", "attn.c_attn.weight");
  DT(o, "self_attn.o_proj.weight", "attn.c_proj.weight");
  DT(up, "mlp.gate_proj.weight", "mlp.c_fc.weight");
  DT(down, "mlp.down_proj.weight", "mlp.c_proj.weight");
#undef DT
  const char *emb = gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
  dt->embed = matrix_dtype(f, emb);
  dt->head = m->cfg.tie_word_embeddings ? dt->embed : matrix_dtype(f, "lm_head.weight");
}

/* Lays out (or, with no slab, measures) every block of the part. */
static void layout(struct mpl_model *m, struct bump *b, const struct dtypes *dt) {
  const struct mpl_model_config *c = &m->cfg;
  const struct mpl_part_dims *d = &m->dims;
  size_t dim = (size_t)c->hidden_size, hd = (size_t)c->head_dim;
  size_t q = (size_t)d->n_heads * hd, kv = (size_t)d->n_kv_heads * hd, ff = (size_t)d->n_ff;
  bool gpt2 = c->arch == MPL_ARCH_GPT2;
  size_t f4 = sizeof(float);
  if (m->part.has_embedding) {
    m->embed.dtype = dt->embed;
    m->embed.w = take(b, (size_t)d->n_vocab * dim * mpl_dtype_bytes(dt->embed));
    if (gpt2) m->pos_embed = take(b, (size_t)c->max_position_embeddings * dim * f4);
  }
  for (int i = 0; i < m->part.layer_end - m->part.layer_begin; i++) {
    struct mpl_layer *L = &m->layers[i];
    L->norm1_w = take(b, dim * f4);
    L->qkv.dtype = dt->qkv;
    L->qkv.w = take(b, (q + 2 * kv) * dim * mpl_dtype_bytes(dt->qkv));
    if (gpt2 || c->qkv_bias) L->qkv_b = take(b, (q + 2 * kv) * f4);
    L->o.dtype = dt->o;
    L->o.w = take(b, dim * q * mpl_dtype_bytes(dt->o));
    L->norm2_w = take(b, dim * f4);
    L->up.dtype = dt->up;
    L->up.w = take(b, (gpt2 ? 1 : 2) * ff * dim * mpl_dtype_bytes(dt->up));
    L->down.dtype = dt->down;
    L->down.w = take(b, dim * ff * mpl_dtype_bytes(dt->down));
    if (gpt2) {
      L->norm1_b = take(b, dim * f4);
      L->o_b = take(b, dim * f4);
      L->norm2_b = take(b, dim * f4);
      L->up_b = take(b, ff * f4);
      L->down_b = take(b, dim * f4);
    }
  }
  if (m->part.has_head) {
    m->final_w = take(b, dim * f4);
    if (gpt2) m->final_b = take(b, dim * f4);
    m->head.dtype = dt->head;
    if (c->tie_word_embeddings && m->part.has_embedding) m->head = m->embed; /* one copy */
    else m->head.w = take(b, (size_t)d->n_vocab * dim * mpl_dtype_bytes(dt->head));
  }
}

/* Where a rectangle goes: dst, its dtype, and whether it is a Conv1D tensor
 * [in][out] to transpose into [out][in]. dst NULL: nothing to read (the tied head
 * shares the embedding). */
struct target {
  void *dst;
  enum mpl_dtype dtype;
  bool transpose;
};

static enum mpl_status find_target(struct mpl_model *m, const struct mpl_tensor_rect *r,
                                   bool *embed_done, struct target *t) {
  const struct mpl_model_config *c = &m->cfg;
  const struct mpl_part_dims *d = &m->dims;
  size_t dim = (size_t)c->hidden_size, hd = (size_t)c->head_dim;
  size_t q = (size_t)d->n_heads * hd, kv = (size_t)d->n_kv_heads * hd, ff = (size_t)d->n_ff;
  memset(t, 0, sizeof *t);
  t->dtype = MPL_DTYPE_F32;
  int layer = -1, off = 0;
  if (sscanf(r->name, "model.layers.%d.%n", &layer, &off) == 1 ||
      sscanf(r->name, "transformer.h.%d.%n", &layer, &off) == 1) {
    if (layer < m->part.layer_begin || layer >= m->part.layer_end || off == 0) goto unknown;
    struct mpl_layer *L = &m->layers[layer - m->part.layer_begin];
    const char *s = r->name + off;
    size_t qkv_bytes = mpl_dtype_bytes(L->qkv.dtype), up_bytes = mpl_dtype_bytes(L->up.dtype);
#define IS(x) (strcmp(s, x) == 0)
#define CHAR(p) ((char *)(uintptr_t)(p))
#define FLT(p) ((float *)(uintptr_t)(p))
    if (IS("input_layernorm.weight") || IS("ln_1.weight")) t->dst = FLT(L->norm1_w);
    else if (IS("ln_1.bias")) t->dst = FLT(L->norm1_b);
    else if (IS("post_attention_layernorm.weight") || IS("ln_2.weight")) t->dst = FLT(L->norm2_w);
    else if (IS("ln_2.bias")) t->dst = FLT(L->norm2_b);
    else if (IS("self_attn.q_proj.bias")) t->dst = FLT(L->qkv_b);
    else if (IS("self_attn.k_proj.bias")) t->dst = FLT(L->qkv_b) + q;
    else if (IS("self_attn.v_proj.bias")) t->dst = FLT(L->qkv_b) + q + kv;
    else if (IS("attn.c_attn.bias")) t->dst = FLT(L->qkv_b) + (size_t)(r->col0 / ((int64_t)c->n_heads * c->head_dim)) * q;
    else if (IS("attn.c_proj.bias")) t->dst = FLT(L->o_b);
    else if (IS("mlp.c_fc.bias")) t->dst = FLT(L->up_b);
    else if (IS("mlp.c_proj.bias")) t->dst = FLT(L->down_b);
    else {
      if (IS("self_attn.q_proj.weight")) t->dst = CHAR(L->qkv.w);
      else if (IS("self_attn.k_proj.weight")) t->dst = CHAR(L->qkv.w) + q * dim * qkv_bytes;
      else if (IS("self_attn.v_proj.weight")) t->dst = CHAR(L->qkv.w) + (q + kv) * dim * qkv_bytes;
      else if (IS("attn.c_attn.weight"))
        t->dst = CHAR(L->qkv.w) + (size_t)(r->col0 / ((int64_t)c->n_heads * c->head_dim)) * q * dim * qkv_bytes;
      else if (IS("self_attn.o_proj.weight") || IS("attn.c_proj.weight")) t->dst = CHAR(L->o.w);
      else if (IS("mlp.gate_proj.weight") || IS("mlp.c_fc.weight")) t->dst = CHAR(L->up.w);
      else if (IS("mlp.up_proj.weight")) t->dst = CHAR(L->up.w) + ff * dim * up_bytes;
      else if (IS("mlp.down_proj.weight") || IS("mlp.c_proj.weight")) t->dst = CHAR(L->down.w);
      else goto unknown;
      t->transpose = c->arch == MPL_ARCH_GPT2;
      if (strstr(s, "q_proj") || strstr(s, "k_proj") || strstr(s, "v_proj") || strstr(s, "c_attn"))
        t->dtype = L->qkv.dtype;
      else if (strstr(s, "o_proj") || strstr(s, "attn.c_proj")) t->dtype = L->o.dtype;
      else if (strstr(s, "gate_proj") || strstr(s, "up_proj") || strstr(s, "c_fc")) t->dtype = L->up.dtype;
      else t->dtype = L->down.dtype;
    }
    return MPL_OK;
  }
  if (IS2(r->name, "model.embed_tokens.weight") || IS2(r->name, "transformer.wte.weight")) {
    if (m->part.has_embedding && !*embed_done) {
      *embed_done = true;
      t->dst = CHAR(m->embed.w);
      t->dtype = m->embed.dtype;
    } else if (!(c->tie_word_embeddings && m->part.has_embedding)) {
      t->dst = CHAR(m->head.w);
      t->dtype = m->head.dtype;
    }
    return MPL_OK;
  }
  if (IS2(r->name, "lm_head.weight")) {
    t->dst = CHAR(m->head.w);
    t->dtype = m->head.dtype;
  } else if (IS2(r->name, "transformer.wpe.weight")) t->dst = FLT(m->pos_embed);
  else if (IS2(r->name, "model.norm.weight") || IS2(r->name, "transformer.ln_f.weight")) t->dst = FLT(m->final_w);
  else if (IS2(r->name, "transformer.ln_f.bias")) t->dst = FLT(m->final_b);
  else goto unknown;
  return MPL_OK;
unknown:
  return mpl_error_set(MPL_ERR_UNSUPPORTED, "the loader has no place for tensor %s", r->name);
#undef IS
#undef CHAR
#undef FLT
}

/* Reads one rectangle into its target (transposing Conv1D tensors). Collective on
 * the file's comm. */
static enum mpl_status read_rect(struct mpl_model_file *f, const struct mpl_tensor_rect *r,
                                 const struct target *t) {
  if (!t->transpose)
    return mpl_io_read_rect(f, r->name, r->row0, r->n_rows, r->col0, r->n_cols, t->dtype, t->dst);
  size_t es = mpl_dtype_bytes(t->dtype), n = (size_t)(r->n_rows * r->n_cols);
  char *tmp = malloc(n * es + 1);
  enum mpl_status st = tmp ? MPL_OK : mpl_error_set(MPL_ERR_NOMEM, "no memory to read %s", r->name);
  /* a rank out of memory still joins the collective read, with nothing to read */
  enum mpl_status rs = mpl_io_read_rect(f, r->name, r->row0, tmp ? r->n_rows : 0, r->col0,
                                        r->n_cols, t->dtype, tmp);
  if (st == MPL_OK) st = rs;
  if (st == MPL_OK) {
    char *dst = t->dst;
    for (int64_t i = 0; i < r->n_rows; i++)
      for (int64_t j = 0; j < r->n_cols; j++)
        memcpy(dst + ((size_t)j * (size_t)r->n_rows + (size_t)i) * es, tmp + ((size_t)i * (size_t)r->n_cols + (size_t)j) * es, es);
  }
  free(tmp);
  return st;
}

static enum mpl_status check_shape(struct mpl_model_file *f, const struct mpl_model_config *c,
                                   const struct mpl_tensor_rect *r) {
  struct mpl_tensor_info info;
  enum mpl_status st = mpl_io_tensor_info(f, r->name, &info);
  if (st != MPL_OK) return st;
  int n_dims;
  int64_t rows, cols;
  expected_shape(c, r->name, &n_dims, &rows, &cols);
  bool ok = info.n_dims == n_dims &&
            (n_dims == 1 ? info.shape[0] == cols : info.shape[0] == rows && info.shape[1] == cols);
  if (!ok) {
    if (info.n_dims == 1)
      return mpl_error_set(MPL_ERR_FORMAT, "tensor %s in %s has shape [%lld], the config asks for [%lld]",
                           r->name, mpl_io_path(f), (long long)info.shape[0], (long long)cols);
    return mpl_error_set(MPL_ERR_FORMAT,
                         "tensor %s in %s has shape [%lld, %lld], the config asks for %s[%lld, %lld]",
                         r->name, mpl_io_path(f), (long long)info.shape[0],
                         info.n_dims > 1 ? (long long)info.shape[1] : 0LL, n_dims == 1 ? "1-D " : "",
                         (long long)rows, (long long)cols);
  }
  return MPL_OK;
}

enum mpl_status mpl_model_load(const char *path, const struct mpl_model_part *part,
                               MPI_Comm tp_comm, struct mpl_model **out) {
  *out = NULL;
  struct mpl_model_file *f = NULL;
  struct mpl_model *m = NULL;
  struct mpl_tensor_rect *rects = NULL;
  int n_rects = 0;
  enum mpl_status st = mpl_io_open(path, tp_comm, part->pp_rank, part->pp_size, part->tp_rank,
                                   part->tp_size, &f);
  st = mpl_par_agree(tp_comm, st);
  if (st != MPL_OK) goto out;
  m = calloc(1, sizeof *m);
  if (!m) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the model");
  if (st == MPL_OK) st = mpl_io_read_config(f, &m->cfg);
  if (st == MPL_OK) {
    m->part = *part;
    m->tp_comm = tp_comm;
    if (part->layer_begin < 0 || part->layer_end > m->cfg.n_layers ||
        part->layer_begin >= part->layer_end)
      st = mpl_error_set(MPL_ERR_ARG, "%s: layers [%d, %d) of a model with %d layers", path,
                         part->layer_begin, part->layer_end, m->cfg.n_layers);
    else if (part->tp_size != mpl_par_comm_size(tp_comm))
      st = mpl_error_set(MPL_ERR_ARG, "a part for %d tp ranks loaded by %d ranks", part->tp_size,
                         mpl_par_comm_size(tp_comm));
    else if (part->tp_size > m->cfg.n_heads)
      st = mpl_error_set(MPL_ERR_ARG, "%s: %d tp ranks for %d attention heads", path, part->tp_size,
                         m->cfg.n_heads);
  }
  if (st == MPL_OK) st = mpl_model_part_rects(&m->cfg, part, &rects, &n_rects);
  if (st == MPL_OK) {
    mpl_model__part_dims(&m->cfg, part, &m->dims);
    m->layers = calloc((size_t)(part->layer_end - part->layer_begin), sizeof *m->layers);
    if (!m->layers) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the model's layers");
  }
  if (st == MPL_OK) {
    struct dtypes dt;
    choose_dtypes(m, f, &dt);
    struct bump b = {NULL, 0};
    layout(m, &b, &dt);
    m->slab = alloc_slab(b.used);
    if (!m->slab) st = mpl_error_wrap("%s", path);
    else {
      m->slab_bytes = m->weight_bytes = b.used;
      b = (struct bump){m->slab, 0};
      layout(m, &b, &dt);
    }
  }
  st = mpl_par_agree(tp_comm, st);
  bool embed_done = false;
  /* every tp rank walks the same list of tensors, so the collective reads pair up */
  for (int i = 0; i < n_rects && st == MPL_OK; i++) {
    struct target t;
    st = find_target(m, &rects[i], &embed_done, &t);
    if (st == MPL_OK && t.dst) st = check_shape(f, &m->cfg, &rects[i]);
    st = mpl_par_agree(tp_comm, st);
    if (st != MPL_OK || !t.dst) continue;
    st = mpl_par_agree(tp_comm, read_rect(f, &rects[i], &t));
  }
out:
  free(rects);
  if (f) mpl_io_close(f);
  if (st != MPL_OK) {
    mpl_error_wrap("loading %s", path);
    mpl_model_destroy(m);
    return st;
  }
  *out = m;
  return MPL_OK;
}

void mpl_model_destroy(struct mpl_model *m) {
  if (!m) return;
  mpl_free(m->slab);
  free(m->layers);
  mpl_free(m->x);
  mpl_free(m->h);
  mpl_free(m->qkv);
  mpl_free(m->att);
  mpl_free(m->mlp);
  mpl_free(m->rope_cos);
  mpl_free(m->rope_sin);
  mpl_free(m->scores);
  free(m);
}

const struct mpl_model_config *mpl_model_config(const struct mpl_model *m) { return &m->cfg; }
const struct mpl_model_part *mpl_model_part(const struct mpl_model *m) { return &m->part; }
size_t mpl_model_weight_bytes(const struct mpl_model *m) { return m->weight_bytes; }

void mpl_model_vocab_range(const struct mpl_model *m, int *begin, int *end) {
  *begin = m->dims.vocab0;
  *end = m->dims.vocab0 + m->dims.n_vocab;
}
