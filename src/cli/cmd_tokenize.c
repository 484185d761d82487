/* `mpillm tokenize`: text to ids (a JSON array) or, with --decode, ids to text,
 * with the tokenizer of a model file or a tokenizer.json. Rank 0 only. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/io.h"
#include "mpillm/tokenizer.h"

/* Reads a whole file; *text = NULL without error when optional and missing. */
static enum mpl_status read_file(const char *path, bool optional, char **text) {
  *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (optional && errno == ENOENT) return MPL_OK;
    return mpl_error_set(MPL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  }
  enum mpl_status st = MPL_OK;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    len += fread(buf + len, 1, cap - 1 - len, f);
    if (len < cap - 1) break;
    char *p = realloc(buf, cap * 2);
    if (!p) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = p;
    cap *= 2;
  }
  if (!buf) st = mpl_error_set(MPL_ERR_NOMEM, "no memory to read %s", path);
  else if (ferror(f)) st = mpl_error_set(MPL_ERR_IO, "cannot read %s", path);
  fclose(f);
  if (st != MPL_OK) {
    free(buf);
    return st;
  }
  buf[len] = '\0';
  *text = buf;
  return MPL_OK;
}

/* tokenizer.json and, beside it, tokenizer_config.json and generation_config.json */
static enum mpl_status load_from_json(const char *path, struct mpl_tokenizer **tok) {
  char *json = NULL, *cfg = NULL, *gen = NULL;
  enum mpl_status st = read_file(path, false, &json);
  const char *slash = strrchr(path, '/');
  size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
  char *side = malloc(dir_len + 32);
  if (st == MPL_OK && !side) st = mpl_error_set(MPL_ERR_NOMEM, "no memory");
  if (st == MPL_OK) {
    memcpy(side, path, dir_len);
    strcpy(side + dir_len, "tokenizer_config.json");
    st = read_file(side, true, &cfg);
  }
  if (st == MPL_OK) {
    strcpy(side + dir_len, "generation_config.json");
    st = read_file(side, true, &gen);
  }
  if (st == MPL_OK) st = mpl_tok_create(json, cfg, gen, path, tok);
  free(side);
  free(json);
  free(cfg);
  free(gen);
  return st;
}

/* /tokenizer/tokenizer.json (+ the two configs) stored in a model file */
static enum mpl_status load_from_model(const char *path, struct mpl_tokenizer **tok) {
  struct mpl_model_file *f = NULL;
  char *json = NULL, *cfg = NULL, *gen = NULL;
  enum mpl_status st = mpl_io_open(path, MPI_COMM_SELF, 0, 1, 0, 1, &f);
  if (st == MPL_OK) st = mpl_io_read_text(f, "tokenizer.json", &json);
  if (st == MPL_OK && !json)
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: the model file has no /tokenizer/tokenizer.json", path);
  if (st == MPL_OK) st = mpl_io_read_text(f, "tokenizer_config.json", &cfg);
  if (st == MPL_OK) st = mpl_io_read_text(f, "generation_config.json", &gen);
  if (st == MPL_OK) {
    size_t n = strlen(path) + 32;
    char *source = malloc(n);
    if (!source) st = mpl_error_set(MPL_ERR_NOMEM, "no memory");
    else {
      snprintf(source, n, "%s:/tokenizer/tokenizer.json", path);
      st = mpl_tok_create(json, cfg, gen, source, tok);
      free(source);
    }
  }
  free(json);
  free(cfg);
  free(gen);
  mpl_io_close(f);
  return st;
}

/* several TEXT arguments are one text joined by spaces, as a shell would print them */
static enum mpl_status join_args(char **pos, int n_pos, char **text) {
  size_t len = 0;
  for (int i = 0; i < n_pos; i++) len += strlen(pos[i]) + 1;
  *text = malloc(len + 1);
  if (!*text) return mpl_error_set(MPL_ERR_NOMEM, "no memory for the text");
  (*text)[0] = '\0';
  for (int i = 0; i < n_pos; i++) {
    if (i) strcat(*text, " ");
    strcat(*text, pos[i]);
  }
  return MPL_OK;
}

