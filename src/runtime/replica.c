/* The engine of one data-parallel replica, a pipeline of pp_size stages of tp_size
 * ranks. The driver (pp_rank 0, tp_rank 0) starts steps: each step's header and token
 * ids go to its stage (a broadcast) and on down the pipeline, stage to stage, ahead of
 * the activations [n_tokens][hidden] the stage passes on as soon as its layers are
 * done with them; the last stage reduces its vocabulary slices to arg-maxes or
 * negative log-likelihoods, or gathers them, and sends them with the step's status
 * back to the driver. The driver may start up to pp_size steps before it waits for the
 * first (different sequences: mpl_rt_start / mpl_rt_wait), so that every stage works
 * on one of them; a step started alone is cut into micro-batches instead. A failure
 * travels down with the step's status; the ranks agree on it, and on its message,
 * when the driver finishes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/io.h"
#include "mpillm/runtime.h"

enum { CMD_FINISH = 0, CMD_STEP = 1, CMD_RESERVE = 2 };
enum { TAG_PIPE = 100, TAG_STATUS = 7, TAG_RESULT = 8 };
/* The fewest tokens a step alone in the pipeline is cut to: each micro-batch reads the
 * stage's weights again, and a few rows cost little more than one (kernel-bench on the
 * 16-core host, 1 thread, bf16 [5632 x 2048]: 11.2 GFLOP/s at 1 row, 37.5 at 4, 57.6
 * at 8, 74.6 at 16, so 8 rows take 1.6 times one row's time and 16 rows 2.4 times).
 * Two stages finish 2 micro-batches of 4 in 3 x 1.2 of a row's time, later than the
 * 2 x 1.6 of the step whole; 2 of 8 take 3 x 1.6 against 2 x 2.4. */
enum { MICRO_BATCH_TOKENS = 8 };

/* what goes down the pipeline ahead of a step's ids and activations */
struct step_header {
  int32_t cmd, n_tokens, n_logits, mode;
  int32_t n_mb; /* micro-batches the step is cut into */
  int32_t pad;
};

/* a step the driver started and has not handed back yet */
struct pending {
  int32_t status; /* the step's outcome (from the last stage), once done */
  bool done;
  struct mpl_par_request status_req, result_req;
};

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
  int32_t *wire;              /* [3 * n_tokens + n_logits] a step's ids, positions, slots, rows */
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
  int micro_batch_tokens;     /* the fewest tokens of a micro-batch */
  /* the driver's steps in flight, oldest first: a ring of pp_size */
  struct pending *pending;
  int pending_head, n_pending;
  int cap_tokens, cap_logits[3]; /* what every rank of the replica has reserved, per mode */
  /* sent without waiting for the receiver, completed before their buffers are reused:
   * the last command's header and ids to the next stage, the last step's outcome and
   * logits to the driver */
  struct step_header header_out;
  struct mpl_par_request sent[2];
  int32_t status_out;
  struct mpl_par_request outcome_sent[2];
  /* this rank's first failure since the replica last agreed, and its message */
  enum mpl_status own;
  char own_message[1024];
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
  rt->micro_batch_tokens = opts->micro_batch_tokens > 0 ? opts->micro_batch_tokens : MICRO_BATCH_TOKENS;
  rt->sent[0] = rt->sent[1] = rt->outcome_sent[0] = rt->outcome_sent[1] = MPL_PAR_REQUEST_NULL;
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
  rt->pending = mpl_alloc((size_t)pp * sizeof *rt->pending, "steps in flight");
  st = rt->tp_vocab_begin && rt->tp_vocab_end && rt->pending ? MPL_OK : MPL_ERR_NOMEM;
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
  mpl_free(rt->pending);
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
  /* the attention's scores for that context, here where the ranks agree */
  if (st == MPL_OK) st = mpl_model_reserve(rt->model, 1, n_ctx);
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

/* Buffers for steps of up to n_tok tokens and n_log logit rows in this mode, on this
 * rank: what its stage receives, passes on and reduces. Local. */
