/* Encoding, stage by stage as tokenizers' Tokenizer::encode does it: split out
 * added tokens (raw ones on the text, normalized ones on the normalized pieces),
 * pre-tokenize the rest into pieces, BPE each piece (merge ranks from a hash map,
 * candidate merges in a heap: O(n log n) per piece), then the post-processor. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

/* A piece of text at [off, off + len) of the current buffer, or an added token. */
struct piece {
  size_t off, len;
  int32_t id;     /* >= 0: an added token, already an id */
  bool at_origin; /* starts at offset 0 of the original text (Metaspace "first") */
};

struct plist {
  struct piece *v;
  int n, cap;
};

/* Scratch of one encode call: two buffers and piece lists that stages swap. */
struct enc {
  const struct mpl_tokenizer *tok;
  struct tok_buf buf[2];
  struct plist list[2];
  int cur; /* buf[cur]/list[cur] hold the current pieces */
  pcre2_match_data *md;
  struct tok_buf tmp;
  /* BPE scratch, [cap] each */
  int32_t *sym_id, *sym_prev, *sym_next;
  uint32_t *sym_len;
  struct heap_item {
    int32_t rank, pos, new_id;
  } * heap;
  size_t sym_cap, heap_cap;
  /* the output */
  int32_t *ids;
  int n_ids, ids_cap;
};

static enum mpl_status push_piece(struct plist *l, size_t off, size_t len, int32_t id, bool at_origin) {
  if (id < 0 && len == 0) return MPL_OK; /* empty pieces vanish, as in tokenizers */
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    struct piece *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for %d pieces", cap);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (struct piece){off, len, id, at_origin};
  return MPL_OK;
}

/* appends text as a new piece of the next buffer */
static enum mpl_status emit(struct enc *e, const char *s, size_t n, bool at_origin) {
  struct tok_buf *b = &e->buf[!e->cur];
  size_t off = b->len;
  enum mpl_status st = mpl_tok__buf_put(b, s, n);
  return st == MPL_OK ? push_piece(&e->list[!e->cur], off, n, -1, at_origin) : st;
}

static enum mpl_status emit_token(struct enc *e, int32_t id) {
  return push_piece(&e->list[!e->cur], 0, 0, id, false);
}

/* makes the next buffer current and empties the other */
static void swap(struct enc *e) {
  e->cur = !e->cur;
  e->buf[!e->cur].len = 0;
  e->list[!e->cur].n = 0;
}

static const char *piece_text(const struct enc *e, const struct piece *p) { return e->buf[e->cur].p + p->off; }

static enum mpl_status push_id(struct enc *e, int32_t id) {
  if (e->n_ids == e->ids_cap) {
    int cap = e->ids_cap ? 2 * e->ids_cap : 256;
    int32_t *v = realloc(e->ids, (size_t)cap * sizeof *v);
    if (!v) return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for %d ids", cap);
    e->ids = v;
    e->ids_cap = cap;
  }
  e->ids[e->n_ids++] = id;
  return MPL_OK;
}

/* ---- Unicode classes as Rust's char methods define them ---------------------------- */

static bool is_rust_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

/* a word character for single_word added tokens (regex \w: letters, marks, digits,
 * connector punctuation) */
static bool is_word_char(uint32_t c) {
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
    return true;
  default:
    return false;
  }
}

/* the code point ending at s[i) (i > 0), and where it starts */
static uint32_t prev_cp(const char *s, size_t i, size_t *start) {
  size_t k = i - 1;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
  uint32_t cp = 0;
  if (mpl_tok__utf8_next(s + k, i - k, &cp) <= 0) cp = 0xFFFD;
  *start = k;
  return cp;
}

/* ---- added tokens: leftmost-longest matches, with lstrip/rstrip/single_word ------- */

