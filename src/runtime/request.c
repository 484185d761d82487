/* Requests as users give them: "--prompt-ids 1,2,3" and JSON-lines files, and the
 * token-balanced split of requests over data-parallel replicas. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"

enum mpl_status mpl_rt_parse_ids(const char *text, int32_t **ids, int *n_ids) {
  *ids = NULL;
  *n_ids = 0;
  size_t cap = 1;
  for (const char *c = text; *c; c++) cap += *c == ',';
  int32_t *out = malloc(cap * sizeof *out);
  if (!out) return mpl_error_set(MPL_ERR_NOMEM, "no memory for %zu prompt ids", cap);
  int n = 0;
  const char *c = text;
  while (*c) {
    char *end = NULL;
    errno = 0;
    long v = strtol(c, &end, 10);
    while (end && (*end == ' ' || *end == '\t')) end++;
    if (end == c || errno || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0')) {
      free(out);
      return mpl_error_set(MPL_ERR_ARG, "--prompt-ids: item %d of '%s' is not a token id", n + 1,
                           text);
    }
    out[n++] = (int32_t)v;
    c = *end ? end + 1 : end;
  }
  if (n == 0) {
    free(out);
    return mpl_error_set(MPL_ERR_ARG, "--prompt-ids: no ids in '%s'", text);
  }
  *ids = out;
  *n_ids = n;
  return MPL_OK;
}

void mpl_rt_requests_free(struct mpl_request *reqs, int n_reqs) {
  if (!reqs) return;
  for (int i = 0; i < n_reqs; i++) {
    free(reqs[i].text);
    free(reqs[i].prompt);
  }
  free(reqs);
}

/* a number field of a request line; absent leaves *dst alone */
static enum mpl_status get_number(const cJSON *obj, const char *key, double lo, double hi,
                                  double *dst, bool *present, const char *path, int line) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return MPL_OK;
  if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi)
    return mpl_error_set(MPL_ERR_FORMAT, "%s:%d: \"%s\" must be a number in [%g, %g]", path, line,
                         key, lo, hi);
  *dst = v->valuedouble;
  if (present) *present = true;
  return MPL_OK;
}

static enum mpl_status parse_line(const char *line_text, const char *path, int line, int index,
                                  const struct mpl_sampler_params *defaults,
                                  struct mpl_request *r) {
  cJSON *obj = cJSON_Parse(line_text);
  if (!obj || !cJSON_IsObject(obj)) {
    cJSON_Delete(obj);
    return mpl_error_set(MPL_ERR_FORMAT, "%s:%d: not a JSON object", path, line);
  }
  enum mpl_status st = MPL_OK;
  snprintf(r->id, sizeof r->id, "%d", index);
  r->max_tokens = -1;
  r->sampling = *defaults;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
  if (cJSON_IsString(id)) snprintf(r->id, sizeof r->id, "%s", id->valuestring);
  else if (cJSON_IsNumber(id)) snprintf(r->id, sizeof r->id, "%.17g", id->valuedouble);
  else if (id && !cJSON_IsNull(id))
    st = mpl_error_set(MPL_ERR_FORMAT, "%s:%d: \"id\" must be a string or number", path, line);
  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "ids");
  if (!ids) ids = cJSON_GetObjectItemCaseSensitive(obj, "prompt_ids");
  if (st == MPL_OK && cJSON_IsString(prompt) && !ids) {
    r->text = strdup(prompt->valuestring);
    if (!r->text) st = mpl_error_set(MPL_ERR_NOMEM, "%s:%d: no memory for the prompt", path, line);
  } else if (st == MPL_OK && cJSON_IsArray(ids) && !prompt) {
    int n = cJSON_GetArraySize(ids);
    r->prompt = malloc((size_t)(n ? n : 1) * sizeof *r->prompt);
    if (!r->prompt) st = mpl_error_set(MPL_ERR_NOMEM, "%s:%d: no memory for the ids", path, line);
    const cJSON *v = NULL;
    cJSON_ArrayForEach(v, ids) {
      if (st != MPL_OK) break;
      if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX ||
          v->valuedouble != (double)(int32_t)v->valuedouble)
        st = mpl_error_set(MPL_ERR_FORMAT, "%s:%d: \"ids\" item %d is not a token id", path, line,
                           r->n_prompt + 1);
      else r->prompt[r->n_prompt++] = (int32_t)v->valuedouble;
    }
    if (st == MPL_OK && n == 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "%s:%d: \"ids\" is empty", path, line);
  } else if (st == MPL_OK) {
    st = mpl_error_set(MPL_ERR_FORMAT,
                       "%s:%d: a request needs either \"prompt\" (a string) or \"ids\" (an array)",
                       path, line);
  }
  double v = 0;
  bool present = false;
  if (st == MPL_OK) st = get_number(obj, "max_tokens", 0, INT_MAX, &v, &present, path, line);
  if (st == MPL_OK && present) r->max_tokens = (int)v;
  struct mpl_sampler_params *s = &r->sampling;
  if (st == MPL_OK) st = get_number(obj, "temperature", 0, 1e6, &s->temperature, &r->has_sampling, path, line);
  present = false;
  if (st == MPL_OK) st = get_number(obj, "top_k", 0, INT_MAX, &v, &present, path, line);
  if (st == MPL_OK && present) s->top_k = (int)v, r->has_sampling = true;
  if (st == MPL_OK) st = get_number(obj, "top_p", 0, 1, &s->top_p, &r->has_sampling, path, line);
  if (st == MPL_OK) st = get_number(obj, "min_p", 0, 1, &s->min_p, &r->has_sampling, path, line);
  if (st == MPL_OK)
    st = get_number(obj, "repeat_penalty", 0, 1e6, &s->repeat_penalty, &r->has_sampling, path, line);
  present = false;
  if (st == MPL_OK) st = get_number(obj, "seed", 0, 18446744073709551615.0, &v, &present, path, line);
  if (st == MPL_OK && present) s->seed = (uint64_t)v, r->has_seed = true;
  if (st == MPL_OK) {
    char what[96];
    snprintf(what, sizeof what, "%s:%d", path, line);
    st = mpl_sampler_params_check(s, what);
  }
  cJSON_Delete(obj);
  return st;
}