static enum mpl_status reserve_local(struct mpl_rt *rt, int n_tok, int n_log, int mode) {
  const struct mpl_grid *g = &rt->grid;
  bool last = g->pp_rank == g->pp_size - 1, driver = mpl_rt_is_driver(rt);
  int H = rt->cfg.hidden_size, vocab = rt->cfg.vocab_size, nv = rt->vocab_end - rt->vocab_begin;
  size_t rows = (size_t)(n_log ? n_log : 1), act = (size_t)n_tok * H * sizeof(float);
  /* room for any step of up to n_tok tokens, whatever its mode: it has at most n_tok
   * logit rows (mpl_rt_start checks) */
  enum mpl_status st = grow((void **)&rt->wire, &rt->wire_bytes, 4 * (size_t)n_tok * sizeof(int32_t), "batch");
  if (st == MPL_OK && g->pp_size > 1 &&
      (grow((void **)&rt->act_in, &rt->act_in_bytes, act, "activations") != MPL_OK ||
       grow((void **)&rt->act_out, &rt->act_out_bytes, act, "activations") != MPL_OK))
    st = MPL_ERR_NOMEM;
  if (st == MPL_OK && rows * sizeof(int64_t) > rt->row_bytes) {
    mpl_free(rt->mb_rows), mpl_free(rt->idx), mpl_free(rt->val), mpl_free(rt->ids);
    rt->row_bytes = rows * sizeof(int64_t) * 2;
    rt->mb_rows = mpl_alloc(rt->row_bytes, "logit rows");
    rt->idx = mpl_alloc(rt->row_bytes, "logit rows");
    rt->val = mpl_alloc(rt->row_bytes, "logit rows");
    rt->ids = mpl_alloc(rt->row_bytes, "logit rows");
    if (!rt->mb_rows || !rt->idx || !rt->val || !rt->ids) st = MPL_ERR_NOMEM, rt->row_bytes = 0;
  }
  /* the forward pass's own scratch: grown here, where the replica agrees, a step
   * allocates nothing, and no rank leaves its stage's all-reduces for want of memory */
  if (st == MPL_OK) st = mpl_model_reserve(rt->model, n_tok, rt->n_ctx);
  if (st == MPL_OK && last)
    st = grow((void **)&rt->part_logits, &rt->part_bytes, rows * (nv ? nv : 1) * sizeof(float),
              "logits");
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_NLL)
    st = grow((void **)&rt->nll_work, &rt->nll_bytes, 4 * rows * sizeof(double), "log-likelihoods");
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_FULL && g->tp_rank == 0 && !driver)
    st = grow((void **)&rt->full, &rt->full_bytes, rows * vocab * sizeof(float), "logits");
  if (st == MPL_OK && last && mode == MPL_RT_LOGITS_FULL && g->tp_size > 1 && g->tp_rank == 0)
    st = grow((void **)&rt->gathered, &rt->gathered_bytes, rows * vocab * sizeof(float),
              "gathered logits");
  return st;
}

/* Keeps this rank's first failure and its message for the replica's agreement. */
static enum mpl_status note(struct mpl_rt *rt, enum mpl_status st) {
  if (st != MPL_OK && rt->own == MPL_OK) {
    rt->own = st;
    snprintf(rt->own_message, sizeof rt->own_message, "%s",
             mpl_error_message()[0] ? mpl_error_message() : mpl_status_name(st));
  }
  return st;
}

/* What reaches a rank ahead of a step: on the first stage from the driver (a broadcast
 * over the stage, which the driver roots), after it from the same tensor rank of the
 * stage before. */
static enum mpl_status take_in(struct mpl_rt *rt, void *buf, size_t n_bytes) {
  const struct mpl_grid *g = &rt->grid;
  if (g->pp_rank > 0) return mpl_par_recv(g->pp_comm, buf, n_bytes, g->pp_rank - 1, TAG_PIPE);
  return g->tp_size > 1 ? mpl_par_bcast(g->tp_comm, buf, n_bytes, 0) : MPL_OK;
}

/* ... and what it passes to the same tensor rank of the next stage: activations and
 * statuses as they are done, blocking (the next stage is waiting for them) ... */
static enum mpl_status pass_on(struct mpl_rt *rt, const void *buf, size_t n_bytes) {
  const struct mpl_grid *g = &rt->grid;
  if (g->pp_rank == g->pp_size - 1) return MPL_OK;
  return mpl_par_send(g->pp_comm, buf, n_bytes, g->pp_rank + 1, TAG_PIPE);
}

/* ... a command ahead of them without waiting: the next stage may still be busy with
 * an earlier step, and this one has layers to run meanwhile. */
