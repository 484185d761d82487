/* The coordinator: rank 0's requests go to every rank as token ids; with several
 * data-parallel replicas each replica's driver takes the next requests, longest
 * (prompt + max_tokens) first, from a counter shared by all (MPI one-sided) whenever
 * it has free slots (as many as it has, in one round trip), so a replica that runs
 * faster takes more and the batch ends when the work does, not when the slowest
 * fixed shard does; each driver generates with continuous batching (a finished
 * sequence's slot takes the next request, whose prompt is prefilled alongside the
 * others' decode tokens; with a pipeline, the slots run as one wave per stage, the
 * waves' steps following each other through it), and the answers come back to rank 0
 * in request order. */
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"

/* what travels in the broadcast, per request; the prompt ids follow all of them */
struct wire_request {
  int32_t n_prompt, max_tokens, top_k, pad;
  double temperature, top_p, min_p, repeat_penalty;
  uint64_t seed;
};

/* what comes back per request, followed by its tokens */
struct wire_result {
  int32_t index, n_tokens, stopped_eos, pad;
  double prefill_s, decode_s;
};

void mpl_rt_results_free(struct mpl_rt_result *results, int n) {
  if (!results) return;
  for (int i = 0; i < n; i++) free(results[i].tokens);
  free(results);
}

/* Rank 0 checks and packs the requests; everyone receives them. */
static enum mpl_status share_requests(struct mpl_rt *rt, const struct mpl_request *reqs,
                                      int n_reqs, const struct mpl_rt_generate_options *opts,
                                      struct wire_request **wreqs, int32_t **ids,
                                      int64_t **offsets, int *n_out, int32_t **eos, int *n_eos) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  const struct mpl_model_config *cfg = mpl_rt_config(rt);
  enum mpl_status st = MPL_OK;
  int64_t counts[3] = {0, 0, 0}; /* requests, ids, eos ids */
  if (g->rank == 0) {
    counts[0] = n_reqs;
    counts[2] = opts->n_eos;
    for (int i = 0; i < n_reqs && st == MPL_OK; i++) {
      const struct mpl_request *r = &reqs[i];
      counts[1] += r->n_prompt;
      if (r->n_prompt < 1)
        st = mpl_error_set(MPL_ERR_ARG, "request %s has an empty prompt", r->id);
      else if (r->n_prompt > cfg->max_position_embeddings)
        st = mpl_error_set(MPL_ERR_RANGE,
                           "request %s: the prompt has %d tokens, more than the model's context "
                           "of %d",
                           r->id, r->n_prompt, cfg->max_position_embeddings);
      for (int k = 0; st == MPL_OK && k < r->n_prompt; k++)
        if (r->prompt[k] < 0 || r->prompt[k] >= cfg->vocab_size)
          st = mpl_error_set(MPL_ERR_RANGE, "request %s: token id %d is outside the vocabulary (%d)",
                             r->id, r->prompt[k], cfg->vocab_size);
      if (st == MPL_OK && r->max_tokens < 0)
        st = mpl_error_set(MPL_ERR_ARG, "request %s: max_tokens %d", r->id, r->max_tokens);
      if (st == MPL_OK) st = mpl_sampler_params_check(&r->sampling, r->id);
    }
  }
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) return st;
  st = mpl_par_bcast(g->world, counts, sizeof counts, 0);
  if (st != MPL_OK) return st;
  int n = (int)counts[0];
  *wreqs = mpl_alloc((size_t)(n ? n : 1) * sizeof **wreqs, "requests");
  *ids = mpl_alloc((size_t)(counts[1] ? counts[1] : 1) * sizeof **ids, "prompt ids");
  *offsets = mpl_alloc((size_t)(n + 1) * sizeof **offsets, "request offsets");
  *eos = mpl_alloc((size_t)(counts[2] ? counts[2] : 1) * sizeof **eos, "stop tokens");
  st = *wreqs && *ids && *offsets && *eos ? MPL_OK : MPL_ERR_NOMEM;
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) return st;
  if (g->rank == 0) {
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
      const struct mpl_request *r = &reqs[i];
      (*wreqs)[i] = (struct wire_request){r->n_prompt, r->max_tokens, r->sampling.top_k, 0,
                                          r->sampling.temperature, r->sampling.top_p,
                                          r->sampling.min_p, r->sampling.repeat_penalty,
                                          r->sampling.seed};
      memcpy(*ids + off, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
      off += r->n_prompt;
    }
    if (opts->n_eos > 0) memcpy(*eos, opts->eos_ids, (size_t)opts->n_eos * sizeof(int32_t));
  }
  st = mpl_par_bcast(g->world, *wreqs, (size_t)n * sizeof **wreqs, 0);
  if (st == MPL_OK) st = mpl_par_bcast(g->world, *ids, (size_t)counts[1] * sizeof **ids, 0);
  if (st == MPL_OK) st = mpl_par_bcast(g->world, *eos, (size_t)counts[2] * sizeof **eos, 0);
  if (st != MPL_OK) return st;
  (*offsets)[0] = 0;
  for (int i = 0; i < n; i++) (*offsets)[i + 1] = (*offsets)[i] + (*wreqs)[i].n_prompt;
  *n_out = n;
  *n_eos = (int)counts[2];
  return MPL_OK;
}

