/* Tokenizer helpers: byte buffers, hash maps for the vocab and the merges, UTF-8,
 * GPT-2's byte table, PCRE2 regexes and the normalizers (NFC/NFKC via utf8proc,
 * Prepend, Replace, Strip). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

enum mpl_status mpl_tok__buf_put(struct tok_buf *b, const void *data, size_t n_bytes) {
  if (b->len + n_bytes + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n_bytes + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: cannot grow a buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
  }
  if (n_bytes) memcpy(b->p + b->len, data, n_bytes);
  b->len += n_bytes;
  b->p[b->len] = '\0';
  return MPL_OK;
}

enum mpl_status mpl_tok__buf_put_cp(struct tok_buf *b, uint32_t cp) {
  unsigned char u[4];
  int n = (int)utf8proc_encode_char((utf8proc_int32_t)cp, u);
  return mpl_tok__buf_put(b, u, (size_t)n);
}

/* ---- hash maps ---------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n) {
  size_t cap = 16;
  while (cap < n) cap *= 2;
  return cap;
}

enum mpl_status mpl_tok__strmap_init(struct tok_strmap *m, size_t n_expected) {
  memset(m, 0, sizeof *m);
  m->cap = pow2_at_least(n_expected * 2 + 1);
  m->keys = calloc(m->cap, sizeof *m->keys);
  m->key_lens = calloc(m->cap, sizeof *m->key_lens);
  m->vals = calloc(m->cap, sizeof *m->vals);
  if (!m->keys || !m->key_lens || !m->vals)
    return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for a map of %zu entries", m->cap);
  return MPL_OK;
}

void mpl_tok__strmap_free(struct tok_strmap *m) {
  free(m->keys);
  free(m->key_lens);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static enum mpl_status strmap_grow(struct tok_strmap *m) {
  struct tok_strmap old = *m;
  enum mpl_status st = mpl_tok__strmap_init(m, old.cap);
  if (st != MPL_OK) return st;
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i]) mpl_tok__strmap_put(m, old.keys[i], old.key_lens[i], old.vals[i]);
  mpl_tok__strmap_free(&old);
  return MPL_OK;
}

enum mpl_status mpl_tok__strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    enum mpl_status st = strmap_grow(m);
    if (st != MPL_OK) return st;
  }
  size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
  while (m->keys[i]) {
    if (m->key_lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
      m->vals[i] = val;
      return MPL_OK;
    }
    i = (i + 1) & mask;
  }
  m->keys[i] = key;
  m->key_lens[i] = (uint32_t)len;
  m->vals[i] = val;
  m->n++;
  return MPL_OK;
}

int32_t mpl_tok__strmap_get(const struct tok_strmap *m, const char *key, size_t len) {
  if (!m->cap) return -1;
  size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
  while (m->keys[i]) {
    if (m->key_lens[i] == len && memcmp(m->keys[i], key, len) == 0) return m->vals[i];
    i = (i + 1) & mask;
  }
  return -1;
}

/* ---- pair maps ---------------------------------------------------------------- */

enum mpl_status mpl_tok__pairmap_init(struct tok_pairmap *m, size_t n_expected) {
  size_t cap = 16;
  while (cap < n_expected * 2 + 1) cap *= 2;
  m->cap = cap;
  m->n = 0;
  m->keys = malloc(cap * sizeof *m->keys);
  m->ranks = malloc(cap * sizeof *m->ranks);
  m->new_ids = malloc(cap * sizeof *m->new_ids);
  if (!m->keys || !m->ranks || !m->new_ids)
    return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for %zu merges", n_expected);
  memset(m->keys, 0xFF, cap * sizeof *m->keys);
  return MPL_OK;
}

static inline uint64_t pair_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

/* keeps the first (best-ranked) entry of a pair listed twice, as tokenizers does */
void mpl_tok__pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  size_t mask = m->cap - 1, i = pair_hash(key) & mask;
  while (m->keys[i] != UINT64_MAX) {
    if (m->keys[i] == key) return;
    i = (i + 1) & mask;
  }
  m->keys[i] = key;
  m->ranks[i] = rank;
  m->new_ids[i] = new_id;
  m->n++;
}

bool mpl_tok__pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank,
                          int32_t *new_id) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  size_t mask = m->cap - 1, i = pair_hash(key) & mask;
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

/* ---- UTF-8 ---------------------------------------------------------------------- */

