/* The engine of one data-parallel replica: its driver (pp_rank 0, tp_rank 0)
 * broadcasts each batch of token ids to the replica; stages run their layers on
 * micro-batches and pass activations [n_tokens][hidden] down the pipeline so that
 * stages overlap; the last stage's vocabulary slices are reduced to arg-maxes or
 * negative log-likelihoods, or gathered, and go back to the driver. Every step ends with an agreement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/io.h"
#include "mpillm/runtime.h"

enum { CMD_FINISH = 0, CMD_STEP = 1 };
enum { TAG_ACT = 100, TAG_RESULT = 7 };

struct mpl_rt {
  struct mpl_grid grid;
  struct mpl_model_config cfg;
  struct mpl_model *model;
  struct mpl_kv_cache *kv;
  int n_slots, n_ctx;
  int vocab_begin, vocab_end; /* this rank's logit columns (last stage) */
  int *tp_vocab_begin;        /* [tp_size] the columns of each rank of the stage */
  int *tp_vocab_end;          /* [tp_size] */
  /* step buffers, grown as needed and kept: no allocation per token */
  int32_t *wire;              /* [4 + 3 * n_tokens + n_logits] the broadcast batch */
  size_t wire_bytes;
  float *act_in, *act_out;    /* [n_tokens][hidden] */
  size_t act_in_bytes, act_out_bytes;
  float *part_logits;         /* [n_logits][vocab_end - vocab_begin] */
  size_t part_bytes;
  float *gathered;            /* [tp_size pieces][n_logits][their columns], then [n_logits][vocab] */
  size_t gathered_bytes;
  float *full;
  size_t full_bytes;
  int32_t *mb_rows;           /* [n_logits] logit rows of one micro-batch, local to it */
  int64_t *idx;               /* [n_logits] */
  float *val;                 /* [n_logits] */
  int32_t *ids;               /* [n_logits] */
  size_t row_bytes;
  double *nll_work;           /* [3][n_logits]: max, then sum of exp and target logit */
  size_t nll_bytes;
};

static enum mpl_status grow(void **buf, size_t *cap, size_t need, const char *what) {
  if (need <= *cap) return MPL_OK;
  size_t n = need + need / 2 + 64;
  mpl_free(*buf);
  *buf = mpl_alloc(n, what);
  *cap = *buf ? n : 0;
  return *buf ? MPL_OK : MPL_ERR_NOMEM;
}

const struct mpl_grid *mpl_rt_grid(const struct mpl_rt *rt) { return &rt->grid; }
const struct mpl_model_config *mpl_rt_config(const struct mpl_rt *rt) { return &rt->cfg; }
struct mpl_model *mpl_rt_model(struct mpl_rt *rt) { return rt->model; }
bool mpl_rt_is_driver(const struct mpl_rt *rt) {
  return rt->grid.pp_rank == 0 && rt->grid.tp_rank == 0;
}
int mpl_rt_n_ctx(const struct mpl_rt *rt) { return rt->n_ctx; }
int mpl_rt_n_slots(const struct mpl_rt *rt) { return rt->n_slots; }

static enum mpl_status read_config(const char *path, const struct mpl_grid *g,
                                   struct mpl_model_config *cfg) {
  struct mpl_model_file *f = NULL;
  enum mpl_status st = mpl_io_open(path, MPI_COMM_SELF, g->pp_rank, g->pp_size, g->tp_rank,
                                   g->tp_size, &f);
  if (st == MPL_OK) st = mpl_io_read_config(f, cfg);
  mpl_io_close(f);
  return st;
}

