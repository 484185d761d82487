/* The blend model file (layout in include/mpillm/blend.h) and plain f32 matrix files
 * for inputs and outputs. Serial HDF5 on each rank's own handle: a rank in model mode
 * reads only its sub-models' datasets and a row range of the head kernel. Written
 * with the io module's writer (temporary file renamed at the end, chunked datasets
 * with Fletcher32, crc32 and dtype attributes), so blend files look like the others. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io_internal.h"
#include "mpillm/blend.h"

#define FORMAT_VERSION 1

/* HDF5's own error stack would print on every failure; we say what failed ourselves */
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* --- attributes ----------------------------------------------------------------- */

static enum mpl_status read_string_attr(hid_t obj, const char *name, char *out, size_t out_bytes,
                                        const char *path, const char *where) {
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: %s has no attribute '%s'", path, where, name);
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t type = H5Aget_type(attr);
  enum mpl_status st = MPL_OK;
  out[0] = '\0';
  if (H5Tget_class(type) != H5T_STRING) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: attribute %s of %s is not a string", path, name, where);
  } else if (H5Tis_variable_str(type) > 0) {
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type)); /* UTF-8 stays UTF-8: no conversion path otherwise */
    char *value = NULL;
    if (H5Aread(attr, mem, &value) < 0 || !value) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read attribute %s of %s", path, name, where);
    } else {
      snprintf(out, out_bytes, "%s", value);
      H5free_memory(value);
    }
    H5Tclose(mem);
  } else {
    size_t size = H5Tget_size(type);
    char *buf = calloc(size + 1, 1);
    if (!buf || H5Aread(attr, type, buf) < 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read attribute %s of %s", path, name, where);
    else
      snprintf(out, out_bytes, "%s", buf);
    free(buf);
  }
  H5Tclose(type);
  H5Aclose(attr);
  return st;
}

/* An integer attribute of n values (scalar when n is 1); a different count is an error. */
static enum mpl_status read_int_attr(hid_t obj, const char *name, int *out, int n, int max_n,
                                     int *n_read, const char *path) {
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: /config has no attribute '%s'", path, name);
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t space = H5Aget_space(attr);
  hssize_t count = H5Sget_simple_extent_npoints(space);
  enum mpl_status st = MPL_OK;
  if (count < 1 || count > max_n || (n > 0 && count != n))
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: /config attribute %s has %lld values, expected %d",
                       path, name, (long long)count, n > 0 ? n : max_n);
  else if (H5Aread(attr, H5T_NATIVE_INT, out) < 0)
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read /config attribute %s as integers", path,
                       name);
  if (n_read) *n_read = (int)count;
  H5Sclose(space);
  H5Aclose(attr);
  return st;
}

/* --- the config ------------------------------------------------------------------ */

static enum mpl_status read_config(hid_t file, const char *path, struct mpl_blend_config *cfg) {
  char text[64];
  enum mpl_status st = read_string_attr(file, "format", text, sizeof text, path, "/");
  if (st != MPL_OK) return mpl_error_wrap("not an mpillm model file");
  if (strcmp(text, "mpillm") != 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: format is '%s', not 'mpillm'", path, text);
  if (H5Aexists(file, "format_version") > 0) {
    int version = 0;
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    herr_t rc = H5Aread(attr, H5T_NATIVE_INT, &version);
    H5Aclose(attr);
    if (rc < 0 || version != FORMAT_VERSION)
      return mpl_error_set(MPL_ERR_FORMAT, "%s: format_version %d, this mpillm reads %d", path,
                           version, FORMAT_VERSION);
  } else {
    return mpl_error_set(MPL_ERR_FORMAT, "%s: / has no attribute 'format_version'", path);
  }
  if ((st = read_string_attr(file, "arch", text, sizeof text, path, "/")) != MPL_OK) return st;
  if (strcmp(text, "blend") != 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: arch is '%s', not a blend (seed network) model",
                         path, text);
  if (H5Lexists(file, "config", H5P_DEFAULT) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: no /config group", path);
  hid_t group = H5Gopen2(file, "config", H5P_DEFAULT);
  memset(cfg, 0, sizeof *cfg);
  int n_features = 0, n_widths = 0;
  if ((st = read_int_attr(group, "n_submodels", &cfg->n_submodels, 1, 1, NULL, path)) ||
      (st = read_int_attr(group, "hidden", &cfg->hidden, 1, 1, NULL, path)) ||
      (st = read_int_attr(group, "classes", &cfg->n_classes, 1, 1, NULL, path)) ||
      (st = read_int_attr(group, "n_features", &n_features, 1, 1, NULL, path)) ||
      (st = read_int_attr(group, "in_widths", cfg->in_widths, 0, MPL_BLEND_MAX_SUBMODELS,
                          &n_widths, path))) {
    H5Gclose(group);
    return st;
  }
  H5Gclose(group);
  if (n_widths != cfg->n_submodels)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "%s: /config in_widths has %d values but n_submodels is %d", path,
                         n_widths, cfg->n_submodels);
  if ((st = mpl_blend_config_check(cfg, path)) != MPL_OK) return st;
  if (mpl_blend_n_features(cfg) != n_features)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "%s: /config in_widths add up to %lld features but n_features is %d",
                         path, (long long)mpl_blend_n_features(cfg), n_features);
  return MPL_OK;
}