struct slot {
  int req;            /* index into the shard, -1 when free */
  bool prefilled;
  int n_pos;          /* tokens in the cache */
  int32_t *history;   /* [n_prompt + max_tokens] prompt then generated */
  int n_history;
  int n_gen;
  int logit_row;      /* its last row in the step's logits */
  int first_row;      /* its first row (prompt logits wanted) */
  double t_prefilled;
  struct mpl_sampler *sampler;
};

struct driver {
  struct mpl_rt *rt;
  const struct wire_request *wreqs;
  const int32_t *ids;
  const int64_t *offsets;
  const int32_t *eos;
  int n_eos;
  const int *order;                /* [n_total] the requests in the order they are taken */
  int n_total;
  struct mpl_par_counter *counter; /* shared by the replicas; NULL with one replica */
  int64_t next;                    /* one replica: the next of order to take */
  int64_t held, held_end;          /* values held for this step's free slots, not yet used */
  bool exhausted;                  /* no request left to take */
  int *mine; /* [n_mine] request indices this replica took, in the order it took them */
  int n_mine, cap_mine;
  const struct mpl_rt_generate_options *opts;
  struct mpl_rt_result *results; /* [n_mine] */
};

/* Takes the values for this step's n_free free slots in one round trip to the counter
 * (the slots would take them one after the other anyway); take_request hands them out. */
static enum mpl_status hold_requests(struct driver *d, int n_free) {
  if (d->exhausted || n_free == 0) return MPL_OK;
  int64_t first = d->next;
  if (!d->counter) d->next += n_free;
  else {
    enum mpl_status st = mpl_par_counter_next(d->counter, n_free, &first);
    if (st != MPL_OK) return st;
  }
  d->held = first;
  d->held_end = first + n_free;
  return MPL_OK;
}

/* The next request for this replica (*local: its index in mine, -1 when none is left). */
static enum mpl_status take_request(struct driver *d, int *local) {
  *local = -1;
  if (d->exhausted) return MPL_OK;
  MPL_ASSERT(d->held < d->held_end, "a free slot without a value held for it");
  int64_t v = d->held++;
  if (v >= d->n_total) {
    d->exhausted = true;
    return MPL_OK;
  }
  if (d->n_mine == d->cap_mine) {
    int cap = d->cap_mine ? 2 * d->cap_mine : 16;
    int *mine = realloc(d->mine, (size_t)cap * sizeof *mine);
    if (mine) d->mine = mine;
    struct mpl_rt_result *res = realloc(d->results, (size_t)cap * sizeof *res);
    if (res) d->results = res;
    if (!mine || !res) return mpl_error_set(MPL_ERR_NOMEM, "no memory for %d answers", cap);
    d->cap_mine = cap;
  }
  d->mine[d->n_mine] = d->order[v];
  memset(&d->results[d->n_mine], 0, sizeof *d->results);
  *local = d->n_mine++;
  return MPL_OK;
}

static bool is_eos(const struct driver *d, int32_t t) {
  for (int i = 0; i < d->n_eos; i++)
    if (d->eos[i] == t) return true;
  return false;
}

static void release(struct slot *s) {
  free(s->history);
  mpl_sampler_destroy(s->sampler);
  memset(s, 0, sizeof *s);
  s->req = -1;
}