enum mpl_status mpl_rt_create(const char *model_path, const struct mpl_rt_options *opts,
                              struct mpl_rt **out) {
  *out = NULL;
  int dp = opts->dp, pp = opts->pp, tp = opts->tp;
  /* every rank resolves the same layout, so a bad one fails everywhere alike */
  enum mpl_status st = mpl_par_layout_resolve(mpl_par_world_size(), &dp, &pp, &tp);
  if (st != MPL_OK) return st;
  struct mpl_rt *rt = mpl_alloc(sizeof *rt, "runtime");
  st = mpl_par_agree(MPI_COMM_WORLD, rt ? MPL_OK : MPL_ERR_NOMEM);
  if (st != MPL_OK) {
    mpl_free(rt);
    return st;
  }
  st = mpl_par_grid_init(&rt->grid, dp, pp, tp);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st != MPL_OK) goto out_free;
  const struct mpl_grid *g = &rt->grid;
  st = read_config(model_path, g, &rt->cfg);
  if (st == MPL_OK && pp > rt->cfg.n_layers)
    st = mpl_error_set(MPL_ERR_ARG, "layout --pp %d needs at least %d layers, but %s has %d", pp,
                       pp, model_path, rt->cfg.n_layers);
  struct mpl_model_part part;
  memset(&part, 0, sizeof part);
  if (st == MPL_OK)
    st = mpl_model_part_for(&rt->cfg, g->pp_rank, pp, opts->layers_per_stage, g->tp_rank, tp,
                            &part);
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) goto out_free;
  st = mpl_model_load(model_path, &part, g->tp_comm, &rt->model);
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) goto out_free;
  mpl_model_vocab_range(rt->model, &rt->vocab_begin, &rt->vocab_end);
  rt->tp_vocab_begin = mpl_alloc((size_t)tp * sizeof(int), "vocabulary ranges");
  rt->tp_vocab_end = mpl_alloc((size_t)tp * sizeof(int), "vocabulary ranges");
  st = rt->tp_vocab_begin && rt->tp_vocab_end ? MPL_OK : MPL_ERR_NOMEM;
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) goto out_free;
  st = mpl_par_allgather(g->tp_comm, &rt->vocab_begin, sizeof(int), rt->tp_vocab_begin);
  if (st == MPL_OK) st = mpl_par_allgather(g->tp_comm, &rt->vocab_end, sizeof(int), rt->tp_vocab_end);
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) goto out_free;
  *out = rt;
  return MPL_OK;
out_free:
  mpl_rt_destroy(rt);
  return st;
}

void mpl_rt_destroy(struct mpl_rt *rt) {
  if (!rt) return;
  mpl_kv_destroy(rt->kv);
  mpl_model_destroy(rt->model);
  mpl_par_grid_free(&rt->grid);
  mpl_free(rt->tp_vocab_begin);
  mpl_free(rt->tp_vocab_end);
  mpl_free(rt->wire);
  mpl_free(rt->act_in);
  mpl_free(rt->act_out);
  mpl_free(rt->part_logits);
  mpl_free(rt->gathered);
  mpl_free(rt->full);
  mpl_free(rt->mb_rows);
  mpl_free(rt->idx);
  mpl_free(rt->val);
  mpl_free(rt->ids);
  mpl_free(rt->nll_work);
  mpl_free(rt);
}

enum mpl_status mpl_rt_reserve(struct mpl_rt *rt, int n_slots, int n_ctx) {
  enum mpl_status st = MPL_OK;
  if (n_ctx > rt->cfg.max_position_embeddings)
    st = mpl_error_set(MPL_ERR_RANGE, "a context of %d tokens exceeds the model's %d", n_ctx,
                       rt->cfg.max_position_embeddings);
  else if (n_ctx < 1 || n_slots < 1)
    st = mpl_error_set(MPL_ERR_ARG, "cache for %d sequences of %d tokens", n_slots, n_ctx);
  if (st == MPL_OK && (n_slots != rt->n_slots || n_ctx != rt->n_ctx)) {
    mpl_kv_destroy(rt->kv);
    rt->kv = NULL;
    rt->n_slots = rt->n_ctx = 0;
    st = mpl_kv_create(rt->model, n_slots, n_ctx, &rt->kv);
    if (st == MPL_OK) rt->n_slots = n_slots, rt->n_ctx = n_ctx;
  }
  return mpl_par_agree(rt->grid.world, st);
}