static enum mpl_status split_added(struct enc *e, const struct tok_matcher *m, const char *s, size_t n,
                                   bool at_origin) {
  size_t start_offset = 0, i = 0;
  enum mpl_status st = MPL_OK;
  if (m->n == 0) return emit(e, s, n, at_origin);
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    const struct tok_added *best = NULL;
    for (int k = m->start[c]; k < m->start[c + 1]; k++) {
      const struct tok_added *a = m->v[k];
      if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) {
        best = a; /* sorted longest first */
        break;
      }
    }
    if (!best) {
      i++;
      continue;
    }
    size_t start = i, stop = i + best->match_len;
    i = stop;
    if (best->single_word) {
      size_t k;
      uint32_t cp;
      bool left_ok = start == 0 || !is_word_char(prev_cp(s, start, &k));
      bool right_ok = stop == n || mpl_tok__utf8_next(s + stop, n - stop, &cp) <= 0 || !is_word_char(cp);
      if (!left_ok || !right_ok) continue;
    }
    if (best->lstrip) {
      size_t k;
      while (start > start_offset && is_rust_whitespace(prev_cp(s, start, &k))) start = k;
    }
    if (best->rstrip) {
      uint32_t cp;
      int len;
      while (stop < n && (len = mpl_tok__utf8_next(s + stop, n - stop, &cp)) > 0 && is_rust_whitespace(cp))
        stop += (size_t)len;
      i = stop;
    }
    if (start_offset < start) st = emit(e, s + start_offset, start - start_offset, at_origin && start_offset == 0);
    if (st == MPL_OK) st = emit_token(e, best->id);
    if (st != MPL_OK) return st;
    start_offset = stop;
  }
  if (start_offset < n) st = emit(e, s + start_offset, n - start_offset, at_origin && start_offset == 0);
  return st;
}

/* ---- pre-tokenizers --------------------------------------------------------------- */

struct seg {
  size_t a, b;
  bool match;
};

struct segs {
  struct seg *v;
  int n, cap;
};

static enum mpl_status seg_push(struct segs *s, size_t a, size_t b, bool match) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    struct seg *v = realloc(s->v, (size_t)cap * sizeof *v);
    if (!v) return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for %d splits", cap);
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (struct seg){a, b, match};
  return MPL_OK;
}

