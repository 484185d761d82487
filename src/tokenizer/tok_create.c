/* Reads tokenizer.json (+ tokenizer_config.json, generation_config.json) with cJSON
 * into the pipeline of tok_internal.h. What we do not implement is refused with
 * the JSON field named, never approximated. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static pthread_once_t bytes_once = PTHREAD_ONCE_INIT;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* a string member, or NULL */
static const char *get_str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool get_bool(const cJSON *obj, const char *key, bool dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return dflt;
}

static enum mpl_status oom(const char *source) {
  return mpl_error_set(MPL_ERR_NOMEM, "%s: no memory while reading the tokenizer", source);
}

/* the type string of a pipeline stage */
static enum mpl_status stage_type(const cJSON *obj, const char *field, const char *source,
                                  const char **type) {
  *type = cJSON_IsObject(obj) ? get_str(obj, "type") : NULL;
  if (!*type) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s has no \"type\"", source, field);
  return MPL_OK;
}

/* ---- pattern members: {"String": "..."} or {"Regex": "..."} -------------------------- */

static enum mpl_status get_pattern(const cJSON *obj, const char *field, const char *source,
                                   const char **pattern, bool *is_regex) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
  const char *s = cJSON_IsObject(p) ? get_str(p, "String") : NULL;
  *is_regex = false;
  if (!s && cJSON_IsObject(p) && (s = get_str(p, "Regex"))) *is_regex = true;
  if (!s) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.pattern is not {\"String\"|\"Regex\": ...}",
                               source, field);
  *pattern = s;
  return MPL_OK;
}

static enum mpl_status get_prepend_scheme(const cJSON *obj, const char *field, const char *source,
                                          enum tok_prepend *out) {
  const char *s = get_str(obj, "prepend_scheme");
  if (!s) { /* older files: add_prefix_space */
    *out = get_bool(obj, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    return MPL_OK;
  }
  if (strcmp(s, "always") == 0) *out = TOK_PREPEND_ALWAYS;
  else if (strcmp(s, "first") == 0) *out = TOK_PREPEND_FIRST;
  else if (strcmp(s, "never") == 0) *out = TOK_PREPEND_NEVER;
  else return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: %s.prepend_scheme \"%s\" is not supported",
                            source, field, s);
  return MPL_OK;
}

static enum mpl_status get_replacement(const cJSON *obj, const char *field, const char *source,
                                       uint32_t *cp) {
  const char *r = get_str(obj, "replacement");
  if (!r) r = "\xE2\x96\x81"; /* U+2581 */
  int len = mpl_tok__utf8_next(r, strlen(r), cp);
  if (len <= 0 || r[len] != '\0')
    return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.replacement must be one character", source, field);
  return MPL_OK;
}

/* ---- normalizers ----------------------------------------------------------------- */

static void free_normalizer(struct tok_normalizer *nz) {
  if (!nz) return;
  for (int i = 0; i < nz->n_children; i++) free_normalizer(nz->children[i]);
  free(nz->children);
  free(nz->str);
  free(nz->content);
  mpl_tok__regex_free(&nz->re);
  free(nz);
}

static enum mpl_status parse_normalizer(const cJSON *obj, const char *field, const char *source,
                                        struct tok_normalizer **out) {
  const char *type;
  enum mpl_status st = stage_type(obj, field, source, &type);
  if (st != MPL_OK) return st;
  struct tok_normalizer *nz = calloc(1, sizeof *nz);
  if (!nz) return oom(source);
  *out = nz;
  char sub[256];
  if (strcmp(type, "Sequence") == 0) {
    nz->type = TOK_NORM_SEQUENCE;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "normalizers");
    if (!cJSON_IsArray(list))
      return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.normalizers is not an array", source, field);
    nz->children = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *nz->children);
    if (!nz->children) return oom(source);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
      snprintf(sub, sizeof sub, "%s.normalizers[%d]", field, nz->n_children);
      st = parse_normalizer(it, sub, source, &nz->children[nz->n_children++]);
      if (st != MPL_OK) return st;
    }
  } else if (strcmp(type, "NFC") == 0) nz->type = TOK_NORM_NFC;
  else if (strcmp(type, "NFD") == 0) nz->type = TOK_NORM_NFD;
  else if (strcmp(type, "NFKC") == 0) nz->type = TOK_NORM_NFKC;
  else if (strcmp(type, "NFKD") == 0) nz->type = TOK_NORM_NFKD;
  else if (strcmp(type, "Prepend") == 0) {
    nz->type = TOK_NORM_PREPEND;
    const char *p = get_str(obj, "prepend");
    if (!p) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.prepend is missing", source, field);
    if (!(nz->str = dup_str(p))) return oom(source);
  } else if (strcmp(type, "Replace") == 0) {
    nz->type = TOK_NORM_REPLACE;
    const char *pattern, *content = get_str(obj, "content");
    bool is_regex;
    if ((st = get_pattern(obj, field, source, &pattern, &is_regex)) != MPL_OK) return st;
    if (!content) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.content is missing", source, field);
    if (!(nz->content = dup_str(content))) return oom(source);
    if (is_regex) {
      snprintf(sub, sizeof sub, "%s.pattern.Regex", field);
      return mpl_tok__regex_compile(&nz->re, pattern, false, sub, source);
    }
    if (!(nz->str = dup_str(pattern))) return oom(source);
  } else if (strcmp(type, "Strip") == 0) {
    nz->type = TOK_NORM_STRIP;
    nz->strip_left = get_bool(obj, "strip_left", true);
    nz->strip_right = get_bool(obj, "strip_right", true);
  } else {
    return mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: %s.type \"%s\" is not supported (supported: Sequence, NFC, NFD, NFKC, "
                         "NFKD, Prepend, Replace, Strip)", source, field, type);
  }
  return MPL_OK;
}

