/* Shard sets: not yet implemented. */
#include "reader.h"

enum mpl_status mpl_io__shard_open(struct mpl_model_file *f, int pp_rank, int pp_size, int tp_rank, int tp_size) {
  (void)pp_rank; (void)pp_size; (void)tp_rank; (void)tp_size;
  return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: shard sets are not implemented yet", f->path);
}
enum mpl_status mpl_io__shard_list_rects(struct mpl_model_file *f, hid_t tensors, struct mpl_io__tensor *t,
                                         const char *what) {
  (void)f; (void)tensors; (void)t;
  return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: shard", what);
}
enum mpl_status mpl_io__shard_read(struct mpl_model_file *f, const struct mpl_io__tensor *t, int64_t row0,
                                   int64_t n_rows, int64_t col0, int64_t n_cols, enum mpl_dtype dst_dtype,
                                   void *dst) {
  (void)t; (void)row0; (void)n_rows; (void)col0; (void)n_cols; (void)dst_dtype; (void)dst;
  return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: shard sets are not implemented yet", f->path);
}
enum mpl_status mpl_io__shard_verify(struct mpl_model_file *f, const struct mpl_io__tensor *t) {
  (void)t;
  return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: shard sets are not implemented yet", f->path);
}
