/* `mpillm bench -m blend.h5` (cmd_bench.c dispatches blend files here through
 * mpl_cmd_bench_is_blend): throughput of the seed network per execution mode,
 * alpha, batch size and rank count, in the table and JSON style of the LLM bench.
 * A repetition is one batch from rank 0's memory to probabilities in rank 0's memory
 * (scatter, compute, head, gather: what a coordinator sees); rows/s is batch rows
 * over that time, mean +- stddev over the repetitions after a warm-up. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/blend.h"
#include "mpillm/runtime.h"
#include "mpillm/tensor.h"
#include "rt_common.h"

bool mpl_cmd_bench_is_blend(int argc, char **argv) {
  const char *path = NULL;
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) path = argv[i + 1];
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--model=", 8) == 0) path = argv[i] + 8;
  if (!path) return false;
  struct mpl_blend_config cfg;
  bool blend = mpl_blend_file_read_config(path, &cfg) == MPL_OK;
  mpl_error_clear();
  return blend;
}

struct result {
  enum mpl_blend_mode mode;
  double alpha;
  int rows;
  double rows_s, rows_s_std, p50_ms, comm_mean, comm_max, weights_max;
};

/* "a,b,c" of numbers in [lo, hi] */
static enum mpl_status parse_list(const char *text, const char *opt, double lo, double hi,
                                  double **out, int *n) {
  *n = 0;
  *out = malloc((strlen(text) + 1) * sizeof **out);
  if (!*out) return mpl_error_set(MPL_ERR_NOMEM, "no memory for %s", opt);
  const char *p = text;
  while (*p) {
    char *end = NULL;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno || (*end && *end != ','))
      return mpl_error_set(MPL_ERR_ARG, "%s '%s' is not a comma-separated list of numbers", opt, text);
    if (!(v >= lo && v <= hi))
      return mpl_error_set(MPL_ERR_RANGE, "%s: %g is outside [%g, %g]", opt, v, lo, hi);
    (*out)[(*n)++] = v;
    p = *end ? end + 1 : end;
  }
  if (*n == 0) return mpl_error_set(MPL_ERR_ARG, "%s is empty", opt);
  return MPL_OK;
}