/* ---- pre-tokenizers --------------------------------------------------------------- */

/* GPT-2's pre-tokenizer regex, the one tokenizers' ByteLevel uses when use_regex */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void free_pretok(struct tok_pretok *pt) {
  if (!pt) return;
  for (int i = 0; i < pt->n_children; i++) free_pretok(pt->children[i]);
  free(pt->children);
  mpl_tok__regex_free(&pt->re);
  free(pt);
}

static enum mpl_status parse_pretok(const cJSON *obj, const char *field, const char *source,
                                    struct tok_pretok **out) {
  const char *type;
  enum mpl_status st = stage_type(obj, field, source, &type);
  if (st != MPL_OK) return st;
  struct tok_pretok *pt = calloc(1, sizeof *pt);
  if (!pt) return oom(source);
  *out = pt;
  char sub[256];
  if (strcmp(type, "Sequence") == 0) {
    pt->type = TOK_PRE_SEQUENCE;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "pretokenizers");
    if (!cJSON_IsArray(list))
      return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.pretokenizers is not an array", source, field);
    pt->children = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *pt->children);
    if (!pt->children) return oom(source);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
      snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, pt->n_children);
      st = parse_pretok(it, sub, source, &pt->children[pt->n_children++]);
      if (st != MPL_OK) return st;
    }
  } else if (strcmp(type, "Split") == 0) {
    pt->type = TOK_PRE_SPLIT;
    const char *pattern, *behavior = get_str(obj, "behavior");
    bool is_regex;
    if ((st = get_pattern(obj, field, source, &pattern, &is_regex)) != MPL_OK) return st;
    snprintf(sub, sizeof sub, "%s.pattern", field);
    if ((st = mpl_tok__regex_compile(&pt->re, pattern, !is_regex, sub, source)) != MPL_OK) return st;
    pt->invert = get_bool(obj, "invert", false);
    if (!behavior) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.behavior is missing", source, field);
    if (strcmp(behavior, "Removed") == 0) pt->behavior = TOK_SPLIT_REMOVED;
    else if (strcmp(behavior, "Isolated") == 0) pt->behavior = TOK_SPLIT_ISOLATED;
    else if (strcmp(behavior, "MergedWithPrevious") == 0) pt->behavior = TOK_SPLIT_MERGED_PREV;
    else if (strcmp(behavior, "MergedWithNext") == 0) pt->behavior = TOK_SPLIT_MERGED_NEXT;
    else if (strcmp(behavior, "Contiguous") == 0) pt->behavior = TOK_SPLIT_CONTIGUOUS;
    else return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: %s.behavior \"%s\" is not supported", source,
                              field, behavior);
  } else if (strcmp(type, "ByteLevel") == 0) {
    pt->type = TOK_PRE_BYTELEVEL;
    pt->add_prefix_space = get_bool(obj, "add_prefix_space", true);
    pt->use_regex = get_bool(obj, "use_regex", true);
    if (pt->use_regex &&
        (st = mpl_tok__regex_compile(&pt->re, gpt2_regex, false, "ByteLevel regex", source)) != MPL_OK)
      return st;
  } else if (strcmp(type, "Metaspace") == 0) {
    pt->type = TOK_PRE_METASPACE;
    uint32_t cp;
    if ((st = get_replacement(obj, field, source, &cp)) != MPL_OK) return st;
    struct tok_buf b = {0};
    if ((st = mpl_tok__buf_put_cp(&b, cp)) != MPL_OK) return st;
    memcpy(pt->replacement, b.p, b.len + 1);
    free(b.p);
    if ((st = get_prepend_scheme(obj, field, source, &pt->prepend_scheme)) != MPL_OK) return st;
    pt->split = get_bool(obj, "split", true);
  } else {
    return mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: %s.type \"%s\" is not supported (supported: Sequence, Split, ByteLevel, "
                         "Metaspace)", source, field, type);
  }
  return MPL_OK;
}