/* the matches of re in s[0..n) and the gaps between them, in order */
static enum mpl_status find_segments(struct enc *e, const struct tok_regex *re, const char *s, size_t n,
                                     struct segs *out) {
  out->n = 0;
  size_t prev = 0, at = 0;
  enum mpl_status st = MPL_OK;
  while (at < n) {
    int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, e->md, NULL)
                     : pcre2_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, e->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[120];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return mpl_error_set(MPL_ERR_ARG, "tokenizer: pre-tokenizer regex failed: %s", (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    size_t a = ov[0], b = ov[1];
    if (b == a) { /* an empty match splits nothing: step over one character */
      at = a + 1;
      while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
      continue;
    }
    if (prev < a) st = seg_push(out, prev, a, false);
    if (st == MPL_OK) st = seg_push(out, a, b, true);
    if (st != MPL_OK) return st;
    prev = at = b;
  }
  if (prev < n) st = seg_push(out, prev, n, false);
  return st;
}

/* applies a split behavior (tokenizers' SplitDelimiterBehavior) to the segments */
static enum mpl_status emit_segments(struct enc *e, const char *s, struct segs *sg,
                                     enum tok_split_behavior behavior, bool invert, bool at_origin) {
  if (invert)
    for (int i = 0; i < sg->n; i++) sg->v[i].match = !sg->v[i].match;
  int n = 0;
  struct seg *v = sg->v;
  switch (behavior) {
  case TOK_SPLIT_ISOLATED:
    n = sg->n;
    break;
  case TOK_SPLIT_REMOVED:
    for (int i = 0; i < sg->n; i++)
      if (!v[i].match) v[n++] = v[i];
    break;
  case TOK_SPLIT_MERGED_PREV: {
    bool prev_match = false;
    for (int i = 0; i < sg->n; i++) {
      struct seg cur = v[i];
      if (cur.match && !prev_match && n > 0) v[n - 1].b = cur.b;
      else v[n++] = cur;
      prev_match = cur.match;
    }
    break;
  }
  case TOK_SPLIT_MERGED_NEXT: {
    /* folded from the end; the kept segments end up in v[w..sg->n) */
    bool prev_match = false;
    int w = sg->n;
    for (int i = sg->n - 1; i >= 0; i--) {
      struct seg cur = v[i];
      if (cur.match && !prev_match && w < sg->n) v[w].a = cur.a;
      else v[--w] = cur;
      prev_match = cur.match;
    }
    memmove(v, v + w, (size_t)(sg->n - w) * sizeof *v);
    n = sg->n - w;
    break;
  }
  case TOK_SPLIT_CONTIGUOUS: {
    bool prev_match = false;
    for (int i = 0; i < sg->n; i++) {
      struct seg cur = v[i];
      if (cur.match == prev_match && n > 0) v[n - 1].b = cur.b;
      else v[n++] = cur;
      prev_match = cur.match;
    }
    break;
  }
  }
  for (int i = 0; i < n; i++) {
    enum mpl_status st = emit(e, s + v[i].a, v[i].b - v[i].a, at_origin && v[i].a == 0);
    if (st != MPL_OK) return st;
  }
  return MPL_OK;
}

/* GPT-2's byte-level alphabet: each byte becomes one printable code point */
static enum mpl_status emit_bytes_mapped(struct enc *e, const char *s, size_t n, bool at_origin) {
  struct tok_buf *t = &e->tmp;
  t->len = 0;
  enum mpl_status st = MPL_OK;
  for (size_t i = 0; i < n && st == MPL_OK; i++)
    st = mpl_tok__buf_put_cp(t, mpl_tok__byte_to_cp[(unsigned char)s[i]]);
  return st == MPL_OK ? emit(e, t->p, t->len, at_origin) : st;
}

static enum mpl_status pretok_piece(struct enc *e, const struct tok_pretok *pt, const char *s, size_t n,
                                    bool at_origin, struct segs *sg) {
  enum mpl_status st = MPL_OK;
  switch (pt->type) {
  case TOK_PRE_SPLIT:
    st = find_segments(e, &pt->re, s, n, sg);
    return st == MPL_OK ? emit_segments(e, s, sg, pt->behavior, pt->invert, at_origin) : st;
  case TOK_PRE_BYTELEVEL: {
    struct tok_buf own = {0};
    if (pt->add_prefix_space && (n == 0 || s[0] != ' ')) {
      st = mpl_tok__buf_put(&own, " ", 1);
      if (st == MPL_OK) st = mpl_tok__buf_put(&own, s, n);
      if (st != MPL_OK) goto out_bl;
      s = own.p;
      n = own.len;
    }
    if (!pt->use_regex) {
      st = emit_bytes_mapped(e, s, n, at_origin);
      goto out_bl;
    }
    if ((st = find_segments(e, &pt->re, s, n, sg)) != MPL_OK) goto out_bl;
    for (int i = 0; i < sg->n && st == MPL_OK; i++)
      st = emit_bytes_mapped(e, s + sg->v[i].a, sg->v[i].b - sg->v[i].a, at_origin && sg->v[i].a == 0);
  out_bl:
    free(own.p);
    return st;
  }
  case TOK_PRE_METASPACE: {
    /* spaces become the replacement; a replacement is prepended per prepend_scheme */
    struct tok_buf *t = &e->tmp;
    t->len = 0;
    size_t rlen = strlen(pt->replacement);
    bool starts_with_repl;
    for (size_t i = 0; i < n && st == MPL_OK; i++)
      st = s[i] == ' ' ? mpl_tok__buf_put(t, pt->replacement, rlen) : mpl_tok__buf_put(t, s + i, 1);
    if (st != MPL_OK) return st;
    starts_with_repl = t->len >= rlen && memcmp(t->p, pt->replacement, rlen) == 0;
    struct tok_buf own = {0};
    const char *w = t->p ? t->p : "";
    size_t wn = t->len;
    if (!starts_with_repl && (pt->prepend_scheme == TOK_PREPEND_ALWAYS ||
                              (pt->prepend_scheme == TOK_PREPEND_FIRST && at_origin))) {
      st = mpl_tok__buf_put(&own, pt->replacement, rlen);
      if (st == MPL_OK) st = mpl_tok__buf_put(&own, w, wn);
      w = own.p;
      wn = own.len;
    }
    if (st == MPL_OK && !pt->split) st = emit(e, w, wn, at_origin);
    else if (st == MPL_OK) {
      /* split on the replacement, each merged with what follows */
      sg->n = 0;
      size_t prev = 0;
      for (size_t i = 0; i + rlen <= wn && st == MPL_OK;) {
        if (memcmp(w + i, pt->replacement, rlen) == 0) {
          if (prev < i) st = seg_push(sg, prev, i, false);
          if (st == MPL_OK) st = seg_push(sg, i, i + rlen, true);
          i += rlen;
          prev = i;
        } else {
          i++;
        }
      }
      if (st == MPL_OK && prev < wn) st = seg_push(sg, prev, wn, false);
      if (st == MPL_OK) st = emit_segments(e, w, sg, TOK_SPLIT_MERGED_NEXT, false, at_origin);
    }
    free(own.p);
    return st;
  }
  case TOK_PRE_SEQUENCE:
    break; /* handled by pretokenize */
  }
  return st;
}

/* runs a pre-tokenizer over every text piece of the current list */
static enum mpl_status pretokenize(struct enc *e, const struct tok_pretok *pt, struct segs *sg) {
  if (pt->type == TOK_PRE_SEQUENCE) {
    for (int i = 0; i < pt->n_children; i++) {
      enum mpl_status st = pretokenize(e, pt->children[i], sg);
      if (st != MPL_OK) return st;
    }
    return MPL_OK;
  }
  const struct plist *l = &e->list[e->cur];
  for (int i = 0; i < l->n; i++) {
    const struct piece *p = &l->v[i];
    enum mpl_status st = p->id >= 0 ? emit_token(e, p->id)
                                    : pretok_piece(e, pt, piece_text(e, p), p->len, p->at_origin, sg);
    if (st != MPL_OK) return st;
  }
  swap(e);
  return MPL_OK;
}

/* ---- BPE ------------------------------------------------------------------------------ */

static inline bool merge_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank,
                             int32_t *new_id) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  uint64_t h = key;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  size_t mask = m->cap - 1, i = h & mask;
  while (m->keys[i] != UINT64_MAX) {
    if (m->keys[i] == key) {
      *rank = m->ranks[i];
      *new_id = m->new_ids[i];
      return true;
    }
    i = (i + 1) & mask;
  }
  return false;
}

