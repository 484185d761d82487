/* mpillm tokenizer: Hugging Face tokenizer.json (byte-level BPE as in GPT-2, Qwen2,
 * LLaMA 3; SentencePiece-style BPE with byte fallback as in LLaMA 2, Mistral,
 * TinyLlama), giving the ids transformers gives, and decoding them back to text.
 * A tokenizer is immutable once created: several threads may encode with one. */
#ifndef MPILLM_TOKENIZER_H
#define MPILLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpillm/core.h"

struct mpl_tokenizer; /* opaque */

/* Builds a tokenizer from the text of tokenizer.json; config_json is the text of
 * tokenizer_config.json or NULL (bos/eos tokens, tokenizer_class, clean-up flag);
 * generation_config_json the text of generation_config.json or NULL (eos ids).
 * source names the files in messages (a path). Malformed JSON is MPL_ERR_FORMAT,
 * a model, normalizer, pre-tokenizer, post-processor or decoder we do not implement
 * is MPL_ERR_UNSUPPORTED; both name the JSON field and source. Local. */
enum mpl_status mpl_tok_create(const char *tokenizer_json, const char *config_json,
                               const char *generation_config_json, const char *source,
                               struct mpl_tokenizer **out);
/* Frees everything the tokenizer owns; NULL is safe. Local. */
void mpl_tok_destroy(struct mpl_tokenizer *tok);

/* Number of ids: one more than the largest id of the model's vocab and the added
 * tokens (len(tokenizer) in transformers). Local. */
int mpl_tok_vocab_size(const struct mpl_tokenizer *tok);
/* The beginning-of-sequence id, -1 if none. Local. */
int mpl_tok_bos_id(const struct mpl_tokenizer *tok);
/* Whether generation stops at id (generation_config's eos_token_id, else the
 * config's eos_token). Local. */
bool mpl_tok_is_eos(const struct mpl_tokenizer *tok, int32_t id);
/* Whether id is a special added token (skipped by decode with skip_special). Local. */
bool mpl_tok_is_special(const struct mpl_tokenizer *tok, int32_t id);

/* Encodes n_bytes of UTF-8 text. add_special applies the post-processor template
 * (e.g. prepends BOS) as transformers does with add_special_tokens=True. *ids is
 * freed by the caller with free(). Invalid UTF-8 is MPL_ERR_ARG. Local. */
enum mpl_status mpl_tok_encode(const struct mpl_tokenizer *tok, const char *text, size_t n_bytes,
                               bool add_special, int32_t **ids, int *n_ids);
/* Whole-sequence decode, like transformers' decode(ids, skip_special_tokens=
 * skip_special). *text (NUL-terminated) is freed by the caller with free(). An id
 * out of range is MPL_ERR_RANGE. Local. */
enum mpl_status mpl_tok_decode(const struct mpl_tokenizer *tok, const int32_t *ids, int n_ids,
                               bool skip_special, char **text);

/* Streaming decode for generation: push ids one at a time and get back the text
 * that became complete (valid UTF-8: the bytes of a character split over tokens are
 * held back until it is complete). Special tokens are skipped. The stream keeps a
 * pointer to tok, which must outlive it. */
struct mpl_tok_stream;
enum mpl_status mpl_tok_stream_create(const struct mpl_tokenizer *tok, struct mpl_tok_stream **out);
/* NULL is safe. */
void mpl_tok_stream_destroy(struct mpl_tok_stream *s);
/* *text (NUL-terminated, possibly "") points into the stream's buffer, valid until
 * the next call on s. */
enum mpl_status mpl_tok_stream_push(struct mpl_tok_stream *s, int32_t id, const char **text);
/* Returns what is still held back (an incomplete character comes out as U+FFFD)
 * and resets the stream. */
enum mpl_status mpl_tok_stream_flush(struct mpl_tok_stream *s, const char **text);

#endif
