/* `mpillm bench`: prefill and decode throughput of a layout, in the spirit of
 * llama-bench: per batch size, R repetitions (after a warm-up) of a prefill of B
 * prompts of L tokens and G decode steps of B tokens, on every replica at once (with a
 * pipeline, the B sequences in one wave per stage, which follow each other through it
 * as generate runs them). Reports tok/s (mean +- stddev), per-step latency p50/p95 (a
 * step: every sequence takes one token), the share of time in
 * communication (mean and max over ranks), per-rank peak memory and weight bytes,
 * and for decode the share of the measured read bandwidth that streaming the
 * weights once per step amounts to. --pool R also runs R requests per replica
 * through the coordinator, replicas taking them as they free up. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/tensor.h"
#include "rt_common.h"

struct bench_row {
  int batch;
  double prefill_mean, prefill_std, decode_mean, decode_std; /* tok/s, all replicas */
  double p50_ms, p95_ms;                                      /* per decode step, rank 0 */
  double comm_mean, comm_max;                                 /* % of wall time */
  double wait_mean, wait_max; /* --split-wait: % of wall time waiting before all-reduces */
  double bw_share;                                            /* decode weight reads / bandwidth */
  double *replica_decode; /* [dp_size] each replica's own decode tok/s, mean of the reps */
  /* [world size] each rank's own comm % and waiting %, mean of the reps: the rank that
   * waits least is the one the others wait for */
  double *rank_comm, *rank_wait;
};

/* Mean and standard deviation of the repetitions. */
static void spread(const double *v, int n, double *mean, double *std) {
  *mean = mpl_rt_mean(v, n);
  *std = mpl_rt_stddev(v, n);
}

/* One repetition on the driver: prefill then decode, feeding back the arg-max. */
static enum mpl_status drive_once(struct mpl_rt *rt, int batch, int prompt_len, int gen,
                                  uint64_t seed, double *prefill_s, double *decode_s,
                                  double *step_s) {
  int vocab = mpl_rt_config(rt)->vocab_size;
  int n = batch * prompt_len;
  int32_t *buf = malloc((size_t)n * 4 * sizeof(int32_t));
  int32_t *next = malloc((size_t)batch * sizeof(int32_t));
  if (!buf || !next) {
    free(buf);
    free(next);
    return mpl_error_set(MPL_ERR_NOMEM, "no memory for a batch of %d tokens", n);
  }
  int32_t *tok = buf, *pos = buf + n, *seq = buf + 2 * n, *rows = buf + 3 * n;
  struct mpl_sampler_rng rng;
  mpl_sampler_rng_seed(&rng, seed);
  for (int s = 0; s < batch; s++) {
    for (int k = 0; k < prompt_len; k++) {
      int i = s * prompt_len + k;
      tok[i] = (int32_t)(mpl_sampler_rng_next(&rng) % (uint64_t)vocab);
      pos[i] = k;
      seq[i] = s;
    }
    rows[s] = s * prompt_len + prompt_len - 1;
  }
  struct mpl_batch b = {n, tok, pos, seq, batch, rows};
  double t0 = mpl_time_now();
  enum mpl_status st = mpl_rt_step(rt, &b, MPL_RT_LOGITS_ARGMAX, NULL, next);
  *prefill_s = mpl_time_now() - t0;
  /* decode: the batch in waves, one per pipeline stage (one wave without a pipeline),
   * a wave's next step started as soon as its last one is back, as generate runs
   * them; step_s[g] is round g, in which every sequence takes one token */
  int n_waves = mpl_rt_waves(rt, batch);
  double d0 = mpl_time_now(), round0 = d0;
  for (int g = 0; st == MPL_OK && g < gen; g++) {
    for (int w = 0; st == MPL_OK && w < n_waves; w++) {
      int s0 = batch * w / n_waves, s1 = batch * (w + 1) / n_waves;
      if (g > 0) st = mpl_rt_wait(rt); /* this wave's last step: the oldest in flight */
      for (int s = s0; st == MPL_OK && s < s1; s++) {
        tok[s] = next[s];
        pos[s] = prompt_len + g;
        seq[s] = s;
        rows[s] = s - s0;
      }
      struct mpl_batch d = {s1 - s0, tok + s0, pos + s0, seq + s0, s1 - s0, rows + s0};
      if (st == MPL_OK) st = mpl_rt_start(rt, &d, MPL_RT_LOGITS_ARGMAX, NULL, next + s0);
    }
    double t = mpl_time_now();
    if (g > 0) step_s[g - 1] = t - round0;
    round0 = t;
  }
  while (mpl_rt_in_flight(rt) > 0) {
    enum mpl_status s = mpl_rt_wait(rt);
    if (st == MPL_OK) st = s;
  }
  step_s[gen - 1] = mpl_time_now() - round0;
  *decode_s = mpl_time_now() - d0;
  free(buf);
  free(next);
  return st;
}

