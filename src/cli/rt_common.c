/* Start-up shared by the commands that run a model (generate, bench, eval; the
 * threads also for the seed network's infer and bench). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/io.h"
#include "mpillm/tensor.h"
#include "rt_common.h"

enum mpl_status mpl_cli_threads_start(long threads) {
  int n_threads = (int)threads;
  const char *from = "--threads";
  enum mpl_status st = MPL_OK;
  if (threads < 0) st = mpl_error_set(MPL_ERR_ARG, "--threads %ld must be positive", threads);
  if (st == MPL_OK && n_threads == 0) st = mpl_par_threads_resolve(MPI_COMM_WORLD, &n_threads, &from);
  if (st == MPL_OK) st = mpl_threads_init(n_threads);
  /* starting threads can fail on one rank alone: agree before the report's collectives */
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  char line[1024] = "";
  if (st == MPL_OK) st = mpl_par_launch_report(MPI_COMM_WORLD, n_threads, from, line, sizeof line);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st != MPL_OK) return st;
  if (line[0]) {
    if (strstr(line, "WARNING")) mpl_log_warn("%s", line);
    else mpl_log_info("%s", line);
  }
  char blas[512];
  if (mpl_par_world_rank() == 0 && mpl_tensor_blas_generic(blas, sizeof blas)) mpl_log_warn("%s", blas);
  return MPL_OK;
}

enum mpl_status mpl_cli_rt_start(const struct mpl_cli_rt_args *a, const char *model_path,
                                 struct mpl_rt **rt) {
  *rt = NULL;
  if (a->verbose) mpl_log_init(mpl_par_world_rank(), MPL_LOG_DEBUG, false);
  enum mpl_status st = mpl_cli_threads_start(a->threads);
  if (st != MPL_OK) return st;
  int layers[64];
  struct mpl_rt_options o = {(int)a->dp, (int)a->pp, (int)a->tp, NULL, 0};
  if (a->layers) {
    int32_t *ids = NULL;
    int n = 0;
    st = mpl_rt_parse_ids(a->layers, &ids, &n);
    if (st == MPL_OK && (n != (a->pp ? a->pp : 1) || n > 64))
      st = mpl_error_set(MPL_ERR_ARG, "--pp-layers %s lists %d stages, but --pp is %ld", a->layers, n,
                         a->pp ? a->pp : 1);
    for (int i = 0; st == MPL_OK && i < n; i++) {
      if (ids[i] < 1) st = mpl_error_set(MPL_ERR_ARG, "--pp-layers %s: every stage needs a layer", a->layers);
      layers[i] = ids[i];
    }
    free(ids);
    if (st != MPL_OK) return mpl_error_wrap("--pp-layers");
    o.layers_per_stage = layers;
  }
  st = mpl_rt_create(model_path, &o, rt);
  if (st == MPL_OK) {
    const struct mpl_grid *g = mpl_rt_grid(*rt);
    char buf[32];
    size_t bytes = mpl_model_weight_bytes(mpl_rt_model(*rt));
    mpl_log_debug("layout dp %d x pp %d x tp %d; this rank: replica %d, stage %d, slice %d, %s of weights",
                  g->dp_size, g->pp_size, g->tp_size, g->dp_rank, g->pp_rank, g->tp_rank,
                  mpl_format_bytes((double)bytes, buf, sizeof buf));
  }
  return st;
}

enum mpl_status mpl_cli_rt_tokenizer(const char *model_path, const struct mpl_rt *rt,
                                     struct mpl_tokenizer **tok) {
  *tok = NULL;
  struct mpl_model_file *f = NULL;
  char *json = NULL, *config = NULL, *gen = NULL;
  /* the tokenizer is in every file of a shard set; rank 0's is stage 0, slice 0 */
  const struct mpl_grid *g = mpl_rt_grid(rt);
  enum mpl_status st = mpl_io_open(model_path, MPI_COMM_SELF, 0, g->pp_size, 0, g->tp_size, &f);
  if (st == MPL_OK) st = mpl_io_read_text(f, "tokenizer.json", &json);
  if (st == MPL_OK && json) st = mpl_io_read_text(f, "tokenizer_config.json", &config);
  if (st == MPL_OK && json) st = mpl_io_read_text(f, "generation_config.json", &gen);
  if (st == MPL_OK && json) st = mpl_tok_create(json, config, gen, model_path, tok);
  free(json);
  free(config);
  free(gen);
  mpl_io_close(f);
  return st;
}

enum mpl_status mpl_cli_rt_eos(const struct mpl_model_config *cfg, const struct mpl_tokenizer *tok,
                               int32_t **ids, int *n_ids) {
  int cap = cfg->n_eos + 8, n = 0;
  int32_t *out = malloc((size_t)cap * sizeof *out);
  if (!out) return mpl_error_set(MPL_ERR_NOMEM, "no memory for stop tokens");
  for (int i = 0; i < cfg->n_eos; i++) out[n++] = cfg->eos_token_ids[i];
  int vocab = tok ? mpl_tok_vocab_size(tok) : 0;
  for (int32_t t = 0; t < vocab; t++) {
    if (!mpl_tok_is_eos(tok, t)) continue;
    bool have = false;
    for (int i = 0; i < n; i++) have |= out[i] == t;
    if (have) continue;
    if (n == cap) {
      int32_t *grown = realloc(out, (size_t)(cap *= 2) * sizeof *out);
      if (!grown) {
        free(out);
        return mpl_error_set(MPL_ERR_NOMEM, "no memory for stop tokens");
      }
      out = grown;
    }
    out[n++] = t;
  }
  *ids = out;
  *n_ids = n;
  return MPL_OK;
}