/* ---- decoders --------------------------------------------------------------------- */

static void free_decoder(struct tok_decoder *d) {
  if (!d) return;
  for (int i = 0; i < d->n_children; i++) free_decoder(d->children[i]);
  free(d->children);
  free(d->pattern);
  free(d->content);
  free(d);
}

static enum mpl_status parse_decoder(const cJSON *obj, const char *field, const char *source,
                                     struct tok_decoder **out) {
  const char *type;
  enum mpl_status st = stage_type(obj, field, source, &type);
  if (st != MPL_OK) return st;
  struct tok_decoder *d = calloc(1, sizeof *d);
  if (!d) return oom(source);
  *out = d;
  char sub[256];
  if (strcmp(type, "Sequence") == 0) {
    d->type = TOK_DEC_SEQUENCE;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "decoders");
    if (!cJSON_IsArray(list))
      return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.decoders is not an array", source, field);
    d->children = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *d->children);
    if (!d->children) return oom(source);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
      snprintf(sub, sizeof sub, "%s.decoders[%d]", field, d->n_children);
      st = parse_decoder(it, sub, source, &d->children[d->n_children++]);
      if (st != MPL_OK) return st;
    }
  } else if (strcmp(type, "ByteLevel") == 0) {
    d->type = TOK_DEC_BYTELEVEL;
  } else if (strcmp(type, "Metaspace") == 0) {
    d->type = TOK_DEC_METASPACE;
    if ((st = get_replacement(obj, field, source, &d->replacement_cp)) != MPL_OK) return st;
    if ((st = get_prepend_scheme(obj, field, source, &d->prepend_scheme)) != MPL_OK) return st;
  } else if (strcmp(type, "Replace") == 0) {
    d->type = TOK_DEC_REPLACE;
    const char *pattern, *content = get_str(obj, "content");
    bool is_regex;
    if ((st = get_pattern(obj, field, source, &pattern, &is_regex)) != MPL_OK) return st;
    if (is_regex)
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: %s.pattern: a Regex pattern in a Replace decoder "
                           "is not supported", source, field);
    if (!content) return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.content is missing", source, field);
    if (!(d->pattern = dup_str(pattern)) || !(d->content = dup_str(content))) return oom(source);
  } else if (strcmp(type, "ByteFallback") == 0) {
    d->type = TOK_DEC_BYTEFALLBACK;
  } else if (strcmp(type, "Fuse") == 0) {
    d->type = TOK_DEC_FUSE;
  } else if (strcmp(type, "Strip") == 0) {
    d->type = TOK_DEC_STRIP;
    const char *content = get_str(obj, "content");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "start");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, "stop");
    if (!content || !cJSON_IsNumber(a) || !cJSON_IsNumber(b))
      return mpl_error_set(MPL_ERR_FORMAT, "%s: %s needs content, start and stop", source, field);
    if (!(d->content = dup_str(content))) return oom(source);
    d->start = a->valueint;
    d->stop = b->valueint;
  } else {
    return mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: %s.type \"%s\" is not supported (supported: Sequence, ByteLevel, Metaspace, "
                         "Replace, ByteFallback, Fuse, Strip)", source, field, type);
  }
  return MPL_OK;
}

static bool tok_is_byte_or_unk(const struct mpl_tokenizer *tok, int32_t id) {
  if (id == tok->unk_id) return true;
  for (int b = 0; b < 256; b++)
    if (tok->byte_ids[b] == id) return true;
  return false;
}

/* Every pair of adjacent characters inside a vocab token. A BPE token spanning the
 * boundary between two characters contains them side by side, so where a word has
 * a pair not in this set no merge ever crosses: the word can be cut there and its
 * parts merged alone, with the same result (long words stay O(n log n) in caches). */