int mpl_tok__utf8_next(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  if (n == 0) return 0;
  if (u[0] < 0x80) {
    *cp = u[0];
    return 1;
  }
  int len;
  uint32_t c;
  unsigned char lo = 0x80, hi = 0xBF;
  if (u[0] >= 0xC2 && u[0] <= 0xDF) {
    len = 2;
    c = u[0] & 0x1F;
  } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
    len = 3;
    c = u[0] & 0x0F;
    if (u[0] == 0xE0) lo = 0xA0;
    if (u[0] == 0xED) hi = 0x9F;
  } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
    len = 4;
    c = u[0] & 0x07;
    if (u[0] == 0xF0) lo = 0x90;
    if (u[0] == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < len; k++) {
    if ((size_t)k >= n) return 0;
    unsigned char b = u[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  return len;
}

/* Length of the maximal subpart of an ill-formed sequence at s (1..3 bytes): the
 * longest prefix that could still begin a valid character. */
static int utf8_invalid_len(const unsigned char *u, size_t n) {
  int len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (u[0] >= 0xC2 && u[0] <= 0xDF) len = 2;
  else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
    len = 3;
    if (u[0] == 0xE0) lo = 0xA0;
    if (u[0] == 0xED) hi = 0x9F;
  } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
    len = 4;
    if (u[0] == 0xF0) lo = 0x90;
    if (u[0] == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  int k = 1;
  for (; k < len && (size_t)k < n; k++) {
    unsigned char b = u[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
  }
  return k;
}

enum mpl_status mpl_tok__utf8_lossy(struct tok_buf *b, const char *s, size_t n) {
  size_t i = 0, run = 0;
  while (i < n) {
    uint32_t cp;
    int len = mpl_tok__utf8_next(s + i, n - i, &cp);
    if (len > 0) {
      i += (size_t)len;
      continue;
    }
    enum mpl_status st = mpl_tok__buf_put(b, s + run, i - run);
    if (st == MPL_OK) st = mpl_tok__buf_put(b, "\xEF\xBF\xBD", 3);
    if (st != MPL_OK) return st;
    i += (size_t)utf8_invalid_len((const unsigned char *)s + i, n - i);
    run = i;
  }
  return mpl_tok__buf_put(b, s + run, n - run);
}

/* ---- GPT-2's byte table ----------------------------------------------------------- */

uint32_t mpl_tok__byte_to_cp[256];
static int16_t cp_to_byte_table[324]; /* every mapped code point is below 324 */

void mpl_tok__bytes_table_init(void) {
  /* printable Latin-1 bytes map to themselves, the other 68 to 256, 257, ... */
  uint32_t next = 256;
  for (int b = 0; b < 256; b++) {
    bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    mpl_tok__byte_to_cp[b] = keep ? (uint32_t)b : next++;
  }
  for (int i = 0; i < 324; i++) cp_to_byte_table[i] = -1;
  for (int b = 0; b < 256; b++) cp_to_byte_table[mpl_tok__byte_to_cp[b]] = (int16_t)b;
}

int mpl_tok__cp_to_byte(uint32_t cp) { return cp < 324 ? cp_to_byte_table[cp] : -1; }

/* ---- regexes ---------------------------------------------------------------------- */

/* UTF + UCP give \p{L}, \s, \w their Unicode meaning, as Oniguruma has them in
 * tokenizers. Known limit: PCRE2 10.42 (Debian 12) knows Unicode 14.0; characters
 * assigned later (e.g. the Kawi and Nag Mundari letters of Unicode 15) are not
 * letters here and can be split differently from tokenizers. */

enum mpl_status mpl_tok__regex_compile(struct tok_regex *re, const char *pattern, bool literal,
                                       const char *field, const char *source) {
  int err = 0;
  PCRE2_SIZE off = 0;
  uint32_t flags = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, flags, &err, &off, NULL);
  if (!re->code) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(err, msg, sizeof msg);
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: %s: regex not accepted by PCRE2 at offset %zu: %s",
                         source, field, (size_t)off, (const char *)msg);
  }
  re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
  return MPL_OK;
}

void mpl_tok__regex_free(struct tok_regex *re) {
  if (re->code) pcre2_code_free(re->code);
  re->code = NULL;
}

/* ---- normalizers ------------------------------------------------------------------ */

static bool is_rust_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

