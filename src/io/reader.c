/* Opening a model file or a shard set and reading rectangles of its tensors.
 * A model file is read in place with hyperslab selections (collective MPI-IO when
 * HDF5 is the parallel build and several ranks read together); a shard set's file
 * holds only this rank's rectangles, and requests in full-tensor coordinates are
 * served from them. Tensor shapes, dtypes and checksums are listed once at open,
 * so that the questions about tensors are local and cheap. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_internal.h"
#include "mpillm/parallel.h"
#include "reader.h"

static enum mpl_status list_tensors(struct mpl_model_file *f);

static herr_t collect_name(hid_t group, const char *name, const mpl_h5_linfo *info, void *data) {
  (void)group;
  (void)info;
  struct mpl_model_file *f = data;
  if (f->n_tensors == f->cap_tensors) {
    f->cap_tensors = f->cap_tensors ? 2 * f->cap_tensors : 256;
    void *p = realloc(f->tensors, (size_t)f->cap_tensors * sizeof *f->tensors);
    if (!p) return -1;
    f->tensors = p;
  }
  struct mpl_io__tensor *t = &f->tensors[f->n_tensors++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  return strlen(name) < sizeof t->name ? 0 : -1;
}

static enum mpl_status dtype_of(hid_t obj, const char *what, enum mpl_dtype *dtype) {
  char name[16];
  enum mpl_status st = mpl_io__attr_read_str(obj, "dtype", name, sizeof name);
  if (st == MPL_OK) st = mpl_dtype_parse(name, dtype);
  if (st != MPL_OK) return mpl_error_wrap("%s", what);
  return MPL_OK;
}

/* Shape, dtype and crc32 of a dataset; checks that the stored type has the dtype's size. */
enum mpl_status mpl_io__dataset_info(hid_t d, const char *what, int *n_dims, int64_t *shape,
                                    enum mpl_dtype *dtype, uint32_t *crc) {
  hid_t s = H5Dget_space(d), t = H5Dget_type(d);
  hsize_t dims[MPL_IO_MAX_DIMS];
  int nd = H5Sget_simple_extent_ndims(s);
  enum mpl_status st = MPL_OK;
  if (nd < 1 || nd > 2) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s has %d dimensions (1 or 2 expected)", what, nd);
  } else {
    H5Sget_simple_extent_dims(s, dims, NULL);
    *n_dims = nd;
    for (int i = 0; i < nd; i++) shape[i] = (int64_t)dims[i];
    st = dtype_of(d, what, dtype);
    if (st == MPL_OK && (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != mpl_dtype_bytes(*dtype)))
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: stored type does not match its dtype %s", what,
                         mpl_dtype_name(*dtype));
    int64_t v = 0;
    if (st == MPL_OK && (st = mpl_io__attr_read_i64(d, "crc32", &v)) != MPL_OK) mpl_error_wrap("%s", what);
    *crc = (uint32_t)v;
  }
  H5Tclose(t);
  H5Sclose(s);
  return st;
}

