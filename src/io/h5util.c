/* HDF5 helpers: silenced error stack reported in our words, the 16-bit float
 * types, typed attributes, UTF-8 text datasets and checksummed tensor datasets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

void mpl_io__h5_quiet(void) {
  static bool done = false;
  if (done) return;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  done = true;
}

static herr_t innermost_cb(unsigned n, const H5E_error2_t *err, void *data) {
  char *buf = data;
  if (n == 0 && err->desc) snprintf(buf, 256, "%s", err->desc);
  return 0;
}

const char *mpl_io__h5_message(void) {
  static _Thread_local char buf[256];
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
  if (!buf[0]) snprintf(buf, sizeof buf, "HDF5 error");
  return buf;
}

hid_t mpl_io__h5_type(enum mpl_dtype dtype) {
  if (dtype == MPL_DTYPE_F32) return H5Tcopy(H5T_IEEE_F32LE);
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (dtype == MPL_DTYPE_BF16) { /* the top half of an f32: 8-bit exponent, 7-bit mantissa */
    H5Tset_fields(t, 15, 7, 8, 0, 7);
    H5Tset_ebias(t, 127);
  } else { /* IEEE half */
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_ebias(t, 15);
  }
  H5Tset_size(t, 2);
  H5Tset_precision(t, 16);
  return t;
}

void mpl_io__chunk_shape(int n_dims, const hsize_t *shape, size_t elem_bytes, hsize_t *chunk) {
  const hsize_t target = (1u << 20) / elem_bytes; /* elements per chunk */
  if (n_dims == 1) {
    chunk[0] = shape[0] < target ? shape[0] : target;
    if (chunk[0] == 0) chunk[0] = 1;
    return;
  }
  hsize_t cols = shape[1] < 512 ? shape[1] : 512;
  if (cols == 0) cols = 1;
  hsize_t rows = target / cols;
  if (rows > shape[0]) rows = shape[0];
  if (rows == 0) rows = 1;
  chunk[0] = rows;
  chunk[1] = cols;
}

static enum mpl_status attr_write(hid_t obj, const char *name, hid_t type, hid_t space,
                                  const void *value) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t err = a < 0 ? -1 : H5Awrite(a, type, value);
  enum mpl_status st = MPL_OK;
  if (err < 0) st = mpl_error_set(MPL_ERR_IO, "cannot write attribute %s: %s", name, mpl_io__h5_message());
  if (a >= 0) H5Aclose(a);
  return st;
}

enum mpl_status mpl_io__attr_write_str(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(value) > 0 ? strlen(value) : 1);
  H5Tset_cset(t, H5T_CSET_UTF8);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t s = H5Screate(H5S_SCALAR);
  enum mpl_status st = attr_write(obj, name, t, s, strlen(value) > 0 ? value : "");
  H5Sclose(s);
  H5Tclose(t);
  return st;
}

enum mpl_status mpl_io__attr_write_i64(hid_t obj, const char *name, int64_t value) {
  hid_t s = H5Screate(H5S_SCALAR);
  enum mpl_status st = attr_write(obj, name, H5T_STD_I64LE, s, &value);
  H5Sclose(s);
  return st;
}

enum mpl_status mpl_io__attr_write_i64s(hid_t obj, const char *name, const int64_t *values, int n) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t s = H5Screate_simple(1, dims, NULL);
  enum mpl_status st = attr_write(obj, name, H5T_STD_I64LE, s, values);
  H5Sclose(s);
  return st;
}

enum mpl_status mpl_io__attr_write_f64(hid_t obj, const char *name, double value) {
  hid_t s = H5Screate(H5S_SCALAR);
  enum mpl_status st = attr_write(obj, name, H5T_IEEE_F64LE, s, &value);
  H5Sclose(s);
  return st;
}

bool mpl_io__attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

