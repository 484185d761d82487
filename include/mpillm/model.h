/* mpillm model: architecture configs and the transformer forward pass for the
 * LLaMA family (LLaMA 2/3, Mistral, TinyLlama), Qwen2 and GPT-2, on one rank or on
 * a tensor-parallel slice of a pipeline stage. The model calls the tensor kernels
 * and the parallel wrappers (one all-reduce after attention and one after the MLP
 * when tp_size > 1); it never calls MPI itself and does not know about requests,
 * sampling or scheduling (src/runtime does). */
#ifndef MPILLM_MODEL_H
#define MPILLM_MODEL_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpillm/core.h"

enum mpl_arch { MPL_ARCH_LLAMA = 0, MPL_ARCH_QWEN2, MPL_ARCH_GPT2, MPL_ARCH_BLEND, MPL_ARCH_COUNT };

/* "llama", "qwen2", "gpt2", "blend"; parse gives MPL_ERR_UNSUPPORTED naming the value. Local. */
const char *mpl_arch_name(enum mpl_arch arch);
enum mpl_status mpl_arch_parse(const char *name, enum mpl_arch *out);

#define MPL_MAX_EOS 8
struct mpl_model_config {
  enum mpl_arch arch;
  int vocab_size;
  int hidden_size;              /* dim of the residual stream */
  int intermediate_size;        /* MLP width (GPT-2: n_inner or 4 * hidden) */
  int n_layers;
  int n_heads;
  int n_kv_heads;               /* == n_heads without grouped-query attention */
  int head_dim;                 /* usually hidden_size / n_heads */
  int max_position_embeddings;  /* the context limit */
  float rope_theta;             /* LLaMA, Qwen2 */
  float norm_eps;               /* RMSNorm / LayerNorm epsilon */
  bool tie_word_embeddings;     /* lm_head shares the embedding */
  bool qkv_bias;                /* Qwen2: q/k/v projections have biases */
  int bos_token_id;             /* -1 when none */
  int n_eos;
  int eos_token_ids[MPL_MAX_EOS];
};

/* Refuses configs the engine cannot run, naming the field (MPL_ERR_FORMAT or
 * MPL_ERR_UNSUPPORTED). Local. */
enum mpl_status mpl_model_config_check(const struct mpl_model_config *cfg);

/* The part of the model one rank holds: a tensor-parallel slice of a pipeline
 * stage. Heads, KV heads, MLP channels and vocabulary rows are split as evenly as
 * possible over tp_size ranks (the first ranks take one more when it does not
 * divide); when tp_size > n_kv_heads each rank holds the KV heads its query heads
 * need (replicated across ranks). */
struct mpl_model_part {
  int tp_rank, tp_size;
  int pp_rank, pp_size;         /* the stage, so the loader opens the right shard file */
  int layer_begin, layer_end;   /* this stage's layers, [begin, end) */
  bool has_embedding;           /* the first stage embeds tokens */
  bool has_head;                /* the last stage applies the final norm and LM head */
};
/* The part for a stage of an even-by-bytes pipeline split (layers_per_stage NULL)
 * or a given one (pp_size counts). Local. */
enum mpl_status mpl_model_part_for(const struct mpl_model_config *cfg, int pp_rank, int pp_size,
                                   const int *layers_per_stage, int tp_rank, int tp_size,
                                   struct mpl_model_part *part);

/* One rectangle of a checkpoint tensor, in the full tensor's coordinates (a 1-D
 * tensor is one row). A part may need several rectangles of one tensor (GPT-2's
 * fused c_attn: its q, k and v columns). */
struct mpl_tensor_rect {
  char name[160];
  int64_t row0, n_rows, col0, n_cols;
};
/* Every rectangle the part's weights come from: the single source of truth for the
 * loader and for `mpillm shard`. *rects is freed by the caller with free(). Local. */
enum mpl_status mpl_model_part_rects(const struct mpl_model_config *cfg,
                                     const struct mpl_model_part *part,
                                     struct mpl_tensor_rect **rects, int *n_rects);

struct mpl_model; /* opaque */

/* Loads this rank's part from a model file or shard set: reads only its own
 * rectangles. tp_comm joins the ranks of the stage (MPI_COMM_SELF for tp_size 1);
 * the load is collective on it. Weights stay in their stored dtype (f32 or bf16).
 * Destroy with mpl_model_destroy (NULL is safe). */
enum mpl_status mpl_model_load(const char *path, const struct mpl_model_part *part,
                               MPI_Comm tp_comm, struct mpl_model **out);
void mpl_model_destroy(struct mpl_model *model);
const struct mpl_model_config *mpl_model_config(const struct mpl_model *model);
const struct mpl_model_part *mpl_model_part(const struct mpl_model *model);
/* Vocabulary rows [*begin, *end) whose logits this rank produces (last stage). */
void mpl_model_vocab_range(const struct mpl_model *model, int *begin, int *end);
/* Bytes of weights this rank holds. */
size_t mpl_model_weight_bytes(const struct mpl_model *model);

/* The KV cache of this rank's layers and KV heads for n_slots sequences of up to
 * n_ctx positions, allocated once. Destroy with mpl_kv_destroy (NULL is safe). */
struct mpl_kv_cache;
enum mpl_status mpl_kv_create(const struct mpl_model *model, int n_slots, int n_ctx,
                              struct mpl_kv_cache **out);
void mpl_kv_destroy(struct mpl_kv_cache *kv);
size_t mpl_kv_bytes(const struct mpl_kv_cache *kv);

/* A batch of tokens from one or more sequences, prompt and decode tokens alike.
 * Token i sits at position pos[i] of the sequence in KV slot seq[i]; its keys and
 * values are written there and it attends to positions 0..pos[i] of that slot.
 * Tokens of one sequence come in increasing position order. */
struct mpl_batch {
  int n_tokens;
  const int32_t *tokens;     /* [n_tokens], read on the first stage */
  const int32_t *pos;        /* [n_tokens] */
  const int32_t *seq;        /* [n_tokens] */
  int n_logits;
  const int32_t *logit_rows; /* [n_logits] rows of the batch whose logits are wanted */
};

/* Grows the forward pass's scratch for batches of up to n_rows tokens (or logit rows)
 * against up to n_ctx cached positions, so that mpl_model_forward allocates nothing
 * for them: a caller that agrees on this step across the stage's ranks keeps an
 * allocation failure from leaving one rank out of the forward pass's all-reduces.
 * Local; the forward pass grows what is missing itself. */
enum mpl_status mpl_model_reserve(struct mpl_model *model, int n_rows, int n_ctx);

/* Runs this rank's part on a batch. First stage: reads batch->tokens, x_in NULL.
 * Later stages: x_in [n_tokens][hidden_size] from the previous stage. Stages before
 * the last write x_out [n_tokens][hidden_size]; the last stage writes logits
 * [n_logits][vocab_end - vocab_begin] (this rank's vocabulary rows). Positions at
 * or past n_ctx are MPL_ERR_RANGE. Collective on the model's tp_comm. */
enum mpl_status mpl_model_forward(struct mpl_model *model, struct mpl_kv_cache *kv,
                                  const struct mpl_batch *batch, const float *x_in, float *x_out,
                                  float *logits);

#endif
