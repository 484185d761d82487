/* Private to src/io: the open model file or shard set, shared by the reader
 * (reader.c) and the shard code (shard.c). */
#ifndef MPILLM_IO_READER_H
#define MPILLM_IO_READER_H

#include "io_internal.h"

/* One rectangle a shard file holds, in the full tensor's coordinates. */
struct mpl_io__rect {
  int64_t row0, n_rows, col0, n_cols;
  uint32_t crc;
  char dset[200]; /* "tensors/<name>/r<i>" */
};

struct mpl_io__tensor {
  char name[160];
  struct mpl_tensor_info info; /* of the whole tensor */
  uint32_t crc;                /* model file: of the whole tensor */
  int n_rects;                 /* shard: the rectangles this file holds */
  struct mpl_io__rect *rects;
};

struct mpl_model_file {
  char path[4096];      /* what was opened: a file or a shard folder */
  char file_path[4096]; /* the HDF5 file read */
  hid_t file;
  MPI_Comm comm;
  int n_ranks;     /* in comm */
  bool collective; /* MPI-IO with collective transfers */
  bool is_shard;
  int n_tensors, cap_tensors;
  struct mpl_io__tensor *tensors; /* sorted by name */
};

enum mpl_status mpl_io__open_h5(struct mpl_model_file *f, const char *path, bool mpio, const char *format);
/* Shape, dtype and crc32 of one of our datasets; checks the stored type against the dtype. */
enum mpl_status mpl_io__dataset_info(hid_t d, const char *what, int *n_dims, int64_t *shape,
                                     enum mpl_dtype *dtype, uint32_t *crc);
const struct mpl_io__tensor *mpl_io__find(const struct mpl_model_file *f, const char *name);
enum mpl_status mpl_io__read_raw(hid_t loc, const char *dset, const char *what, int n_dims,
                                 enum mpl_dtype dtype, int64_t row0, int64_t n_rows, int64_t col0,
                                 int64_t n_cols, bool collective, void *raw);
void mpl_io__convert(void *dst, enum mpl_dtype dst_dtype, const void *raw, enum mpl_dtype dtype, size_t n);
enum mpl_status mpl_io__check_rect(const struct mpl_model_file *f, const struct mpl_io__tensor *t,
                                   const char *name, int64_t row0, int64_t n_rows, int64_t col0,
                                   int64_t n_cols, enum mpl_dtype dst_dtype);

/* shard.c */
enum mpl_status mpl_io__shard_open(struct mpl_model_file *f, int pp_rank, int pp_size, int tp_rank, int tp_size);
enum mpl_status mpl_io__shard_list_rects(struct mpl_model_file *f, hid_t tensors, struct mpl_io__tensor *t,
                                         const char *what);
enum mpl_status mpl_io__shard_read(struct mpl_model_file *f, const struct mpl_io__tensor *t, int64_t row0,
                                   int64_t n_rows, int64_t col0, int64_t n_cols, enum mpl_dtype dst_dtype,
                                   void *dst);
enum mpl_status mpl_io__shard_verify(struct mpl_model_file *f, const struct mpl_io__tensor *t);

#endif