static enum mpl_status run_batch(struct mpl_rt *rt, int batch, int prompt_len, int gen, int reps,
                                 int warmup, struct bench_row *row) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  enum mpl_status st = mpl_rt_reserve(rt, batch, prompt_len + gen);
  if (st != MPL_OK) return st;
  double *prefill = calloc((size_t)reps, sizeof(double)), *decode = calloc((size_t)reps, sizeof(double));
  double *steps = calloc((size_t)(gen ? gen : 1) * reps, sizeof(double));
  double *comm = calloc((size_t)reps, sizeof(double)), *comm_max = calloc((size_t)reps, sizeof(double));
  double *wait = calloc((size_t)reps, sizeof(double)), *wait_max = calloc((size_t)reps, sizeof(double));
  /* per world rank: its replica's decode seconds when it drives it, else 0; then its
   * comm % and waiting % */
  double *drivers = calloc((size_t)g->size, sizeof(double));
  double *shares = calloc((size_t)g->size * 2, sizeof(double));
  row->replica_decode = calloc((size_t)g->dp_size, sizeof(double));
  row->rank_comm = calloc((size_t)g->size, sizeof(double));
  row->rank_wait = calloc((size_t)g->size, sizeof(double));
  MPL_ASSERT(prefill && decode && steps && comm && comm_max && wait && wait_max && drivers && shares &&
                 row->replica_decode && row->rank_comm && row->rank_wait,
             "no memory for %d repetitions", reps);
  for (int r = -warmup; st == MPL_OK && r < reps; r++) {
    st = mpl_par_barrier(g->world);
    if (st != MPL_OK) break;
    mpl_par_comm_reset();
    double t0 = mpl_time_now();
    double times[2] = {0.0, 0.0}; /* prefill, decode: the slowest replica's */
    double *step_s = steps + (size_t)(r < 0 ? 0 : r) * gen;
    if (mpl_rt_is_driver(rt)) {
      st = drive_once(rt, batch, prompt_len, gen, 1000 + (uint64_t)g->dp_rank, &times[0], &times[1],
                      step_s);
      /* the replica's agreement names the rank where a step failed */
      enum mpl_status s = mpl_rt_finish(rt);
      if (s != MPL_OK) st = s;
    } else {
      st = mpl_rt_serve(rt);
    }
    double wall = mpl_time_now() - t0;
    double share = wall > 0 ? 100.0 * mpl_par_comm_seconds() / wall : 0.0;
    double waited = wall > 0 ? 100.0 * mpl_par_comm_wait_seconds() / wall : 0.0;
    st = mpl_par_agree(g->world, st);
    if (st != MPL_OK || r < 0) continue;
    double mine = mpl_rt_is_driver(rt) ? times[1] : 0.0;
    st = mpl_par_allgather(g->world, &mine, sizeof mine, drivers);
    /* replica d's driver is world rank d * pp * tp (tp innermost, then pp) */
    for (int d = 0; st == MPL_OK && d < g->dp_size; d++) {
      double seconds = drivers[d * g->pp_size * g->tp_size];
      if (seconds > 0) row->replica_decode[d] += (double)batch * gen / seconds / reps;
    }
    if (st == MPL_OK) st = mpl_par_allreduce_max_f64(g->world, times, 2);
    double pair[2] = {share, waited};
    if (st == MPL_OK) st = mpl_par_allgather(g->world, pair, sizeof pair, shares);
    if (st != MPL_OK) break;
    double tokens = (double)g->dp_size * batch;
    prefill[r] = times[0] > 0 ? tokens * prompt_len / times[0] : 0.0;
    decode[r] = times[1] > 0 ? tokens * gen / times[1] : 0.0;
    for (int i = 0; i < g->size; i++) {
      double c = shares[2 * i], w = shares[2 * i + 1];
      comm[r] += c / g->size;
      wait[r] += w / g->size;
      if (c > comm_max[r]) comm_max[r] = c;
      if (w > wait_max[r]) wait_max[r] = w;
      row->rank_comm[i] += c / reps;
      row->rank_wait[i] += w / reps;
    }
  }
  if (st == MPL_OK) {
    row->batch = batch;
    spread(prefill, reps, &row->prefill_mean, &row->prefill_std);
    spread(decode, reps, &row->decode_mean, &row->decode_std);
    row->p50_ms = 1e3 * mpl_rt_quantile(steps, gen * reps, 0.5);
    row->p95_ms = 1e3 * mpl_rt_quantile(steps, gen * reps, 0.95);
    row->comm_mean = mpl_rt_mean(comm, reps);
    row->comm_max = mpl_rt_mean(comm_max, reps);
    row->wait_mean = mpl_rt_mean(wait, reps);
    row->wait_max = mpl_rt_mean(wait_max, reps);
  }
  free(drivers);
  free(shares);
  free(prefill);
  free(decode);
  free(steps);
  free(comm);
  free(comm_max);
  free(wait);
  free(wait_max);
  return st;
}

