/* Parallel execution of the seed network over the ranks of a communicator.
 *
 * Model-parallel path: ranks form groups of up to L ranks (one group of all ranks when
 * there are fewer ranks than sub-models, else ceil(N / L) groups, the last one
 * smaller); rank k of a group of s ranks owns sub-models [k*L/s, (k+1)*L/s), gets the
 * feature slice of those sub-models for the group's rows, and applies the matching
 * rows of the head kernel to its own z_i (the row-parallel split of the head); the
 * group sums the partial logits on its first rank, which adds the bias and takes the
 * softmax. Groups take rows in proportion to their rank counts.
 * Data-parallel path: every rank holds the whole network and takes a contiguous row
 * shard; it applies the head to its own rows.
 * Rank 0 (the root) holds the batch: one scatter sends every rank its pieces of both
 * paths, one gather brings back probabilities (and one more brings z when asked).
 * The head is distributed because it is the largest layer of the design's network
 * (L*h*C = 2.56 M multiply-adds per row against 1.82 M for all sub-models): on the root
 * alone it would cap every mode at one rank's speed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mpillm/blend.h"
#include "mpillm/parallel.h"

static const char *const mode_names[MPL_BLEND_MODE_COUNT] = {"model", "data", "split", "mix"};

const char *mpl_blend_mode_name(enum mpl_blend_mode mode) {
  return (unsigned)mode < MPL_BLEND_MODE_COUNT ? mode_names[mode] : "unknown";
}

enum mpl_status mpl_blend_mode_parse(const char *name, enum mpl_blend_mode *mode) {
  for (int i = 0; i < MPL_BLEND_MODE_COUNT; i++)
    if (strcmp(name, mode_names[i]) == 0) {
      *mode = (enum mpl_blend_mode)i;
      return MPL_OK;
    }
  return mpl_error_set(MPL_ERR_ARG, "--mode '%s' is not one of model, data, split, mix", name);
}

struct mpl_blend_runner {
  enum mpl_blend_mode mode;
  MPI_Comm comm; /* the caller's */
  int rank, size;
  struct mpl_blend_config cfg;
  MPI_Comm group_comm; /* this rank's model-parallel group */
  struct mpl_blend_model model;
  char description[256];
};

/* What rank q does for a batch whose rows [0, n_model) take the model-parallel path
 * and rows [n_model, n_rows) the data-parallel path. Same answer on every rank. */
struct piece {
  int group, group_first, group_size, group_rank;
  int own_begin, own_end;    /* sub-models on the model path */
  int64_t m_row0, m_rows;    /* model-path rows */
  int64_t m_col0, m_cols;    /* their features */
  int64_t d_row0, d_rows;    /* data-path rows */
};

/* ceil(n * part / whole): shares that give the first ranks the extra rows */
static int64_t share(int64_t n, int64_t part, int64_t whole) { return (n * part + whole - 1) / whole; }

static void piece_of(const struct mpl_blend_config *cfg, int n_ranks, int q, int64_t n_model,
                     int64_t n_rows, struct piece *p) {
  int n_sub = cfg->n_submodels;
  memset(p, 0, sizeof *p);
  if (n_ranks <= n_sub) {
    p->group = 0, p->group_first = 0, p->group_size = n_ranks;
  } else {
    p->group = q / n_sub;
    p->group_first = p->group * n_sub;
    p->group_size = n_ranks - p->group_first < n_sub ? n_ranks - p->group_first : n_sub;
  }
  p->group_rank = q - p->group_first;
  p->own_begin = p->group_rank * n_sub / p->group_size;
  p->own_end = (p->group_rank + 1) * n_sub / p->group_size;
  p->m_row0 = share(n_model, p->group_first, n_ranks);
  p->m_rows = share(n_model, p->group_first + p->group_size, n_ranks) - p->m_row0;
  p->m_col0 = mpl_blend_feature_offset(cfg, p->own_begin);
  p->m_cols = mpl_blend_feature_offset(cfg, p->own_end) - p->m_col0;
  int64_t n_data = n_rows - n_model;
  p->d_row0 = n_model + share(n_data, q, n_ranks);
  p->d_rows = n_model + share(n_data, q + 1, n_ranks) - p->d_row0;
}

