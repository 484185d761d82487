/* Private to src/model: the loaded model (views into one weight slab), its scratch
 * buffers and the KV cache. */
#ifndef MPILLM_MODEL_INTERNAL_H
#define MPILLM_MODEL_INTERNAL_H

#include "model/part_dims.h"
#include "mpillm/model.h"
#include "mpillm/tensor.h"

/* A weight matrix [n_out][n_in], rows contiguous, in its stored dtype (f32 or bf16). */
struct mpl_mat {
  const void *w;
  enum mpl_dtype dtype;
};

/* One layer's weights on this rank; local sizes: q = n_heads * head_dim,
 * kv = n_kv_heads * head_dim, ff = n_ff (all of this rank's slice). */
struct mpl_layer {
  const float *norm1_w, *norm1_b; /* [dim]; _b GPT-2 only */
  struct mpl_mat qkv;             /* [q + 2 kv][dim]: q rows, then k, then v */
  const float *qkv_b;             /* [q + 2 kv] (Qwen2, GPT-2) or NULL */
  struct mpl_mat o;               /* [dim][q] row-parallel */
  const float *o_b;               /* [dim] GPT-2, added by tp rank 0 only */
  const float *norm2_w, *norm2_b; /* [dim] */
  struct mpl_mat up;              /* LLaMA: [2 ff][dim] gate rows then up rows; GPT-2: [ff][dim] */
  const float *up_b;              /* [ff] GPT-2 */
  struct mpl_mat down;            /* [dim][ff] row-parallel */
  const float *down_b;            /* [dim] GPT-2, tp rank 0 only */
};

struct mpl_model {
  struct mpl_model_config cfg;
  struct mpl_model_part part;
  struct mpl_part_dims dims;
  MPI_Comm tp_comm;
  void *slab; /* every weight of this rank */
  size_t slab_bytes, weight_bytes;
  struct mpl_mat embed;        /* [n_vocab][dim] this rank's vocabulary rows */
  const float *pos_embed;      /* [max_position_embeddings][dim] GPT-2 */
  struct mpl_layer *layers;    /* [layer_end - layer_begin] */
  const float *final_w, *final_b; /* [dim] */
  struct mpl_mat head;         /* [n_vocab][dim] */
  /* scratch, grown (never shrunk) when a larger batch comes */
  int cap_tokens, cap_ctx, cap_threads;
  float *x;        /* [cap_tokens][dim] the residual stream */
  float *h;        /* [cap_tokens][dim] normed input / row-parallel partial sums */
  float *qkv;      /* [cap_tokens][q + 2 kv] */
  float *att;      /* [cap_tokens][q] */
  float *mlp;      /* [cap_tokens][2 ff] */
  float *rope_cos, *rope_sin; /* [cap_tokens][head_dim / 2] */
  float *scores;   /* [cap_threads][cap_ctx] */
};

struct mpl_kv_cache {
  int n_slots, n_ctx, n_layers, n_kv_heads, head_dim;
  float *k, *v; /* [n_layers][n_slots][n_kv_heads][n_ctx][head_dim] */
  size_t n_bytes;
};

#endif