enum mpl_status mpl_io__attr_read_i64s(hid_t obj, const char *name, int64_t *values, int max_n,
                                       int *n_values) {
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "attribute %s is missing", name);
  enum mpl_status st = MPL_OK;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t s = H5Aget_space(a);
  hid_t t = H5Aget_type(a);
  hssize_t n = H5Sget_simple_extent_npoints(s);
  if (H5Tget_class(t) != H5T_INTEGER) {
    st = mpl_error_set(MPL_ERR_FORMAT, "attribute %s is not an integer", name);
  } else if (n < 1 || n > max_n) {
    st = mpl_error_set(MPL_ERR_FORMAT, "attribute %s has %lld values (expected 1 to %d)", name,
                       (long long)n, max_n);
  } else if (H5Aread(a, H5T_NATIVE_INT64, values) < 0) {
    st = mpl_error_set(MPL_ERR_FORMAT, "cannot read attribute %s: %s", name, mpl_io__h5_message());
  }
  if (n_values) *n_values = (int)n;
  H5Tclose(t);
  H5Sclose(s);
  H5Aclose(a);
  return st;
}

enum mpl_status mpl_io__attr_read_i64(hid_t obj, const char *name, int64_t *value) {
  int n = 0;
  enum mpl_status st = mpl_io__attr_read_i64s(obj, name, value, 1, &n);
  return st;
}

enum mpl_status mpl_io__attr_read_f64(hid_t obj, const char *name, double *value) {
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "attribute %s is missing", name);
  enum mpl_status st = MPL_OK;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t s = H5Aget_space(a);
  hid_t t = H5Aget_type(a);
  H5T_class_t c = H5Tget_class(t);
  if ((c != H5T_FLOAT && c != H5T_INTEGER) || H5Sget_simple_extent_npoints(s) != 1)
    st = mpl_error_set(MPL_ERR_FORMAT, "attribute %s is not a number", name);
  else if (H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0)
    st = mpl_error_set(MPL_ERR_FORMAT, "cannot read attribute %s: %s", name, mpl_io__h5_message());
  H5Tclose(t);
  H5Sclose(s);
  H5Aclose(a);
  return st;
}

enum mpl_status mpl_io__attr_read_str(hid_t obj, const char *name, char *buf, size_t buf_bytes) {
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "attribute %s is missing", name);
  enum mpl_status st = MPL_OK;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  if (H5Tget_class(t) != H5T_STRING) {
    st = mpl_error_set(MPL_ERR_FORMAT, "attribute %s is not a string", name);
  } else if (H5Tis_variable_str(t) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t)); /* a UTF-8 string needs a UTF-8 memory type */
    char *value = NULL;
    if (H5Aread(a, mt, &value) < 0 || !value) {
      st = mpl_error_set(MPL_ERR_FORMAT, "cannot read attribute %s: %s", name, mpl_io__h5_message());
    } else {
      snprintf(buf, buf_bytes, "%s", value);
      H5free_memory(value);
    }
    H5Tclose(mt);
  } else {
    size_t n = H5Tget_size(t);
    char *tmp = calloc(n + 1, 1);
    hid_t mt = H5Tcopy(t);
    if (!tmp || H5Aread(a, mt, tmp) < 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "cannot read attribute %s: %s", name, mpl_io__h5_message());
    else
      snprintf(buf, buf_bytes, "%s", tmp);
    H5Tclose(mt);
    free(tmp);
  }
  H5Tclose(t);
  H5Aclose(a);
  return st;
}

static hid_t utf8_vlen_type(H5T_cset_t cset) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, cset);
  return t;
}

enum mpl_status mpl_io__text_write(hid_t loc, const char *name, const char *text) {
  hid_t t = utf8_vlen_type(H5T_CSET_UTF8);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t err = d < 0 ? -1 : H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
  enum mpl_status st = MPL_OK;
  if (err < 0) st = mpl_error_set(MPL_ERR_IO, "cannot write text %s: %s", name, mpl_io__h5_message());
  if (d >= 0) H5Dclose(d);
  H5Sclose(s);
  H5Tclose(t);
  return st;
}