static enum mpl_status build_char_pairs(struct mpl_tokenizer *tok, const char *source) {
  size_t n_pairs = 0;
  for (int id = 0; id < tok->n_ids; id++)
    if (tok->id_str[id]) n_pairs += tok->id_len[id];
  if (mpl_tok__pairmap_init(&tok->char_pairs, n_pairs) != MPL_OK) return oom(source);
  for (int id = 0; id < tok->n_ids; id++) {
    const char *s = tok->id_str[id];
    if (!s) continue;
    uint32_t prev = 0, cp;
    bool have_prev = false;
    for (size_t i = 0; i < tok->id_len[id];) {
      int len = mpl_tok__utf8_next(s + i, tok->id_len[id] - i, &cp);
      if (len <= 0) { /* not UTF-8: no cut is safe next to it */
        tok->no_word_cuts = true;
        return MPL_OK;
      }
      if (have_prev) mpl_tok__pairmap_put(&tok->char_pairs, (int32_t)prev, (int32_t)cp, 0, 0);
      prev = cp;
      have_prev = true;
      i += (size_t)len;
    }
  }
  return MPL_OK;
}

/* ---- the model ---------------------------------------------------------------------- */

static enum mpl_status parse_model(struct mpl_tokenizer *tok, const cJSON *model, const cJSON *added,
                                   const char *source) {
  if (!cJSON_IsObject(model)) return mpl_error_set(MPL_ERR_FORMAT, "%s: \"model\" is missing", source);
  const char *type = get_str(model, "type");
  if (type && strcmp(type, "BPE") != 0)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (only BPE)", source,
                         type);
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab))
    return mpl_error_set(MPL_ERR_FORMAT, "%s: model.vocab is missing or not an object", source);
  if (!type && !cJSON_IsArray(merges))
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: model.type is missing and model.merges too: not a "
                         "BPE model", source);
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: model.dropout %g is not supported", source,
                         dropout->valuedouble);
  const char *cont = get_str(model, "continuing_subword_prefix");
  const char *eow = get_str(model, "end_of_word_suffix");
  if ((cont && cont[0]) || (eow && eow[0]))
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: model.%s is not supported", source,
                         cont && cont[0] ? "continuing_subword_prefix" : "end_of_word_suffix");
  tok->byte_fallback = get_bool(model, "byte_fallback", false);
  tok->fuse_unk = get_bool(model, "fuse_unk", false);
  tok->ignore_merges = get_bool(model, "ignore_merges", false);

  /* ids: the model's vocab and the added tokens share one id space */
  int max_id = -1, n_vocab = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, vocab) {
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e8)
      return mpl_error_set(MPL_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a valid id", source, it->string);
    if (it->valueint > max_id) max_id = it->valueint;
    n_vocab++;
  }
  if (cJSON_IsArray(added)) {
    cJSON_ArrayForEach(it, added) {
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
      if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 || !get_str(it, "content"))
        return mpl_error_set(MPL_ERR_FORMAT, "%s: added_tokens[%d] needs an id and a content", source,
                             tok->n_added);
      if (id->valueint > max_id) max_id = id->valueint;
      tok->n_added++;
    }
  }
  if (max_id < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: model.vocab is empty", source);
  tok->n_ids = max_id + 1;
  tok->id_str = calloc((size_t)tok->n_ids, sizeof *tok->id_str);
  tok->id_len = calloc((size_t)tok->n_ids, sizeof *tok->id_len);
  tok->id_special = calloc((size_t)tok->n_ids, sizeof *tok->id_special);
  if (!tok->id_str || !tok->id_len || !tok->id_special) return oom(source);
  enum mpl_status st = mpl_tok__strmap_init(&tok->vocab, (size_t)n_vocab);
  if (st != MPL_OK) return st;
  cJSON_ArrayForEach(it, vocab) {
    int id = it->valueint;
    if (tok->id_str[id])
      return mpl_error_set(MPL_ERR_FORMAT, "%s: model.vocab gives id %d to both \"%s\" and \"%s\"", source,
                           id, tok->id_str[id], it->string);
    if (!(tok->id_str[id] = dup_str(it->string))) return oom(source);
    tok->id_len[id] = (uint32_t)strlen(it->string);
    if ((st = mpl_tok__strmap_put(&tok->vocab, tok->id_str[id], tok->id_len[id], id)) != MPL_OK) return st;
  }
  const char *unk = get_str(model, "unk_token");
  tok->unk_id = unk ? mpl_tok__strmap_get(&tok->vocab, unk, strlen(unk)) : -1;
  if (unk && tok->unk_id < 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", source, unk);
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    tok->byte_ids[b] = mpl_tok__strmap_get(&tok->vocab, name, 6);
  }

  /* merges: "a b" strings (older files) or ["a", "b"] pairs */
  int n_merges = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
  if ((st = mpl_tok__pairmap_init(&tok->merges, (size_t)n_merges)) != MPL_OK) return st;
  struct tok_buf joined = {0};
  int rank = 0;
  cJSON_ArrayForEach(it, merges) {
    const char *a = NULL, *b = NULL;
    size_t a_len = 0, b_len = 0;
    if (cJSON_IsString(it)) {
      const char *sp = strchr(it->valuestring, ' ');
      if (sp && !strchr(sp + 1, ' ')) {
        a = it->valuestring;
        a_len = (size_t)(sp - a);
        b = sp + 1;
        b_len = strlen(b);
      }
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
      a = cJSON_GetArrayItem(it, 0)->valuestring;
      b = cJSON_GetArrayItem(it, 1)->valuestring;
      a_len = strlen(a);
      b_len = strlen(b);
    }
    if (!a) {
      free(joined.p);
      return mpl_error_set(MPL_ERR_FORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]",
                           source, rank);
    }
    int32_t ia = mpl_tok__strmap_get(&tok->vocab, a, a_len);
    int32_t ib = mpl_tok__strmap_get(&tok->vocab, b, b_len);
    joined.len = 0;
    if (mpl_tok__buf_put(&joined, a, a_len) != MPL_OK || mpl_tok__buf_put(&joined, b, b_len) != MPL_OK) {
      free(joined.p);
      return oom(source);
    }
    int32_t inew = mpl_tok__strmap_get(&tok->vocab, joined.p, joined.len);
    if (ia < 0 || ib < 0 || inew < 0) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\") uses a token not in "
                         "model.vocab", source, rank, (int)a_len, a, (int)b_len, b);
      free(joined.p);
      return st;
    }
    mpl_tok__pairmap_put(&tok->merges, ia, ib, rank, inew);
    /* a merge that makes or uses a byte-fallback or unk token can cross any
     * character boundary: words are then never cut (see char_pairs) */
    if (tok_is_byte_or_unk(tok, ia) || tok_is_byte_or_unk(tok, ib)) tok->no_word_cuts = true;
    rank++;
  }
  free(joined.p);
  return build_char_pairs(tok, source);
}