/* Arg-max of each row over this rank's columns: values and global ids. */
static void local_argmax(const float *rows, int n_rows, int n_cols, int col0, float *val,
                         int64_t *idx) {
  for (int r = 0; r < n_rows; r++) {
    const float *x = rows + (size_t)r * n_cols;
    int best = 0;
    for (int j = 1; j < n_cols; j++)
      if (x[j] > x[best]) best = j;
    val[r] = n_cols > 0 ? x[best] : -3.0e38f;
    idx[r] = col0 + best;
  }
}

/* -log p(target) of each row from the stage's vocabulary slices: the max over all
 * slices, then the sums of exp(x - max) and the target's logit (0 where a slice does
 * not hold it) summed over them; nll [n_logits] on every rank of the stage. */
static enum mpl_status slice_nll(struct mpl_rt *rt, int n_logits, const struct mpl_batch *b, double *nll) {
  const struct mpl_grid *g = &rt->grid;
  int nv = rt->vocab_end - rt->vocab_begin;
  double *max = rt->nll_work, *sums = rt->nll_work + n_logits; /* sums: [n_logits][2] */
  for (int r = 0; r < n_logits; r++) max[r] = mpl_rt_row_max(rt->part_logits + (size_t)r * nv, nv);
  enum mpl_status st = g->tp_size > 1 ? mpl_par_allreduce_max_f64(g->tp_comm, max, (size_t)n_logits) : MPL_OK;
  for (int r = 0; r < n_logits; r++) {
    const float *x = rt->part_logits + (size_t)r * nv;
    int32_t target = b->tokens[b->logit_rows[r] + 1];
    sums[2 * r] = mpl_rt_row_sum_exp(x, nv, max[r]);
    sums[2 * r + 1] = target >= rt->vocab_begin && target < rt->vocab_end ? x[target - rt->vocab_begin] : 0.0;
  }
  if (st == MPL_OK && g->tp_size > 1) st = mpl_par_allreduce_sum_f64(g->tp_comm, sums, 2 * (size_t)n_logits);
  for (int r = 0; r < n_logits; r++) nll[r] = log(sums[2 * r]) + max[r] - sums[2 * r + 1];
  return st;
}

/* The last stage's logit slices into what the driver asked for, on its tp_rank 0:
 * ids [n_logits] (ARGMAX) or full [n_logits][vocab] (FULL). */
static enum mpl_status finish_logits(struct mpl_rt *rt, int n_logits, int mode, float *full,
                                     int32_t *ids) {
  const struct mpl_grid *g = &rt->grid;
  int nv = rt->vocab_end - rt->vocab_begin, vocab = rt->cfg.vocab_size;
  enum mpl_status st = MPL_OK;
  if (mode == MPL_RT_LOGITS_ARGMAX) {
    local_argmax(rt->part_logits, n_logits, nv, rt->vocab_begin, rt->val, rt->idx);
    if (g->tp_size > 1) st = mpl_par_allreduce_maxloc(g->tp_comm, rt->val, rt->idx, (size_t)n_logits);
    for (int r = 0; r < n_logits; r++) ids[r] = (int32_t)rt->idx[r];
    return st;
  }
  if (g->tp_size == 1) {
    memcpy(full, rt->part_logits, (size_t)n_logits * vocab * sizeof(float));
    return MPL_OK;
  }
  size_t counts[g->tp_size], displs[g->tp_size];
  size_t off = 0;
  for (int i = 0; i < g->tp_size; i++) {
    counts[i] = (size_t)n_logits * (rt->tp_vocab_end[i] - rt->tp_vocab_begin[i]) * sizeof(float);
    displs[i] = off;
    off += counts[i];
  }
  st = mpl_par_gatherv(g->tp_comm, rt->part_logits, (size_t)n_logits * nv * sizeof(float),
                       rt->gathered, counts, displs, 0);
  if (st != MPL_OK || g->tp_rank != 0) return st;
  for (int i = 0; i < g->tp_size; i++) {
    int c0 = rt->tp_vocab_begin[i], nc = rt->tp_vocab_end[i] - c0;
    const float *piece = rt->gathered + displs[i] / sizeof(float);
    for (int r = 0; r < n_logits; r++)
      memcpy(full + (size_t)r * vocab + c0, piece + (size_t)r * nc, (size_t)nc * sizeof(float));
  }
  return MPL_OK;
}

