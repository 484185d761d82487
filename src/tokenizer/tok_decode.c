/* Decoding: ids to token strings, the decoder chain of tokenizer.json (each stage
 * maps a list of strings to a list, as tokenizers' decode_chain does), then the
 * join; and the streaming decoder (tokenizers' DecodeStream: decode a short window
 * of ids and emit what grew, holding back text that ends in an incomplete
 * character). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct slist {
  struct tok_buf *v;
  int n, cap;
};

static void slist_free(struct slist *l) {
  for (int i = 0; i < l->cap; i++) free(l->v[i].p);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* appends an empty string and returns it */
static struct tok_buf *slist_add(struct slist *l) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 16;
    struct tok_buf *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return NULL;
    memset(v + l->cap, 0, (size_t)(cap - l->cap) * sizeof *v);
    l->v = v;
    l->cap = cap;
  }
  struct tok_buf *b = &l->v[l->n++];
  b->len = 0;
  if (mpl_tok__buf_put(b, "", 0) != MPL_OK) return NULL;
  return b;
}

static enum mpl_status nomem(void) { return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory while decoding"); }

static void slist_swap(struct slist *a, struct slist *b) {
  struct slist t = *a;
  *a = *b;
  *b = t;
}

/* the <0xNN> byte of a ByteFallback token, -1 if it is not one */
static int fallback_byte(const struct tok_buf *t) {
  if (t->len != 6 || memcmp(t->p, "<0x", 3) != 0 || t->p[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; k++) {
    char c = t->p[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static bool valid_utf8(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int len = mpl_tok__utf8_next(s + i, n - i, &cp);
    if (len <= 0) return false;
    i += (size_t)len;
  }
  return true;
}

static enum mpl_status flush_bytes(struct slist *out, struct tok_buf *bytes) {
  if (bytes->len == 0) return MPL_OK;
  if (valid_utf8(bytes->p, bytes->len)) {
    struct tok_buf *b = slist_add(out);
    if (!b || mpl_tok__buf_put(b, bytes->p, bytes->len) != MPL_OK) return nomem();
  } else {
    for (size_t i = 0; i < bytes->len; i++) {
      struct tok_buf *b = slist_add(out);
      if (!b || mpl_tok__buf_put(b, "\xEF\xBF\xBD", 3) != MPL_OK) return nomem();
    }
  }
  bytes->len = 0;
  return MPL_OK;
}

static enum mpl_status decode_chain(const struct tok_decoder *d, struct slist *l, struct slist *spare) {
  enum mpl_status st = MPL_OK;
  spare->n = 0;
  switch (d->type) {
  case TOK_DEC_SEQUENCE:
    for (int i = 0; i < d->n_children && st == MPL_OK; i++) st = decode_chain(d->children[i], l, spare);
    return st;
  case TOK_DEC_BYTELEVEL: {
    /* tokens whose every character is in the byte table become those bytes; others
     * (added tokens outside the alphabet) stay as they are */
    struct tok_buf raw = {0};
    for (int i = 0; i < l->n && st == MPL_OK; i++) {
      const struct tok_buf *t = &l->v[i];
      size_t start = raw.len;
      bool all = true;
      for (size_t k = 0; k < t->len && st == MPL_OK;) {
        uint32_t cp;
        int len = mpl_tok__utf8_next(t->p + k, t->len - k, &cp);
        int b = len > 0 ? mpl_tok__cp_to_byte(cp) : -1;
        if (b < 0) {
          all = false;
          break;
        }
        unsigned char c = (unsigned char)b;
        st = mpl_tok__buf_put(&raw, &c, 1);
        k += (size_t)len;
      }
      if (!all) {
        raw.len = start;
        st = mpl_tok__buf_put(&raw, t->p, t->len);
      }
    }
    struct tok_buf *b = st == MPL_OK ? slist_add(spare) : NULL;
    if (st == MPL_OK && !b) st = nomem();
    if (st == MPL_OK) st = mpl_tok__utf8_lossy(b, raw.p ? raw.p : "", raw.len);
    free(raw.p);
    break;
  }
  case TOK_DEC_METASPACE:
    for (int i = 0; i < l->n && st == MPL_OK; i++) {
      struct tok_buf *b = slist_add(spare);
      if (!b) return nomem();
      const struct tok_buf *t = &l->v[i];
      for (size_t k = 0; k < t->len && st == MPL_OK;) {
        uint32_t cp;
        int len = mpl_tok__utf8_next(t->p + k, t->len - k, &cp);
        if (len <= 0) len = 1, cp = 0xFFFFFFFFu;
        if (cp == d->replacement_cp) {
          /* tokenizers drops the replacement in the first token unless "never" */
          if (!(i == 0 && d->prepend_scheme != TOK_PREPEND_NEVER)) st = mpl_tok__buf_put(b, " ", 1);
        } else {
          st = mpl_tok__buf_put(b, t->p + k, (size_t)len);
        }
        k += (size_t)len;
      }
    }
    break;
  case TOK_DEC_REPLACE: {
    size_t plen = strlen(d->pattern), clen = strlen(d->content);
    for (int i = 0; i < l->n && st == MPL_OK; i++) {
      struct tok_buf *b = slist_add(spare);
      if (!b) return nomem();
      const struct tok_buf *t = &l->v[i];
      size_t pos = 0;
      while (plen > 0 && pos < t->len && st == MPL_OK) {
        const char *hit = memmem(t->p + pos, t->len - pos, d->pattern, plen);
        if (!hit) break;
        st = mpl_tok__buf_put(b, t->p + pos, (size_t)(hit - (t->p + pos)));
        if (st == MPL_OK) st = mpl_tok__buf_put(b, d->content, clen);
        pos = (size_t)(hit - t->p) + plen;
      }
      if (st == MPL_OK) st = mpl_tok__buf_put(b, t->p + pos, t->len - pos);
    }
    break;
  }
  case TOK_DEC_BYTEFALLBACK: {
    struct tok_buf bytes = {0};
    for (int i = 0; i < l->n && st == MPL_OK; i++) {
      int byte = fallback_byte(&l->v[i]);
      if (byte >= 0) {
        unsigned char c = (unsigned char)byte;
        st = mpl_tok__buf_put(&bytes, &c, 1);
        continue;
      }
      st = flush_bytes(spare, &bytes);
      struct tok_buf *b = st == MPL_OK ? slist_add(spare) : NULL;
      if (st == MPL_OK && (!b || mpl_tok__buf_put(b, l->v[i].p, l->v[i].len) != MPL_OK)) st = nomem();
    }
    if (st == MPL_OK) st = flush_bytes(spare, &bytes);
    free(bytes.p);
    break;
  }
  case TOK_DEC_FUSE: {
    struct tok_buf *b = slist_add(spare);
    if (!b) return nomem();
    for (int i = 0; i < l->n && st == MPL_OK; i++) st = mpl_tok__buf_put(b, l->v[i].p, l->v[i].len);
    break;
  }
  case TOK_DEC_STRIP: {
    uint32_t want;
    int wlen = mpl_tok__utf8_next(d->content, strlen(d->content), &want);
    for (int i = 0; i < l->n && st == MPL_OK; i++) {
      struct tok_buf *b = slist_add(spare);
      if (!b) return nomem();
      const struct tok_buf *t = &l->v[i];
      size_t a = 0, z = t->len;
      uint32_t cp;
      for (int k = 0; wlen > 0 && k < d->start && a < z; k++) {
        int len = mpl_tok__utf8_next(t->p + a, z - a, &cp);
        if (len <= 0 || cp != want) break;
        a += (size_t)len;
      }
      for (int k = 0; wlen > 0 && k < d->stop && z >= a + (size_t)wlen; k++) {
        if (memcmp(t->p + z - wlen, d->content, (size_t)wlen) != 0) break;
        z -= (size_t)wlen;
      }
      st = mpl_tok__buf_put(b, t->p + a, z - a);
    }
    break;
  }
  }
  if (st == MPL_OK) slist_swap(l, spare);
  return st;
}

/* ids to text into out (appended), the whole decode pipeline without clean-up */
static enum mpl_status decode_ids(const struct mpl_tokenizer *tok, const int32_t *ids, int n_ids,
                                  bool skip_special, struct tok_buf *out) {
  struct slist l = {0}, spare = {0};
  enum mpl_status st = MPL_OK;
  for (int i = 0; i < n_ids; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= tok->n_ids) {
      st = mpl_error_set(MPL_ERR_RANGE, "tokenizer (%s): id %d is out of the vocabulary [0, %d)", tok->source,
                         (int)id, tok->n_ids);
      goto out;
    }
    if (!tok->id_str[id] || (skip_special && tok->id_special[id])) continue;
    struct tok_buf *b = slist_add(&l);
    if (!b || mpl_tok__buf_put(b, tok->id_str[id], tok->id_len[id]) != MPL_OK) {
      st = nomem();
      goto out;
    }
  }
  if (tok->decoder) {
    if ((st = decode_chain(tok->decoder, &l, &spare)) != MPL_OK) goto out;
    for (int i = 0; i < l.n && st == MPL_OK; i++) st = mpl_tok__buf_put(out, l.v[i].p, l.v[i].len);
  } else {
    for (int i = 0; i < l.n && st == MPL_OK; i++) {
      if (i > 0) st = mpl_tok__buf_put(out, " ", 1);
      if (st == MPL_OK) st = mpl_tok__buf_put(out, l.v[i].p, l.v[i].len);
    }
  }
  if (st == MPL_OK) st = mpl_tok__buf_put(out, "", 0);
out:
  slist_free(&l);
  slist_free(&spare);
  return st;
}

/* transformers' clean_up_tokenization: " ." -> "." and friends, in this order */
static void clean_up_spaces(char *s) {
  static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
  static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
  for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
    size_t fl = strlen(from[r]), tl = strlen(to[r]);
    char *w = s, *p = s;
    while (*p) {
      if (strncmp(p, from[r], fl) == 0) {
        memmove(w, to[r], tl);
        w += tl;
        p += fl;
      } else {
        *w++ = *p++;
      }
    }
    *w = '\0';
  }
}

enum mpl_status mpl_tok_decode(const struct mpl_tokenizer *tok, const int32_t *ids, int n_ids,
                               bool skip_special, char **text) {
  struct tok_buf out = {0};
  *text = NULL;
  enum mpl_status st = decode_ids(tok, ids, n_ids, skip_special, &out);
  if (st == MPL_OK && !out.p) st = mpl_tok__buf_put(&out, "", 0);
  if (st != MPL_OK) {
    free(out.p);
    return st;
  }
  if (tok->clean_up_spaces) clean_up_spaces(out.p);
  *text = out.p;
  return MPL_OK;
}

/* ---- streaming ------------------------------------------------------------------------ */

struct mpl_tok_stream {
  const struct mpl_tokenizer *tok;
  int32_t *ids; /* the window: ids since the last emitted prefix */
  int n_ids, cap;
  int prefix_index;
  struct tok_buf prefix, cur, out;
};

enum mpl_status mpl_tok_stream_create(const struct mpl_tokenizer *tok, struct mpl_tok_stream **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return nomem();
  (*out)->tok = tok;
  return MPL_OK;
}

void mpl_tok_stream_destroy(struct mpl_tok_stream *s) {
  if (!s) return;
  free(s->ids);
  free(s->prefix.p);
  free(s->cur.p);
  free(s->out.p);
  free(s);
}

static bool ends_with_replacement(const struct tok_buf *b) {
  return b->len >= 3 && memcmp(b->p + b->len - 3, "\xEF\xBF\xBD", 3) == 0;
}

static enum mpl_status set_out(struct mpl_tok_stream *s, const char *p, size_t n, const char **text) {
  s->out.len = 0;
  enum mpl_status st = mpl_tok__buf_put(&s->out, p, n);
  *text = st == MPL_OK ? s->out.p : "";
  return st;
}

enum mpl_status mpl_tok_stream_push(struct mpl_tok_stream *s, int32_t id, const char **text) {
  const struct mpl_tokenizer *tok = s->tok;
  *text = "";
  enum mpl_status st;
  if (id < 0 || id >= tok->n_ids)
    return mpl_error_set(MPL_ERR_RANGE, "tokenizer (%s): id %d is out of the vocabulary [0, %d)", tok->source,
                         (int)id, tok->n_ids);
  if (s->prefix.len == 0 && s->n_ids > 0) {
    s->cur.len = 0;
    if ((st = decode_ids(tok, s->ids, s->n_ids, true, &s->cur)) != MPL_OK) return st;
    if (!ends_with_replacement(&s->cur)) {
      s->prefix.len = 0;
      if ((st = mpl_tok__buf_put(&s->prefix, s->cur.p, s->cur.len)) != MPL_OK) return st;
      s->prefix_index = s->n_ids;
    }
  }
  if (s->n_ids == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    int32_t *v = realloc(s->ids, (size_t)cap * sizeof *v);
    if (!v) return nomem();
    s->ids = v;
    s->cap = cap;
  }
  s->ids[s->n_ids++] = id;
  s->cur.len = 0;
  if ((st = decode_ids(tok, s->ids, s->n_ids, true, &s->cur)) != MPL_OK) return st;
  if (s->cur.len <= s->prefix.len || ends_with_replacement(&s->cur)) return set_out(s, "", 0, text);
  if (s->prefix.len > 0 && memcmp(s->cur.p, s->prefix.p, s->prefix.len) != 0)
    return mpl_error_set(MPL_ERR_FORMAT, "tokenizer (%s): streaming decode: the text of the window no longer "
                         "starts with what was already emitted (id %d)", tok->source, (int)id);
  if ((st = set_out(s, s->cur.p + s->prefix.len, s->cur.len - s->prefix.len, text)) != MPL_OK) return st;
  int new_prefix_index = s->n_ids - s->prefix_index;
  memmove(s->ids, s->ids + s->prefix_index, (size_t)(s->n_ids - s->prefix_index) * sizeof *s->ids);
  s->n_ids -= s->prefix_index;
  s->prefix.len = 0;
  if ((st = decode_ids(tok, s->ids, s->n_ids, true, &s->prefix)) != MPL_OK) return st;
  s->prefix_index = new_prefix_index;
  return MPL_OK;
}

enum mpl_status mpl_tok_stream_flush(struct mpl_tok_stream *s, const char **text) {
  *text = "";
  s->cur.len = 0;
  enum mpl_status st = decode_ids(s->tok, s->ids, s->n_ids, true, &s->cur);
  if (st != MPL_OK) return st;
  if (s->cur.len > s->prefix.len && (s->prefix.len == 0 || memcmp(s->cur.p, s->prefix.p, s->prefix.len) == 0))
    st = set_out(s, s->cur.p + s->prefix.len, s->cur.len - s->prefix.len, text);
  else
    st = set_out(s, "", 0, text);
  s->n_ids = 0;
  s->prefix_index = 0;
  s->prefix.len = 0;
  return st;
}