/* ---- added tokens ------------------------------------------------------------------- */

static int cmp_added(const void *x, const void *y) {
  const struct tok_added *a = *(const struct tok_added *const *)x, *b = *(const struct tok_added *const *)y;
  unsigned char fa = (unsigned char)a->match[0], fb = (unsigned char)b->match[0];
  if (fa != fb) return fa < fb ? -1 : 1;
  if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

static enum mpl_status build_matcher(struct tok_matcher *m, struct tok_added *added, int n_added,
                                     bool normalized, const char *source) {
  m->v = calloc((size_t)n_added + 1, sizeof *m->v);
  if (!m->v) return oom(source);
  for (int i = 0; i < n_added; i++)
    if (added[i].normalized == normalized && added[i].match_len > 0) m->v[m->n++] = &added[i];
  qsort(m->v, (size_t)m->n, sizeof *m->v, cmp_added);
  int k = 0;
  for (int b = 0; b <= 256; b++) {
    while (k < m->n && (unsigned char)m->v[k]->match[0] < b) k++;
    m->start[b] = k;
  }
  return MPL_OK;
}

static enum mpl_status parse_added(struct mpl_tokenizer *tok, const cJSON *added, const char *source) {
  if (!cJSON_IsArray(added)) return MPL_OK;
  tok->added = calloc((size_t)tok->n_added + 1, sizeof *tok->added);
  if (!tok->added) return oom(source);
  int i = 0;
  const cJSON *it;
  enum mpl_status st;
  cJSON_ArrayForEach(it, added) {
    struct tok_added *a = &tok->added[i++];
    a->id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
    const char *content = get_str(it, "content");
    a->special = get_bool(it, "special", false);
    a->lstrip = get_bool(it, "lstrip", false);
    a->rstrip = get_bool(it, "rstrip", false);
    a->single_word = get_bool(it, "single_word", false);
    a->normalized = get_bool(it, "normalized", !a->special);
    if (!(a->content = dup_str(content))) return oom(source);
    if (!tok->id_str[a->id]) {
      if (!(tok->id_str[a->id] = dup_str(content))) return oom(source);
      tok->id_len[a->id] = (uint32_t)strlen(content);
    }
    tok->id_special[a->id] = a->special;
    /* a normalized token is searched for in normalized text, so normalize it too */
    struct tok_buf b = {0};
    if (a->normalized && tok->normalizer)
      st = mpl_tok__normalize(tok->normalizer, content, strlen(content), &b);
    else
      st = mpl_tok__buf_put(&b, content, strlen(content));
    if (st != MPL_OK) return st;
    a->match = b.p;
    a->match_len = b.len;
  }
  if ((st = build_matcher(&tok->raw_matcher, tok->added, tok->n_added, false, source)) != MPL_OK) return st;
  return build_matcher(&tok->norm_matcher, tok->added, tok->n_added, true, source);
}

/* id of a token string: an added token first, then the vocab; -1 if unknown */
static int32_t token_id(const struct mpl_tokenizer *tok, const char *s) {
  for (int i = 0; i < tok->n_added; i++)
    if (strcmp(tok->added[i].content, s) == 0) return tok->added[i].id;
  return mpl_tok__strmap_get(&tok->vocab, s, strlen(s));
}

/* ---- post-processor -------------------------------------------------------------- */

static enum mpl_status push_id(int32_t **v, int *n, int32_t id, const char *source) {
  int32_t *p = realloc(*v, (size_t)(*n + 1) * sizeof **v);
  if (!p) return oom(source);
  p[(*n)++] = id;
  *v = p;
  return MPL_OK;
}

static enum mpl_status parse_template(struct mpl_tokenizer *tok, const cJSON *obj, const char *field,
                                      const char *source) {
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(obj, "single");
  const cJSON *specials = cJSON_GetObjectItemCaseSensitive(obj, "special_tokens");
  if (!cJSON_IsArray(single))
    return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.single is not an array", source, field);
  tok->n_before = tok->n_after = 0;
  bool seen_seq = false;
  int k = 0;
  const cJSON *piece;
  enum mpl_status st;
  cJSON_ArrayForEach(piece, single) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(piece, "Sequence");
    if (sq) {
      const char *which = get_str(sq, "id");
      if (seen_seq || !which || strcmp(which, "A") != 0)
        return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: %s.single[%d]: only one sequence $A is supported",
                             source, field, k);
      seen_seq = true;
    } else if (sp) {
      const char *name = get_str(sp, "id");
      const cJSON *entry = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
      const cJSON *ids = entry ? cJSON_GetObjectItemCaseSensitive(entry, "ids") : NULL;
      if (!cJSON_IsArray(ids))
        return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.special_tokens has no ids for \"%s\"", source, field,
                             name ? name : "?");
      const cJSON *id;
      cJSON_ArrayForEach(id, ids) {
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= tok->n_ids)
          return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.special_tokens[\"%s\"] has an id out of range",
                               source, field, name);
        if (seen_seq) st = push_id(&tok->tmpl_after, &tok->n_after, id->valueint, source);
        else st = push_id(&tok->tmpl_before, &tok->n_before, id->valueint, source);
        if (st != MPL_OK) return st;
      }
    } else {
      return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.single[%d] is neither SpecialToken nor Sequence", source,
                           field, k);
    }
    k++;
  }
  return MPL_OK;
}