/* The slots of one wave: s = w, w + n_waves, ... With a pipeline of several stages
 * the waves' steps follow each other through it, each stage working on one of them,
 * and a wave's next step starts as soon as its last one is back. */
struct wave {
  bool in_flight;
  enum mpl_rt_logits mode;
  double t_start;
  float *logits; /* [rows][vocab] for FULL steps */
  size_t logit_rows_cap;
  int32_t *argmax; /* [tokens] */
};

struct batch_arrays {
  int32_t *tok, *pos, *seq, *rows; /* [max_tokens] each */
};

/* Fills wave w's free slots with the next requests and lays out its step: a new
 * request's whole prompt, one token for the others. */
static enum mpl_status wave_batch(struct driver *d, struct slot *slots, int n_slots, int w, int n_waves,
                                  const struct batch_arrays *a, int *n_tok_out, int *n_log_out,
                                  bool *greedy_out) {
  int vocab = mpl_rt_config(d->rt)->vocab_size;
  bool want_prompt_logits = d->opts->prompt_logits != NULL && mpl_rt_grid(d->rt)->rank == 0;
  int n_tok = 0, n_log = 0;
  bool greedy = !want_prompt_logits;
  int n_free = 0;
  for (int s = w; s < n_slots; s += n_waves) n_free += slots[s].req < 0;
  enum mpl_status st = hold_requests(d, n_free);
  for (int s = w; s < n_slots && st == MPL_OK; s += n_waves) {
    struct slot *sl = &slots[s];
    int taken = -1;
    if (sl->req < 0 && (st = take_request(d, &taken)) != MPL_OK) break;
    if (taken >= 0) {
      const struct wire_request *wr = &d->wreqs[d->mine[taken]];
      sl->req = taken;
      sl->prefilled = false;
      sl->n_pos = sl->n_gen = 0;
      sl->history = malloc((size_t)(wr->n_prompt + wr->max_tokens) * sizeof(int32_t));
      struct mpl_sampler_params p = {wr->temperature, wr->top_k, wr->top_p, wr->min_p,
                                     wr->repeat_penalty, wr->seed};
      st = mpl_sampler_create(&p, vocab, &sl->sampler);
      if (st == MPL_OK && !sl->history) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for a request");
      if (st != MPL_OK) break;
      memcpy(sl->history, d->ids + d->offsets[d->mine[sl->req]], (size_t)wr->n_prompt * sizeof(int32_t));
      sl->n_history = wr->n_prompt;
    }
    if (sl->req < 0) continue;
    const struct wire_request *wr = &d->wreqs[d->mine[sl->req]];
    struct mpl_sampler_params p = {wr->temperature, wr->top_k, wr->top_p, wr->min_p,
                                   wr->repeat_penalty, wr->seed};
    if (!mpl_sampler_is_greedy(&p)) greedy = false;
    int n_new = sl->prefilled ? 1 : wr->n_prompt;
    const int32_t *src = sl->prefilled ? sl->history + sl->n_history - 1 : sl->history;
    sl->first_row = n_log;
    for (int k = 0; k < n_new; k++) {
      a->tok[n_tok] = src[k];
      a->pos[n_tok] = sl->n_pos + k;
      a->seq[n_tok] = s;
      if (want_prompt_logits && !sl->prefilled && k < n_new - 1) a->rows[n_log++] = n_tok;
      n_tok++;
    }
    sl->logit_row = n_log;
    a->rows[n_log++] = n_tok - 1;
  }
  *n_tok_out = n_tok;
  *n_log_out = n_log;
  *greedy_out = greedy;
  return st;
}

/* Wave w's step is back (started at t0, done at t1): each slot's next token, and the
 * answers of the requests that are done. */