enum mpl_status mpl_blend_runner_create(const char *path, enum mpl_blend_mode mode, MPI_Comm comm,
                                        struct mpl_blend_runner **out) {
  *out = NULL;
  struct mpl_blend_runner *r = mpl_alloc(sizeof *r, "blend runner");
  enum mpl_status st = r ? MPL_OK : MPL_ERR_NOMEM;
  st = mpl_par_agree(comm, st);
  if (st != MPL_OK) return st;
  r->mode = mode;
  r->comm = comm;
  r->group_comm = MPI_COMM_NULL;
  r->rank = mpl_par_comm_rank(comm);
  r->size = mpl_par_comm_size(comm);
  /* every rank reads the small config itself */
  st = mpl_par_agree(comm, mpl_blend_file_read_config(path, &r->cfg));
  if (st != MPL_OK) goto out_fail;
  struct piece p;
  piece_of(&r->cfg, r->size, r->rank, 0, 0, &p);
  st = mpl_par_comm_split(comm, p.group, p.group_rank, &r->group_comm);
  if ((st = mpl_par_agree(comm, st)) != MPL_OK) goto out_fail;
  /* model mode holds only what the model path needs; the others hold everything */
  int begin = mode == MPL_BLEND_MODE_MODEL ? p.own_begin : 0;
  int end = mode == MPL_BLEND_MODE_MODEL ? p.own_end : r->cfg.n_submodels;
  st = mpl_blend_file_load(path, begin, end, &r->model);
  if ((st = mpl_par_agree(comm, st)) != MPL_OK) goto out_fail;
  int n_groups = r->size <= r->cfg.n_submodels
                     ? 1
                     : (r->size + r->cfg.n_submodels - 1) / r->cfg.n_submodels;
  int last_size = r->size - (n_groups - 1) * (r->size <= r->cfg.n_submodels ? 0 : r->cfg.n_submodels);
  char mem[32];
  snprintf(r->description, sizeof r->description,
           "mode %s on %d rank%s, L=%d: %d model-parallel group%s (last of %d rank%s); "
           "rank 0 holds sub-models [%d, %d), %s of weights",
           mpl_blend_mode_name(mode), r->size, r->size == 1 ? "" : "s", r->cfg.n_submodels,
           n_groups, n_groups == 1 ? "" : "s", last_size, last_size == 1 ? "" : "s",
           r->model.sub_begin, r->model.sub_end,
           mpl_format_bytes((double)mpl_blend_model_bytes(&r->model), mem, sizeof mem));
  *out = r;
  return MPL_OK;
out_fail:
  mpl_blend_runner_destroy(r);
  return st;
}

void mpl_blend_runner_destroy(struct mpl_blend_runner *runner) {
  if (!runner) return;
  mpl_par_comm_free(&runner->group_comm);
  mpl_blend_model_free(&runner->model);
  mpl_free(runner);
}

const struct mpl_blend_config *mpl_blend_runner_config(const struct mpl_blend_runner *runner) {
  return &runner->cfg;
}

size_t mpl_blend_runner_weight_bytes(const struct mpl_blend_runner *runner) {
  return mpl_blend_model_bytes(&runner->model);
}

const char *mpl_blend_runner_describe(const struct mpl_blend_runner *runner) {
  return runner->description;
}

/* Buffers of one pass on one rank (and the root's staging areas). */
struct pass_buffers {
  float *x;      /* [m_rows][m_cols] then [d_rows][F]: this rank's input pieces */
  float *z;      /* [m_rows][n_own*h] then [d_rows][L*h] */
  float *logits; /* [m_rows][C] partial, then [d_rows][C] */
  float *probs;  /* leader: [m_rows][C] summed over the group; then [d_rows][C] */
  float *stage;  /* root: everything gathered, in rank order */
  size_t *counts, *displs; /* root: [size] */
};