enum mpl_status mpl_rt_read_requests(const char *path, const struct mpl_sampler_params *defaults,
                                     struct mpl_request **reqs, int *n_reqs) {
  *reqs = NULL;
  *n_reqs = 0;
  FILE *f = fopen(path, "r");
  if (!f) return mpl_error_set(MPL_ERR_IO, "cannot open request file %s: %s", path, strerror(errno));
  enum mpl_status st = MPL_OK;
  struct mpl_request *out = NULL;
  int n = 0, cap = 0, line = 0;
  char *buf = NULL;
  size_t buf_cap = 0;
  while (st == MPL_OK && getline(&buf, &buf_cap, f) >= 0) {
    line++;
    const char *c = buf;
    while (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') c++;
    if (!*c) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      struct mpl_request *grown = realloc(out, (size_t)cap * sizeof *out);
      if (!grown) {
        st = mpl_error_set(MPL_ERR_NOMEM, "no memory for %d requests", cap);
        break;
      }
      out = grown;
    }
    memset(&out[n], 0, sizeof out[n]);
    st = parse_line(c, path, line, n, defaults, &out[n]);
    n++;
  }
  free(buf);
  if (st == MPL_OK && ferror(f)) st = mpl_error_set(MPL_ERR_IO, "reading %s failed", path);
  fclose(f);
  if (st == MPL_OK && n == 0) st = mpl_error_set(MPL_ERR_FORMAT, "%s holds no requests", path);
  if (st != MPL_OK) {
    mpl_rt_requests_free(out, n);
    return st;
  }
  *reqs = out;
  *n_reqs = n;
  return MPL_OK;
}

struct ranked {
  int64_t cost;
  int index;
};

static int by_cost_desc(const void *a, const void *b) {
  const struct ranked *x = a, *y = b;
  if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
  return x->index - y->index;
}

void mpl_rt_longest_first(const int64_t *costs, int n, int *order) {
  struct ranked *ranked = malloc((size_t)(n ? n : 1) * sizeof *ranked);
  MPL_ASSERT(ranked != NULL, "no memory to order %d items", n);
  for (int i = 0; i < n; i++) ranked[i] = (struct ranked){costs[i], i};
  qsort(ranked, (size_t)n, sizeof *ranked, by_cost_desc);
  for (int i = 0; i < n; i++) order[i] = ranked[i].index;
  free(ranked);
}

void mpl_rt_balance(const int64_t *costs, int n, int n_groups, int *group_of) {
  int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
  int64_t *load = calloc((size_t)n_groups, sizeof *load);
  MPL_ASSERT(order && load, "no memory to balance %d items", n);
  mpl_rt_longest_first(costs, n, order);
  for (int i = 0; i < n; i++) {
    int g = 0;
    for (int k = 1; k < n_groups; k++)
      if (load[k] < load[g]) g = k;
    group_of[order[i]] = g;
    load[g] += costs[order[i]];
  }
  free(order);
  free(load);
}