static enum mpl_status wave_outcome(struct driver *d, struct slot *slots, int n_slots, int w, int n_waves,
                                    const struct wave *wv, double t1) {
  struct mpl_rt *rt = d->rt;
  int n_ctx = mpl_rt_n_ctx(rt), vocab = mpl_rt_config(rt)->vocab_size;
  bool want_prompt_logits = d->opts->prompt_logits != NULL && mpl_rt_grid(rt)->rank == 0;
  enum mpl_status st = MPL_OK;
  for (int s = w; s < n_slots; s += n_waves) {
    struct slot *sl = &slots[s];
    if (sl->req < 0) continue;
    const struct wire_request *wr = &d->wreqs[d->mine[sl->req]];
    struct mpl_rt_result *res = &d->results[sl->req];
    bool done = false;
    if (!sl->prefilled) {
      sl->prefilled = true;
      sl->n_pos = wr->n_prompt;
      sl->t_prefilled = t1;
      res->prefill_s = t1 - wv->t_start;
      if (want_prompt_logits)
        memcpy(d->opts->prompt_logits, wv->logits + (size_t)sl->first_row * vocab,
               (size_t)wr->n_prompt * vocab * sizeof(float));
    } else {
      sl->n_pos++;
    }
    if (sl->n_gen >= wr->max_tokens) done = true;
    if (!done) {
      int32_t t = wv->mode == MPL_RT_LOGITS_ARGMAX
                      ? wv->argmax[sl->logit_row]
                      : mpl_sampler_sample(sl->sampler, wv->logits + (size_t)sl->logit_row * vocab,
                                           sl->history, sl->n_history);
      if (is_eos(d, t)) {
        res->stopped_eos = true;
        done = true;
      } else {
        sl->history[sl->n_history++] = t;
        sl->n_gen++;
        if (d->opts->on_token && mpl_rt_grid(rt)->rank == 0)
          d->opts->on_token(d->opts->user, d->mine[sl->req], t);
        /* the new token needs a cache position of its own to be fed back */
        if (sl->n_gen >= wr->max_tokens || sl->n_pos >= n_ctx) done = true;
      }
    }
    if (done) {
      res->decode_s = t1 - sl->t_prefilled;
      res->n_tokens = sl->n_gen;
      res->tokens = malloc((size_t)(sl->n_gen ? sl->n_gen : 1) * sizeof(int32_t));
      if (!res->tokens) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for an answer");
      else memcpy(res->tokens, sl->history + wr->n_prompt, (size_t)sl->n_gen * sizeof(int32_t));
      release(sl);
    }
  }
  return st;
}

static enum mpl_status drive(struct driver *d) {
  struct mpl_rt *rt = d->rt;
  int n_slots = mpl_rt_n_slots(rt), vocab = mpl_rt_config(rt)->vocab_size;
  int n_waves = mpl_rt_waves(rt, n_slots);
  enum mpl_status st = MPL_OK;
  struct slot *slots = calloc((size_t)n_slots, sizeof *slots);
  struct wave *waves = calloc((size_t)n_waves, sizeof *waves);
  /* one step holds at most every slot's whole prompt */
  int64_t longest = 1;
  for (int i = 0; i < d->n_total; i++)
    if (d->wreqs[i].n_prompt > longest) longest = d->wreqs[i].n_prompt;
  int64_t max_tokens = (int64_t)n_slots * longest;
  int32_t *tok = malloc((size_t)max_tokens * 4 * sizeof(int32_t));
  struct batch_arrays a = {tok, tok + max_tokens, tok + 2 * max_tokens, tok + 3 * max_tokens};
  if (!slots || !waves || !tok) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the batch");
  for (int w = 0; st == MPL_OK && w < n_waves; w++) {
    waves[w].argmax = malloc((size_t)max_tokens * sizeof(int32_t));
    if (!waves[w].argmax) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the batch");
  }
  for (int s = 0; slots && s < n_slots; s++) slots[s].req = -1;
  /* round after round, each wave in turn: its last step back (the oldest in flight),
   * then its next one started; done when no wave has anything left to run */
  while (st == MPL_OK) {
    for (int w = 0; w < n_waves && st == MPL_OK; w++) {
      struct wave *wv = &waves[w];
      if (wv->in_flight) {
        wv->in_flight = false;
        st = mpl_rt_wait(rt);
        if (st == MPL_OK) st = wave_outcome(d, slots, n_slots, w, n_waves, wv, mpl_time_now());
        if (st != MPL_OK) break;
      }
      int n_tok = 0, n_log = 0;
      bool greedy = true;
      st = wave_batch(d, slots, n_slots, w, n_waves, &a, &n_tok, &n_log, &greedy);
      if (st != MPL_OK || n_tok == 0) continue;
      wv->mode = greedy ? MPL_RT_LOGITS_ARGMAX : MPL_RT_LOGITS_FULL;
      if (wv->mode == MPL_RT_LOGITS_FULL && (size_t)n_log > wv->logit_rows_cap) {
        free(wv->logits);
        wv->logit_rows_cap = (size_t)n_log * 2;
        wv->logits = malloc(wv->logit_rows_cap * vocab * sizeof(float));
        if (!wv->logits) {
          wv->logit_rows_cap = 0;
          st = mpl_error_set(MPL_ERR_NOMEM, "no memory for %d rows of logits", n_log);
          break;
        }
      }
      struct mpl_batch b = {n_tok, a.tok, a.pos, a.seq, n_log, a.rows};
      wv->t_start = mpl_time_now();
      st = mpl_rt_start(rt, &b, wv->mode, wv->logits, wv->argmax);
      wv->in_flight = st == MPL_OK;
    }
    bool any = false;
    for (int w = 0; w < n_waves; w++) any |= waves[w].in_flight;
    if (!any) break;
  }
  /* steps still in flight after a failure write into the waves' buffers: wait them out */
  while (mpl_rt_in_flight(rt) > 0) mpl_rt_wait(rt);
  for (int s = 0; slots && s < n_slots; s++)
    if (slots[s].req >= 0) release(&slots[s]);
  for (int w = 0; waves && w < n_waves; w++) {
    free(waves[w].logits);
    free(waves[w].argmax);
  }
  free(waves);
  free(slots);
  free(tok);
  return st;
}