static hid_t open_file(const char *path) {
  quiet();
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    if (access(path, R_OK) != 0)
      mpl_error_set(MPL_ERR_IO, "cannot open %s: no such readable file", path);
    else
      mpl_error_set(MPL_ERR_FORMAT, "cannot open %s: not an HDF5 file (or a damaged one)", path);
  }
  return file;
}

enum mpl_status mpl_blend_file_read_config(const char *path, struct mpl_blend_config *cfg) {
  hid_t file = open_file(path);
  if (file < 0) return mpl_error_status();
  enum mpl_status st = read_config(file, path, cfg);
  H5Fclose(file);
  return st;
}

/* --- tensors ----------------------------------------------------------------------- */

/* A tensor link that does not open: name the shard file when it is an external link. */
static enum mpl_status missing_target(hid_t file, const char *full, const char *path,
                                      const char *name) {
  H5L_info_t info;
  char value[1024];
  const char *target_file = NULL, *target_obj = NULL;
  unsigned flags = 0;
  if (H5Lget_info(file, full, &info, H5P_DEFAULT) >= 0 && info.type == H5L_TYPE_EXTERNAL &&
      info.u.val_size <= sizeof value && H5Lget_val(file, full, value, sizeof value, H5P_DEFAULT) >= 0 &&
      H5Lunpack_elink_val(value, info.u.val_size, &flags, &target_file, &target_obj) >= 0)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "%s: tensor %s lives in shard file %s (beside %s), which is missing or "
                         "lacks it",
                         path, name, target_file, path);
  return mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s cannot be opened", path, name);
}

/* Reads rows [row0, row0 + n_rows) of tensor name (shape must be exactly dims) into
 * dst; the crc32 attribute is checked when the whole tensor is read. */
static enum mpl_status read_tensor(hid_t file, const char *path, const char *name, int n_dims,
                                   const hsize_t *dims, hsize_t row0, hsize_t n_rows, float *dst) {
  char full[256];
  snprintf(full, sizeof full, "tensors/%s", name);
  if (H5Lexists(file, "tensors", H5P_DEFAULT) <= 0 || H5Lexists(file, full, H5P_DEFAULT) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is missing", path, name);
  hid_t dset = H5Dopen2(file, full, H5P_DEFAULT);
  if (dset < 0) return missing_target(file, full, path, name);
  hid_t space = H5Dget_space(dset);
  enum mpl_status st = MPL_OK;
  hsize_t got[4] = {0, 0, 0, 0};
  int got_dims = H5Sget_simple_extent_ndims(space);
  if (got_dims >= 1 && got_dims <= 4) H5Sget_simple_extent_dims(space, got, NULL);
  bool same = got_dims == n_dims;
  for (int d = 0; same && d < n_dims; d++) same = got[d] == dims[d];
  if (!same) {
    char want[64], have[64];
    if (n_dims == 1)
      snprintf(want, sizeof want, "[%llu]", (unsigned long long)dims[0]);
    else
      snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)dims[0],
               (unsigned long long)dims[1]);
    if (got_dims == 1)
      snprintf(have, sizeof have, "[%llu]", (unsigned long long)got[0]);
    else
      snprintf(have, sizeof have, "[%llu, %llu]%s", (unsigned long long)got[0],
               (unsigned long long)got[1], got_dims > 2 ? "..." : "");
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is %s, the config says %s", path, name,
                       have, want);
    goto out_close;
  }
  hsize_t cols = n_dims == 2 ? dims[1] : dims[0];
  hsize_t total_rows = n_dims == 2 ? dims[0] : 1;
  bool whole = row0 == 0 && n_rows == total_rows;
  hsize_t start[2] = {row0, 0}, count[2] = {n_rows, cols};
  hsize_t mem_dims[2] = {n_rows, cols};
  hid_t mem = n_dims == 2 ? H5Screate_simple(2, mem_dims, NULL) : H5Screate_simple(1, &cols, NULL);
  if (n_dims == 2) H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
  if (n_rows > 0 && H5Dread(dset, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, dst) < 0)
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read tensor %s as f32", path, name);
  H5Sclose(mem);
  if (st == MPL_OK && whole && H5Aexists(dset, "crc32") > 0) {
    unsigned stored = 0;
    hid_t attr = H5Aopen(dset, "crc32", H5P_DEFAULT);
    H5Aread(attr, H5T_NATIVE_UINT, &stored);
    H5Aclose(attr);
    /* the stored bytes are little-endian f32, as this machine's floats */
    unsigned crc = mpl_crc32(0, dst, (size_t)(total_rows * cols) * sizeof(float));
    if (crc != stored)
      st = mpl_error_set(MPL_ERR_CHECKSUM, "%s: tensor %s fails its checksum (crc32 %08x, stored %08x)",
                         path, name, crc, stored);
  }