static inline bool heap_less(const struct heap_item *x, const struct heap_item *y) {
  return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(struct enc *e, size_t *n, struct heap_item it) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&it, &e->heap[parent])) break;
    e->heap[i] = e->heap[parent];
    i = parent;
  }
  e->heap[i] = it;
}

static struct heap_item heap_pop(struct enc *e, size_t *n) {
  struct heap_item top = e->heap[0], last = e->heap[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && heap_less(&e->heap[c + 1], &e->heap[c])) c++;
    if (!heap_less(&e->heap[c], &last)) break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (*n > 0) e->heap[i] = last;
  return top;
}

static enum mpl_status bpe_reserve(struct enc *e, size_t n) {
  if (n <= e->sym_cap) return MPL_OK;
  size_t cap = e->sym_cap ? e->sym_cap : 256;
  while (cap < n) cap *= 2;
  free(e->sym_id);
  free(e->sym_prev);
  free(e->sym_next);
  free(e->sym_len);
  free(e->heap);
  e->sym_id = malloc(cap * sizeof *e->sym_id);
  e->sym_prev = malloc(cap * sizeof *e->sym_prev);
  e->sym_next = malloc(cap * sizeof *e->sym_next);
  e->sym_len = malloc(cap * sizeof *e->sym_len);
  /* each merge adds at most two candidates: n initial + 2n */
  e->heap_cap = 3 * cap;
  e->heap = malloc(e->heap_cap * sizeof *e->heap);
  e->sym_cap = cap;
  if (!e->sym_id || !e->sym_prev || !e->sym_next || !e->sym_len || !e->heap) {
    e->sym_cap = 0;
    return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for a word of %zu bytes", n);
  }
  return MPL_OK;
}

static void push_candidate(struct enc *e, size_t *n_heap, int32_t pos) {
  int32_t nx = e->sym_next[pos], rank, new_id;
  if (nx >= 0 && merge_get(&e->tok->merges, e->sym_id[pos], e->sym_id[nx], &rank, &new_id))
    heap_push(e, n_heap, (struct heap_item){rank, pos, new_id});
}