static enum mpl_status list_tensors(struct mpl_model_file *f) {
  if (H5Lexists(f->file, "tensors", H5P_DEFAULT) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: the group /tensors is missing", f->file_path);
  hid_t g = H5Gopen2(f->file, "tensors", H5P_DEFAULT);
  if (g < 0 || MPL_H5_LITERATE(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, f) < 0) {
    enum mpl_status st =
        mpl_error_set(MPL_ERR_FORMAT, "%s: cannot list /tensors: %s", f->file_path, mpl_io__h5_message());
    if (g >= 0) H5Gclose(g);
    return st;
  }
  enum mpl_status st = MPL_OK;
  for (int i = 0; st == MPL_OK && i < f->n_tensors; i++) {
    struct mpl_io__tensor *t = &f->tensors[i];
    char what[4400];
    snprintf(what, sizeof what, "%s: tensor %s", f->file_path, t->name);
    if (!f->is_shard) {
      hid_t d = H5Dopen2(g, t->name, H5P_DEFAULT);
      if (d < 0) {
        st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open: %s", what, mpl_io__h5_message());
        break;
      }
      st = mpl_io__dataset_info(d, what, &t->info.n_dims, t->info.shape, &t->info.dtype, &t->crc);
      H5Dclose(d);
    } else {
      st = mpl_io__shard_list_rects(f, g, t, what);
    }
  }
  H5Gclose(g);
  return st;
}

/* MPI_COMM_SELF needs no MPI at all: unit tests and rank-0 tools run without it */
static int comm_size(MPI_Comm comm) { return comm == MPI_COMM_SELF ? 1 : mpl_par_comm_size(comm); }

static bool mpio_wanted(MPI_Comm comm) {
#ifdef MPILLM_HDF5_PARALLEL
  const char *env = getenv("MPILLM_HDF5_MPIO");
  return comm_size(comm) > 1 && !(env && strcmp(env, "0") == 0);
#else
  (void)comm;
  return false;
#endif
}

/* Opens one HDF5 file of ours and checks its root attributes; format is "mpillm"
 * for a model file, "mpillm-shard" for a shard. */
enum mpl_status mpl_io__open_h5(struct mpl_model_file *f, const char *path, bool mpio, const char *format) {
  snprintf(f->file_path, sizeof f->file_path, "%s", path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  /* read-only: lock where the file system can, go on where it cannot (NFS, Lustre) */
  if (!getenv("HDF5_USE_FILE_LOCKING")) H5Pset_file_locking(fapl, true, true);
#endif
#ifdef MPILLM_HDF5_PARALLEL
  if (mpio) H5Pset_fapl_mpio(fapl, f->comm, MPI_INFO_NULL);
#else
  (void)mpio;
#endif
  f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  const char *why = f->file < 0 ? mpl_io__h5_message() : ""; /* before the next call clears the stack */
  H5Pclose(fapl);
  if (f->file < 0) {
    const char *hint = strstr(why, "signature") ? " (not an HDF5 file)"
                       : strstr(why, "truncated") ? " (the file is truncated)" : "";
    return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open as HDF5: %s%s", path, why, hint);
  }
  char found[32] = "";
  int64_t version = 0;
  enum mpl_status st = mpl_io__attr_read_str(f->file, "format", found, sizeof found);
  if (st != MPL_OK || strcmp(found, format) != 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: not an mpillm %s (root attribute format is '%s')", path,
                         strcmp(format, "mpillm") == 0 ? "model file" : "shard file", found);
  st = mpl_io__attr_read_i64(f->file, "format_version", &version);
  if (st != MPL_OK) return mpl_error_wrap("%s", path);
  if (version < 1 || version > MPL_IO_FORMAT_VERSION)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: format_version %lld is not supported (this build reads 1 to %d)",
                         path, (long long)version, MPL_IO_FORMAT_VERSION);
  return list_tensors(f);
}

enum mpl_status mpl_io_open(const char *path, MPI_Comm comm, int pp_rank, int pp_size, int tp_rank,
                            int tp_size, struct mpl_model_file **out) {
  *out = NULL;
  mpl_io__h5_quiet();
  MPL_ASSERT(pp_rank >= 0 && pp_rank < pp_size && tp_rank >= 0 && tp_rank < tp_size,
             "bad layout position pp %d/%d tp %d/%d", pp_rank, pp_size, tp_rank, tp_size);
  enum mpl_status st = MPL_OK;
  struct mpl_model_file *f = calloc(1, sizeof *f);
  if (!f) st = mpl_error_set(MPL_ERR_NOMEM, "out of memory opening %s", path);
  struct stat sb;
  bool is_dir = false;
  if (st == MPL_OK) {
    f->file = H5I_INVALID_HID;
    f->comm = comm;
    f->n_ranks = comm_size(comm);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (stat(path, &sb) != 0)
      st = mpl_error_set(MPL_ERR_IO, "%s: %s", path, strerror(errno));
    else
      is_dir = S_ISDIR(sb.st_mode);
  }
  bool mpio = !is_dir && mpio_wanted(comm);
  /* H5Fopen with MPI-IO is collective: every rank must get there or none */
  if (mpio) st = mpl_par_agree(comm, st);
  if (st == MPL_OK) {
    if (is_dir) {
      st = mpl_io__shard_open(f, pp_rank, pp_size, tp_rank, tp_size);
    } else {
      f->collective = mpio;
      st = mpl_io__open_h5(f, path, mpio, "mpillm");
    }
  }
  if (comm_size(comm) > 1) st = mpl_par_agree(comm, st);
  if (st != MPL_OK) {
    mpl_io_close(f);
    return st;
  }
  *out = f;
  return MPL_OK;
}

void mpl_io_close(struct mpl_model_file *f) {
  if (!f) return;
  if (f->file >= 0) H5Fclose(f->file);
  for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].rects);
  free(f->tensors);
  free(f);
}