out_close:
  H5Sclose(space);
  H5Dclose(dset);
  return st;
}

enum mpl_status mpl_blend_file_load(const char *path, int sub_begin, int sub_end,
                                    struct mpl_blend_model *model) {
  memset(model, 0, sizeof *model);
  hid_t file = open_file(path);
  if (file < 0) return mpl_error_status();
  struct mpl_blend_config cfg;
  enum mpl_status st = read_config(file, path, &cfg);
  if (st != MPL_OK) goto out_close_file;
  if (sub_begin < 0 || sub_end > cfg.n_submodels || sub_begin > sub_end) {
    st = mpl_error_set(MPL_ERR_ARG, "%s: sub-models [%d, %d) asked of a model with %d", path,
                       sub_begin, sub_end, cfg.n_submodels);
    goto out_close_file;
  }
  if ((st = mpl_blend_model_alloc(&cfg, sub_begin, sub_end, model)) != MPL_OK) goto out_close_file;
  hsize_t h = (hsize_t)cfg.hidden, c = (hsize_t)cfg.n_classes;
  char name[128];
  for (int i = sub_begin; i < sub_end && st == MPL_OK; i++) {
    int k = i - sub_begin;
    hsize_t d_w0[2] = {(hsize_t)cfg.in_widths[i], h}, d_w1[2] = {h, h}, d_b[1] = {h};
    snprintf(name, sizeof name, "submodel_%d.dense_0.kernel", i);
    st = read_tensor(file, path, name, 2, d_w0, 0, d_w0[0], model->w0[k]);
    snprintf(name, sizeof name, "submodel_%d.dense_0.bias", i);
    if (st == MPL_OK) st = read_tensor(file, path, name, 1, d_b, 0, 1, model->b0[k]);
    snprintf(name, sizeof name, "submodel_%d.dense_1.kernel", i);
    if (st == MPL_OK) st = read_tensor(file, path, name, 2, d_w1, 0, h, model->w1[k]);
    snprintf(name, sizeof name, "submodel_%d.dense_1.bias", i);
    if (st == MPL_OK) st = read_tensor(file, path, name, 1, d_b, 0, 1, model->b1[k]);
    if (st != MPL_OK) mpl_error_wrap("sub-model %d of %d", i, cfg.n_submodels);
  }
  hsize_t d_head[2] = {(hsize_t)cfg.n_submodels * h, c}, d_hb[1] = {c};
  if (st == MPL_OK)
    st = read_tensor(file, path, "head.kernel", 2, d_head, (hsize_t)sub_begin * h,
                     (hsize_t)(sub_end - sub_begin) * h, model->head_w);
  if (st == MPL_OK) st = read_tensor(file, path, "head.bias", 1, d_hb, 0, 1, model->head_b);
  if (st != MPL_OK) mpl_blend_model_free(model);
out_close_file:
  H5Fclose(file);
  return st;
}