static enum mpl_status pass_on_early(struct mpl_rt *rt, const void *buf, size_t n_bytes,
                                     struct mpl_par_request *r) {
  const struct mpl_grid *g = &rt->grid;
  if (g->pp_rank == g->pp_size - 1) return MPL_OK;
  return mpl_par_isend(g->pp_comm, buf, n_bytes, g->pp_rank + 1, TAG_PIPE, r);
}

/* The last command's header and ids have reached the next stage (it took the step's
 * activations after them; or it met this rank in an agreement since). */
static enum mpl_status wait_sent(struct mpl_rt *rt) {
  enum mpl_status st = mpl_par_wait(&rt->sent[0]), s = mpl_par_wait(&rt->sent[1]);
  return st != MPL_OK ? st : s;
}

/* The last step's outcome and logits have reached the driver (the last stage sends
 * them from buffers the next step, or a reserve, writes). */
static enum mpl_status wait_outcome_sent(struct mpl_rt *rt) {
  enum mpl_status st = mpl_par_wait(&rt->outcome_sent[0]), s = mpl_par_wait(&rt->outcome_sent[1]);
  return st != MPL_OK ? st : s;
}

/* A command's header, then (a step) its ids, in and on down the pipeline. */
static enum mpl_status share_command(struct mpl_rt *rt, struct step_header *h) {
  enum mpl_status st = wait_sent(rt);
  if (st == MPL_OK) st = take_in(rt, h, sizeof *h);
  rt->header_out = *h;
  if (st == MPL_OK) st = pass_on_early(rt, &rt->header_out, sizeof *h, &rt->sent[0]);
  if (st != MPL_OK || h->cmd != CMD_STEP) return st;
  size_t n = (3 * (size_t)h->n_tokens + (size_t)h->n_logits) * sizeof(int32_t);
  MPL_ASSERT(n <= rt->wire_bytes, "a step of %d tokens beyond the %zu bytes reserved", h->n_tokens,
             rt->wire_bytes);
  st = take_in(rt, rt->wire, n);
  if (st == MPL_OK) st = pass_on_early(rt, rt->wire, n, &rt->sent[1]);
  return st;
}

/* The replica's buffers for larger steps: every rank grows its own, then they agree. */
static enum mpl_status reserve_step(struct mpl_rt *rt, const struct step_header *h) {
  enum mpl_status st = note(rt, wait_outcome_sent(rt));
  if (st == MPL_OK) st = note(rt, reserve_local(rt, h->n_tokens, h->n_logits, h->mode));
  return mpl_par_agree(rt->grid.replica_comm, st);
}

/* This rank's part of a step whose header and ids it holds: its layers on each
 * micro-batch as the activations arrive, passed on as soon as they are done; the
 * step's status follows the activations down, and the last stage sends the outcome
 * and the logits (as asked) to the driver, or, being the driver's stage, writes them
 * into logits/argmax/nll. Returns the step's status as this stage knows it. */