/* One step on every rank of the replica; logits/argmax are written on the driver. */
static enum mpl_status replica_step(struct mpl_rt *rt, const struct mpl_batch *b, int mode,
                                    float *logits, int32_t *argmax, double *nll) {
  const struct mpl_grid *g = &rt->grid;
  int pp = g->pp_size, H = rt->cfg.hidden_size, vocab = rt->cfg.vocab_size;
  bool first = g->pp_rank == 0, last = g->pp_rank == pp - 1, driver = mpl_rt_is_driver(rt);
  int nv = rt->vocab_end - rt->vocab_begin, n_tok = b->n_tokens, n_log = b->n_logits;
  enum mpl_status st = MPL_OK, s;
  size_t act = (size_t)n_tok * H * sizeof(float);
  if (grow((void **)&rt->act_in, &rt->act_in_bytes, act, "activations") != MPL_OK ||
      grow((void **)&rt->act_out, &rt->act_out_bytes, act, "activations") != MPL_OK)
    st = MPL_ERR_NOMEM;
  size_t rows = (size_t)(n_log ? n_log : 1);
  if (st == MPL_OK && rows * sizeof(int64_t) > rt->row_bytes) {
    mpl_free(rt->mb_rows), mpl_free(rt->idx), mpl_free(rt->val), mpl_free(rt->ids);
    rt->row_bytes = rows * sizeof(int64_t) * 2;
    rt->mb_rows = mpl_alloc(rt->row_bytes, "logit rows");
    rt->idx = mpl_alloc(rt->row_bytes, "logit rows");
    rt->val = mpl_alloc(rt->row_bytes, "logit rows");
    rt->ids = mpl_alloc(rt->row_bytes, "logit rows");
    if (!rt->mb_rows || !rt->idx || !rt->val || !rt->ids) st = MPL_ERR_NOMEM, rt->row_bytes = 0;
  }
  if (st == MPL_OK && last)
    st = grow((void **)&rt->part_logits, &rt->part_bytes, rows * (nv ? nv : 1) * sizeof(float),
              "logits");
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_NLL)
    st = grow((void **)&rt->nll_work, &rt->nll_bytes, 4 * rows * sizeof(double), "log-likelihoods");
  float *full = logits;
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_FULL && g->tp_rank == 0 && !driver) {
    st = grow((void **)&rt->full, &rt->full_bytes, rows * vocab * sizeof(float), "logits");
    full = rt->full;
  }
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_FULL && g->tp_size > 1 && g->tp_rank == 0)
    st = grow((void **)&rt->gathered, &rt->gathered_bytes, rows * vocab * sizeof(float),
              "gathered logits");
  /* buffers are per rank: agree before the first message so nobody waits alone */
  st = mpl_par_agree(g->replica_comm, st);
  if (st != MPL_OK) return st;

  int n_mb = pp > 1 ? (n_tok < pp ? n_tok : pp) : 1;
  int r = 0;
  for (int k = 0; k < n_mb; k++) {
    int t0 = (int)((int64_t)n_tok * k / n_mb), t1 = (int)((int64_t)n_tok * (k + 1) / n_mb);
    int r0 = r;
    while (r < n_log && b->logit_rows[r] < t1) {
      rt->mb_rows[r - r0] = b->logit_rows[r] - t0;
      r++;
    }
    struct mpl_batch mb = {t1 - t0, b->tokens + t0, b->pos + t0, b->seq + t0, r - r0, rt->mb_rows};
    float *x_in = first ? NULL : rt->act_in + (size_t)t0 * H;
    float *x_out = last ? NULL : rt->act_out + (size_t)t0 * H;
    size_t n_bytes = (size_t)(t1 - t0) * H * sizeof(float);
    if (!first) {
      s = mpl_par_recv(g->pp_comm, x_in, n_bytes, g->pp_rank - 1, TAG_ACT + k);
      if (st == MPL_OK) st = s;
    }
    /* a failed stage still passes (meaningless) activations on, so that the
     * pipeline drains and the agreement at the end reports the failure */
    s = mpl_model_forward(rt->model, rt->kv, &mb, x_in, x_out,
                          last ? rt->part_logits + (size_t)r0 * nv : NULL);
    if (st == MPL_OK) st = s;
    if (!last) {
      s = mpl_par_send(g->pp_comm, x_out, n_bytes, g->pp_rank + 1, TAG_ACT + k);
      if (st == MPL_OK) st = s;
    }
  }
  MPL_ASSERT(r == n_log, "logit rows of the batch are not in increasing order");
  if (last && mode == MPL_RT_LOGITS_NLL) {
    double *out = driver ? nll : rt->nll_work + 3 * rows; /* the work's 4th quarter */
    s = slice_nll(rt, n_log, b, out);
    if (st == MPL_OK) st = s;
    if (g->tp_rank == 0 && pp > 1) {
      s = mpl_par_send(g->pp_comm, out, (size_t)n_log * sizeof(double), 0, TAG_RESULT);
      if (st == MPL_OK) st = s;
    }
  } else if (last) {
    s = finish_logits(rt, n_log, mode, full, mode == MPL_RT_LOGITS_ARGMAX ? rt->ids : NULL);
    if (st == MPL_OK) st = s;
    if (g->tp_rank == 0) {
      if (mode == MPL_RT_LOGITS_ARGMAX && driver) memcpy(argmax, rt->ids, (size_t)n_log * sizeof(int32_t));
      if (pp > 1) {
        s = mode == MPL_RT_LOGITS_ARGMAX
                ? mpl_par_send(g->pp_comm, rt->ids, (size_t)n_log * sizeof(int32_t), 0, TAG_RESULT)
                : mpl_par_send(g->pp_comm, full, (size_t)n_log * vocab * sizeof(float), 0, TAG_RESULT);
        if (st == MPL_OK) st = s;
      }
    }
  }
  if (driver && pp > 1) {
    s = mode == MPL_RT_LOGITS_ARGMAX ? mpl_par_recv(g->pp_comm, argmax, (size_t)n_log * sizeof(int32_t), pp - 1, TAG_RESULT)
        : mode == MPL_RT_LOGITS_NLL  ? mpl_par_recv(g->pp_comm, nll, (size_t)n_log * sizeof(double), pp - 1, TAG_RESULT)
                                     : mpl_par_recv(g->pp_comm, logits, (size_t)n_log * vocab * sizeof(float), pp - 1,
                                                    TAG_RESULT);
    if (st == MPL_OK) st = s;
  }
  return mpl_par_agree(g->replica_comm, st);
}