enum mpl_status mpl_io__text_read(hid_t loc, const char *name, char **text) {
  *text = NULL;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return mpl_error_set(MPL_ERR_FORMAT, "cannot open text %s: %s", name, mpl_io__h5_message());
  enum mpl_status st = MPL_OK;
  hid_t t = H5Dget_type(d);
  hid_t s = H5Dget_space(d);
  if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(s) != 1) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s is not a scalar string", name);
  } else if (H5Tis_variable_str(t) > 0) {
    hid_t mt = utf8_vlen_type(H5Tget_cset(t)); /* match the stored character set */
    char *value = NULL;
    if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) {
      st = mpl_error_set(MPL_ERR_FORMAT, "cannot read text %s: %s", name, mpl_io__h5_message());
    } else {
      *text = strdup(value ? value : "");
      if (!*text) st = mpl_error_set(MPL_ERR_NOMEM, "cannot copy text %s", name);
      H5Dvlen_reclaim(mt, s, H5P_DEFAULT, &value);
    }
    H5Tclose(mt);
  } else { /* fixed-length, as other writers may store it */
    size_t n = H5Tget_size(t);
    char *value = calloc(n + 1, 1);
    hid_t mt = H5Tcopy(t);
    if (!value) {
      st = mpl_error_set(MPL_ERR_NOMEM, "cannot allocate text %s", name);
    } else if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, value) < 0) {
      st = mpl_error_set(MPL_ERR_FORMAT, "cannot read text %s: %s", name, mpl_io__h5_message());
      free(value);
    } else {
      *text = value;
    }
    H5Tclose(mt);
  }
  H5Sclose(s);
  H5Tclose(t);
  H5Dclose(d);
  return st;
}

