/* Private to src/tokenizer: the parsed pipeline of a tokenizer.json (normalizer,
 * pre-tokenizer, BPE model, post-processor, decoder) and the helpers its stages
 * share. The stages follow Hugging Face tokenizers' Rust code step by step. */
#ifndef MPILLM_TOK_INTERNAL_H
#define MPILLM_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpillm/tokenizer.h"

/* A growable byte buffer. */
struct tok_buf {
  char *p;
  size_t len, cap;
};
enum mpl_status mpl_tok__buf_put(struct tok_buf *b, const void *data, size_t n_bytes);
/* Appends the UTF-8 form of code point cp. */
enum mpl_status mpl_tok__buf_put_cp(struct tok_buf *b, uint32_t cp);

/* Open-addressing map from a byte string to an id; keys point into storage the
 * owner keeps alive. */
struct tok_strmap {
  const char **keys; /* [cap] */
  uint32_t *key_lens;
  int32_t *vals;
  size_t cap, n;
};
enum mpl_status mpl_tok__strmap_init(struct tok_strmap *m, size_t n_expected);
void mpl_tok__strmap_free(struct tok_strmap *m);
/* Inserts or overwrites. */
enum mpl_status mpl_tok__strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val);
int32_t mpl_tok__strmap_get(const struct tok_strmap *m, const char *key, size_t len); /* -1 if absent */

/* Map from a pair of ids (a BPE merge) to its rank and the merged id. */
struct tok_pairmap {
  uint64_t *keys; /* [cap], UINT64_MAX = empty */
  int32_t *ranks, *new_ids;
  size_t cap, n;
};
enum mpl_status mpl_tok__pairmap_init(struct tok_pairmap *m, size_t n_expected);
/* keeps the first entry of a pair put twice */
void mpl_tok__pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id);
bool mpl_tok__pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *new_id);

/* A compiled regex (PCRE2, UTF + UCP, JIT when available). */
struct tok_regex {
  pcre2_code *code;
  bool jit;
};

enum tok_norm_type { TOK_NORM_SEQUENCE, TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
                     TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_STRIP };
struct tok_normalizer {
  enum tok_norm_type type;
  struct tok_normalizer **children; /* SEQUENCE */
  int n_children;
  char *str; /* PREPEND: what; REPLACE: literal pattern (NULL when regex) */
  char *content; /* REPLACE: replacement */
  struct tok_regex re; /* REPLACE with a Regex pattern */
  bool strip_left, strip_right;
};

enum tok_split_behavior { TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV,
                          TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS };
enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
enum tok_pre_type { TOK_PRE_SEQUENCE, TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL, TOK_PRE_METASPACE };
struct tok_pretok {
  enum tok_pre_type type;
  struct tok_pretok **children;
  int n_children;
  struct tok_regex re;        /* SPLIT (a String pattern is compiled escaped), BYTELEVEL */
  enum tok_split_behavior behavior;
  bool invert;
  bool add_prefix_space, use_regex; /* BYTELEVEL */
  char replacement[8];              /* METASPACE: UTF-8 of the replacement char */
  enum tok_prepend prepend_scheme;
  bool split;
};

enum tok_dec_type { TOK_DEC_SEQUENCE, TOK_DEC_BYTELEVEL, TOK_DEC_METASPACE, TOK_DEC_REPLACE,
                    TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP };
struct tok_decoder {
  enum tok_dec_type type;
  struct tok_decoder **children;
  int n_children;
  char *pattern, *content; /* REPLACE; STRIP: content */
  uint32_t replacement_cp; /* METASPACE */
  enum tok_prepend prepend_scheme;
  int start, stop; /* STRIP */
};

struct tok_added {
  int32_t id;
  char *content;     /* as written */
  char *match;       /* what is searched: content, normalized when normalized */
  size_t match_len;
  bool special, lstrip, rstrip, single_word, normalized;
};

/* Added tokens of one kind (normalized or not), bucketed by first byte, longest first. */
struct tok_matcher {
  const struct tok_added **v;
  int n;
  int start[257];
};

struct mpl_tokenizer {
  char *source;
  /* the model: vocab by id and by string */
  int n_ids;           /* vocab size: largest id + 1 */
  char **id_str;       /* [n_ids], NULL for holes */
  uint32_t *id_len;    /* [n_ids] */
  bool *id_special;    /* [n_ids] */
  struct tok_strmap vocab;
  struct tok_pairmap merges;
  struct tok_pairmap char_pairs; /* code points adjacent inside some vocab token */
  bool no_word_cuts;             /* char_pairs cannot be trusted: never cut words */
  int32_t unk_id;      /* -1 if none */
  bool byte_fallback, fuse_unk, ignore_merges;
  int32_t byte_ids[256]; /* <0xNN> ids, -1 where absent */
  /* added tokens */
  struct tok_added *added;
  int n_added;
  struct tok_matcher raw_matcher, norm_matcher;
  /* the pipeline; NULL stages do nothing */
  struct tok_normalizer *normalizer;
  struct tok_pretok *pre_tokenizer;
  struct tok_decoder *decoder;
  int32_t *tmpl_before, *tmpl_after; /* ids the post-processor puts around the sequence */
  int n_before, n_after;
  /* special ids */
  int32_t bos_id;
  int32_t *eos_ids;
  int n_eos;
  bool clean_up_spaces;
};

/* GPT-2's byte <-> printable code point table. */
extern uint32_t mpl_tok__byte_to_cp[256];
int mpl_tok__cp_to_byte(uint32_t cp); /* -1 if cp is not one of the 256 */
void mpl_tok__bytes_table_init(void);

/* Decodes one UTF-8 code point at s[0..n); returns its length (>= 1) or 0 when the
 * bytes are not valid UTF-8 (then *cp is undefined). */
int mpl_tok__utf8_next(const char *s, size_t n, uint32_t *cp);
/* Appends bytes to b as valid UTF-8, each maximal invalid subpart replaced by U+FFFD
 * (Rust's String::from_utf8_lossy). */
enum mpl_status mpl_tok__utf8_lossy(struct tok_buf *b, const char *s, size_t n);

enum mpl_status mpl_tok__regex_compile(struct tok_regex *re, const char *pattern, bool literal,
                                       const char *field, const char *source);
void mpl_tok__regex_free(struct tok_regex *re);

/* Applies the normalizer to s[0..n), writing the result to out. */
enum mpl_status mpl_tok__normalize(const struct tok_normalizer *nz, const char *s, size_t n,
                                   struct tok_buf *out);

#endif