/* A pool of requests through the coordinator (mpl_rt_generate): random prompts of L
 * ids, answers of G/2 to 3G/2 tokens (mean G, seeded, no stop tokens) since a batch
 * job's answers differ in length, B in flight per replica; the replicas take requests
 * as they free up, a finished answer's slot taking the next one. Generated tokens per
 * second of wall time, prefill and the answers' gather included: what a batch job of
 * that many requests gets. */
struct pool_row {
  int n_requests;
  int answer_min, answer_max; /* tokens per answer */
  double tok_s_mean, tok_s_std, wall_mean, wall_std;
};

static enum mpl_status run_pool(struct mpl_rt *rt, int n, int batch, int prompt_len, int gen, int reps,
                                int warmup, struct pool_row *row) {
  const struct mpl_grid *g = mpl_rt_grid(rt);
  int vocab = mpl_rt_config(rt)->vocab_size;
  /* the coordinator reads the requests on rank 0 only */
  int n_mine = g->rank == 0 ? n : 0;
  struct mpl_request *reqs = calloc((size_t)(n_mine ? n_mine : 1), sizeof *reqs);
  double *tok_s = calloc((size_t)reps, sizeof(double)), *wall = calloc((size_t)reps, sizeof(double));
  MPL_ASSERT(reqs && tok_s && wall, "no memory for %d requests", n);
  enum mpl_status st = MPL_OK;
  struct mpl_sampler_rng rng;
  mpl_sampler_rng_seed(&rng, 4242);
  row->answer_min = (gen + 1) / 2;
  row->answer_max = gen + gen / 2;
  for (int i = 0; i < n_mine && st == MPL_OK; i++) {
    struct mpl_request *q = &reqs[i];
    snprintf(q->id, sizeof q->id, "%d", i);
    q->prompt = malloc((size_t)prompt_len * sizeof(int32_t));
    if (!q->prompt) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for a prompt");
    for (int k = 0; q->prompt && k < prompt_len; k++)
      q->prompt[k] = (int32_t)(mpl_sampler_rng_next(&rng) % (uint64_t)vocab);
    q->n_prompt = prompt_len;
    int spread_tokens = row->answer_max - row->answer_min + 1;
    q->max_tokens = row->answer_min + (int)(mpl_sampler_rng_next(&rng) % (uint64_t)spread_tokens);
    mpl_sampler_params_default(&q->sampling);
  }
  st = mpl_par_agree(g->world, st);
  struct mpl_rt_generate_options go = {batch, NULL, 0, NULL, NULL, NULL};
  for (int r = -warmup; st == MPL_OK && r < reps; r++) {
    st = mpl_par_barrier(g->world);
    double t0 = mpl_time_now();
    struct mpl_rt_result *results = NULL;
    if (st == MPL_OK) st = mpl_rt_generate(rt, reqs, n_mine, &go, &results);
    double dt = mpl_time_now() - t0;
    int64_t made = 0;
    for (int i = 0; results && i < n; i++) made += results[i].n_tokens;
    mpl_rt_results_free(results, n);
    /* rank 0 holds the answers; its clock ends after the gather */
    double both[2] = {dt, (double)made};
    if (st == MPL_OK) st = mpl_par_bcast(g->world, both, sizeof both, 0);
    if (st == MPL_OK && r >= 0) {
      wall[r] = both[0];
      tok_s[r] = both[0] > 0 ? both[1] / both[0] : 0.0;
    }
  }
  if (st == MPL_OK) {
    row->n_requests = n;
    spread(tok_s, reps, &row->tok_s_mean, &row->tok_s_std);
    spread(wall, reps, &row->wall_mean, &row->wall_std);
  }
  for (int i = 0; i < n_mine; i++) free(reqs[i].prompt);
  free(reqs);
  free(tok_s);
  free(wall);
  return st;
}