/* BPE of one word (or of a part no merge crosses) */
static enum mpl_status bpe_merge(struct enc *e, const char *s, size_t n) {
  const struct mpl_tokenizer *tok = e->tok;
  /* bytes >= symbols >= characters: n bounds every array */
  enum mpl_status st = bpe_reserve(e, n + 1);
  if (st != MPL_OK) return st;
  int32_t n_sym = 0;
  bool pending_unk = false;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int len = mpl_tok__utf8_next(s + i, n - i, &cp);
    if (len <= 0) len = 1; /* not reached: the text was checked */
    int32_t id = mpl_tok__strmap_get(&tok->vocab, s + i, (size_t)len);
    if (id >= 0) {
      e->sym_id[n_sym] = id;
      e->sym_len[n_sym++] = (uint32_t)len;
      pending_unk = false;
    } else {
      bool done = false;
      if (tok->byte_fallback) {
        done = true;
        for (int k = 0; k < len; k++) done = done && tok->byte_ids[(unsigned char)s[i + k]] >= 0;
        for (int k = 0; done && k < len; k++) {
          e->sym_id[n_sym] = tok->byte_ids[(unsigned char)s[i + k]];
          e->sym_len[n_sym++] = 1;
        }
        if (done) pending_unk = false;
      }
      if (!done && tok->unk_id >= 0) {
        if (tok->fuse_unk && pending_unk) {
          e->sym_len[n_sym - 1] += (uint32_t)len;
        } else {
          e->sym_id[n_sym] = tok->unk_id;
          e->sym_len[n_sym++] = (uint32_t)len;
        }
        pending_unk = true;
      } /* no unk token: the character is dropped, as tokenizers does */
    }
    i += (size_t)len;
  }
  for (int32_t i = 0; i < n_sym; i++) {
    e->sym_prev[i] = i - 1;
    e->sym_next[i] = i + 1 < n_sym ? i + 1 : -1;
  }
  size_t n_heap = 0;
  for (int32_t i = 0; i + 1 < n_sym; i++) push_candidate(e, &n_heap, i);
  while (n_heap > 0) {
    struct heap_item top = heap_pop(e, &n_heap);
    int32_t pos = top.pos, nx = e->sym_next[pos], rank, new_id;
    if (e->sym_len[pos] == 0 || nx < 0) continue;
    if (!merge_get(&tok->merges, e->sym_id[pos], e->sym_id[nx], &rank, &new_id) || new_id != top.new_id)
      continue; /* stale: one side was merged since */
    e->sym_id[pos] = new_id;
    e->sym_len[pos] += e->sym_len[nx];
    e->sym_len[nx] = 0;
    e->sym_next[pos] = e->sym_next[nx];
    if (e->sym_next[nx] >= 0) e->sym_prev[e->sym_next[nx]] = pos;
    if (e->sym_prev[pos] >= 0) push_candidate(e, &n_heap, e->sym_prev[pos]);
    push_candidate(e, &n_heap, pos);
  }
  for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = e->sym_next[i])
    if ((st = push_id(e, e->sym_id[i])) != MPL_OK) return st;
  return MPL_OK;
}

/* whether code point cp is a token by itself */
static bool is_known_char(const struct mpl_tokenizer *tok, const char *s, int len) {
  return mpl_tok__strmap_get(&tok->vocab, s, (size_t)len) >= 0;
}

static enum mpl_status bpe_word(struct enc *e, const char *s, size_t n) {
  const struct mpl_tokenizer *tok = e->tok;
  if (tok->ignore_merges) {
    int32_t id = mpl_tok__strmap_get(&tok->vocab, s, n);
    if (id >= 0) return push_id(e, id);
  }
  /* long words (SentencePiece without a pre-tokenizer makes the whole text one
   * word) are cut where no merge can cross: between two characters that are never
   * side by side in a token, unless both are unknown (fuse_unk joins those) */
  if (n < 256 || tok->no_word_cuts) return bpe_merge(e, s, n);
  size_t start = 0, i = 0;
  uint32_t prev = 0;
  bool prev_known = true;
  while (i < n) {
    uint32_t cp;
    int len = mpl_tok__utf8_next(s + i, n - i, &cp);
    if (len <= 0) len = 1, cp = 0xFFFD; /* not reached: the text was checked */
    bool known = is_known_char(tok, s + i, len);
    int32_t rank, new_id;
    if (i > start && (known || prev_known) &&
        !mpl_tok__pairmap_get(&tok->char_pairs, (int32_t)prev, (int32_t)cp, &rank, &new_id)) {
      enum mpl_status st = bpe_merge(e, s + start, i - start);
      if (st != MPL_OK) return st;
      start = i;
    }
    prev = cp;
    prev_known = known;
    i += (size_t)len;
  }
  return bpe_merge(e, s + start, n - start);
}