const char *mpl_io_path(const struct mpl_model_file *f) { return f->path; }

enum mpl_status mpl_io_read_config(struct mpl_model_file *f, struct mpl_model_config *cfg) {
  return mpl_io__config_read(f->file, f->file_path, cfg);
}

const struct mpl_io__tensor *mpl_io__find(const struct mpl_model_file *f, const char *name) {
  /* names are listed in HDF5's name order: binary search */
  int lo = 0, hi = f->n_tensors - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    int c = strcmp(f->tensors[mid].name, name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

bool mpl_io_has_tensor(struct mpl_model_file *f, const char *name) { return mpl_io__find(f, name) != NULL; }

enum mpl_status mpl_io_tensor_info(struct mpl_model_file *f, const char *name, struct mpl_tensor_info *info) {
  const struct mpl_io__tensor *t = mpl_io__find(f, name);
  if (!t) return mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is missing", f->path, name);
  *info = t->info;
  return MPL_OK;
}

int mpl_io_n_tensors(const struct mpl_model_file *f) { return f->n_tensors; }

const char *mpl_io_tensor_name(const struct mpl_model_file *f, int i) {
  MPL_ASSERT(i >= 0 && i < f->n_tensors, "tensor index %d of %d", i, f->n_tensors);
  return f->tensors[i].name;
}

static enum mpl_status read_failed(const char *what) {
  const char *why = mpl_io__h5_message();
  if (strstr(why, "checksum") || strstr(why, "fletcher") || strstr(why, "Fletcher"))
    return mpl_error_set(MPL_ERR_CHECKSUM, "%s: the stored Fletcher32 checksum does not match (%s): the file "
                                           "is corrupt", what, why);
  return mpl_error_set(MPL_ERR_IO, "%s: read failed: %s", what, why);
}

/* Reads a rectangle of a dataset in its stored type into raw ([n_rows][n_cols]).
 * Independent reads are cut into pieces under 1 GiB (the MPI-IO driver fails
 * above 2 GiB); a collective read is one call that every rank joins, with an
 * empty selection where it has nothing to read. */
enum mpl_status mpl_io__read_raw(hid_t loc, const char *dset, const char *what, int n_dims,
                                 enum mpl_dtype dtype, int64_t row0, int64_t n_rows, int64_t col0,
                                 int64_t n_cols, bool collective, void *raw) {
  hid_t d = H5Dopen2(loc, dset, H5P_DEFAULT);
  if (d < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open: %s", what, mpl_io__h5_message());
  hid_t type = mpl_io__h5_type(dtype);
  hid_t fspace = H5Dget_space(d);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
#ifdef MPILLM_HDF5_PARALLEL
  if (collective) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
#endif
  size_t row_bytes = (size_t)n_cols * mpl_dtype_bytes(dtype);
  int64_t step = n_rows;
  if (!collective && row_bytes > 0 && (size_t)n_rows * row_bytes > (1u << 30)) {
    step = (int64_t)((1u << 30) / row_bytes);
    if (step < 1) step = 1;
  }
  enum mpl_status st = MPL_OK;
  int64_t r = 0;
  do {
    int64_t n = n_rows - r < step ? n_rows - r : step;
    /* the memory space has the selection's shape: with another rank HDF5 maps chunks
     * element by element (10x slower) */
    hsize_t mdims[2] = {(hsize_t)n, (hsize_t)n_cols};
    hid_t mspace = n_dims == 1 ? H5Screate_simple(1, &mdims[1], NULL) : H5Screate_simple(2, mdims, NULL);
    if (n == 0 || n_cols == 0) {
      H5Sselect_none(fspace);
      H5Sselect_none(mspace);
    } else if (n_dims == 1) {
      hsize_t start[1] = {(hsize_t)col0}, cnt[1] = {(hsize_t)n_cols};
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL);
    } else {
      hsize_t start[2] = {(hsize_t)(row0 + r), (hsize_t)col0}, cnt[2] = {(hsize_t)n, (hsize_t)n_cols};
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL);
    }
    herr_t err = H5Dread(d, type, mspace, fspace, dxpl, (char *)raw + (size_t)r * row_bytes);
    if (err < 0) st = read_failed(what); /* before the next call clears HDF5's error stack */
    H5Sclose(mspace);
    if (err < 0) break;
    r += n;
  } while (r < n_rows);
  H5Pclose(dxpl);
  H5Sclose(fspace);
  H5Tclose(type);
  H5Dclose(d);
  return st;
}

/* raw (stored dtype) into dst (dst_dtype), n elements; in place when the same. */
void mpl_io__convert(void *dst, enum mpl_dtype dst_dtype, const void *raw, enum mpl_dtype dtype, size_t n) {
  if (dst_dtype == dtype) {
    if (dst != raw) memcpy(dst, raw, n * mpl_dtype_bytes(dtype));
  } else if (dst_dtype == MPL_DTYPE_F32) {
    mpl_tensor_to_f32(dst, raw, dtype, n);
  } else if (dst_dtype == MPL_DTYPE_BF16) {
    uint16_t *d = dst;
    if (dtype == MPL_DTYPE_F32) {
      const float *s = raw;
      for (size_t i = 0; i < n; i++) d[i] = mpl_f32_to_bf16(s[i]);
    } else {
      const uint16_t *s = raw;
      for (size_t i = 0; i < n; i++) d[i] = mpl_f32_to_bf16(mpl_f16_to_f32(s[i]));
    }
  } else {
    MPL_ASSERT(0, "conversion to %s is not implemented", mpl_dtype_name(dst_dtype));
  }
}

enum mpl_status mpl_io__check_rect(const struct mpl_model_file *f, const struct mpl_io__tensor *t,
                                   const char *name, int64_t row0, int64_t n_rows, int64_t col0,
                                   int64_t n_cols, enum mpl_dtype dst_dtype) {
  if (!t) return mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is missing", f->path, name);
  if (dst_dtype != MPL_DTYPE_F32 && dst_dtype != MPL_DTYPE_BF16)
    return mpl_error_set(MPL_ERR_ARG, "reading tensor %s: dtype %s is not a read target (f32, bf16)", name,
                         mpl_dtype_name(dst_dtype));
  int64_t rows = t->info.n_dims == 1 ? 1 : t->info.shape[0];
  int64_t cols = t->info.n_dims == 1 ? t->info.shape[0] : t->info.shape[1];
  if (n_rows == 0) return MPL_OK;
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > rows || col0 < 0 || n_cols < 0 || col0 + n_cols > cols)
    return mpl_error_set(MPL_ERR_RANGE,
                         "%s: tensor %s is [%lld, %lld]; rows %lld+%lld, columns %lld+%lld lie outside it",
                         f->path, name, (long long)rows, (long long)cols, (long long)row0, (long long)n_rows,
                         (long long)col0, (long long)n_cols);
  return MPL_OK;
}

