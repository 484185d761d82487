/* `mpillm eval`: perplexity of a model on a text, on any layout. The text is cut
 * into consecutive windows of --ctx tokens, each evaluated from an empty cache. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "rt_common.h"

static enum mpl_status read_file(const char *path, char **text, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return mpl_error_set(MPL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *grown = realloc(buf, 2 * cap + 1);
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  bool bad = !buf || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return mpl_error_set(MPL_ERR_IO, "cannot read %s", path);
  }
  buf[n] = '\0';
  *text = buf;
  *n_bytes = n;
  return MPL_OK;
}

enum mpl_status mpl_cmd_eval(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  const char *model = NULL, *text_path = NULL;
  long ctx_len = 0;
  bool json = false;
  struct mpl_cli_rt_args ra = {0};
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model, "MODEL", "model file (.h5) or shard folder (required)"},
      {"text", 'f', MPL_OPT_STRING, &text_path, "FILE", "UTF-8 text to measure (required)"},
      {"ctx", 'c', MPL_OPT_INT, &ctx_len, "N", "window length in tokens (default: the model's context)"},
      {"json", 0, MPL_OPT_FLAG, &json, NULL, "print the result as one JSON object"},
      MPL_CLI_RT_OPTS(ra),
  };
  const struct mpl_cmd_spec spec = {"eval", "mpillm eval -m MODEL --text FILE [--ctx N] [layout]",
                                    "Perplexity of the model on a text, on any layout.", opts,
                                    (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  if (!model || !text_path) return mpl_error_set(MPL_ERR_ARG, "eval needs -m MODEL and --text FILE");
  if (ctx_len < 0) return mpl_error_set(MPL_ERR_ARG, "--ctx %ld must be positive", ctx_len);
  struct mpl_rt *rt = NULL;
  st = mpl_cli_rt_start(&ra, model, &rt);
  if (st != MPL_OK) return st;
  const struct mpl_model_config *cfg = mpl_rt_config(rt);
  int window = ctx_len ? (int)ctx_len : cfg->max_position_embeddings;
  struct mpl_tokenizer *tok = NULL;
  char *text = NULL;
  size_t n_bytes = 0;
  int32_t *ids = NULL;
  int n_ids = 0;
  if (ctx->world_rank == 0) {
    st = read_file(text_path, &text, &n_bytes);
    if (st == MPL_OK) st = mpl_cli_rt_tokenizer(model, rt, &tok);
    if (st == MPL_OK && !tok)
      st = mpl_error_set(MPL_ERR_ARG, "%s has no tokenizer to read %s with", model, text_path);
    if (st == MPL_OK) st = mpl_tok_encode(tok, text, n_bytes, false, &ids, &n_ids);
    if (st != MPL_OK) mpl_error_wrap("eval of %s", text_path);
  }
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  struct mpl_rt_eval_result res;
  if (st == MPL_OK) st = mpl_rt_eval(rt, ids, n_ids, window, &res);
  if (st == MPL_OK && ctx->world_rank == 0) {
    const struct mpl_grid *g = mpl_rt_grid(rt);
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "model", model);
      cJSON_AddStringToObject(o, "text", text_path);
      cJSON_AddNumberToObject(o, "perplexity", res.perplexity);
      cJSON_AddNumberToObject(o, "nll", res.nll);
      cJSON_AddNumberToObject(o, "tokens", (double)res.n_tokens);
      cJSON_AddNumberToObject(o, "predicted", (double)res.n_predicted);
      cJSON_AddNumberToObject(o, "windows", (double)res.n_windows);
      cJSON_AddNumberToObject(o, "ctx", window);
      cJSON_AddNumberToObject(o, "seconds", res.seconds);
      cJSON_AddNumberToObject(o, "dp", g->dp_size);
      cJSON_AddNumberToObject(o, "pp", g->pp_size);
      cJSON_AddNumberToObject(o, "tp", g->tp_size);
      char *line = cJSON_PrintUnformatted(o);
      if (line) printf("%s\n", line);
      free(line);
      cJSON_Delete(o);
    } else {
      printf("perplexity %.4f  (mean NLL %.5f nats over %lld predicted tokens; %lld tokens in %lld "
             "windows of %d; %.2f s, %.0f tok/s; dp %d x pp %d x tp %d)\n",
             res.perplexity, res.nll / (double)res.n_predicted, (long long)res.n_predicted,
             (long long)res.n_tokens, (long long)res.n_windows, window, res.seconds,
             res.seconds > 0 ? (double)res.n_tokens / res.seconds : 0.0, g->dp_size, g->pp_size,
             g->tp_size);
    }
  }
  free(text);
  free(ids);
  mpl_tok_destroy(tok);
  mpl_rt_destroy(rt);
  return st;
}
