/* Private to src/io: HDF5 helpers (silenced errors, the bf16/f16 types, typed
 * attributes, UTF-8 text datasets), the model file writer (temporary file renamed
 * at the end) and the safetensors reader. */
#ifndef MPILLM_IO_INTERNAL_H
#define MPILLM_IO_INTERNAL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpillm/io.h"

#define MPL_IO_FORMAT_VERSION 1

/* link iteration changed its name and info struct in HDF5 1.12 */
#if H5_VERSION_GE(1, 12, 0)
#define MPL_H5_LITERATE H5Literate2
typedef H5L_info2_t mpl_h5_linfo;
#else
#define MPL_H5_LITERATE H5Literate
typedef H5L_info_t mpl_h5_linfo;
#endif

/* --- HDF5 helpers (h5util.c) ------------------------------------------------- */
/* Turns off HDF5's automatic error printing (once per process). */
void mpl_io__h5_quiet(void);
/* The innermost message of HDF5's current error stack ("file signature not found"). */
const char *mpl_io__h5_message(void);
/* The HDF5 type of a stored dtype (f32, bf16 or f16, little-endian); H5Tclose it. */
hid_t mpl_io__h5_type(enum mpl_dtype dtype);
/* Chunk shape for a [rows][cols] (or [n]) tensor: tiles of about 1 MiB that are
 * at most 512 columns wide, so that row slices and column slices both read little
 * beyond what they need. */
void mpl_io__chunk_shape(int n_dims, const hsize_t *shape, size_t elem_bytes, hsize_t *chunk);

enum mpl_status mpl_io__attr_write_str(hid_t obj, const char *name, const char *value);
enum mpl_status mpl_io__attr_write_i64(hid_t obj, const char *name, int64_t value);
enum mpl_status mpl_io__attr_write_i64s(hid_t obj, const char *name, const int64_t *values, int n);
enum mpl_status mpl_io__attr_write_f64(hid_t obj, const char *name, double value);
bool mpl_io__attr_exists(hid_t obj, const char *name);
/* Integer attributes read as int64 (scalar, or the first n of a 1-D array:
 * *n_values gets the count). A missing attribute is MPL_ERR_FORMAT naming it. */
enum mpl_status mpl_io__attr_read_i64s(hid_t obj, const char *name, int64_t *values, int max_n,
                                       int *n_values);
enum mpl_status mpl_io__attr_read_i64(hid_t obj, const char *name, int64_t *value);
enum mpl_status mpl_io__attr_read_f64(hid_t obj, const char *name, double *value);
/* A string attribute into buf (cut at buf_bytes - 1). */
enum mpl_status mpl_io__attr_read_str(hid_t obj, const char *name, char *buf, size_t buf_bytes);

/* A scalar variable-length UTF-8 string dataset, and its reading (malloc'd). */
enum mpl_status mpl_io__text_write(hid_t loc, const char *name, const char *text);
enum mpl_status mpl_io__text_read(hid_t loc, const char *name, char **text);

/* The /config group: the model config under Hugging Face names, and back. */
enum mpl_status mpl_io__config_write(hid_t file, const struct mpl_model_config *cfg,
                                     const char *model_type);
enum mpl_status mpl_io__config_read(hid_t file, const char *path, struct mpl_model_config *cfg);

/* A chunked, Fletcher32-checked dataset of dtype from data laid out row-major
 * (n_dims 1 or 2), with attrs crc32 (of the stored bytes) and dtype. */
enum mpl_status mpl_io__dataset_write(hid_t loc, const char *name, int n_dims, const int64_t *shape,
                                      enum mpl_dtype dtype, const void *data, uint32_t *crc);

/* --- the writer (writer.c) ---------------------------------------------------- */
struct mpl_io__writer {
  hid_t file;
  char path[4096];     /* the final name */
  char tmp_path[4096]; /* where it is written until commit */
};
/* Creates a temporary file beside path. */
enum mpl_status mpl_io__writer_create(struct mpl_io__writer *w, const char *path);
/* Closes and renames the temporary file to the final path. */
enum mpl_status mpl_io__writer_commit(struct mpl_io__writer *w);
/* Closes and removes the temporary file (safe after commit or on a zeroed struct). */
void mpl_io__writer_abort(struct mpl_io__writer *w);

/* --- safetensors (safetensors.c) ---------------------------------------------- */
enum mpl_io__st_dtype { MPL_ST_F32, MPL_ST_F16, MPL_ST_BF16, MPL_ST_OTHER };
struct mpl_io__st_tensor {
  char name[160];
  char dtype_name[16];
  enum mpl_io__st_dtype dtype;
  int n_dims;
  int64_t shape[MPL_IO_MAX_DIMS];
  const unsigned char *data; /* into the file's mapping */
  size_t n_bytes;
  int file_index;
};
struct mpl_io__st_set {
  int n_files;
  struct {
    char path[4096];
    void *map;
    size_t map_bytes;
  } *files;
  int n_tensors;
  struct mpl_io__st_tensor *tensors;
};
/* Opens model.safetensors or the files of model.safetensors.index.json in dir and
 * checks every header against the file's size. Free with mpl_io__st_close. */
enum mpl_status mpl_io__st_open(const char *dir, struct mpl_io__st_set *set);
void mpl_io__st_close(struct mpl_io__st_set *set);
const struct mpl_io__st_tensor *mpl_io__st_find(const struct mpl_io__st_set *set, const char *name);

/* Reads a whole file into a NUL-terminated malloc'd buffer; *text = NULL and
 * MPL_OK when the file does not exist and optional is true. */
enum mpl_status mpl_io__slurp(const char *path, bool optional, char **text, size_t *n_bytes);

#endif