/* Drivers' answers to world rank 0 with one variable-size gather. */
static enum mpl_status gather_results(struct mpl_rt *rt, const struct driver *d, int n_held,
                                      int n_reqs, struct mpl_rt_result **results) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  size_t n_bytes = 0;
  for (int i = 0; i < n_held; i++)
    n_bytes += sizeof(struct wire_result) + (size_t)d->results[i].n_tokens * sizeof(int32_t);
  char *send = malloc(n_bytes ? n_bytes : 1);
  enum mpl_status st = send ? MPL_OK : mpl_error_set(MPL_ERR_NOMEM, "no memory for answers");
  st = mpl_par_agree(g->world, st);
  if (st != MPL_OK) {
    free(send);
    return st;
  }
  char *p = send;
  for (int i = 0; i < n_held; i++) {
    const struct mpl_rt_result *r = &d->results[i];
    struct wire_result w = {d->mine[i], r->n_tokens, r->stopped_eos, 0, r->prefill_s, r->decode_s};
    memcpy(p, &w, sizeof w);
    p += sizeof w;
    memcpy(p, r->tokens, (size_t)r->n_tokens * sizeof(int32_t));
    p += (size_t)r->n_tokens * sizeof(int32_t);
  }
  int64_t mine = (int64_t)n_bytes;
  int64_t *sizes = malloc((size_t)g->size * sizeof *sizes);
  size_t *counts = malloc((size_t)g->size * sizeof *counts);
  size_t *displs = malloc((size_t)g->size * sizeof *displs);
  MPL_ASSERT(sizes && counts && displs, "no memory for %d gather counts", g->size);
  st = mpl_par_allgather(g->world, &mine, sizeof mine, sizes);
  size_t total = 0;
  for (int i = 0; i < g->size; i++) {
    counts[i] = (size_t)sizes[i];
    displs[i] = total;
    total += counts[i];
  }
  char *recv = NULL;
  if (st == MPL_OK && g->rank == 0) {
    recv = malloc(total ? total : 1);
    *results = calloc((size_t)(n_reqs ? n_reqs : 1), sizeof **results);
    if (!recv || !*results) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for answers");
  }
  st = mpl_par_agree(g->world, st);
  if (st == MPL_OK) st = mpl_par_gatherv(g->world, send, n_bytes, recv, counts, displs, 0);
  if (st == MPL_OK && g->rank == 0) {
    for (const char *q = recv; q < recv + total;) {
      struct wire_result w;
      memcpy(&w, q, sizeof w);
      q += sizeof w;
      MPL_ASSERT(w.index >= 0 && w.index < n_reqs, "answer for request %d of %d", w.index, n_reqs);
      struct mpl_rt_result *r = &(*results)[w.index];
      r->n_tokens = w.n_tokens;
      r->stopped_eos = w.stopped_eos;
      r->prefill_s = w.prefill_s;
      r->decode_s = w.decode_s;
      r->tokens = malloc((size_t)(w.n_tokens ? w.n_tokens : 1) * sizeof(int32_t));
      MPL_ASSERT(r->tokens != NULL, "no memory for an answer of %d tokens", w.n_tokens);
      memcpy(r->tokens, q, (size_t)w.n_tokens * sizeof(int32_t));
      q += (size_t)w.n_tokens * sizeof(int32_t);
    }
  }
  if (st != MPL_OK && g->rank == 0 && *results) {
    mpl_rt_results_free(*results, n_reqs);
    *results = NULL;
  }
  free(recv);
  free(send);
  free(sizes);
  free(counts);
  free(displs);
  return st;
}