/* ---- the whole pipeline ----------------------------------------------------------- */

static void enc_free(struct enc *e) {
  for (int i = 0; i < 2; i++) {
    free(e->buf[i].p);
    free(e->list[i].v);
  }
  free(e->tmp.p);
  if (e->md) pcre2_match_data_free(e->md);
  free(e->sym_id);
  free(e->sym_prev);
  free(e->sym_next);
  free(e->sym_len);
  free(e->heap);
}

enum mpl_status mpl_tok_encode(const struct mpl_tokenizer *tok, const char *text, size_t n_bytes,
                               bool add_special, int32_t **ids, int *n_ids) {
  *ids = NULL;
  *n_ids = 0;
  for (size_t i = 0; i < n_bytes;) {
    uint32_t cp;
    int len = mpl_tok__utf8_next(text + i, n_bytes - i, &cp);
    if (len <= 0)
      return mpl_error_set(MPL_ERR_ARG, "tokenizer (%s): the text is not valid UTF-8 at byte %zu", tok->source,
                           i);
    i += (size_t)len;
  }
  struct enc e = {.tok = tok};
  struct segs sg = {0};
  enum mpl_status st = MPL_OK;
  e.md = pcre2_match_data_create(8, NULL);
  if (!e.md) {
    st = mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for regex match data");
    goto out;
  }
  for (int i = 0; i < tok->n_before && st == MPL_OK; i++)
    if (add_special) st = push_id(&e, tok->tmpl_before[i]);

  /* 1. added tokens that match the raw text; 2. normalize the rest and split out
   * the added tokens that match normalized text */
  if (st == MPL_OK) st = split_added(&e, &tok->raw_matcher, text, n_bytes, true);
  if (st != MPL_OK) goto out;
  swap(&e);
  for (int i = 0; i < e.list[e.cur].n && st == MPL_OK; i++) {
    const struct piece *p = &e.list[e.cur].v[i];
    if (p->id >= 0) {
      st = emit_token(&e, p->id);
      continue;
    }
    e.tmp.len = 0;
    st = mpl_tok__normalize(tok->normalizer, piece_text(&e, p), p->len, &e.tmp);
    if (st != MPL_OK) break;
    /* split_added writes into the next buffer; tmp is not touched by it */
    st = split_added(&e, &tok->norm_matcher, e.tmp.p ? e.tmp.p : "", e.tmp.len, p->at_origin);
  }
  if (st != MPL_OK) goto out;
  swap(&e);
  /* 3. pre-tokenize; 4. the model */
  if (tok->pre_tokenizer && (st = pretokenize(&e, tok->pre_tokenizer, &sg)) != MPL_OK) goto out;
  for (int i = 0; i < e.list[e.cur].n && st == MPL_OK; i++) {
    const struct piece *p = &e.list[e.cur].v[i];
    st = p->id >= 0 ? push_id(&e, p->id) : bpe_word(&e, piece_text(&e, p), p->len);
  }
  /* 5. the post-processor's template */
  for (int i = 0; i < tok->n_after && st == MPL_OK; i++)
    if (add_special) st = push_id(&e, tok->tmpl_after[i]);
  if (st == MPL_OK) {
    *ids = e.ids ? e.ids : malloc(sizeof **ids);
    *n_ids = e.n_ids;
    e.ids = NULL;
    if (!*ids) st = mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for the ids");
  }
out:
  free(e.ids);
  free(sg.v);
  enc_free(&e);
  return st;
}