enum mpl_status mpl_io_read_rect(struct mpl_model_file *f, const char *name, int64_t row0, int64_t n_rows,
                                 int64_t col0, int64_t n_cols, enum mpl_dtype dst_dtype, void *dst) {
  const struct mpl_io__tensor *t = mpl_io__find(f, name);
  enum mpl_status st = mpl_io__check_rect(f, t, name, row0, n_rows, col0, n_cols, dst_dtype);
  if (n_rows == 0) n_cols = 0;
  /* a collective read needs every rank in it: agree that all can go first */
  if (f->collective && (st = mpl_par_agree(f->comm, st)) != MPL_OK) return st;
  if (st != MPL_OK) {
    /* nothing to read here; the agreement below still joins the others */
  } else if (f->is_shard) {
    st = mpl_io__shard_read(f, t, row0, n_rows, col0, n_cols, dst_dtype, dst);
  } else {
    size_t n = (size_t)(n_rows * n_cols);
    void *raw = dst;
    if (t->info.dtype != dst_dtype && n > 0) {
      raw = mpl_alloc(n * mpl_dtype_bytes(t->info.dtype), name);
      if (!raw) st = MPL_ERR_NOMEM;
    }
    if (st == MPL_OK || f->collective) { /* a rank that failed to allocate still joins with nothing */
      char what[4400];
      snprintf(what, sizeof what, "%s: tensor %s", f->path, name);
      char h5name[200];
      snprintf(h5name, sizeof h5name, "tensors/%s", name);
      enum mpl_status rst = mpl_io__read_raw(f->file, h5name, what, t->info.n_dims, t->info.dtype, row0,
                                             st == MPL_OK ? n_rows : 0, col0, n_cols, f->collective, raw);
      if (st == MPL_OK) st = rst;
    }
    /* a whole tensor is checked against its crc32 as well */
    int64_t rows = t->info.n_dims == 1 ? 1 : t->info.shape[0];
    int64_t cols = t->info.n_dims == 1 ? t->info.shape[0] : t->info.shape[1];
    if (st == MPL_OK && n_rows == rows && n_cols == cols &&
        mpl_crc32(0, raw, n * mpl_dtype_bytes(t->info.dtype)) != t->crc)
      st = mpl_error_set(MPL_ERR_CHECKSUM, "%s: tensor %s: crc32 does not match the stored one: the file is "
                                           "corrupt", f->path, name);
    if (st == MPL_OK) mpl_io__convert(dst, dst_dtype, raw, t->info.dtype, n);
    if (raw != dst) mpl_free(raw);
  }
  /* every rank of comm leaves with the same status, whatever the transfer mode */
  if (f->n_ranks > 1) st = mpl_par_agree(f->comm, st);
  return st;
}