/* [cls, sep] pairs of BertProcessing / RobertaProcessing: ["[CLS]", 101] */
static enum mpl_status get_pair_id(const cJSON *obj, const char *key, const char *field,
                                   const char *source, int32_t *id) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, key);
  const cJSON *v = cJSON_IsArray(p) ? cJSON_GetArrayItem(p, 1) : NULL;
  if (!cJSON_IsNumber(v) || v->valueint < 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: %s.%s is not [token, id]", source, field, key);
  *id = v->valueint;
  return MPL_OK;
}

static enum mpl_status parse_post(struct mpl_tokenizer *tok, const cJSON *obj, const char *field,
                                  const char *source) {
  if (!obj || cJSON_IsNull(obj)) return MPL_OK;
  const char *type;
  enum mpl_status st = stage_type(obj, field, source, &type);
  if (st != MPL_OK) return st;
  char sub[256];
  if (strcmp(type, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "processors"), *it;
    int k = 0;
    cJSON_ArrayForEach(it, list) {
      snprintf(sub, sizeof sub, "%s.processors[%d]", field, k++);
      if ((st = parse_post(tok, it, sub, source)) != MPL_OK) return st;
    }
    return MPL_OK;
  }
  if (strcmp(type, "ByteLevel") == 0) return MPL_OK; /* changes offsets only */
  if (strcmp(type, "TemplateProcessing") == 0) return parse_template(tok, obj, field, source);
  if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
    int32_t cls, sep;
    if ((st = get_pair_id(obj, "cls", field, source, &cls)) != MPL_OK) return st;
    if ((st = get_pair_id(obj, "sep", field, source, &sep)) != MPL_OK) return st;
    tok->n_before = tok->n_after = 0;
    if ((st = push_id(&tok->tmpl_before, &tok->n_before, cls, source)) != MPL_OK) return st;
    return push_id(&tok->tmpl_after, &tok->n_after, sep, source);
  }
  return mpl_error_set(MPL_ERR_UNSUPPORTED,
                       "%s: %s.type \"%s\" is not supported (supported: TemplateProcessing, ByteLevel, "
                       "Sequence, BertProcessing, RobertaProcessing)", source, field, type);
}