/* Writes the four tensors of sub-model i under group loc. */
static enum mpl_status write_submodel(hid_t loc, const struct mpl_blend_model *model, int i) {
  const struct mpl_blend_config *cfg = &model->cfg;
  int64_t h = cfg->hidden;
  int64_t d_w0[2] = {cfg->in_widths[i], h}, d_w1[2] = {h, h}, d_b[1] = {h};
  const char *parts[4] = {"dense_0.kernel", "dense_0.bias", "dense_1.kernel", "dense_1.bias"};
  const int64_t *shapes[4] = {d_w0, d_b, d_w1, d_b};
  const float *data[4] = {model->w0[i], model->b0[i], model->w1[i], model->b1[i]};
  enum mpl_status st = MPL_OK;
  for (int k = 0; k < 4 && st == MPL_OK; k++) {
    char name[128];
    snprintf(name, sizeof name, "submodel_%d.%s", i, parts[k]);
    st = mpl_io__dataset_write(loc, name, k % 2 ? 1 : 2, shapes[k], MPL_DTYPE_F32, data[k], NULL);
  }
  return st;
}

/* "dir/blend.h5" -> "dir/blend.sub3.h5"; base gets the name without the folder */
static void shard_path(const char *path, int i, char *out, size_t out_bytes, const char **base) {
  size_t len = strlen(path);
  int stem = (int)(len > 3 && strcmp(path + len - 3, ".h5") == 0 ? len - 3 : len);
  snprintf(out, out_bytes, "%.*s.sub%d.h5", stem, path, i);
  const char *slash = strrchr(out, '/');
  *base = slash ? slash + 1 : out;
}

