/* `mpillm generate`: text from a prompt, a list of ids or a file of requests, on any
 * layout. One prompt streams its text as it comes and ends with a line of timings;
 * --json prints one object per request; --output writes them to a file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "rt_common.h"

struct stream_state {
  struct mpl_tok_stream *stream;
  bool failed;
};

static void on_token(void *user, int request, int32_t token) {
  (void)request;
  struct stream_state *s = user;
  const char *text = NULL;
  if (s->failed || !s->stream) return;
  if (mpl_tok_stream_push(s->stream, token, &text) != MPL_OK) {
    s->failed = true;
    return;
  }
  fputs(text, stdout);
  fflush(stdout);
}

static cJSON *ids_json(const int32_t *ids, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
  return a;
}

static double rate(int n, double s) { return s > 0 ? n / s : 0.0; }

/* One answer as a line of JSON (caller frees with free()). */
static char *answer_json(const struct mpl_request *r, const struct mpl_rt_result *res,
                         const struct mpl_tokenizer *tok) {
  char *text = NULL;
  if (tok && mpl_tok_decode(tok, res->tokens, res->n_tokens, true, &text) != MPL_OK) text = NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", r->id);
  cJSON_AddItemToObject(o, "prompt_ids", ids_json(r->prompt, r->n_prompt));
  cJSON_AddItemToObject(o, "generated_ids", ids_json(res->tokens, res->n_tokens));
  if (text) cJSON_AddStringToObject(o, "text", text);
  else cJSON_AddNullToObject(o, "text");
  cJSON_AddStringToObject(o, "stop", res->stopped_eos ? "eos" : "length");
  cJSON *t = cJSON_AddObjectToObject(o, "timings");
  cJSON_AddNumberToObject(t, "prompt_tokens", r->n_prompt);
  cJSON_AddNumberToObject(t, "generated_tokens", res->n_tokens);
  cJSON_AddNumberToObject(t, "prefill_s", res->prefill_s);
  cJSON_AddNumberToObject(t, "decode_s", res->decode_s);
  cJSON_AddNumberToObject(t, "prompt_tok_per_s", rate(r->n_prompt, res->prefill_s));
  cJSON_AddNumberToObject(t, "generated_tok_per_s", rate(res->n_tokens, res->decode_s));
  char *line = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(text);
  return line;
}

/* Rank 0: the requests from -p, --prompt-ids or --input, tokenized, with defaults. */
static enum mpl_status build_requests(const char *prompt, const char *prompt_ids, const char *input,
                                      const struct mpl_sampler_params *defaults, long n_predict,
                                      const struct mpl_tokenizer *tok,
                                      struct mpl_request **reqs, int *n_reqs) {
  enum mpl_status st = MPL_OK;
  if (input) {
    st = mpl_rt_read_requests(input, defaults, reqs, n_reqs);
  } else {
    *reqs = calloc(1, sizeof **reqs);
    *n_reqs = 1;
    if (!*reqs) return mpl_error_set(MPL_ERR_NOMEM, "no memory for a request");
    snprintf((*reqs)[0].id, sizeof (*reqs)[0].id, "0");
    (*reqs)[0].max_tokens = -1;
    (*reqs)[0].sampling = *defaults;
    if (prompt) {
      (*reqs)[0].text = strdup(prompt);
      if (!(*reqs)[0].text) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the prompt");
    } else {
      st = mpl_rt_parse_ids(prompt_ids, &(*reqs)[0].prompt, &(*reqs)[0].n_prompt);
    }
  }
  for (int i = 0; st == MPL_OK && i < *n_reqs; i++) {
    struct mpl_request *r = &(*reqs)[i];
    if (r->max_tokens < 0) r->max_tokens = (int)n_predict;
    /* every request has its own stream: the same answer whichever replica runs it */
    if (!r->has_seed) r->sampling.seed = defaults->seed + (uint64_t)i;
    if (r->text) {
      if (!tok)
        st = mpl_error_set(MPL_ERR_ARG, "request %s has text, but the model file has no tokenizer "
                                        "(give token ids)", r->id);
      else st = mpl_tok_encode(tok, r->text, strlen(r->text), true, &r->prompt, &r->n_prompt);
      if (st != MPL_OK) st = mpl_error_wrap("request %s", r->id);
    }
  }
  return st;
}