static enum mpl_status run_step(struct mpl_rt *rt, const struct step_header *h, float *logits,
                                int32_t *argmax, double *nll) {
  const struct mpl_grid *g = &rt->grid;
  int pp = g->pp_size, H = rt->cfg.hidden_size, vocab = rt->cfg.vocab_size;
  bool first = g->pp_rank == 0, last = g->pp_rank == pp - 1, driver = mpl_rt_is_driver(rt);
  int nv = rt->vocab_end - rt->vocab_begin, n_tok = h->n_tokens, n_log = h->n_logits, mode = h->mode;
  const int32_t *w = rt->wire;
  struct mpl_batch b = {n_tok, w, w + n_tok, w + 2 * (size_t)n_tok, n_log, w + 3 * (size_t)n_tok};
  enum mpl_status st = MPL_OK;
  int r = 0;
  for (int k = 0; k < h->n_mb; k++) {
    int t0 = (int)((int64_t)n_tok * k / h->n_mb), t1 = (int)((int64_t)n_tok * (k + 1) / h->n_mb);
    int r0 = r;
    while (r < n_log && b.logit_rows[r] < t1) {
      rt->mb_rows[r - r0] = b.logit_rows[r] - t0;
      r++;
    }
    struct mpl_batch mb = {t1 - t0, b.tokens + t0, b.pos + t0, b.seq + t0, r - r0, rt->mb_rows};
    float *x_in = first ? NULL : rt->act_in + (size_t)t0 * H;
    float *x_out = last ? NULL : rt->act_out + (size_t)t0 * H;
    size_t n_bytes = (size_t)(t1 - t0) * H * sizeof(float);
    if (!first && note(rt, mpl_par_recv(g->pp_comm, x_in, n_bytes, g->pp_rank - 1, TAG_PIPE)) != MPL_OK)
      st = rt->own;
    /* a failed stage still passes (meaningless) activations on, so that the pipeline
     * drains; its status follows them */
    if (note(rt, mpl_model_forward(rt->model, rt->kv, &mb, x_in, x_out,
                                   last ? rt->part_logits + (size_t)r0 * nv : NULL)) != MPL_OK)
      st = rt->own;
    if (!last && note(rt, pass_on(rt, x_out, n_bytes)) != MPL_OK) st = rt->own;
  }
  MPL_ASSERT(r == n_log, "logit rows of the batch are not in increasing order");
  int32_t status = (int32_t)st;
  if (!first) {
    int32_t before = MPL_OK;
    if (note(rt, mpl_par_recv(g->pp_comm, &before, sizeof before, g->pp_rank - 1, TAG_PIPE)) != MPL_OK)
      before = (int32_t)rt->own;
    if (before != MPL_OK) status = before;
  }
  if (!last) {
    if (note(rt, pass_on(rt, &status, sizeof status)) != MPL_OK && status == MPL_OK) status = (int32_t)rt->own;
    return (enum mpl_status)status;
  }
  /* the last stage: the logits as asked (into buffers the last outcome was sent from),
   * its ranks' statuses as one */
  enum mpl_status s = note(rt, wait_outcome_sent(rt));
  if (s != MPL_OK && status == MPL_OK) status = (int32_t)s;
  const void *payload = NULL;
  size_t payload_bytes = 0;
  if (mode == MPL_RT_LOGITS_NLL) {
    double *out = driver ? nll : rt->nll_work + 3 * (size_t)(n_log ? n_log : 1); /* the work's 4th quarter */
    s = note(rt, slice_nll(rt, n_log, &b, out));
    payload = out, payload_bytes = (size_t)n_log * sizeof(double);
  } else {
    float *full = driver ? logits : rt->full;
    s = note(rt, finish_logits(rt, n_log, mode, full, mode == MPL_RT_LOGITS_ARGMAX ? rt->ids : NULL));
    if (mode == MPL_RT_LOGITS_ARGMAX && driver) memcpy(argmax, rt->ids, (size_t)n_log * sizeof(int32_t));
    payload = mode == MPL_RT_LOGITS_ARGMAX ? (const void *)rt->ids : (const void *)full;
    payload_bytes = (size_t)n_log * (mode == MPL_RT_LOGITS_ARGMAX ? sizeof(int32_t) : vocab * sizeof(float));
  }
  if (s != MPL_OK && status == MPL_OK) status = (int32_t)s;
  if (g->tp_size > 1) {
    int64_t worst = status;
    if (note(rt, mpl_par_allreduce_max_i64(g->tp_comm, &worst, 1)) != MPL_OK) worst = rt->own;
    status = (int32_t)worst;
  }
  if (pp > 1 && g->tp_rank == 0) {
    /* without waiting: the driver takes them when it next waits for a step */
    rt->status_out = status;
    s = note(rt, mpl_par_isend(g->pp_comm, &rt->status_out, sizeof status, 0, TAG_STATUS, &rt->outcome_sent[0]));
    if (s == MPL_OK)
      s = note(rt, mpl_par_isend(g->pp_comm, payload, payload_bytes, 0, TAG_RESULT, &rt->outcome_sent[1]));
    if (s != MPL_OK && status == MPL_OK) status = (int32_t)s;
  }
  return (enum mpl_status)status;
}

/* The driver's wait for a started step's outcome and logits from the last stage. */
static void complete(struct mpl_rt *rt, struct pending *p) {
  if (p->done) return;
  enum mpl_status s = note(rt, mpl_par_wait(&p->status_req));
  enum mpl_status t = note(rt, mpl_par_wait(&p->result_req));
  if (p->status == MPL_OK) p->status = s != MPL_OK ? s : t;
  p->done = true;
}