/* the ids of --decode: a JSON array of integers */
static enum mpl_status parse_ids(const char *arg, int32_t **ids, int *n_ids) {
  cJSON *arr = cJSON_Parse(arg);
  enum mpl_status st = MPL_OK;
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return mpl_error_set(MPL_ERR_ARG, "--decode: \"%s\" is not a JSON array of ids", arg);
  }
  int n = cJSON_GetArraySize(arr);
  *ids = malloc((size_t)(n + 1) * sizeof **ids);
  *n_ids = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble) {
      st = mpl_error_set(MPL_ERR_ARG, "--decode: element %d of the array is not an integer id", *n_ids);
      break;
    }
    (*ids)[(*n_ids)++] = (int32_t)it->valuedouble;
  }
  cJSON_Delete(arr);
  return st;
}

enum mpl_status mpl_cmd_tokenize(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  const char *model = NULL, *tok_path = NULL;
  const char *file = NULL;
  bool decode = false, no_special = false, timing = false;
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model, "MODEL.h5", "model file whose tokenizer to use"},
      {"tokenizer", 0, MPL_OPT_STRING, &tok_path, "FILE",
       "a tokenizer.json (tokenizer_config.json and generation_config.json beside it are read too)"},
      {"decode", 0, MPL_OPT_FLAG, &decode, NULL, "TEXT is a JSON array of ids: print their text"},
      {"no-special", 0, MPL_OPT_FLAG, &no_special, NULL,
       "encode without the special tokens of the template (BOS...); decode skipping special tokens"},
      {"file", 'f', MPL_OPT_STRING, &file, "FILE", "read TEXT from FILE (- for stdin) instead of the arguments"},
      {"time", 0, MPL_OPT_FLAG, &timing, NULL, "print the encode/decode time and speed on stderr"},
  };
  const struct mpl_cmd_spec spec = {
      "tokenize", "mpillm tokenize (-m MODEL.h5 | --tokenizer tokenizer.json) [--decode] [--no-special] (TEXT... | -f FILE)",
      "Print the token ids of TEXT as a JSON array, or with --decode the text of a JSON array of ids.", opts,
      (int)(sizeof opts / sizeof opts[0]), 0, 1 << 20};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, &n_pos, &help);
  if (st != MPL_OK || help) {
    free(pos);
    return st;
  }
  struct mpl_tokenizer *tok = NULL;
  char *text = NULL;
  int32_t *ids = NULL;
  int n_ids = 0;
  if ((model != NULL) == (tok_path != NULL)) {
    st = mpl_error_set(MPL_ERR_ARG, "tokenize: give exactly one of -m MODEL.h5 and --tokenizer FILE");
    goto out;
  }
  if ((file != NULL) == (n_pos > 0)) {
    st = mpl_error_set(MPL_ERR_ARG, "tokenize: give either TEXT... or -f FILE");
    goto out;
  }
  st = model ? load_from_model(model, &tok) : load_from_json(tok_path, &tok);
  if (st != MPL_OK) goto out;
  st = file ? read_file(strcmp(file, "-") == 0 ? "/dev/stdin" : file, false, &text) : join_args(pos, n_pos, &text);
  if (st != MPL_OK) goto out;
  double t0 = mpl_time_now();
  if (decode) {
    char *out = NULL;
    if ((st = parse_ids(text, &ids, &n_ids)) != MPL_OK) goto out;
    if ((st = mpl_tok_decode(tok, ids, n_ids, no_special, &out)) != MPL_OK) goto out;
    if (timing)
      fprintf(stderr, "decoded %d ids in %.3f s\n", n_ids, mpl_time_now() - t0);
    printf("%s\n", out);
    free(out);
  } else {
    size_t n_bytes = strlen(text);
    if ((st = mpl_tok_encode(tok, text, n_bytes, !no_special, &ids, &n_ids)) != MPL_OK) goto out;
    double dt = mpl_time_now() - t0;
    if (timing)
      fprintf(stderr, "encoded %zu bytes into %d ids in %.3f s: %.2f MB/s\n", n_bytes, n_ids, dt,
              (double)n_bytes / dt / 1e6);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n_ids; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!s) {
      st = mpl_error_set(MPL_ERR_NOMEM, "no memory to print %d ids", n_ids);
      goto out;
    }
    printf("%s\n", s);
    free(s);
  }
out:
  free(ids);
  free(text);
  free(pos);
  mpl_tok_destroy(tok);
  return st;
}