/* Data parallelism: the batch ends with its slowest replica. Each replica's own rate
 * shows whether one lags (a busy core, a slow link) or all slow down together
 * (memory bandwidth); their sum is what balancing the work between them would give. */
static void print_replicas(const struct bench_row *r, int dp) {
  int slow = 0, fast = 0;
  double sum = 0.0;
  for (int d = 0; d < dp; d++) {
    sum += r->replica_decode[d];
    if (r->replica_decode[d] < r->replica_decode[slow]) slow = d;
    if (r->replica_decode[d] > r->replica_decode[fast]) fast = d;
  }
  printf("batch %d, decode tok/s of each replica alone:", r->batch);
  for (int d = 0; d < dp; d++) printf(" %.2f", r->replica_decode[d]);
  printf("\n  slowest replica %d (%.2f), fastest %d (%.2f); their sum %.2f against %.2f for the batch\n",
         slow, r->replica_decode[slow], fast, r->replica_decode[fast], sum, r->decode_mean);
}

static enum mpl_status parse_batches(const char *text, int **out, int *n) {
  int32_t *ids = NULL;
  enum mpl_status st = mpl_rt_parse_ids(text, &ids, n);
  if (st != MPL_OK) return mpl_error_set(MPL_ERR_ARG, "--batch '%s' is not a list of sizes", text);
  for (int i = 0; i < *n; i++)
    if (ids[i] < 1) {
      free(ids);
      return mpl_error_set(MPL_ERR_ARG, "--batch '%s': sizes must be >= 1", text);
    }
  *out = malloc((size_t)*n * sizeof **out);
  if (!*out) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for batch sizes");
  for (int i = 0; *out && i < *n; i++) (*out)[i] = ids[i];
  free(ids);
  return st;
}