static enum mpl_status reserve_wire(struct mpl_rt *rt, int32_t header[4]) {
  size_t n = 4 + 3 * (size_t)header[1] + (size_t)header[2];
  return grow((void **)&rt->wire, &rt->wire_bytes, n * sizeof(int32_t), "batch");
}

/* The driver's side of a step: the batch to the replica, then the step. */
static enum mpl_status drive_step(struct mpl_rt *rt, const struct mpl_batch *b, enum mpl_rt_logits mode,
                                  float *logits, int32_t *argmax, double *nll) {
  MPL_ASSERT(mpl_rt_is_driver(rt), "a step driven off the driver");
  const struct mpl_grid *g = &rt->grid;
  if (mpl_par_comm_size(g->replica_comm) > 1) {
    int32_t header[4] = {CMD_STEP, b->n_tokens, b->n_logits, (int32_t)mode};
    enum mpl_status st = reserve_wire(rt, header);
    MPL_ASSERT(st == MPL_OK, "no memory for a batch of %d tokens", b->n_tokens);
    int32_t *w = rt->wire;
    size_t n = (size_t)b->n_tokens;
    memcpy(w, header, sizeof header);
    memcpy(w + 4, b->tokens, n * sizeof(int32_t));
    memcpy(w + 4 + n, b->pos, n * sizeof(int32_t));
    memcpy(w + 4 + 2 * n, b->seq, n * sizeof(int32_t));
    memcpy(w + 4 + 3 * n, b->logit_rows, (size_t)b->n_logits * sizeof(int32_t));
    st = mpl_par_bcast(g->replica_comm, w, 4 * sizeof(int32_t), 0);
    if (st == MPL_OK)
      st = mpl_par_bcast(g->replica_comm, w + 4, (3 * n + (size_t)b->n_logits) * sizeof(int32_t), 0);
    if (st != MPL_OK) return st;
  }
  return replica_step(rt, b, mode, logits, argmax, nll);
}