/* Completes every started step; their outcomes wait for mpl_rt_wait. */
static void drain(struct mpl_rt *rt) {
  for (int i = 0; i < rt->n_pending; i++)
    complete(rt, &rt->pending[(rt->pending_head + i) % rt->grid.pp_size]);
}

int mpl_rt_waves(const struct mpl_rt *rt, int n_seqs) {
  return rt->grid.pp_size < n_seqs ? rt->grid.pp_size : n_seqs > 1 ? n_seqs : 1;
}
int mpl_rt_in_flight(const struct mpl_rt *rt) { return rt->n_pending; }

static enum mpl_status start(struct mpl_rt *rt, const struct mpl_batch *b, enum mpl_rt_logits mode,
                             float *logits, int32_t *argmax, double *nll) {
  MPL_ASSERT(mpl_rt_is_driver(rt), "a step driven off the driver");
  const struct mpl_grid *g = &rt->grid;
  int pp = g->pp_size, n_tok = b->n_tokens, n_log = b->n_logits;
  MPL_ASSERT(rt->n_pending < pp, "%d steps in flight on a pipeline of %d stages", rt->n_pending + 1, pp);
  MPL_ASSERT(n_log <= n_tok, "%d logit rows in a batch of %d tokens", n_log, n_tok);
  /* the last step's ids are out of the wire buffer before this one's go in */
  if (note(rt, wait_sent(rt)) != MPL_OK) return rt->own;
  if (n_tok > rt->cap_tokens || n_log > rt->cap_logits[mode]) {
    drain(rt);
    int want_tok = n_tok > rt->cap_tokens ? n_tok : rt->cap_tokens;
    int want_log = n_log > rt->cap_logits[mode] ? n_log : rt->cap_logits[mode];
    struct step_header r = {CMD_RESERVE, want_tok, want_log, (int32_t)mode, 0, 0};
    enum mpl_status st = note(rt, share_command(rt, &r));
    if (st == MPL_OK) st = reserve_step(rt, &r);
    if (st != MPL_OK) return st;
    rt->cap_tokens = want_tok;
    rt->cap_logits[mode] = want_log;
  }
  /* alone in the pipeline, a step is cut into micro-batches so that the stages
   * overlap; behind other steps it is not (they keep the stages busy, and each
   * micro-batch reads the stage's weights again) */
  int n_mb = 1;
  if (pp > 1 && rt->n_pending == 0) {
    n_mb = n_tok / rt->micro_batch_tokens;
    n_mb = n_mb < 1 ? 1 : n_mb > pp ? pp : n_mb;
  }
  struct pending *p = &rt->pending[(rt->pending_head + rt->n_pending) % pp];
  *p = (struct pending){.status = MPL_OK, .done = pp == 1};
  rt->n_pending++;
  enum mpl_status st = MPL_OK;
  if (pp > 1) {
    /* posted before the sends below, which may wait for the last stage's sends of
     * earlier steps to this rank */
    void *out = mode == MPL_RT_LOGITS_ARGMAX ? (void *)argmax
                : mode == MPL_RT_LOGITS_NLL  ? (void *)nll
                                             : (void *)logits;
    size_t bytes = (size_t)n_log * (mode == MPL_RT_LOGITS_ARGMAX ? sizeof(int32_t)
                                    : mode == MPL_RT_LOGITS_NLL  ? sizeof(double)
                                                                 : rt->cfg.vocab_size * sizeof(float));
    st = note(rt, mpl_par_irecv(g->pp_comm, &p->status, sizeof p->status, pp - 1, TAG_STATUS, &p->status_req));
    if (st == MPL_OK) st = note(rt, mpl_par_irecv(g->pp_comm, out, bytes, pp - 1, TAG_RESULT, &p->result_req));
    MPL_ASSERT(st == MPL_OK, "posting the receives of a step's results failed: %s", mpl_error_message());
  }
  int32_t *w = rt->wire;
  memcpy(w, b->tokens, (size_t)n_tok * sizeof(int32_t));
  memcpy(w + n_tok, b->pos, (size_t)n_tok * sizeof(int32_t));
  memcpy(w + 2 * (size_t)n_tok, b->seq, (size_t)n_tok * sizeof(int32_t));
  memcpy(w + 3 * (size_t)n_tok, b->logit_rows, (size_t)n_log * sizeof(int32_t));
  struct step_header h = {CMD_STEP, n_tok, n_log, (int32_t)mode, n_mb, 0};
  st = note(rt, share_command(rt, &h));
  if (st != MPL_OK) { /* the replica's links are broken: nothing more can run */
    p->done = true;
    p->status = (int32_t)st;
    return st;
  }
  enum mpl_status outcome = run_step(rt, &h, logits, argmax, nll);
  if (pp == 1) p->status = (int32_t)outcome;
  return MPL_OK;
}