enum mpl_status mpl_cmd_bench(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  /* a seed-network file has its own bench, in the same table and JSON style */
  if (mpl_cmd_bench_is_blend(argc, argv)) return mpl_cmd_bench_blend(argc, argv, ctx);
  const char *model = NULL, *batches = "1", *json_path = NULL;
  long prompt_len = 128, gen = 32, reps = 3, warmup = 1, bw_mib = 1024, pool = 0;
  bool split_wait = false;
  struct mpl_cli_rt_args ra = {0};
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model, "MODEL", "model file (.h5) or shard folder (required)"},
      {"prompt-len", 'p', MPL_OPT_INT, &prompt_len, "L", "prompt tokens per sequence (default 128)"},
      {"gen", 'n', MPL_OPT_INT, &gen, "G", "decode steps (default 32)"},
      {"batch", 'b', MPL_OPT_STRING, &batches, "B1,B2,..", "sequences per replica, one row each (default 1)"},
      {"reps", 'r', MPL_OPT_INT, &reps, "R", "repetitions after the warm-up (default 3)"},
      {"warmup", 0, MPL_OPT_INT, &warmup, "W", "warm-up repetitions, not counted (default 1)"},
      {"bw-mib", 0, MPL_OPT_INT, &bw_mib, "MiB", "bandwidth probe buffer over all ranks; 0 skips (default 1024)"},
      {"pool", 0, MPL_OPT_INT, &pool, "R",
       "also run R requests per replica through generate, replicas taking them as they free up "
       "(answers of G/2 to 3G/2 tokens, the first --batch in flight per replica); 0: off (default)"},
      {"split-wait", 0, MPL_OPT_FLAG, &split_wait, NULL,
       "time a barrier before each all-reduce apart: comm % is then the transfer, and a line per batch "
       "gives the waiting for the slowest rank"},
      {"json", 0, MPL_OPT_STRING, &json_path, "FILE", "also write the results as JSON"},
      MPL_CLI_RT_OPTS(ra),
  };
  const struct mpl_cmd_spec spec = {"bench",
                                    "mpillm bench -m MODEL [--dp D --pp P --tp T] [--prompt-len L "
                                    "--gen G --batch B1,B2 --reps R] [--json FILE]",
                                    "Measure prefill and decode throughput of a layout.", opts,
                                    (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  if (!model) return mpl_error_set(MPL_ERR_ARG, "bench needs a model (-m MODEL)");
  if (prompt_len < 1 || gen < 1 || reps < 1 || warmup < 0 || bw_mib < 0 || pool < 0)
    return mpl_error_set(MPL_ERR_ARG,
                         "--prompt-len, --gen and --reps must be >= 1, --warmup, --bw-mib and --pool >= 0");
  int *sizes = NULL, n_sizes = 0;
  st = parse_batches(batches, &sizes, &n_sizes);
  if (st != MPL_OK) return st;
  mpl_par_comm_measure_waiting(split_wait);
  struct mpl_rt *rt = NULL;
  st = mpl_cli_rt_start(&ra, model, &rt);
  if (st != MPL_OK) {
    free(sizes);
    return st;
  }
  const struct mpl_grid *g = mpl_rt_grid(rt);
  if (prompt_len + gen > mpl_rt_config(rt)->max_position_embeddings)
    st = mpl_error_set(MPL_ERR_RANGE, "--prompt-len %ld + --gen %ld exceed the model's context of %d",
                       prompt_len, gen, mpl_rt_config(rt)->max_position_embeddings);
  st = mpl_par_agree(g->world, st);
  double weights = (double)mpl_model_weight_bytes(mpl_rt_model(rt)), weights_all = weights;
  if (st == MPL_OK) st = mpl_par_allreduce_sum_f64(g->world, &weights_all, 1);
  struct bench_row *rows = calloc((size_t)n_sizes, sizeof *rows);
  MPL_ASSERT(rows != NULL, "no memory for %d rows", n_sizes);
  for (int i = 0; st == MPL_OK && i < n_sizes; i++)
    st = run_batch(rt, sizes[i], (int)prompt_len, (int)gen, (int)reps, (int)warmup, &rows[i]);
  struct pool_row pool_res = {0};
  if (st == MPL_OK && pool > 0)
    st = run_pool(rt, (int)pool * g->dp_size, sizes[0], (int)prompt_len, (int)gen, (int)reps, (int)warmup, &pool_res);
  /* per-rank memory and weights, after the runs and before the probe's buffer */
  double mine[2] = {(double)mpl_rt_peak_rss_bytes(), weights};
  /* every rank probes at once: the bandwidth the whole layout can draw */
  double bw = 0.0;
  if (st == MPL_OK && bw_mib > 0) {
    size_t bytes = ((size_t)bw_mib << 20) / (size_t)g->size;
    if (bytes < ((size_t)64 << 20)) bytes = (size_t)64 << 20;
    st = mpl_par_barrier(g->world);
    bw = mpl_tensor_read_bandwidth(bytes, 0) * 1e9;
    if (bw < 0) bw = 0.0;
    enum mpl_status s = mpl_par_allreduce_sum_f64(g->world, &bw, 1);
    if (st == MPL_OK) st = s;
  }
  /* each replica streams all its ranks' weights once per decode step of a wave, and
   * its waves (one per stage) take one token per sequence each round */
  for (int i = 0; i < n_sizes; i++) {
    double rounds_per_s = rows[i].decode_mean / ((double)g->dp_size * rows[i].batch);
    rows[i].bw_share = bw > 0 ? weights_all * mpl_rt_waves(rt, rows[i].batch) * rounds_per_s / bw : 0.0;
  }
  double *per_rank = ctx->world_rank == 0 ? calloc((size_t)g->size * 2, sizeof(double)) : NULL;
  size_t *counts = calloc((size_t)g->size, sizeof(size_t)), *displs = calloc((size_t)g->size, sizeof(size_t));
  MPL_ASSERT(counts && displs && (ctx->world_rank != 0 || per_rank), "no memory for %d ranks", g->size);
  for (int i = 0; i < g->size; i++) counts[i] = sizeof mine, displs[i] = i * sizeof mine;
  if (st == MPL_OK) st = mpl_par_gatherv(g->world, mine, sizeof mine, per_rank, counts, displs, 0);
  if (st == MPL_OK && ctx->world_rank == 0) {
    double peak_max = 0.0, w_max = 0.0;
    for (int i = 0; i < g->size; i++) {
      if (per_rank[2 * i] > peak_max) peak_max = per_rank[2 * i];
      if (per_rank[2 * i + 1] > w_max) w_max = per_rank[2 * i + 1];
    }
    char layout[64], b1[32], b2[32], b3[32];
    snprintf(layout, sizeof layout, "dp%d pp%d tp%d", g->dp_size, g->pp_size, g->tp_size);
    printf("model %s: %s of weights over %d ranks, %d threads per rank; prompt %ld, gen %ld, reps %ld\n",
           model, mpl_format_bytes(weights_all, b1, sizeof b1), g->size, mpl_threads_count(),
           prompt_len, gen, reps);
    if (bw > 0) printf("read bandwidth (all ranks probing at once): %.1f GB/s\n", bw / 1e9);
    printf("| %-14s | %5s | %5s | %19s | %19s | %8s | %8s | %13s | %10s | %10s | %7s |\n", "layout",
           "ranks", "batch", "prefill tok/s", "decode tok/s", "p50 ms", "p95 ms", "comm % mean/max",
           "peak/rank", "wts/rank", "bw use");
    for (int i = 0; i < n_sizes; i++) {
      const struct bench_row *r = &rows[i];
      char pf[32], dc[32], cm[32], bu[16];
      snprintf(pf, sizeof pf, "%.1f +- %.1f", r->prefill_mean, r->prefill_std);
      snprintf(dc, sizeof dc, "%.2f +- %.2f", r->decode_mean, r->decode_std);
      snprintf(cm, sizeof cm, "%.1f / %.1f", r->comm_mean, r->comm_max);
      if (bw > 0) snprintf(bu, sizeof bu, "%.0f%%", 100.0 * r->bw_share);
      else snprintf(bu, sizeof bu, "-");
      printf("| %-14s | %5d | %5d | %19s | %19s | %8.2f | %8.2f | %15s | %10s | %10s | %7s |\n", layout,
             g->size, r->batch, pf, dc, r->p50_ms, r->p95_ms, cm,
             mpl_format_bytes(peak_max, b2, sizeof b2), mpl_format_bytes(w_max, b3, sizeof b3), bu);
    }
    for (int i = 0; g->dp_size > 1 && i < n_sizes; i++) print_replicas(&rows[i], g->dp_size);
    for (int i = 0; split_wait && i < n_sizes; i++) {
      const struct bench_row *r = &rows[i];
      int least = 0;
      for (int k = 1; k < g->size; k++)
        if (r->rank_wait[k] < r->rank_wait[least]) least = k;
      printf("batch %d: waiting for the slowest rank before all-reduces %.1f%% mean / %.1f%% max of wall time "
             "(comm %% above: the transfer alone); rank %d waited least (%.1f%%): the others wait for it\n",
             r->batch, r->wait_mean, r->wait_max, least, r->rank_wait[least]);
    }
    if (pool > 0)
      printf("pool: %d requests of %ld + %d..%d tokens, %d in flight per replica, taken as replicas free up: "
             "%.2f +- %.2f generated tok/s (%.2f s +- %.2f per pool)\n",
             pool_res.n_requests, prompt_len, pool_res.answer_min, pool_res.answer_max, sizes[0], pool_res.tok_s_mean,
             pool_res.tok_s_std, pool_res.wall_mean, pool_res.wall_std);
    if (json_path) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "model", model);
      cJSON_AddNumberToObject(o, "ranks", g->size);
      cJSON_AddNumberToObject(o, "dp", g->dp_size);
      cJSON_AddNumberToObject(o, "pp", g->pp_size);
      cJSON_AddNumberToObject(o, "tp", g->tp_size);
      cJSON_AddNumberToObject(o, "threads_per_rank", mpl_threads_count());
      cJSON_AddNumberToObject(o, "prompt_len", (double)prompt_len);
      cJSON_AddNumberToObject(o, "gen", (double)gen);
      cJSON_AddNumberToObject(o, "reps", (double)reps);
      cJSON_AddNumberToObject(o, "bandwidth_bytes_per_s", bw);
      cJSON_AddNumberToObject(o, "weight_bytes_total", weights_all);
      cJSON *pr = cJSON_AddArrayToObject(o, "per_rank");
      for (int i = 0; i < g->size; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "rank", i);
        cJSON_AddNumberToObject(e, "peak_rss_bytes", per_rank[2 * i]);
        cJSON_AddNumberToObject(e, "weight_bytes", per_rank[2 * i + 1]);
        cJSON_AddItemToArray(pr, e);
      }
      if (pool > 0) {
        cJSON *po = cJSON_AddObjectToObject(o, "pool");
        cJSON_AddNumberToObject(po, "requests", pool_res.n_requests);
        cJSON_AddNumberToObject(po, "in_flight_per_replica", sizes[0]);
        cJSON_AddNumberToObject(po, "answer_tokens_min", pool_res.answer_min);
        cJSON_AddNumberToObject(po, "answer_tokens_max", pool_res.answer_max);
        cJSON_AddNumberToObject(po, "generated_tok_s", pool_res.tok_s_mean);
        cJSON_AddNumberToObject(po, "generated_tok_s_std", pool_res.tok_s_std);
        cJSON_AddNumberToObject(po, "wall_s", pool_res.wall_mean);
        cJSON_AddNumberToObject(po, "wall_s_std", pool_res.wall_std);
      }
      cJSON *res = cJSON_AddArrayToObject(o, "results");
      for (int i = 0; i < n_sizes; i++) {
        const struct bench_row *r = &rows[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "batch_per_replica", r->batch);
        cJSON_AddNumberToObject(e, "batch_total", (double)r->batch * g->dp_size);
        cJSON_AddNumberToObject(e, "prefill_tok_s", r->prefill_mean);
        cJSON_AddNumberToObject(e, "prefill_tok_s_std", r->prefill_std);
        cJSON_AddNumberToObject(e, "decode_tok_s", r->decode_mean);
        cJSON_AddNumberToObject(e, "decode_tok_s_std", r->decode_std);
        cJSON_AddNumberToObject(e, "latency_p50_ms", r->p50_ms);
        cJSON_AddNumberToObject(e, "latency_p95_ms", r->p95_ms);
        cJSON_AddNumberToObject(e, "comm_pct_mean", r->comm_mean);
        cJSON_AddNumberToObject(e, "comm_pct_max", r->comm_max);
        cJSON_AddItemToObject(e, "comm_pct_per_rank", cJSON_CreateDoubleArray(r->rank_comm, g->size));
        if (split_wait) {
          cJSON_AddNumberToObject(e, "wait_pct_mean", r->wait_mean);
          cJSON_AddNumberToObject(e, "wait_pct_max", r->wait_max);
          cJSON_AddItemToObject(e, "wait_pct_per_rank", cJSON_CreateDoubleArray(r->rank_wait, g->size));
        }
        cJSON_AddNumberToObject(e, "bandwidth_share", r->bw_share);
        cJSON_AddItemToObject(e, "decode_tok_s_per_replica", cJSON_CreateDoubleArray(r->replica_decode, g->dp_size));
        cJSON_AddItemToArray(res, e);
      }
      char *text = cJSON_Print(o);
      cJSON_Delete(o);
      FILE *f = text ? fopen(json_path, "w") : NULL;
      if (!f) st = mpl_error_set(MPL_ERR_IO, "cannot write %s: %s", json_path, strerror(errno));
      else {
        fprintf(f, "%s\n", text);
        if (fclose(f) != 0) st = mpl_error_set(MPL_ERR_IO, "cannot write %s", json_path);
      }
      free(text);
    }
  }
  free(per_rank);
  free(counts);
  free(displs);
  for (int i = 0; i < n_sizes; i++) {
    free(rows[i].replica_decode);
    free(rows[i].rank_comm);
    free(rows[i].rank_wait);
  }
  free(rows);
  free(sizes);
  mpl_rt_destroy(rt);
  return st;
}