/* ---- tokenizer_config.json and generation_config.json ------------------------------ */

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static const char *config_token(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsObject(v)) return get_str(v, "content");
  return NULL;
}

static enum mpl_status add_eos(struct mpl_tokenizer *tok, int32_t id, const char *source) {
  for (int i = 0; i < tok->n_eos; i++)
    if (tok->eos_ids[i] == id) return MPL_OK;
  return push_id(&tok->eos_ids, &tok->n_eos, id, source);
}

static enum mpl_status parse_configs(struct mpl_tokenizer *tok, const char *config_json,
                                     const char *gen_json, const char *source) {
  enum mpl_status st = MPL_OK;
  cJSON *cfg = NULL, *gen = NULL;
  tok->bos_id = -1;
  if (config_json && !(cfg = cJSON_Parse(config_json))) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: tokenizer_config.json is not valid JSON", source);
    goto out;
  }
  if (gen_json && !(gen = cJSON_Parse(gen_json))) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: generation_config.json is not valid JSON", source);
    goto out;
  }
  const char *bos = cfg ? config_token(cfg, "bos_token") : NULL;
  const char *eos = cfg ? config_token(cfg, "eos_token") : NULL;
  int32_t bos_id = bos ? token_id(tok, bos) : -1, eos_id = eos ? token_id(tok, eos) : -1;
  if (bos && bos_id < 0) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: tokenizer_config.json: bos_token \"%s\" is not a token", source,
                       bos);
    goto out;
  }
  if (eos && eos_id < 0) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: tokenizer_config.json: eos_token \"%s\" is not a token", source,
                       eos);
    goto out;
  }
  tok->bos_id = bos_id;
  if (tok->bos_id < 0 && gen) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(gen, "bos_token_id");
    if (cJSON_IsNumber(b) && b->valueint >= 0 && b->valueint < tok->n_ids) tok->bos_id = b->valueint;
  }
  const cJSON *geos = gen ? cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id") : NULL;
  if (cJSON_IsNumber(geos) && geos->valueint >= 0 && geos->valueint < tok->n_ids)
    st = add_eos(tok, geos->valueint, source);
  else if (cJSON_IsArray(geos)) {
    const cJSON *it;
    cJSON_ArrayForEach(it, geos) {
      if (st == MPL_OK && cJSON_IsNumber(it) && it->valueint >= 0 && it->valueint < tok->n_ids)
        st = add_eos(tok, it->valueint, source);
    }
  }
  if (st == MPL_OK && eos_id >= 0) st = add_eos(tok, eos_id, source);
  if (st != MPL_OK || !cfg) goto out;
  /* add_bos_token / add_eos_token are not applied: transformers 5 keeps the
   * post-processor of tokenizer.json when it loads one (checked with 5.24) */
  /* transformers (v5) skips the clean-up for BPE tokenizers unless forced */
  tok->clean_up_spaces =
      get_bool(cfg, "clean_up_tokenization_spaces", false) &&
      get_bool(cfg, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", false);
out:
  cJSON_Delete(cfg);
  cJSON_Delete(gen);
  return st;
}

/* ---- transformers' LlamaTokenizer ------------------------------------------------ */

/* transformers 5 does not run the pipeline of tokenizer.json for a LlamaTokenizer
 * (tokenizer_class in tokenizer_config.json) that is not byte-level: it keeps the
 * vocab, merges, added tokens and post-processor, and builds the rest itself (no
 * normalizer; Metaspace prepending per add_prefix_space and legacy; byte fallback).
 * A LLaMA-2 file in the legacy Prepend/Replace form thus encodes like Metaspace. */
static bool is_llama_class(const cJSON *cfg, const char *tokenizer_json, bool *legacy,
                           bool *add_prefix_space) {
  const char *cls = cfg ? get_str(cfg, "tokenizer_class") : NULL;
  if (!cls || (strcmp(cls, "LlamaTokenizer") != 0 && strcmp(cls, "LlamaTokenizerFast") != 0)) return false;
  if (strstr(tokenizer_json, "\"ByteLevel\"")) return false;
  *legacy = get_bool(cfg, "legacy", false);
  *add_prefix_space = get_bool(cfg, "add_prefix_space", true);
  return true;
}