enum mpl_status mpl_rt_generate(struct mpl_rt *rt, const struct mpl_request *reqs, int n_reqs,
                                const struct mpl_rt_generate_options *opts,
                                struct mpl_rt_result **results) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  const struct mpl_model_config *cfg = mpl_rt_config(rt);
  if (results) *results = NULL;
  MPL_ASSERT(!opts->prompt_logits || n_reqs == 1, "prompt logits are for one request");
  struct wire_request *wreqs = NULL;
  int32_t *ids = NULL, *eos = NULL;
  int64_t *offsets = NULL;
  int n = 0, n_eos = 0;
  enum mpl_status st =
      share_requests(rt, reqs, n_reqs, opts, &wreqs, &ids, &offsets, &n, &eos, &n_eos);
  int64_t *costs = NULL;
  int *order = NULL;
  struct mpl_par_counter counter = {.win = MPI_WIN_NULL};
  bool shared = false;
  struct driver d = {0};
  if (st != MPL_OK) goto out;
  costs = malloc((size_t)(n ? n : 1) * sizeof *costs);
  order = malloc((size_t)(n ? n : 1) * sizeof *order);
  MPL_ASSERT(costs && order, "no memory for %d requests", n);
  /* a request costs its prompt plus what it may generate */
  int need_ctx = 1;
  for (int i = 0; i < n; i++) {
    costs[i] = (int64_t)wreqs[i].n_prompt + wreqs[i].max_tokens;
    int want = wreqs[i].n_prompt + wreqs[i].max_tokens;
    if (want > cfg->max_position_embeddings) want = cfg->max_position_embeddings;
    if (want > need_ctx) need_ctx = want;
  }
  /* several replicas take the longest first, so that the last ones taken are short */
  if (g->dp_size > 1) mpl_rt_longest_first(costs, n, order);
  else
    for (int i = 0; i < n; i++) order[i] = i;
  int max_batch = opts->max_batch > 0 ? opts->max_batch : 16;
  /* in flight per replica: its even share at most (the cache stays that size; a fast
   * replica takes more requests over time, not more at once) */
  int share = (n + g->dp_size - 1) / g->dp_size;
  st = mpl_rt_reserve(rt, share < 1 ? 1 : share < max_batch ? share : max_batch, need_ctx);
  /* one request (streamed, or with its prompt logits) stays on rank 0's replica */
  if (st == MPL_OK && g->dp_size > 1 && n > 1) {
    st = mpl_par_counter_create(g->world, &counter);
    shared = st == MPL_OK;
  }
  if (st != MPL_OK) goto out;
  d = (struct driver){.rt = rt, .wreqs = wreqs, .ids = ids, .offsets = offsets, .eos = eos, .n_eos = n_eos,
                      .order = order, .n_total = n, .counter = shared ? &counter : NULL,
                      .exhausted = !shared && g->dp_rank != 0, .opts = opts};
  if (mpl_rt_is_driver(rt)) {
    st = drive(&d);
    /* the replica's agreement names the rank where a step failed */
    enum mpl_status s = mpl_rt_finish(rt);
    if (s != MPL_OK) st = s;
  } else {
    st = mpl_rt_serve(rt);
  }
  /* replicas finish at different times; they meet here */
  st = mpl_par_agree(g->world, st);
  /* only drivers hold answers */
  if (st == MPL_OK) st = gather_results(rt, &d, mpl_rt_is_driver(rt) ? d.n_mine : 0, n, results);
out:
  if (shared) mpl_par_counter_free(&counter); /* every rank gets here: collective */
  if (d.results) mpl_rt_results_free(d.results, d.n_mine);
  free(d.mine);
  free(costs);
  free(order);
  mpl_free(wreqs);
  mpl_free(ids);
  mpl_free(offsets);
  mpl_free(eos);
  return st;
}
