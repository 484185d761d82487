/* Perplexity: the text's tokens cut into consecutive windows of ctx tokens, each
 * run from an empty cache; the negative log-likelihood of tokens 1..len-1 of every
 * window (log-softmax in double, computed where the vocabulary slices are:
 * mpl_rt_step_nll) summed over windows; ppl = exp(nll / predicted).
 * Windows are spread over the data-parallel replicas, balanced by tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"

/* windows per step: enough to fill the pipeline, with the last stage's logit rows
 * (a rank's vocabulary slice of each, vocab / tp columns) in bounded memory */
static int slots_for(int ctx, int vocab, int tp) {
  size_t per_window = (size_t)ctx * (size_t)((vocab + tp - 1) / tp) * sizeof(float);
  size_t budget = (size_t)256 << 20;
  int n = (int)(budget / (per_window ? per_window : 1));
  if (n > 4) n = 4;
  return n < 1 ? 1 : n;
}

enum mpl_status mpl_rt_eval(struct mpl_rt *rt, const int32_t *tokens, int64_t n_tokens, int ctx,
                            struct mpl_rt_eval_result *result) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  const struct mpl_model_config *cfg = mpl_rt_config(rt);
  int vocab = cfg->vocab_size;
  double t_start = mpl_time_now();
  memset(result, 0, sizeof *result);
  enum mpl_status st = MPL_OK;
  if (g->rank == 0) {
    if (n_tokens < 2)
      st = mpl_error_set(MPL_ERR_ARG, "the text has %lld tokens; perplexity needs at least 2",
                         (long long)n_tokens);
    else if (ctx < 2 || ctx > cfg->max_position_embeddings)
      st = mpl_error_set(MPL_ERR_RANGE, "--ctx %d must be in [2, %d] (the model's context)", ctx,
                         cfg->max_position_embeddings);
    for (int64_t i = 0; st == MPL_OK && i < n_tokens; i++)
      if (tokens[i] < 0 || tokens[i] >= vocab)
        st = mpl_error_set(MPL_ERR_RANGE, "token %lld of the text (id %d) is outside the vocabulary",
                           (long long)i, tokens[i]);
  }
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) return st;
  int64_t n = n_tokens;
  st = mpl_par_bcast(g->world, &n, sizeof n, 0);
  if (st != MPL_OK) return st;
  int32_t *ids = mpl_alloc((size_t)n * sizeof *ids, "text tokens");
  st = mpl_par_agree(g->world, ids ? MPL_OK : MPL_ERR_NOMEM);
  if (st != MPL_OK) {
    mpl_free(ids);
    return st;
  }
  if (g->rank == 0) memcpy(ids, tokens, (size_t)n * sizeof *ids);
  st = mpl_par_bcast(g->world, ids, (size_t)n * sizeof *ids, 0);
  int n_win = (int)((n + ctx - 1) / ctx);
  int64_t *costs = malloc((size_t)n_win * sizeof *costs);
  int *group_of = malloc((size_t)n_win * sizeof *group_of);
  MPL_ASSERT(costs && group_of, "no memory for %d windows", n_win);
  for (int w = 0; w < n_win; w++) costs[w] = (w + 1 == n_win) ? n - (int64_t)w * ctx : ctx;
  mpl_rt_balance(costs, n_win, g->dp_size, group_of);
  int n_slots = slots_for(ctx, vocab, g->tp_size);
  if (st == MPL_OK) st = mpl_rt_reserve(rt, n_slots, ctx);
  double sums[2] = {0.0, 0.0}; /* nll, predicted */
  if (st == MPL_OK && mpl_rt_is_driver(rt)) {
    size_t cap = (size_t)n_slots * ctx;
    int32_t *buf = malloc(cap * 4 * sizeof(int32_t));
    double *nll = malloc(cap * sizeof(double));
    if (!buf || !nll) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for %d windows", n_slots);
    int w = 0;
    while (st == MPL_OK) {
      int32_t *tok = buf, *pos = buf + cap, *seq = buf + 2 * cap, *rows = buf + 3 * cap;
      int n_tok = 0, n_log = 0, s = 0;
      for (; w < n_win && s < n_slots; w++) {
        if (group_of[w] != g->dp_rank) continue;
        int64_t start = (int64_t)w * ctx;
        int len = (int)costs[w];
        if (len < 2) continue; /* nothing to predict */
        for (int k = 0; k < len; k++) {
          tok[n_tok] = ids[start + k];
          pos[n_tok] = k;
          seq[n_tok] = s;
          if (k < len - 1) rows[n_log++] = n_tok;
          n_tok++;
        }
        s++;
      }
      if (n_tok == 0) break;
      struct mpl_batch b = {n_tok, tok, pos, seq, n_log, rows};
      st = mpl_rt_step_nll(rt, &b, nll);
      if (st != MPL_OK) break;
      for (int r = 0; r < n_log; r++) sums[0] += nll[r];
      sums[1] += n_log;
    }
    free(buf);
    free(nll);
    /* the replica's agreement names the rank where a step failed */
    enum mpl_status s = mpl_rt_finish(rt);
    if (s != MPL_OK) st = s;
  } else if (st == MPL_OK) {
    st = mpl_rt_serve(rt);
  }
  st = mpl_par_agree(g->world, st);
  if (st == MPL_OK) st = mpl_par_allreduce_sum_f64(g->world, sums, 2);
  if (st == MPL_OK) {
    result->n_tokens = n;
    result->n_windows = n_win;
    result->n_predicted = (int64_t)sums[1];
    result->nll = sums[0];
    result->perplexity = exp(sums[0] / sums[1]);
    result->seconds = mpl_time_now() - t_start;
  }
  free(costs);
  free(group_of);
  mpl_free(ids);
  return st;
}