static enum mpl_status llama_pipeline(struct mpl_tokenizer *tok, bool legacy, bool add_prefix_space,
                                      const char *source) {
  char pre[160];
  snprintf(pre, sizeof pre,
           "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"%s\", "
           "\"split\": false}", add_prefix_space ? (legacy ? "always" : "first") : "never");
  char dec[320];
  snprintf(dec, sizeof dec,
           "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
           "\"\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}%s]}",
           add_prefix_space ? ", {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}" : "");
  cJSON *p = cJSON_Parse(pre), *d = cJSON_Parse(dec);
  enum mpl_status st = p && d ? MPL_OK : oom(source);
  if (st == MPL_OK) st = parse_pretok(p, "pre_tokenizer (LlamaTokenizer)", source, &tok->pre_tokenizer);
  if (st == MPL_OK) st = parse_decoder(d, "decoder (LlamaTokenizer)", source, &tok->decoder);
  tok->byte_fallback = tok->fuse_unk = true;
  cJSON_Delete(p);
  cJSON_Delete(d);
  return st;
}

/* ---- create / destroy ------------------------------------------------------------- */

static void bytes_table_once(void) { mpl_tok__bytes_table_init(); }

enum mpl_status mpl_tok_create(const char *tokenizer_json, const char *config_json,
                               const char *generation_config_json, const char *source,
                               struct mpl_tokenizer **out) {
  *out = NULL;
  if (!source) source = "tokenizer.json";
  pthread_once(&bytes_once, bytes_table_once);
  cJSON *root = tokenizer_json ? cJSON_Parse(tokenizer_json) : NULL;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    const char *at = cJSON_GetErrorPtr();
    return mpl_error_set(MPL_ERR_FORMAT, "%s: not valid JSON%s%.20s%s", source, at ? " near \"" : "",
                         at ? at : "", at ? "\"" : "");
  }
  struct mpl_tokenizer *tok = calloc(1, sizeof *tok);
  if (!tok) {
    cJSON_Delete(root);
    return oom(source);
  }
  enum mpl_status st = MPL_OK;
  if (!(tok->source = dup_str(source))) st = oom(source);
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
  bool legacy = false, add_prefix_space = true;
  bool llama = is_llama_class(cfg, tokenizer_json, &legacy, &add_prefix_space);
  cJSON_Delete(cfg);
  if (st == MPL_OK) st = parse_model(tok, cJSON_GetObjectItemCaseSensitive(root, "model"), added, source);
  if (st == MPL_OK && llama) st = llama_pipeline(tok, legacy, add_prefix_space, source);
  if (st == MPL_OK && !llama && norm && !cJSON_IsNull(norm))
    st = parse_normalizer(norm, "normalizer", source, &tok->normalizer);
  if (st == MPL_OK && !llama && pre && !cJSON_IsNull(pre))
    st = parse_pretok(pre, "pre_tokenizer", source, &tok->pre_tokenizer);
  if (st == MPL_OK && !llama && dec && !cJSON_IsNull(dec))
    st = parse_decoder(dec, "decoder", source, &tok->decoder);
  if (st == MPL_OK) st = parse_added(tok, added, source);
  if (st == MPL_OK)
    st = parse_post(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor", source);
  if (st == MPL_OK) st = parse_configs(tok, config_json, generation_config_json, source);
  cJSON_Delete(root);
  if (st != MPL_OK) {
    mpl_tok_destroy(tok);
    return st;
  }
  *out = tok;
  return MPL_OK;
}

void mpl_tok_destroy(struct mpl_tokenizer *tok) {
  if (!tok) return;
  for (int i = 0; i < tok->n_ids; i++) free(tok->id_str[i]);
  free(tok->id_str);
  free(tok->id_len);
  free(tok->id_special);
  mpl_tok__strmap_free(&tok->vocab);
  free(tok->merges.keys);
  free(tok->merges.ranks);
  free(tok->merges.new_ids);
  free(tok->char_pairs.keys);
  free(tok->char_pairs.ranks);
  free(tok->char_pairs.new_ids);
  for (int i = 0; i < tok->n_added; i++) {
    free(tok->added[i].content);
    free(tok->added[i].match);
  }
  free(tok->added);
  free(tok->raw_matcher.v);
  free(tok->norm_matcher.v);
  free_normalizer(tok->normalizer);
  free_pretok(tok->pre_tokenizer);
  free_decoder(tok->decoder);
  free(tok->tmpl_before);
  free(tok->tmpl_after);
  free(tok->eos_ids);
  free(tok->source);
  free(tok);
}

int mpl_tok_vocab_size(const struct mpl_tokenizer *tok) { return tok->n_ids; }
int mpl_tok_bos_id(const struct mpl_tokenizer *tok) { return tok->bos_id; }

bool mpl_tok_is_eos(const struct mpl_tokenizer *tok, int32_t id) {
  for (int i = 0; i < tok->n_eos; i++)
    if (tok->eos_ids[i] == id) return true;
  return false;
}

bool mpl_tok_is_special(const struct mpl_tokenizer *tok, int32_t id) {
  return id >= 0 && id < tok->n_ids && tok->id_special[id];
}