static void pass_free(struct pass_buffers *b) {
  mpl_free(b->x);
  mpl_free(b->z);
  mpl_free(b->logits);
  mpl_free(b->probs);
  mpl_free(b->stage);
  mpl_free(b->counts);
  mpl_free(b->displs);
}

/* One pass: rows [0, n_model) on the model path, the rest on the data path. With
 * want_head, probs [n_rows][C] reach the root; with z_out, z [n_rows][L*h] does. */
static enum mpl_status run_pass(struct mpl_blend_runner *r, const float *x, int64_t n_rows,
                                int64_t n_model, bool want_head, float *probs, bool want_z,
                                float *z_out) {
  const struct mpl_blend_config *cfg = &r->cfg;
  const int64_t F = mpl_blend_n_features(cfg), h = cfg->hidden, C = cfg->n_classes;
  const int64_t Lh = (int64_t)cfg->n_submodels * h;
  const bool root = r->rank == 0;
  struct piece me;
  piece_of(cfg, r->size, r->rank, n_model, n_rows, &me);
  const int64_t n_own = me.own_end - me.own_begin;
  const bool leader = me.group_rank == 0;
  const int64_t x_n = me.m_rows * me.m_cols + me.d_rows * F;
  const int64_t z_n = me.m_rows * n_own * h + me.d_rows * Lh;
  const int64_t p_n = (me.m_rows + me.d_rows) * C;
  struct pass_buffers b = {0};
  /* the root stages the larger of the scattered input and the gathered outputs */
  int64_t stage_n = 0;
  if (root) {
    int64_t outs = want_z ? n_rows * Lh : 0;
    if (want_head && n_rows * C > outs) outs = n_rows * C;
    int64_t ins = 0;
    for (int q = 0; q < r->size; q++) {
      struct piece p;
      piece_of(cfg, r->size, q, n_model, n_rows, &p);
      ins += p.m_rows * p.m_cols + p.d_rows * F;
    }
    stage_n = ins > outs ? ins : outs;
  }
  b.x = mpl_alloc((size_t)(x_n + 1) * sizeof(float), "blend input piece");
  b.z = mpl_alloc((size_t)(z_n + 1) * sizeof(float), "blend z piece");
  b.logits = mpl_alloc((size_t)(p_n + 1) * sizeof(float), "blend logits");
  b.probs = mpl_alloc((size_t)(p_n + 1) * sizeof(float), "blend probabilities");
  if (root) {
    b.stage = mpl_alloc((size_t)(stage_n + 1) * sizeof(float), "blend staging on the root");
    b.counts = mpl_alloc((size_t)r->size * sizeof(size_t), "blend counts");
    b.displs = mpl_alloc((size_t)r->size * sizeof(size_t), "blend displacements");
  }
  bool ok = b.x && b.z && b.logits && b.probs && (!root || (b.stage && b.counts && b.displs));
  enum mpl_status st = mpl_par_agree(r->comm, ok ? MPL_OK : MPL_ERR_NOMEM);
  if (st != MPL_OK) goto out_free;

  /* 1. the root cuts the batch: rank q's feature slice of its group's rows, then its row shard */
  if (root) {
    size_t off = 0;
    for (int q = 0; q < r->size; q++) {
      struct piece p;
      piece_of(cfg, r->size, q, n_model, n_rows, &p);
      b.displs[q] = off * sizeof(float);
      float *dst = b.stage + off;
      for (int64_t i = 0; i < p.m_rows; i++)
        memcpy(dst + i * p.m_cols, x + (p.m_row0 + i) * F + p.m_col0, (size_t)p.m_cols * sizeof(float));
      dst += p.m_rows * p.m_cols;
      memcpy(dst, x + p.d_row0 * F, (size_t)(p.d_rows * F) * sizeof(float));
      size_t n = (size_t)(p.m_rows * p.m_cols + p.d_rows * F);
      b.counts[q] = n * sizeof(float);
      off += n;
    }
  }
  st = mpl_par_scatterv(r->comm, b.stage, b.counts, b.displs, b.x, (size_t)x_n * sizeof(float), 0);
  if (st != MPL_OK) goto out_free;

  /* 2. model path: own sub-models on the group's rows, the head rows that go with them */
  float *z_m = b.z, *z_d = b.z + me.m_rows * n_own * h;
  float *probs_m = b.probs, *probs_d = b.probs + (leader ? me.m_rows * C : 0);
  mpl_blend_submodels_forward(&r->model, me.own_begin, me.own_end, b.x, me.m_cols, me.m_rows, z_m,
                              n_own * h);
  if (want_head && me.m_rows > 0) {
    mpl_blend_head_partial(&r->model, me.own_begin, me.own_end, z_m, me.m_rows, b.logits);
    if (me.group_size > 1)
      st = mpl_par_reduce_sum_f32(r->group_comm, b.logits, probs_m, (size_t)(me.m_rows * C), 0);
    else
      memcpy(probs_m, b.logits, (size_t)(me.m_rows * C) * sizeof(float));
    if (st != MPL_OK) goto out_free;
    if (leader) mpl_blend_head_finish(&r->model, probs_m, me.m_rows);
  }

  /* 3. data path: the whole network on this rank's row shard */
  if (me.d_rows > 0) {
    mpl_blend_submodels_forward(&r->model, 0, cfg->n_submodels, b.x + me.m_rows * me.m_cols, F,
                                me.d_rows, z_d, Lh);
    if (want_head) {
      mpl_blend_head_partial(&r->model, 0, cfg->n_submodels, z_d, me.d_rows, probs_d);
      mpl_blend_head_finish(&r->model, probs_d, me.d_rows);
    }
  }

  /* 4. probabilities to the root, placed by row */
  if (want_head) {
    if (root) {
      size_t off = 0;
      for (int q = 0; q < r->size; q++) {
        struct piece p;
        piece_of(cfg, r->size, q, n_model, n_rows, &p);
        size_t n = (size_t)(((p.group_rank == 0 ? p.m_rows : 0) + p.d_rows) * C);
        b.displs[q] = off * sizeof(float);
        b.counts[q] = n * sizeof(float);
        off += n;
      }
    }
    size_t n_send = (size_t)(((leader ? me.m_rows : 0) + me.d_rows) * C);
    st = mpl_par_gatherv(r->comm, b.probs, n_send * sizeof(float), b.stage, b.counts, b.displs, 0);
    if (st != MPL_OK) goto out_free;
    if (root)
      for (int q = 0; q < r->size; q++) {
        struct piece p;
        piece_of(cfg, r->size, q, n_model, n_rows, &p);
        const float *src = b.stage + b.displs[q] / sizeof(float);
        if (p.group_rank == 0) {
          memcpy(probs + p.m_row0 * C, src, (size_t)(p.m_rows * C) * sizeof(float));
          src += p.m_rows * C;
        }
        memcpy(probs + p.d_row0 * C, src, (size_t)(p.d_rows * C) * sizeof(float));
      }
  }

  /* 5. z to the root on request: model pieces are column blocks, data pieces whole rows */
  if (want_z) {
    if (root) {
      size_t off = 0;
      for (int q = 0; q < r->size; q++) {
        struct piece p;
        piece_of(cfg, r->size, q, n_model, n_rows, &p);
        size_t n = (size_t)(p.m_rows * (p.own_end - p.own_begin) * h + p.d_rows * Lh);
        b.displs[q] = off * sizeof(float);
        b.counts[q] = n * sizeof(float);
        off += n;
      }
    }
    st = mpl_par_gatherv(r->comm, b.z, (size_t)z_n * sizeof(float), b.stage, b.counts, b.displs, 0);
    if (st != MPL_OK) goto out_free;
    if (root)
      for (int q = 0; q < r->size; q++) {
        struct piece p;
        piece_of(cfg, r->size, q, n_model, n_rows, &p);
        const float *src = b.stage + b.displs[q] / sizeof(float);
        int64_t w = (p.own_end - p.own_begin) * h;
        for (int64_t i = 0; i < p.m_rows; i++)
          memcpy(z_out + (p.m_row0 + i) * Lh + p.own_begin * h, src + i * w, (size_t)w * sizeof(float));
        src += p.m_rows * w;
        memcpy(z_out + p.d_row0 * Lh, src, (size_t)(p.d_rows * Lh) * sizeof(float));
      }
  }
out_free:
  pass_free(&b);
  return st;
}