enum mpl_status mpl_rt_start(struct mpl_rt *rt, const struct mpl_batch *b, enum mpl_rt_logits mode,
                             float *logits, int32_t *argmax) {
  MPL_ASSERT(mode != MPL_RT_LOGITS_NLL, "mpl_rt_step_nll computes log-likelihoods");
  return start(rt, b, mode, logits, argmax, NULL);
}

enum mpl_status mpl_rt_wait(struct mpl_rt *rt) {
  MPL_ASSERT(mpl_rt_is_driver(rt) && rt->n_pending > 0, "a wait without a step in flight");
  struct pending *p = &rt->pending[rt->pending_head];
  complete(rt, p);
  rt->pending_head = (rt->pending_head + 1) % rt->grid.pp_size;
  rt->n_pending--;
  if (p->status == MPL_OK) return MPL_OK;
  if (rt->own != MPL_OK) return mpl_error_set(rt->own, "%s", rt->own_message);
  /* mpl_rt_finish's agreement brings the failing rank's own message */
  return mpl_error_set((enum mpl_status)p->status, "a step failed on another rank of the replica");
}

enum mpl_status mpl_rt_step(struct mpl_rt *rt, const struct mpl_batch *b, enum mpl_rt_logits mode,
                            float *logits, int32_t *argmax) {
  MPL_ASSERT(rt->n_pending == 0, "mpl_rt_step with steps in flight");
  enum mpl_status st = mpl_rt_start(rt, b, mode, logits, argmax);
  return st == MPL_OK ? mpl_rt_wait(rt) : st;
}

enum mpl_status mpl_rt_step_nll(struct mpl_rt *rt, const struct mpl_batch *b, double *nll) {
  for (int r = 0; r < b->n_logits; r++) {
    int t = b->logit_rows[r];
    MPL_ASSERT(t + 1 < b->n_tokens && b->seq[t + 1] == b->seq[t],
               "logit row %d (token %d) has no next token in its sequence", r, t);
  }
  MPL_ASSERT(rt->n_pending == 0, "mpl_rt_step_nll with steps in flight");
  enum mpl_status st = start(rt, b, MPL_RT_LOGITS_NLL, NULL, NULL, nll);
  return st == MPL_OK ? mpl_rt_wait(rt) : st;
}

/* Where every rank of the replica ends: one outcome, with the first failing rank's
 * message, and a clean slate for the next run. */
static enum mpl_status agree_end(struct mpl_rt *rt) {
  note(rt, wait_sent(rt));
  note(rt, wait_outcome_sent(rt));
  if (rt->own != MPL_OK) mpl_error_set(rt->own, "%s", rt->own_message);
  enum mpl_status st = mpl_par_agree(rt->grid.replica_comm, rt->own);
  rt->own = MPL_OK;
  return st;
}

enum mpl_status mpl_rt_serve(struct mpl_rt *rt) {
  for (;;) {
    struct step_header h;
    enum mpl_status st = note(rt, share_command(rt, &h));
    /* a broken link to the driver: no command can reach this rank any more */
    if (st != MPL_OK) return st;
    if (h.cmd == CMD_FINISH) break;
    if (h.cmd == CMD_RESERVE) reserve_step(rt, &h);
    else run_step(rt, &h, NULL, NULL, NULL);
  }
  return agree_end(rt);
}

enum mpl_status mpl_rt_finish(struct mpl_rt *rt) {
  MPL_ASSERT(mpl_rt_is_driver(rt), "mpl_rt_finish called off the driver");
  drain(rt);
  rt->n_pending = 0;
  struct step_header h = {CMD_FINISH, 0, 0, 0, 0, 0};
  enum mpl_status st = note(rt, share_command(rt, &h));
  if (st != MPL_OK) return st;
  return agree_end(rt);
}
