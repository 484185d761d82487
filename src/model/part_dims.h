/* Private to src/model: which heads, KV heads, MLP channels and vocabulary rows a
 * tensor-parallel rank holds. part.c computes them; the loader, the forward pass
 * and the rectangles all use the same numbers. */
#ifndef MPILLM_MODEL_PART_DIMS_H
#define MPILLM_MODEL_PART_DIMS_H

#include "mpillm/model.h"

struct mpl_part_dims {
  int head0, n_heads;       /* query heads [head0, head0 + n_heads) */
  int kv_head0, n_kv_heads; /* KV heads those query heads use */
  int ff0, n_ff;            /* MLP channels */
  int vocab0, n_vocab;      /* vocabulary rows (embedding and LM head) */
};

/* Rank r of size gets [*begin, *begin + *count) of n: the first n % size ranks take
 * one more. Local. */
void mpl_model__split(int n, int rank, int size, int *begin, int *count);
/* The dims of a part. Local. */
void mpl_model__part_dims(const struct mpl_model_config *cfg, const struct mpl_model_part *part,
                          struct mpl_part_dims *dims);

#endif