static enum mpl_status measure(struct mpl_blend_runner *runner, MPI_Comm comm, int rows,
                               double alpha, int reps, int warmup, struct result *res) {
  const struct mpl_blend_config *cfg = mpl_blend_runner_config(runner);
  int64_t F = mpl_blend_n_features(cfg);
  bool root = mpl_par_comm_rank(comm) == 0;
  float *x = NULL, *probs = NULL;
  double *times = calloc((size_t)reps, sizeof *times), *comm_pct = calloc((size_t)reps, sizeof *comm_pct);
  enum mpl_status st = times && comm_pct ? MPL_OK : mpl_error_set(MPL_ERR_NOMEM, "no memory");
  if (root && st == MPL_OK) {
    x = mpl_alloc((size_t)(rows * F) * sizeof(float), "bench rows");
    probs = mpl_alloc((size_t)rows * (size_t)cfg->n_classes * sizeof(float), "bench probabilities");
    if (!x || !probs) st = MPL_ERR_NOMEM;
    uint64_t s = 12345;
    for (int64_t i = 0; x && i < rows * F; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      x[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
    }
  }
  st = mpl_par_agree(comm, st);
  for (int r = -warmup; st == MPL_OK && r < reps; r++) {
    if ((st = mpl_par_barrier(comm)) != MPL_OK) break;
    mpl_par_comm_reset();
    double t0 = mpl_time_now();
    st = mpl_blend_runner_run(runner, x, rows, alpha, probs, false, NULL);
    double wall = mpl_time_now() - t0;
    if (r < 0) continue;
    times[r] = wall; /* rank 0's: the batch is back on the coordinator */
    comm_pct[r] = wall > 0 ? 100.0 * mpl_par_comm_seconds() / wall : 0.0;
  }
  if (st == MPL_OK) {
    double *rates = calloc((size_t)reps, sizeof *rates);
    MPL_ASSERT(rates != NULL, "no memory for %d rates", reps);
    for (int r = 0; r < reps; r++) rates[r] = times[r] > 0 ? rows / times[r] : 0.0;
    res->rows = rows;
    res->alpha = alpha;
    res->rows_s = mpl_rt_mean(rates, reps);
    res->rows_s_std = mpl_rt_stddev(rates, reps);
    res->p50_ms = 1e3 * mpl_rt_quantile(times, reps, 0.5);
    double c[2] = {mpl_rt_mean(comm_pct, reps), mpl_rt_mean(comm_pct, reps)};
    st = mpl_par_allreduce_sum_f64(comm, c, 1);
    if (st == MPL_OK) st = mpl_par_allreduce_max_f64(comm, c + 1, 1);
    res->comm_mean = c[0] / mpl_par_comm_size(comm);
    res->comm_max = c[1];
    free(rates);
  }
  free(times);
  free(comm_pct);
  mpl_free(x);
  mpl_free(probs);
  return st;
}

static void print_table(const char *model, const struct mpl_blend_config *cfg, int n_ranks,
                        int reps, const struct result *res, int n_res) {
  char b1[32];
  printf("model %s: seed network L=%d, %lld features, h=%d, C=%d; %d ranks, %d threads per "
         "rank; reps %d\n",
         model, cfg->n_submodels, (long long)mpl_blend_n_features(cfg), cfg->hidden, cfg->n_classes,
         n_ranks, mpl_threads_count(), reps);
  printf("| %-6s | %5s | %5s | %5s | %21s | %9s | %15s | %10s |\n", "mode", "alpha", "ranks",
         "rows", "rows/s", "p50 ms", "comm % mean/max", "wts/rank");
  for (int i = 0; i < n_res; i++) {
    const struct result *r = &res[i];
    char rate[40], cm[32], alpha[16];
    snprintf(rate, sizeof rate, "%.1f +- %.1f", r->rows_s, r->rows_s_std);
    snprintf(cm, sizeof cm, "%.1f / %.1f", r->comm_mean, r->comm_max);
    if (r->mode == MPL_BLEND_MODE_SPLIT || r->mode == MPL_BLEND_MODE_MIX)
      snprintf(alpha, sizeof alpha, "%.2f", r->alpha);
    else
      snprintf(alpha, sizeof alpha, "-");
    printf("| %-6s | %5s | %5d | %5d | %21s | %9.3f | %15s | %10s |\n",
           mpl_blend_mode_name(r->mode), alpha, n_ranks, r->rows, rate, r->p50_ms, cm,
           mpl_format_bytes(r->weights_max, b1, sizeof b1));
  }
}

static enum mpl_status write_json(const char *path, const char *model,
                                  const struct mpl_blend_config *cfg, int n_ranks, int reps,
                                  int warmup, const struct result *res, int n_res) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddStringToObject(o, "arch", "blend");
  cJSON_AddNumberToObject(o, "n_submodels", cfg->n_submodels);
  cJSON_AddNumberToObject(o, "n_features", (double)mpl_blend_n_features(cfg));
  cJSON_AddNumberToObject(o, "hidden", cfg->hidden);
  cJSON_AddNumberToObject(o, "classes", cfg->n_classes);
  cJSON_AddNumberToObject(o, "ranks", n_ranks);
  cJSON_AddNumberToObject(o, "threads_per_rank", mpl_threads_count());
  cJSON_AddNumberToObject(o, "reps", reps);
  cJSON_AddNumberToObject(o, "warmup", warmup);
  cJSON *arr = cJSON_AddArrayToObject(o, "results");
  for (int i = 0; i < n_res; i++) {
    const struct result *r = &res[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "mode", mpl_blend_mode_name(r->mode));
    cJSON_AddNumberToObject(e, "alpha", r->alpha);
    cJSON_AddNumberToObject(e, "ranks", n_ranks);
    cJSON_AddNumberToObject(e, "rows", r->rows);
    cJSON_AddNumberToObject(e, "rows_per_s", r->rows_s);
    cJSON_AddNumberToObject(e, "rows_per_s_std", r->rows_s_std);
    cJSON_AddNumberToObject(e, "latency_p50_ms", r->p50_ms);
    cJSON_AddNumberToObject(e, "comm_pct_mean", r->comm_mean);
    cJSON_AddNumberToObject(e, "comm_pct_max", r->comm_max);
    cJSON_AddNumberToObject(e, "weight_bytes_rank_max", r->weights_max);
    cJSON_AddItemToArray(arr, e);
  }
  char *text = cJSON_Print(o);
  cJSON_Delete(o);
  enum mpl_status st = MPL_OK;
  FILE *f = text ? fopen(path, "w") : NULL;
  if (!f)
    st = mpl_error_set(MPL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  else {
    fprintf(f, "%s\n", text);
    if (fclose(f) != 0) st = mpl_error_set(MPL_ERR_IO, "cannot write %s", path);
  }
  free(text);
  return st;
}

enum mpl_status mpl_cmd_bench_blend(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  const char *model = NULL, *rows_text = "1,16,256,2048", *modes_text = "model,data,split";
  const char *alpha_text = "0.25,0.5,0.75", *json_path = NULL;
  long reps = 5, warmup = 1, threads = 0;
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model, "FILE", "blend model file (required)"},
      {"rows", 0, MPL_OPT_STRING, &rows_text, "B1,B2,..", "batch sizes (default 1,16,256,2048)"},
      {"modes", 0, MPL_OPT_STRING, &modes_text, "M1,M2,..", "modes (default model,data,split)"},
      {"alpha", 0, MPL_OPT_STRING, &alpha_text, "A1,A2,..", "alphas for split and mix (default 0.25,0.5,0.75)"},
      {"reps", 'r', MPL_OPT_INT, &reps, "R", "repetitions after the warm-up (default 5)"},
      {"warmup", 0, MPL_OPT_INT, &warmup, "W", "warm-up repetitions, not counted (default 1)"},
      {"json", 0, MPL_OPT_STRING, &json_path, "FILE", "also write the results as JSON"},
      {"threads", 't', MPL_OPT_INT, &threads, "N", "threads per rank (default: MPILLM_THREADS, else cores / ranks)"},
  };
  const struct mpl_cmd_spec spec = {
      "bench",
      "mpirun -np N mpillm bench -m blend.h5 [--rows 1,16,256,2048] [--modes model,data,split] "
      "[--alpha 0.25,0.5,0.75] [--reps R] [--json FILE]",
      "Measure the seed network's rows/s per mode, alpha and batch size.", opts,
      (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  if (!model) return mpl_error_set(MPL_ERR_ARG, "bench needs a model (-m FILE)");
  struct mpl_blend_config probe;
  if (mpl_blend_file_read_config(model, &probe) != MPL_OK)
    return mpl_error_wrap("bench of the seed network");
  if (reps < 1 || warmup < 0) return mpl_error_set(MPL_ERR_ARG, "--reps must be >= 1, --warmup >= 0");
  if ((st = mpl_cli_threads_start(threads)) != MPL_OK) return st;
  double *rows = NULL, *alphas = NULL;
  int n_rows = 0, n_alphas = 0, n_modes = 0;
  enum mpl_blend_mode modes[8];
  st = parse_list(rows_text, "--rows", 1, 1e7, &rows, &n_rows);
  if (st == MPL_OK) st = parse_list(alpha_text, "--alpha", 0, 1, &alphas, &n_alphas);
  for (const char *p = modes_text; st == MPL_OK && *p;) {
    char name[16];
    size_t len = strcspn(p, ",");
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
    if (n_modes == 8) st = mpl_error_set(MPL_ERR_ARG, "--modes: at most 8");
    if (st == MPL_OK) st = mpl_blend_mode_parse(name, &modes[n_modes++]);
    p += len + (p[len] == ',');
  }
  int n_res_max = n_modes * n_rows * n_alphas;
  struct result *res = calloc((size_t)(n_res_max ? n_res_max : 1), sizeof *res);
  if (!res && st == MPL_OK) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for results");
  int n_res = 0;
  struct mpl_blend_config cfg;
  memset(&cfg, 0, sizeof cfg);
  for (int m = 0; st == MPL_OK && m < n_modes; m++) {
    struct mpl_blend_runner *runner = NULL;
    if ((st = mpl_blend_runner_create(model, modes[m], MPI_COMM_WORLD, &runner)) != MPL_OK) break;
    cfg = *mpl_blend_runner_config(runner);
    mpl_log_info("%s", mpl_blend_runner_describe(runner));
    bool uses_alpha = modes[m] == MPL_BLEND_MODE_SPLIT || modes[m] == MPL_BLEND_MODE_MIX;
    for (int a = 0; st == MPL_OK && a < (uses_alpha ? n_alphas : 1); a++)
      for (int b = 0; st == MPL_OK && b < n_rows; b++) {
        struct result *r = &res[n_res];
        r->mode = modes[m];
        st = measure(runner, MPI_COMM_WORLD, (int)rows[b], uses_alpha ? alphas[a] : 0.0, (int)reps,
                     (int)warmup, r);
        /* weights per rank, the largest: what model parallelism saves */
        r->weights_max = (double)mpl_blend_runner_weight_bytes(runner);
        if (st == MPL_OK) st = mpl_par_allreduce_max_f64(MPI_COMM_WORLD, &r->weights_max, 1);
        n_res++;
      }
    mpl_blend_runner_destroy(runner);
  }
  if (st == MPL_OK && ctx->world_rank == 0) {
    print_table(model, &cfg, ctx->world_size, (int)reps, res, n_res);
    if (json_path) st = write_json(json_path, model, &cfg, ctx->world_size, (int)reps, (int)warmup, res, n_res);
  }
  free(rows);
  free(alphas);
  free(res);
  return st;
}