/* mix: both paths on the whole batch, blended on the root, which then applies the head */
static enum mpl_status run_mix(struct mpl_blend_runner *r, const float *x, int64_t n_rows,
                               double alpha, float *probs, bool want_z, float *z_out) {
  const struct mpl_blend_config *cfg = &r->cfg;
  const int64_t Lh = (int64_t)cfg->n_submodels * cfg->hidden;
  const bool root = r->rank == 0;
  float *z_model = NULL, *z_data = NULL;
  if (root) {
    z_model = mpl_alloc((size_t)(n_rows * Lh + 1) * sizeof(float), "z of the model path");
    z_data = mpl_alloc((size_t)(n_rows * Lh + 1) * sizeof(float), "z of the data path");
  }
  enum mpl_status st = mpl_par_agree(r->comm, !root || (z_model && z_data) ? MPL_OK : MPL_ERR_NOMEM);
  if (st == MPL_OK) st = run_pass(r, x, n_rows, n_rows, false, NULL, true, z_model);
  if (st == MPL_OK) st = run_pass(r, x, n_rows, 0, false, NULL, true, z_data);
  if (st == MPL_OK && root) {
    /* the cross-check: both paths compute the same function, so z_model == z_data up
     * to rounding (the GEMMs see different row counts) */
    double max_diff = 0.0, max_abs = 0.0;
    float *z = want_z ? z_out : z_model;
    for (int64_t i = 0; i < n_rows * Lh; i++) {
      double d = fabs((double)z_model[i] - z_data[i]);
      if (d > max_diff) max_diff = d;
      if (fabs(z_model[i]) > max_abs) max_abs = fabs(z_model[i]);
      z[i] = (float)(alpha * z_model[i] + (1.0 - alpha) * z_data[i]);
    }
    mpl_log_debug("mix cross-check: max |z_model - z_data| = %.3g (max |z| %.3g)", max_diff, max_abs);
    if (max_diff > 1e-4 * (1.0 + max_abs)) {
      st = mpl_error_set(MPL_ERR_FORMAT,
                         "mix cross-check failed: the model- and data-parallel paths differ by "
                         "%.3g (max |z| %.3g)",
                         max_diff, max_abs);
    } else if (n_rows > 0) {
      mpl_blend_head_partial(&r->model, 0, cfg->n_submodels, z, n_rows, probs);
      mpl_blend_head_finish(&r->model, probs, n_rows);
    }
  }
  mpl_free(z_model);
  mpl_free(z_data);
  return st;
}

enum mpl_status mpl_blend_runner_run(struct mpl_blend_runner *runner, const float *x,
                                     int64_t n_rows, double alpha, float *probs, bool want_z,
                                     float *z) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) /* NaN too */
    return mpl_error_set(MPL_ERR_RANGE, "alpha %g is outside [0, 1]", alpha);
  if (n_rows < 0) return mpl_error_set(MPL_ERR_ARG, "negative row count %lld", (long long)n_rows);
  enum mpl_status st;
  switch (runner->mode) {
    case MPL_BLEND_MODE_MODEL:
      st = run_pass(runner, x, n_rows, n_rows, true, probs, want_z, z);
      break;
    case MPL_BLEND_MODE_DATA:
      st = run_pass(runner, x, n_rows, 0, true, probs, want_z, z);
      break;
    case MPL_BLEND_MODE_SPLIT:
      st = run_pass(runner, x, n_rows, (int64_t)llround(alpha * (double)n_rows), true, probs,
                    want_z, z);
      break;
    default:
      st = run_mix(runner, x, n_rows, alpha, probs, want_z, z);
      break;
  }
  return mpl_par_agree(runner->comm, st);
}
