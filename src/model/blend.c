/* The seed network's config, weights and forward pieces: sub-models on their feature
 * slices, the head split by the rows that multiply each sub-model's output. */
#include <math.h>
#include <string.h>

#include "mpillm/blend.h"
#include "mpillm/tensor.h"

int64_t mpl_blend_feature_offset(const struct mpl_blend_config *cfg, int i) {
  int64_t off = 0;
  for (int k = 0; k < i; k++) off += cfg->in_widths[k];
  return off;
}

int64_t mpl_blend_n_features(const struct mpl_blend_config *cfg) {
  return mpl_blend_feature_offset(cfg, cfg->n_submodels);
}

enum mpl_status mpl_blend_config_check(const struct mpl_blend_config *cfg, const char *where) {
  if (cfg->n_submodels <= 0 || cfg->n_submodels > MPL_BLEND_MAX_SUBMODELS)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: n_submodels must be in 1..%d, is %d", where,
                         MPL_BLEND_MAX_SUBMODELS, cfg->n_submodels);
  for (int i = 0; i < cfg->n_submodels; i++)
    if (cfg->in_widths[i] <= 0)
      return mpl_error_set(MPL_ERR_FORMAT, "%s: in_widths[%d] must be positive, is %d", where, i,
                           cfg->in_widths[i]);
  if (cfg->hidden <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: hidden must be positive, is %d", where, cfg->hidden);
  if (cfg->n_classes <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: classes must be positive, is %d", where,
                         cfg->n_classes);
  if (mpl_blend_n_features(cfg) > INT32_MAX || (int64_t)cfg->n_submodels * cfg->hidden > INT32_MAX)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: network too wide", where);
  return MPL_OK;
}

enum mpl_status mpl_blend_model_alloc(const struct mpl_blend_config *cfg, int sub_begin,
                                      int sub_end, struct mpl_blend_model *model) {
  MPL_ASSERT(0 <= sub_begin && sub_begin <= sub_end && sub_end <= cfg->n_submodels,
             "sub-models [%d, %d) of %d", sub_begin, sub_end, cfg->n_submodels);
  memset(model, 0, sizeof *model);
  model->cfg = *cfg;
  model->sub_begin = sub_begin;
  model->sub_end = sub_end;
  int n_held = sub_end - sub_begin;
  size_t h = (size_t)cfg->hidden, c = (size_t)cfg->n_classes;
  /* every tensor starts on a 64-byte boundary: 16 floats */
#define ROUND16(n) (((n) + 15) & ~(size_t)15)
  size_t n_floats = ROUND16((size_t)n_held * h * c) + ROUND16(c);
  for (int i = sub_begin; i < sub_end; i++)
    n_floats += ROUND16((size_t)cfg->in_widths[i] * h) + 2 * ROUND16(h) + ROUND16(h * h);
  size_t n_ptrs = 4 * (size_t)(n_held ? n_held : 1);
  float **ptrs = mpl_alloc(n_ptrs * sizeof *ptrs, "blend weight pointers");
  float *slab = mpl_alloc(n_floats * sizeof(float), "blend weights");
  if (!ptrs || !slab) {
    mpl_free(ptrs);
    mpl_free(slab);
    return MPL_ERR_NOMEM;
  }
  model->w0 = ptrs;
  model->b0 = ptrs + n_held;
  model->w1 = ptrs + 2 * n_held;
  model->b1 = ptrs + 3 * n_held;
  model->slab = slab;
  float *p = slab;
  for (int k = 0; k < n_held; k++) {
    model->w0[k] = p, p += ROUND16((size_t)cfg->in_widths[sub_begin + k] * h);
    model->b0[k] = p, p += ROUND16(h);
    model->w1[k] = p, p += ROUND16(h * h);
    model->b1[k] = p, p += ROUND16(h);
  }
  model->head_w = p, p += ROUND16((size_t)n_held * h * c);
  model->head_b = p;
#undef ROUND16
  return MPL_OK;
}