enum mpl_status mpl_rt_step(struct mpl_rt *rt, const struct mpl_batch *b, enum mpl_rt_logits mode,
                            float *logits, int32_t *argmax) {
  MPL_ASSERT(mode != MPL_RT_LOGITS_NLL, "mpl_rt_step_nll computes log-likelihoods");
  return drive_step(rt, b, mode, logits, argmax, NULL);
}

enum mpl_status mpl_rt_step_nll(struct mpl_rt *rt, const struct mpl_batch *b, double *nll) {
  for (int r = 0; r < b->n_logits; r++) {
    int t = b->logit_rows[r];
    MPL_ASSERT(t + 1 < b->n_tokens && b->seq[t + 1] == b->seq[t],
               "logit row %d (token %d) has no next token in its sequence", r, t);
  }
  return drive_step(rt, b, MPL_RT_LOGITS_NLL, NULL, NULL, nll);
}

enum mpl_status mpl_rt_serve(struct mpl_rt *rt) {
  const struct mpl_grid *g = &rt->grid;
  enum mpl_status result = MPL_OK;
  char message[1024] = "";
  for (;;) {
    int32_t header[4];
    enum mpl_status st = mpl_par_bcast(g->replica_comm, header, sizeof header, 0);
    if (st != MPL_OK) return st;
    if (header[0] == CMD_FINISH) break;
    st = reserve_wire(rt, header);
    MPL_ASSERT(st == MPL_OK, "no memory for a batch of %d tokens", header[1]);
    size_t n = (size_t)header[1];
    int32_t *w = rt->wire;
    st = mpl_par_bcast(g->replica_comm, w + 4, (3 * n + (size_t)header[2]) * sizeof(int32_t), 0);
    if (st != MPL_OK) return st;
    struct mpl_batch b = {header[1], w + 4, w + 4 + n, w + 4 + 2 * n, header[2], w + 4 + 3 * n};
    st = replica_step(rt, &b, header[3], NULL, NULL, NULL);
    /* the driver stops after a failed step; keep its (agreed) message for the end */
    if (st != MPL_OK && result == MPL_OK) {
      result = st;
      snprintf(message, sizeof message, "%s", mpl_error_message());
    }
  }
  if (result != MPL_OK) mpl_error_set(result, "%s", message);
  return result;
}

enum mpl_status mpl_rt_finish(struct mpl_rt *rt) {
  MPL_ASSERT(mpl_rt_is_driver(rt), "mpl_rt_finish called off the driver");
  if (mpl_par_comm_size(rt->grid.replica_comm) == 1) return MPL_OK;
  int32_t header[4] = {CMD_FINISH, 0, 0, 0};
  return mpl_par_bcast(rt->grid.replica_comm, header, sizeof header, 0);
}