static enum mpl_status write_answers(const char *path, char **lines, int n) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return mpl_error_set(MPL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  for (int i = 0; i < n; i++) fprintf(f, "%s\n", lines[i]);
  bool ok = !ferror(f);
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return mpl_error_set(MPL_ERR_IO, "cannot write the answers to %s", path);
  }
  return MPL_OK;
}

enum mpl_status mpl_cmd_generate(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  const char *model = NULL, *prompt = NULL, *prompt_ids = NULL, *input = NULL, *output = NULL,
             *logits_out = NULL;
  long n_predict = 64, top_k = 0, batch = 16, seed = -1;
  double temperature = 0.0, top_p = 1.0, min_p = 0.0, repeat_penalty = 1.0;
  bool json = false, ignore_eos = false;
  struct mpl_cli_rt_args ra = {0};
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model, "MODEL", "model file (.h5) or shard folder (required)"},
      {"prompt", 'p', MPL_OPT_STRING, &prompt, "TEXT", "the prompt text"},
      {"prompt-ids", 0, MPL_OPT_STRING, &prompt_ids, "1,2,3", "the prompt as token ids"},
      {"input", 'i', MPL_OPT_STRING, &input, "FILE", "JSON-lines requests: {\"prompt\"|\"ids\", \"max_tokens\", sampling, \"id\"}"},
      {"n-predict", 'n', MPL_OPT_INT, &n_predict, "N", "tokens to generate at most (default 64)"},
      {"temperature", 0, MPL_OPT_DOUBLE, &temperature, "T", "sampling temperature; 0 is greedy (default 0)"},
      {"top-k", 0, MPL_OPT_INT, &top_k, "K", "keep the K most likely tokens; 0 is off (default 0)"},
      {"top-p", 0, MPL_OPT_DOUBLE, &top_p, "P", "nucleus sampling mass; 1 is off (default 1)"},
      {"min-p", 0, MPL_OPT_DOUBLE, &min_p, "M", "drop tokens below M x the top probability (default 0)"},
      {"repeat-penalty", 0, MPL_OPT_DOUBLE, &repeat_penalty, "R", "penalty for tokens already seen; 1 is off (default 1)"},
      {"seed", 's', MPL_OPT_INT, &seed, "S", "random seed; request i uses S + i (default: from the clock)"},
      {"ignore-eos", 0, MPL_OPT_FLAG, &ignore_eos, NULL, "do not stop at end-of-sequence tokens"},
      {"batch", 'b', MPL_OPT_INT, &batch, "B", "sequences in flight per replica (default 16)"},
      {"json", 0, MPL_OPT_FLAG, &json, NULL, "print one JSON object per request"},
      {"output", 'o', MPL_OPT_STRING, &output, "FILE", "write the answers as JSON lines to FILE"},
      {"logits-out", 0, MPL_OPT_STRING, &logits_out, "FILE.h5", "write the prompt's logits (/logits, float32 [n_prompt][vocab])"},
      MPL_CLI_RT_OPTS(ra),
  };
  const struct mpl_cmd_spec spec = {
      "generate",
      "mpillm generate -m MODEL (-p TEXT | --prompt-ids 1,2,3 | --input requests.jsonl) [options]",
      "Generate text from prompts on any dp x pp x tp layout.", opts,
      (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  /* argv is the same on every rank: these checks fail everywhere alike */
  if (!model) return mpl_error_set(MPL_ERR_ARG, "generate needs a model (-m MODEL)");
  if (!!prompt + !!prompt_ids + !!input != 1)
    return mpl_error_set(MPL_ERR_ARG, "give exactly one of -p TEXT, --prompt-ids IDS, --input FILE");
  if (n_predict < 0) return mpl_error_set(MPL_ERR_ARG, "-n %ld must be >= 0", n_predict);
  if (batch < 1) return mpl_error_set(MPL_ERR_ARG, "--batch %ld must be >= 1", batch);
  if (logits_out && input)
    return mpl_error_set(MPL_ERR_ARG, "--logits-out takes one prompt (-p or --prompt-ids), not --input");
  struct mpl_sampler_params defaults = {temperature, (int)top_k, top_p, min_p, repeat_penalty, 0};
  st = mpl_sampler_params_check(&defaults, "generate");
  if (st != MPL_OK) return st;
  /* one clock for every rank: rank 0's */
  uint64_t base_seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
  st = mpl_par_bcast(MPI_COMM_WORLD, &base_seed, sizeof base_seed, 0);
  if (st != MPL_OK) return st;
  defaults.seed = base_seed;

  struct mpl_rt *rt = NULL;
  st = mpl_cli_rt_start(&ra, model, &rt);
  if (st != MPL_OK) return st;
  const struct mpl_model_config *cfg = mpl_rt_config(rt);
  struct mpl_tokenizer *tok = NULL;
  struct mpl_request *reqs = NULL;
  int n_reqs = 0, n_eos = 0;
  int32_t *eos = NULL;
  float *logits = NULL;
  struct mpl_tok_stream *stream = NULL;
  struct mpl_rt_result *results = NULL;
  bool rank0 = ctx->world_rank == 0;
  if (rank0) {
    st = mpl_cli_rt_tokenizer(model, rt, &tok);
    if (st == MPL_OK)
      st = build_requests(prompt, prompt_ids, input, &defaults, n_predict, tok, &reqs, &n_reqs);
    if (st == MPL_OK && !ignore_eos) st = mpl_cli_rt_eos(cfg, tok, &eos, &n_eos);
    if (st == MPL_OK && logits_out && reqs[0].n_prompt <= cfg->max_position_embeddings) {
      logits = malloc((size_t)reqs[0].n_prompt * cfg->vocab_size * sizeof(float));
      if (!logits) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the prompt's logits");
    }
    if (st == MPL_OK && n_reqs == 1 && !json && tok) st = mpl_tok_stream_create(tok, &stream);
  }
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st != MPL_OK) goto out;

  struct stream_state ss = {stream, false};
  struct mpl_rt_generate_options go = {(int)batch, eos, n_eos, stream ? on_token : NULL, &ss, logits};
  if (!logits_out) go.prompt_logits = NULL;
  double t0 = mpl_time_now();
  st = mpl_rt_generate(rt, reqs, n_reqs, &go, &results);
  double wall = mpl_time_now() - t0;
  if (st != MPL_OK || !rank0) goto out;

  if (stream) {
    const char *rest = NULL;
    if (mpl_tok_stream_flush(stream, &rest) == MPL_OK) fputs(rest, stdout);
    const struct mpl_rt_result *r = &results[0];
    printf("\n\n[prompt %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | %s]\n",
           reqs[0].n_prompt, rate(reqs[0].n_prompt, r->prefill_s), r->n_tokens,
           rate(r->n_tokens, r->decode_s), r->stopped_eos ? "end of sequence" : "length limit");
  } else if (n_reqs == 1 && !json && !output) {
    /* no tokenizer: the ids are the answer */
    for (int i = 0; i < results[0].n_tokens; i++) printf("%s%d", i ? "," : "", results[0].tokens[i]);
    printf("\n[prompt %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s]\n", reqs[0].n_prompt,
           rate(reqs[0].n_prompt, results[0].prefill_s), results[0].n_tokens,
           rate(results[0].n_tokens, results[0].decode_s));
  }
  if (json || output) {
    char **lines = calloc((size_t)n_reqs, sizeof *lines);
    if (!lines) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the answers");
    for (int i = 0; st == MPL_OK && i < n_reqs; i++) {
      lines[i] = answer_json(&reqs[i], &results[i], tok);
      if (!lines[i]) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for answer %s", reqs[i].id);
    }
    if (st == MPL_OK && json)
      for (int i = 0; i < n_reqs; i++) printf("%s\n", lines[i]);
    if (st == MPL_OK && output) st = write_answers(output, lines, n_reqs);
    for (int i = 0; lines && i < n_reqs; i++) free(lines[i]);
    free(lines);
  }
  if (st == MPL_OK && n_reqs > 1) {
    long gen = 0, prompt_toks = 0;
    for (int i = 0; i < n_reqs; i++) gen += results[i].n_tokens, prompt_toks += reqs[i].n_prompt;
    fprintf(stderr, "[%d requests: %ld prompt + %ld generated tokens in %.2f s, %.1f tok/s overall]\n",
            n_reqs, prompt_toks, gen, wall, rate((int)(prompt_toks + gen), wall));
  }
  if (st == MPL_OK && logits_out)
    st = mpl_rt_write_logits(logits_out, logits, reqs[0].n_prompt, cfg->vocab_size);
out:
  mpl_rt_results_free(results, n_reqs);
  mpl_tok_stream_destroy(stream);
  mpl_rt_requests_free(reqs, n_reqs);
  mpl_tok_destroy(tok);
  free(eos);
  free(logits);
  mpl_rt_destroy(rt);
  return st;
}