enum mpl_status mpl_io_verify_tensor(struct mpl_model_file *f, const char *name) {
  const struct mpl_io__tensor *t = mpl_io__find(f, name);
  if (!t) return mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is missing", f->path, name);
  if (f->is_shard) return mpl_io__shard_verify(f, t);
  int64_t rows = t->info.n_dims == 1 ? 1 : t->info.shape[0];
  int64_t cols = t->info.n_dims == 1 ? t->info.shape[0] : t->info.shape[1];
  size_t n_bytes = (size_t)(rows * cols) * mpl_dtype_bytes(t->info.dtype);
  void *raw = mpl_alloc(n_bytes, name);
  if (!raw) return MPL_ERR_NOMEM;
  char what[4400], h5name[200];
  snprintf(what, sizeof what, "%s: tensor %s", f->path, name);
  snprintf(h5name, sizeof h5name, "tensors/%s", name);
  enum mpl_status st =
      mpl_io__read_raw(f->file, h5name, what, t->info.n_dims, t->info.dtype, 0, rows, 0, cols, false, raw);
  if (st == MPL_OK && mpl_crc32(0, raw, n_bytes) != t->crc)
    st = mpl_error_set(MPL_ERR_CHECKSUM, "%s: crc32 does not match the stored one: the file is corrupt", what);
  mpl_free(raw);
  return st;
}

enum mpl_status mpl_io_read_text(struct mpl_model_file *f, const char *name, char **text) {
  *text = NULL;
  if (H5Lexists(f->file, "tokenizer", H5P_DEFAULT) <= 0) return MPL_OK;
  hid_t g = H5Gopen2(f->file, "tokenizer", H5P_DEFAULT);
  if (g < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open /tokenizer", f->file_path);
  enum mpl_status st = MPL_OK;
  if (H5Lexists(g, name, H5P_DEFAULT) > 0) {
    st = mpl_io__text_read(g, name, text);
    if (st != MPL_OK) mpl_error_wrap("%s: /tokenizer", f->file_path);
  }
  H5Gclose(g);
  return st;
}