void mpl_blend_model_free(struct mpl_blend_model *model) {
  if (!model) return;
  mpl_free(model->w0); /* the pointer arrays are one allocation */
  mpl_free(model->slab);
  memset(model, 0, sizeof *model);
}

size_t mpl_blend_model_bytes(const struct mpl_blend_model *model) {
  size_t h = (size_t)model->cfg.hidden, c = (size_t)model->cfg.n_classes;
  size_t n = (size_t)(model->sub_end - model->sub_begin) * h * c + c;
  for (int i = model->sub_begin; i < model->sub_end; i++)
    n += (size_t)model->cfg.in_widths[i] * h + h * h + 2 * h;
  return n * sizeof(float);
}

/* y [n][ldy] = relu(x [n][ldx] @ w [k][m] + b [m]): one matmul with the bias preloaded. */
static void dense_relu(const float *x, int64_t ldx, int64_t n, int k, const float *w,
                       const float *b, int m, float *y, int64_t ldy) {
  for (int64_t r = 0; r < n; r++) memcpy(y + r * ldy, b, (size_t)m * sizeof(float));
  mpl_tensor_matmul(y, ldy, x, ldx, w, m, (int)n, k, m, 1.0f);
  for (int64_t r = 0; r < n; r++)
    for (int j = 0; j < m; j++)
      if (y[r * ldy + j] < 0.0f) y[r * ldy + j] = 0.0f;
}

void mpl_blend_submodels_forward(const struct mpl_blend_model *model, int first, int last,
                                 const float *x, int64_t ldx, int64_t n_rows, float *z,
                                 int64_t ldz) {
  MPL_ASSERT(model->sub_begin <= first && first <= last && last <= model->sub_end,
             "sub-models [%d, %d) not held ([%d, %d))", first, last, model->sub_begin,
             model->sub_end);
  if (n_rows == 0) return;
  const struct mpl_blend_config *cfg = &model->cfg;
  int h = cfg->hidden;
  float *hid = mpl_alloc((size_t)n_rows * (size_t)h * sizeof(float), "blend hidden activations");
  MPL_ASSERT(hid != NULL, "%s", mpl_error_message());
  int64_t col = 0;
  for (int i = first; i < last; i++) {
    int k = i - model->sub_begin;
    int in = cfg->in_widths[i];
    /* hid [n][h] = relu(x_i @ W0 + b0); z_i [n][h] = relu(hid @ W1 + b1) */
    dense_relu(x + col, ldx, n_rows, in, model->w0[k], model->b0[k], h, hid, h);
    dense_relu(hid, h, n_rows, h, model->w1[k], model->b1[k], h, z + (int64_t)(i - first) * h,
               ldz);
    col += in;
  }
  mpl_free(hid);
}

void mpl_blend_head_partial(const struct mpl_blend_model *model, int first, int last,
                            const float *z, int64_t n_rows, float *logits) {
  MPL_ASSERT(model->sub_begin <= first && first <= last && last <= model->sub_end,
             "head rows of sub-models [%d, %d) not held", first, last);
  int c = model->cfg.n_classes;
  int k = (last - first) * model->cfg.hidden;
  if (n_rows == 0) return;
  if (k == 0) {
    memset(logits, 0, (size_t)n_rows * (size_t)c * sizeof(float));
    return;
  }
  const float *w = model->head_w + (size_t)(first - model->sub_begin) * model->cfg.hidden * c;
  mpl_tensor_matmul(logits, c, z, k, w, c, (int)n_rows, k, c, 0.0f);
}

void mpl_blend_head_finish(const struct mpl_blend_model *model, float *logits, int64_t n_rows) {
  int c = model->cfg.n_classes;
  for (int64_t r = 0; r < n_rows; r++) {
    float *row = logits + r * c;
    float max = -INFINITY;
    for (int j = 0; j < c; j++) {
      row[j] += model->head_b[j];
      if (row[j] > max) max = row[j];
    }
    double sum = 0.0;
    for (int j = 0; j < c; j++) {
      row[j] = expf(row[j] - max);
      sum += row[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < c; j++) row[j] *= inv;
  }
}