static enum mpl_status write_model(const char *path, const struct mpl_blend_model *model,
                                   bool shards) {
  const struct mpl_blend_config *cfg = &model->cfg;
  MPL_ASSERT(model->sub_begin == 0 && model->sub_end == cfg->n_submodels,
             "only a whole model is written");
  enum mpl_status st = mpl_blend_config_check(cfg, path);
  if (st != MPL_OK) return st;
  struct mpl_io__writer w;
  if ((st = mpl_io__writer_create(&w, path)) != MPL_OK) return st;
  int64_t widths[MPL_BLEND_MAX_SUBMODELS];
  for (int i = 0; i < cfg->n_submodels; i++) widths[i] = cfg->in_widths[i];
  st = mpl_io__attr_write_str(w.file, "format", "mpillm");
  if (st == MPL_OK) st = mpl_io__attr_write_i64(w.file, "format_version", FORMAT_VERSION);
  if (st == MPL_OK) st = mpl_io__attr_write_str(w.file, "arch", "blend");
  hid_t group = H5Gcreate2(w.file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0 && st == MPL_OK) st = mpl_error_set(MPL_ERR_IO, "%s: cannot create /config", path);
  if (st == MPL_OK) st = mpl_io__attr_write_i64(group, "n_submodels", cfg->n_submodels);
  if (st == MPL_OK) st = mpl_io__attr_write_i64s(group, "in_widths", widths, cfg->n_submodels);
  if (st == MPL_OK) st = mpl_io__attr_write_i64(group, "n_features", mpl_blend_n_features(cfg));
  if (st == MPL_OK) st = mpl_io__attr_write_i64(group, "hidden", cfg->hidden);
  if (st == MPL_OK) st = mpl_io__attr_write_i64(group, "classes", cfg->n_classes);
  if (group >= 0) H5Gclose(group);
  hid_t tensors = H5Gcreate2(w.file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (tensors < 0 && st == MPL_OK) st = mpl_error_set(MPL_ERR_IO, "%s: cannot create /tensors", path);
  int64_t h = cfg->hidden, c = cfg->n_classes;
  /* shards: each sub-model in its own file, linked from /tensors of the main file,
   * so that a rank that owns sub-model i opens only that file for its weights */
  int n_written = 0;
  for (int i = 0; i < cfg->n_submodels && st == MPL_OK; i++) {
    if (!shards) {
      st = write_submodel(tensors, model, i);
      continue;
    }
    char shard[4096], name[128];
    const char *base = NULL;
    shard_path(path, i, shard, sizeof shard, &base);
    struct mpl_io__writer sw;
    if ((st = mpl_io__writer_create(&sw, shard)) != MPL_OK) break;
    st = mpl_io__attr_write_str(sw.file, "format", "mpillm");
    if (st == MPL_OK) st = mpl_io__attr_write_str(sw.file, "arch", "blend-shard");
    if (st == MPL_OK) st = mpl_io__attr_write_i64(sw.file, "submodel", i);
    hid_t sg = H5Gcreate2(sw.file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (st == MPL_OK) st = sg >= 0 ? write_submodel(sg, model, i) : mpl_error_set(MPL_ERR_IO, "%s: /tensors", shard);
    if (sg >= 0) H5Gclose(sg);
    if (st != MPL_OK) {
      mpl_io__writer_abort(&sw);
      break;
    }
    if ((st = mpl_io__writer_commit(&sw)) != MPL_OK) break;
    n_written++;
    const char *parts[4] = {"dense_0.kernel", "dense_0.bias", "dense_1.kernel", "dense_1.bias"};
    for (int k = 0; k < 4 && st == MPL_OK; k++) {
      char target[160];
      snprintf(name, sizeof name, "submodel_%d.%s", i, parts[k]);
      snprintf(target, sizeof target, "/tensors/%s", name);
      if (H5Lcreate_external(base, target, tensors, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
        st = mpl_error_set(MPL_ERR_IO, "%s: cannot link %s to %s", path, name, base);
    }
  }
  int64_t d_head[2] = {(int64_t)cfg->n_submodels * h, c}, d_hb[1] = {c};
  if (st == MPL_OK)
    st = mpl_io__dataset_write(tensors, "head.kernel", 2, d_head, MPL_DTYPE_F32, model->head_w, NULL);
  if (st == MPL_OK)
    st = mpl_io__dataset_write(tensors, "head.bias", 1, d_hb, MPL_DTYPE_F32, model->head_b, NULL);
  if (tensors >= 0) H5Gclose(tensors);
  if (st == MPL_OK) st = mpl_io__writer_commit(&w);
  else mpl_io__writer_abort(&w);
  if (st != MPL_OK) {
    mpl_error_wrap("%s", path);
    for (int i = 0; i < n_written; i++) { /* nothing half-written: the shards go too */
      char shard[4096];
      const char *base = NULL;
      shard_path(path, i, shard, sizeof shard, &base);
      unlink(shard);
    }
  }
  return st;
}

enum mpl_status mpl_blend_file_write(const char *path, const struct mpl_blend_model *model) {
  return write_model(path, model, false);
}

enum mpl_status mpl_blend_file_write_shards(const char *path, const struct mpl_blend_model *model) {
  return write_model(path, model, true);
}

/* --- plain matrices: X in, probs and z out ----------------------------------------- */

enum mpl_status mpl_blend_read_matrix(const char *path, const char *name, float **data,
                                      int64_t *n_rows, int64_t *n_cols) {
  *data = NULL;
  hid_t file = open_file(path);
  if (file < 0) return mpl_error_status();
  enum mpl_status st = MPL_OK;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: no dataset '%s' (--dataset names it)", path, name);
    goto out_close_file;
  }
  hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t space = H5Dget_space(dset);
  hid_t type = H5Dget_type(dset);
  hsize_t dims[2] = {0, 0};
  if (dset < 0 || H5Tget_class(type) != H5T_FLOAT || H5Sget_simple_extent_ndims(space) != 2) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: dataset '%s' is not a 2-D float matrix [rows, features]",
                       path, name);
  } else {
    H5Sget_simple_extent_dims(space, dims, NULL);
    *n_rows = (int64_t)dims[0];
    *n_cols = (int64_t)dims[1];
    size_t n = (size_t)(dims[0] * dims[1]);
    *data = mpl_alloc((n ? n : 1) * sizeof(float), path);
    if (!*data)
      st = MPL_ERR_NOMEM;
    else if (n && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read dataset '%s' as f32", path, name);
  }
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(dset);
  if (st != MPL_OK) {
    mpl_free(*data);
    *data = NULL;
  }
out_close_file:
  H5Fclose(file);
  return st;
}

enum mpl_status mpl_blend_write_matrices(const char *path, int n, const char *const *names,
                                         const float *const *data, int64_t n_rows,
                                         const int64_t *n_cols) {
  struct mpl_io__writer w;
  enum mpl_status st = mpl_io__writer_create(&w, path);
  for (int k = 0; st == MPL_OK && k < n; k++) {
    int64_t shape[2] = {n_rows, n_cols[k]};
    st = mpl_io__dataset_write(w.file, names[k], 2, shape, MPL_DTYPE_F32, data[k], NULL);
  }
  if (st != MPL_OK) {
    mpl_io__writer_abort(&w);
    return st;
  }
  return mpl_io__writer_commit(&w);
}