static enum mpl_status normalize_one(const struct tok_normalizer *nz, const char *s, size_t n,
                                     struct tok_buf *out) {
  enum mpl_status st = MPL_OK;
  switch (nz->type) {
  case TOK_NORM_NFC:
  case TOK_NORM_NFD:
  case TOK_NORM_NFKC:
  case TOK_NORM_NFKD: {
    if (n == 0) return MPL_OK;
    int opts = UTF8PROC_STABLE;
    if (nz->type == TOK_NORM_NFC || nz->type == TOK_NORM_NFKC) opts |= UTF8PROC_COMPOSE;
    else opts |= UTF8PROC_DECOMPOSE;
    if (nz->type == TOK_NORM_NFKC || nz->type == TOK_NORM_NFKD) opts |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opts);
    if (len < 0) return mpl_error_set(MPL_ERR_ARG, "tokenizer: text is not valid UTF-8: %s",
                                      utf8proc_errmsg(len));
    st = mpl_tok__buf_put(out, res, (size_t)len);
    free(res);
    return st;
  }
  case TOK_NORM_PREPEND:
    if (n == 0) return MPL_OK;
    st = mpl_tok__buf_put(out, nz->str, strlen(nz->str));
    return st == MPL_OK ? mpl_tok__buf_put(out, s, n) : st;
  case TOK_NORM_STRIP: {
    size_t a = 0, b = n;
    uint32_t cp;
    int len;
    while (nz->strip_left && a < b && (len = mpl_tok__utf8_next(s + a, b - a, &cp)) > 0 &&
           is_rust_whitespace(cp))
      a += (size_t)len;
    while (nz->strip_right && b > a) {
      size_t k = b - 1;
      while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
      if (mpl_tok__utf8_next(s + k, b - k, &cp) <= 0 || !is_rust_whitespace(cp)) break;
      b = k;
    }
    return mpl_tok__buf_put(out, s + a, b - a);
  }
  case TOK_NORM_REPLACE: {
    size_t pos = 0;
    if (nz->str) {
      size_t plen = strlen(nz->str), clen = strlen(nz->content);
      if (plen == 0) return mpl_tok__buf_put(out, s, n);
      while (pos < n) {
        const char *hit = memmem(s + pos, n - pos, nz->str, plen);
        if (!hit) break;
        st = mpl_tok__buf_put(out, s + pos, (size_t)(hit - (s + pos)));
        if (st == MPL_OK) st = mpl_tok__buf_put(out, nz->content, clen);
        if (st != MPL_OK) return st;
        pos = (size_t)(hit - s) + plen;
      }
      return mpl_tok__buf_put(out, s + pos, n - pos);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(nz->re.code, NULL);
    if (!md) return mpl_error_set(MPL_ERR_NOMEM, "tokenizer: no memory for regex match data");
    size_t clen = strlen(nz->content), at = 0;
    while (at <= n) {
      int rc = pcre2_match(nz->re.code, (PCRE2_SPTR)s, n, at, 0, md, NULL);
      if (rc < 0) break;
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
      st = mpl_tok__buf_put(out, s + pos, ov[0] - pos);
      if (st == MPL_OK) st = mpl_tok__buf_put(out, nz->content, clen);
      if (st != MPL_OK) break;
      pos = ov[1];
      at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
      while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
    }
    pcre2_match_data_free(md);
    return st == MPL_OK ? mpl_tok__buf_put(out, s + pos, n - pos) : st;
  }
  case TOK_NORM_SEQUENCE: {
    struct tok_buf a = {0}, b = {0};
    st = mpl_tok__buf_put(&a, s, n);
    for (int i = 0; i < nz->n_children && st == MPL_OK; i++) {
      b.len = 0;
      st = mpl_tok__buf_put(&b, "", 0);
      if (st == MPL_OK) st = normalize_one(nz->children[i], a.p, a.len, &b);
      struct tok_buf t = a;
      a = b;
      b = t;
    }
    if (st == MPL_OK) st = mpl_tok__buf_put(out, a.p, a.len);
    free(a.p);
    free(b.p);
    return st;
  }
  }
  return MPL_OK;
}

enum mpl_status mpl_tok__normalize(const struct tok_normalizer *nz, const char *s, size_t n,
                                   struct tok_buf *out) {
  if (!nz) return mpl_tok__buf_put(out, s, n);
  return normalize_one(nz, s, n, out);
}