enum mpl_status mpl_io__dataset_write(hid_t loc, const char *name, int n_dims, const int64_t *shape,
                                      enum mpl_dtype dtype, const void *data, uint32_t *crc_out) {
  MPL_ASSERT(n_dims >= 1 && n_dims <= 2, "tensor %s: %d dims", name, n_dims);
  hsize_t dims[2], chunk[2];
  size_t n = 1;
  for (int i = 0; i < n_dims; i++) {
    dims[i] = (hsize_t)shape[i];
    n *= (size_t)shape[i];
  }
  size_t elem = mpl_dtype_bytes(dtype);
  uint32_t crc = mpl_crc32(0, data, n * elem);
  enum mpl_status st = MPL_OK;
  hid_t type = mpl_io__h5_type(dtype);
  hid_t space = H5Screate_simple(n_dims, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (n > 0) {
    mpl_io__chunk_shape(n_dims, dims, elem, chunk);
    H5Pset_chunk(dcpl, n_dims, chunk);
    H5Pset_fletcher32(dcpl);
  }
  hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0 || (n > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
    st = mpl_error_set(MPL_ERR_IO, "cannot write tensor %s: %s", name, mpl_io__h5_message());
  if (st == MPL_OK) st = mpl_io__attr_write_i64(d, "crc32", crc);
  if (st == MPL_OK) st = mpl_io__attr_write_str(d, "dtype", mpl_dtype_name(dtype));
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
  if (crc_out) *crc_out = crc;
  return st;
}

/* --- /config ------------------------------------------------------------------ */

enum mpl_status mpl_io__config_write(hid_t file, const struct mpl_model_config *cfg,
                                     const char *model_type) {
  hid_t g = H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return mpl_error_set(MPL_ERR_IO, "cannot create /config: %s", mpl_io__h5_message());
  enum mpl_status st = MPL_OK;
#define W_INT(name, v) \
  if (st == MPL_OK) st = mpl_io__attr_write_i64(g, name, (int64_t)(v))
  if (model_type) st = mpl_io__attr_write_str(g, "model_type", model_type);
  W_INT("vocab_size", cfg->vocab_size);
  W_INT("hidden_size", cfg->hidden_size);
  W_INT("intermediate_size", cfg->intermediate_size);
  W_INT("num_hidden_layers", cfg->n_layers);
  W_INT("num_attention_heads", cfg->n_heads);
  W_INT("num_key_value_heads", cfg->n_kv_heads);
  W_INT("head_dim", cfg->head_dim);
  W_INT("max_position_embeddings", cfg->max_position_embeddings);
  W_INT("tie_word_embeddings", cfg->tie_word_embeddings ? 1 : 0);
  if (cfg->bos_token_id >= 0) W_INT("bos_token_id", cfg->bos_token_id);
#undef W_INT
  if (st == MPL_OK && cfg->n_eos > 0) {
    int64_t eos[MPL_MAX_EOS];
    for (int i = 0; i < cfg->n_eos; i++) eos[i] = cfg->eos_token_ids[i];
    st = mpl_io__attr_write_i64s(g, "eos_token_id", eos, cfg->n_eos);
  }
  if (st == MPL_OK && cfg->arch != MPL_ARCH_GPT2)
    st = mpl_io__attr_write_f64(g, "rope_theta", (double)cfg->rope_theta);
  if (st == MPL_OK)
    st = mpl_io__attr_write_f64(g, cfg->arch == MPL_ARCH_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps",
                                (double)cfg->norm_eps);
  H5Gclose(g);
  return st;
}

enum mpl_status mpl_io__config_read(hid_t file, const char *path, struct mpl_model_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  char arch[32];
  enum mpl_status st = mpl_io__attr_read_str(file, "arch", arch, sizeof arch);
  if (st == MPL_OK) st = mpl_arch_parse(arch, &cfg->arch);
  if (st != MPL_OK) return mpl_error_wrap("%s", path);
  if (H5Lexists(file, "config", H5P_DEFAULT) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: the group /config is missing", path);
  hid_t g = H5Gopen2(file, "config", H5P_DEFAULT);
  if (g < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open /config", path);
  int64_t v = 0;
#define R_INT(name, field)                               \
  if (st == MPL_OK) {                                    \
    st = mpl_io__attr_read_i64(g, name, &v);             \
    cfg->field = (int)v;                                 \
  }
  R_INT("vocab_size", vocab_size);
  R_INT("hidden_size", hidden_size);
  R_INT("intermediate_size", intermediate_size);
  R_INT("num_hidden_layers", n_layers);
  R_INT("num_attention_heads", n_heads);
  R_INT("max_position_embeddings", max_position_embeddings);
#undef R_INT
  if (st == MPL_OK) {
    cfg->n_kv_heads = cfg->n_heads;
    if (mpl_io__attr_exists(g, "num_key_value_heads") &&
        (st = mpl_io__attr_read_i64(g, "num_key_value_heads", &v)) == MPL_OK)
      cfg->n_kv_heads = (int)v;
  }
  if (st == MPL_OK) {
    cfg->head_dim = cfg->n_heads > 0 ? cfg->hidden_size / cfg->n_heads : 0;
    if (mpl_io__attr_exists(g, "head_dim") && (st = mpl_io__attr_read_i64(g, "head_dim", &v)) == MPL_OK)
      cfg->head_dim = (int)v;
  }
  if (st == MPL_OK && mpl_io__attr_exists(g, "tie_word_embeddings") &&
      (st = mpl_io__attr_read_i64(g, "tie_word_embeddings", &v)) == MPL_OK)
    cfg->tie_word_embeddings = v != 0;
  cfg->bos_token_id = -1;
  if (st == MPL_OK && mpl_io__attr_exists(g, "bos_token_id") &&
      (st = mpl_io__attr_read_i64(g, "bos_token_id", &v)) == MPL_OK)
    cfg->bos_token_id = (int)v;
  if (st == MPL_OK && mpl_io__attr_exists(g, "eos_token_id")) {
    int64_t eos[MPL_MAX_EOS];
    int n = 0;
    st = mpl_io__attr_read_i64s(g, "eos_token_id", eos, MPL_MAX_EOS, &n);
    if (st == MPL_OK) {
      cfg->n_eos = n;
      for (int i = 0; i < n; i++) cfg->eos_token_ids[i] = (int)eos[i];
    }
  }
  double d = 0;
  if (st == MPL_OK && cfg->arch != MPL_ARCH_GPT2) {
    cfg->rope_theta = 10000.0f;
    if (mpl_io__attr_exists(g, "rope_theta") && (st = mpl_io__attr_read_f64(g, "rope_theta", &d)) == MPL_OK)
      cfg->rope_theta = (float)d;
  }
  if (st == MPL_OK) {
    const char *eps = mpl_io__attr_exists(g, "rms_norm_eps") ? "rms_norm_eps" : "layer_norm_epsilon";
    if ((st = mpl_io__attr_read_f64(g, eps, &d)) == MPL_OK) cfg->norm_eps = (float)d;
  }
  cfg->qkv_bias = cfg->arch == MPL_ARCH_QWEN2;
  H5Gclose(g);
  if (st != MPL_OK) return mpl_error_wrap("%s: /config", path);
  st = mpl_model_config_check(cfg);
  if (st != MPL_OK) return mpl_error_wrap("%s", path);
  return MPL_OK;
}
