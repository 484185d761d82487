/* Shard sets: a folder with one HDF5 file per (pp_rank, tp_rank) of a layout and
 * a manifest.json. Which rectangles a file holds comes only from
 * mpl_model_part_for + mpl_model_part_rects, so a shard holds exactly what its rank
 * loads. A shard file, as `h5ls -r` shows it:
 *   /                      attrs format="mpillm-shard", format_version=1, arch, pp_rank,
 *                          pp_size, tp_rank, tp_size, layer_begin, layer_end, source
 *   /config, /tokenizer    copied from the model file
 *   /tensors/<name>        a group per tensor: attrs shape (of the whole tensor), dtype
 *   /tensors/<name>/r<i>   one 2-D dataset per rectangle [n_rows][n_cols], attrs row0,
 *                          col0, crc32, dtype; chunked with Fletcher32
 * manifest.json:
 *   {"format": "mpillm-shards", "format_version": 1, "arch": "llama", "pp": P, "tp": T,
 *    "source": {"name": "model.h5", "bytes": n, "crc32": c},
 *    "stages": [{"pp_rank": 0, "layer_begin": 0, "layer_end": 12,
 *                "has_embedding": true, "has_head": false}, ...],
 *    "files": [{"name": "shard-pp0-tp0.h5", "pp_rank": 0, "tp_rank": 0,
 *               "bytes": n, "crc32": c}, ...]}
 * crc32 of the source and of each file is over the whole file's bytes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reader.h"

#define SHARD_FORMAT "mpillm-shards"

/* crc32 and size of a whole file, read in 4 MiB pieces. */
static enum mpl_status file_crc(const char *path, uint32_t *crc, uint64_t *n_bytes) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return mpl_error_set(MPL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  size_t piece = 4u << 20;
  unsigned char *buf = malloc(piece);
  if (!buf) {
    fclose(fp);
    return mpl_error_set(MPL_ERR_NOMEM, "no memory to checksum %s", path);
  }
  uint32_t c = 0;
  uint64_t total = 0;
  size_t n;
  while ((n = fread(buf, 1, piece, fp)) > 0) {
    c = mpl_crc32(c, buf, n);
    total += n;
  }
  enum mpl_status st = ferror(fp) ? mpl_error_set(MPL_ERR_IO, "cannot read %s", path) : MPL_OK;
  free(buf);
  fclose(fp);
  *crc = c;
  *n_bytes = total;
  return st;
}

/* The shard files this process has checked whole: a run opens its shard 2-3 times
 * (config, weights, rank 0's tokenizer), and a file of tens of GB should be read for
 * its crc32 once. A file counts as checked while its device, inode, size and mtime
 * stay what they were when it was read. */
struct checked_file {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  uint32_t crc;
};
#define N_CHECKED 16
static struct checked_file checked[N_CHECKED];
static int n_checked, next_checked; /* entries in use; the one to replace next */

static bool same_file(const struct checked_file *c, const struct stat *sb) {
  return c->dev == sb->st_dev && c->ino == sb->st_ino && c->size == sb->st_size &&
         c->mtime.tv_sec == sb->st_mtim.tv_sec && c->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

/* file_crc, or the crc32 found when this very file was read before. */
static enum mpl_status file_crc_once(const char *path, uint32_t *crc) {
  struct stat before;
  bool known = stat(path, &before) == 0;
  for (int i = 0; known && i < n_checked; i++)
    if (same_file(&checked[i], &before)) {
      *crc = checked[i].crc;
      return MPL_OK;
    }
  uint64_t n_bytes = 0;
  enum mpl_status st = file_crc(path, crc, &n_bytes);
  struct stat after;
  /* remembered only when the file did not change while it was read */
  if (st == MPL_OK && known && stat(path, &after) == 0 && (uint64_t)after.st_size == n_bytes) {
    struct checked_file c = {after.st_dev, after.st_ino, after.st_size, after.st_mtim, *crc};
    if (same_file(&c, &before)) {
      checked[next_checked] = c;
      next_checked = (next_checked + 1) % N_CHECKED;
      if (n_checked < N_CHECKED) n_checked++;
    }
  }
  return st;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* --- reading -------------------------------------------------------------------- */

static int json_int(cJSON *obj, const char *name, int fallback) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNumber(v) ? (int)v->valuedouble : fallback;
}

enum mpl_status mpl_io_shard_layout(const char *dir, int *pp_size, int *tp_size) {
  char path[4400];
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  char *text = NULL;
  enum mpl_status st = mpl_io__slurp(path, false, &text, NULL);
  if (st != MPL_OK) return st;
  cJSON *root = cJSON_Parse(text);
  free(text);
  cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
  *pp_size = json_int(root, "pp", -1);
  *tp_size = json_int(root, "tp", -1);
  if (!cJSON_IsString(format) || strcmp(format->valuestring, SHARD_FORMAT) != 0 || *pp_size < 1 || *tp_size < 1)
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: not an mpillm shard manifest", path);
  cJSON_Delete(root);
  return st;
}

enum mpl_status mpl_io__shard_open(struct mpl_model_file *f, int pp_rank, int pp_size, int tp_rank, int tp_size) {
  char path[4400];
  snprintf(path, sizeof path, "%s/manifest.json", f->path);
  char *text = NULL;
  enum mpl_status st = mpl_io__slurp(path, false, &text, NULL);
  if (st != MPL_OK) return mpl_error_wrap("%s is a folder but not a shard set", f->path);
  cJSON *root = cJSON_Parse(text);
  free(text);
  cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
  cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
  if (!cJSON_IsString(format) || strcmp(format->valuestring, SHARD_FORMAT) != 0 || !cJSON_IsArray(files)) {
    cJSON_Delete(root);
    return mpl_error_set(MPL_ERR_FORMAT, "%s: not an mpillm shard manifest", path);
  }
  int m_pp = json_int(root, "pp", -1), m_tp = json_int(root, "tp", -1);
  if (m_pp != pp_size || m_tp != tp_size) {
    cJSON_Delete(root);
    return mpl_error_set(MPL_ERR_ARG,
                         "%s: the shard set is cut for pp %d x tp %d, but this run's layout is pp %d x tp %d "
                         "(run `mpillm shard` again with --pp %d --tp %d, or use the model file)",
                         f->path, m_pp, m_tp, pp_size, tp_size, pp_size, tp_size);
  }
  cJSON *entry, *mine = NULL;
  cJSON_ArrayForEach(entry, files) {
    if (json_int(entry, "pp_rank", -1) == pp_rank && json_int(entry, "tp_rank", -1) == tp_rank) mine = entry;
  }
  cJSON *name = mine ? cJSON_GetObjectItemCaseSensitive(mine, "name") : NULL;
  cJSON *want_crc = mine ? cJSON_GetObjectItemCaseSensitive(mine, "crc32") : NULL;
  if (!cJSON_IsString(name) || strchr(name->valuestring, '/') || !cJSON_IsNumber(want_crc)) {
    cJSON_Delete(root);
    return mpl_error_set(MPL_ERR_FORMAT, "%s: no valid file entry for pp_rank %d, tp_rank %d", path, pp_rank,
                         tp_rank);
  }
  char file[4400];
  snprintf(file, sizeof file, "%s/%s", f->path, name->valuestring);
  uint32_t want = (uint32_t)want_crc->valuedouble, got = 0;
  cJSON_Delete(root);
  st = file_crc_once(file, &got);
  if (st != MPL_OK) return mpl_error_wrap("shard of pp_rank %d, tp_rank %d", pp_rank, tp_rank);
  if (got != want)
    return mpl_error_set(MPL_ERR_CHECKSUM,
                         "%s: crc32 %08x differs from the manifest's %08x: the shard file is corrupt", file, got,
                         want);
  f->is_shard = true;
  st = mpl_io__open_h5(f, file, false, "mpillm-shard");
  if (st != MPL_OK) return st;
  int64_t v[4] = {-1, -1, -1, -1};
  static const char *const keys[4] = {"pp_rank", "pp_size", "tp_rank", "tp_size"};
  for (int i = 0; i < 4 && st == MPL_OK; i++) st = mpl_io__attr_read_i64(f->file, keys[i], &v[i]);
  if (st != MPL_OK) return mpl_error_wrap("%s", file);
  if (v[0] != pp_rank || v[1] != pp_size || v[2] != tp_rank || v[3] != tp_size)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: the file is for pp %lld/%lld tp %lld/%lld, the manifest lists it "
                                         "for pp %d/%d tp %d/%d",
                         file, (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3], pp_rank,
                         pp_size, tp_rank, tp_size);
  return MPL_OK;
}

enum mpl_status mpl_io__shard_list_rects(struct mpl_model_file *f, hid_t tensors, struct mpl_io__tensor *t,
                                         const char *what) {
  hid_t g = H5Gopen2(tensors, t->name, H5P_DEFAULT);
  if (g < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: not a group of rectangles", what);
  int64_t shape[MPL_IO_MAX_DIMS];
  char dtype[16];
  H5G_info_t info;
  enum mpl_status st = mpl_io__attr_read_i64s(g, "shape", shape, MPL_IO_MAX_DIMS, &t->info.n_dims);
  if (st == MPL_OK) st = mpl_io__attr_read_str(g, "dtype", dtype, sizeof dtype);
  if (st == MPL_OK) st = mpl_dtype_parse(dtype, &t->info.dtype);
  if (st == MPL_OK && H5Gget_info(g, &info) < 0) st = mpl_error_set(MPL_ERR_FORMAT, "cannot list rectangles");
  if (st == MPL_OK) {
    for (int i = 0; i < t->info.n_dims; i++) t->info.shape[i] = shape[i];
    t->n_rects = (int)info.nlinks;
    t->rects = calloc((size_t)t->n_rects + 1, sizeof *t->rects);
    if (!t->rects) st = mpl_error_set(MPL_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; st == MPL_OK && i < t->n_rects; i++) {
    struct mpl_io__rect *r = &t->rects[i];
    snprintf(r->dset, sizeof r->dset, "tensors/%s/r%d", t->name, i);
    hid_t d = H5Dopen2(f->file, r->dset, H5P_DEFAULT);
    if (d < 0) {
      st = mpl_error_set(MPL_ERR_FORMAT, "rectangle r%d is missing", i);
      break;
    }
    int n_dims = 0;
    int64_t dims[MPL_IO_MAX_DIMS];
    enum mpl_dtype rd;
    st = mpl_io__dataset_info(d, r->dset, &n_dims, dims, &rd, &r->crc);
    if (st == MPL_OK) st = mpl_io__attr_read_i64(d, "row0", &r->row0);
    if (st == MPL_OK) st = mpl_io__attr_read_i64(d, "col0", &r->col0);
    if (st == MPL_OK && (n_dims != 2 || rd != t->info.dtype))
      st = mpl_error_set(MPL_ERR_FORMAT, "rectangle r%d is not 2-D %s", i, dtype);
    r->n_rows = dims[0];
    r->n_cols = dims[1];
    H5Dclose(d);
  }
  H5Gclose(g);
  if (st != MPL_OK) return mpl_error_wrap("%s", what);
  return MPL_OK;
}

enum mpl_status mpl_io__shard_read(struct mpl_model_file *f, const struct mpl_io__tensor *t, int64_t row0,
                                   int64_t n_rows, int64_t col0, int64_t n_cols, enum mpl_dtype dst_dtype,
                                   void *dst) {
  if (n_rows == 0 || n_cols == 0) return MPL_OK;
  char what[4400];
  snprintf(what, sizeof what, "%s: tensor %s", f->file_path, t->name);
  size_t es = mpl_dtype_bytes(t->info.dtype), n = (size_t)(n_rows * n_cols);
  void *raw = dst;
  if (t->info.dtype != dst_dtype && !(raw = mpl_alloc(n * es, t->name))) return MPL_ERR_NOMEM;
  enum mpl_status st = MPL_OK;
  /* the common case: the request lies in one stored rectangle (usually it is one) */
  const struct mpl_io__rect *whole = NULL;
  for (int i = 0; i < t->n_rects && !whole; i++) {
    const struct mpl_io__rect *r = &t->rects[i];
    if (row0 >= r->row0 && row0 + n_rows <= r->row0 + r->n_rows && col0 >= r->col0 &&
        col0 + n_cols <= r->col0 + r->n_cols)
      whole = r;
  }
  if (whole) {
    st = mpl_io__read_raw(f->file, whole->dset, what, 2, t->info.dtype, row0 - whole->row0, n_rows,
                          col0 - whole->col0, n_cols, false, raw);
    if (st == MPL_OK && n_rows == whole->n_rows && n_cols == whole->n_cols &&
        mpl_crc32(0, raw, n * es) != whole->crc)
      st = mpl_error_set(MPL_ERR_CHECKSUM, "%s: crc32 of rectangle %s does not match: the shard is corrupt", what,
                         whole->dset);
  } else { /* pieced together from the stored rectangles, which never overlap */
    int64_t covered = 0;
    for (int i = 0; st == MPL_OK && i < t->n_rects; i++) {
      const struct mpl_io__rect *r = &t->rects[i];
      int64_t r0 = row0 > r->row0 ? row0 : r->row0, r1 = row0 + n_rows < r->row0 + r->n_rows ? row0 + n_rows : r->row0 + r->n_rows;
      int64_t c0 = col0 > r->col0 ? col0 : r->col0, c1 = col0 + n_cols < r->col0 + r->n_cols ? col0 + n_cols : r->col0 + r->n_cols;
      if (r0 >= r1 || c0 >= c1) continue;
      char *piece = mpl_alloc((size_t)((r1 - r0) * (c1 - c0)) * es, t->name);
      if (!piece) {
        st = MPL_ERR_NOMEM;
        break;
      }
      st = mpl_io__read_raw(f->file, r->dset, what, 2, t->info.dtype, r0 - r->row0, r1 - r0, c0 - r->col0, c1 - c0,
                            false, piece);
      for (int64_t row = r0; st == MPL_OK && row < r1; row++)
        memcpy((char *)raw + ((size_t)((row - row0) * n_cols + (c0 - col0))) * es,
               piece + (size_t)((row - r0) * (c1 - c0)) * es, (size_t)(c1 - c0) * es);
      mpl_free(piece);
      covered += (r1 - r0) * (c1 - c0);
    }
    if (st == MPL_OK && covered != n_rows * n_cols) {
      char held[256] = "";
      size_t at = 0;
      for (int i = 0; i < t->n_rects && at < sizeof held; i++)
        at += (size_t)snprintf(held + at, sizeof held - at, "%s rows %lld+%lld cols %lld+%lld", i ? "," : "",
                               (long long)t->rects[i].row0, (long long)t->rects[i].n_rows,
                               (long long)t->rects[i].col0, (long long)t->rects[i].n_cols);
      st = mpl_error_set(MPL_ERR_FORMAT,
                         "%s: rows %lld+%lld, columns %lld+%lld are not in this shard (it holds%s): was the set "
                         "cut with other --pp-layers?",
                         what, (long long)row0, (long long)n_rows, (long long)col0, (long long)n_cols, held);
    }
  }
  if (st == MPL_OK) mpl_io__convert(dst, dst_dtype, raw, t->info.dtype, n);
  if (raw != dst) mpl_free(raw);
  return st;
}

enum mpl_status mpl_io__shard_verify(struct mpl_model_file *f, const struct mpl_io__tensor *t) {
  enum mpl_status st = MPL_OK;
  for (int i = 0; st == MPL_OK && i < t->n_rects; i++) {
    const struct mpl_io__rect *r = &t->rects[i];
    size_t n_bytes = (size_t)(r->n_rows * r->n_cols) * mpl_dtype_bytes(t->info.dtype);
    void *raw = mpl_alloc(n_bytes, t->name);
    if (!raw) return MPL_ERR_NOMEM;
    char what[4400];
    snprintf(what, sizeof what, "%s: %s", f->file_path, r->dset);
    st = mpl_io__read_raw(f->file, r->dset, what, 2, t->info.dtype, 0, r->n_rows, 0, r->n_cols, false, raw);
    if (st == MPL_OK && mpl_crc32(0, raw, n_bytes) != r->crc)
      st = mpl_error_set(MPL_ERR_CHECKSUM, "%s: crc32 does not match the stored one: the shard is corrupt", what);
    mpl_free(raw);
  }
  return st;
}

/* --- writing -------------------------------------------------------------------- */

static bool same_rect(const struct mpl_tensor_rect *a, const struct mpl_tensor_rect *b) {
  return strcmp(a->name, b->name) == 0 && a->row0 == b->row0 && a->n_rows == b->n_rows && a->col0 == b->col0 &&
         a->n_cols == b->n_cols;
}

/* One shard file: the part's rectangles read from the model file. */
static enum mpl_status write_shard(struct mpl_model_file *model, const struct mpl_model_config *cfg,
                                   const struct mpl_model_part *part, const char *path) {
  struct mpl_tensor_rect *rects = NULL;
  int n_rects = 0;
  enum mpl_status st = mpl_model_part_rects(cfg, part, &rects, &n_rects);
  if (st != MPL_OK) return st;
  hid_t file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    free(rects);
    return mpl_error_set(MPL_ERR_IO, "cannot create %s: %s", path, mpl_io__h5_message());
  }
  st = mpl_io__attr_write_str(file, "format", "mpillm-shard");
  if (st == MPL_OK) st = mpl_io__attr_write_i64(file, "format_version", MPL_IO_FORMAT_VERSION);
  if (st == MPL_OK) st = mpl_io__attr_write_str(file, "arch", mpl_arch_name(cfg->arch));
  if (st == MPL_OK) st = mpl_io__attr_write_str(file, "source", base_name(mpl_io_path(model)));
  const int64_t layout[6] = {part->pp_rank, part->pp_size, part->tp_rank, part->tp_size, part->layer_begin,
                             part->layer_end};
  static const char *const keys[6] = {"pp_rank", "pp_size", "tp_rank", "tp_size", "layer_begin", "layer_end"};
  for (int i = 0; i < 6 && st == MPL_OK; i++) st = mpl_io__attr_write_i64(file, keys[i], layout[i]);
  /* config and tokenizer as they are in the model file */
  if (st == MPL_OK && H5Ocopy(model->file, "config", file, "config", H5P_DEFAULT, H5P_DEFAULT) < 0)
    st = mpl_error_set(MPL_ERR_IO, "%s: cannot copy /config: %s", path, mpl_io__h5_message());
  if (st == MPL_OK && H5Lexists(model->file, "tokenizer", H5P_DEFAULT) > 0 &&
      H5Ocopy(model->file, "tokenizer", file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT) < 0)
    st = mpl_error_set(MPL_ERR_IO, "%s: cannot copy /tokenizer: %s", path, mpl_io__h5_message());
  hid_t tensors = st == MPL_OK ? H5Gcreate2(file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
  if (st == MPL_OK && tensors < 0) st = mpl_error_set(MPL_ERR_IO, "%s: cannot create /tensors", path);
  for (int i = 0; st == MPL_OK && i < n_rects; i++) {
    const struct mpl_tensor_rect *r = &rects[i];
    bool dup = false;
    for (int j = 0; j < i && !dup; j++) dup = same_rect(&rects[j], r);
    if (dup) continue; /* a tied embedding listed for both ends */
    struct mpl_tensor_info info;
    st = mpl_io_tensor_info(model, r->name, &info);
    if (st != MPL_OK) break;
    hid_t g;
    if (H5Lexists(tensors, r->name, H5P_DEFAULT) > 0) {
      g = H5Gopen2(tensors, r->name, H5P_DEFAULT);
    } else {
      g = H5Gcreate2(tensors, r->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) st = mpl_io__attr_write_i64s(g, "shape", info.shape, info.n_dims);
      if (st == MPL_OK && g >= 0) st = mpl_io__attr_write_str(g, "dtype", mpl_dtype_name(info.dtype));
    }
    if (g < 0) {
      st = mpl_error_set(MPL_ERR_IO, "%s: cannot create group for %s", path, r->name);
      break;
    }
    H5G_info_t gi;
    H5Gget_info(g, &gi);
    size_t n = (size_t)(r->n_rows * r->n_cols);
    void *buf = mpl_alloc(n * mpl_dtype_bytes(info.dtype) + 1, r->name);
    if (!buf) st = MPL_ERR_NOMEM;
    if (st == MPL_OK)
      st = mpl_io_read_rect(model, r->name, r->row0, r->n_rows, r->col0, r->n_cols, info.dtype, buf);
    char dset[32];
    snprintf(dset, sizeof dset, "r%d", (int)gi.nlinks);
    int64_t shape[2] = {r->n_rows, r->n_cols};
    if (st == MPL_OK) st = mpl_io__dataset_write(g, dset, 2, shape, info.dtype, buf, NULL);
    hid_t d = st == MPL_OK ? H5Dopen2(g, dset, H5P_DEFAULT) : -1;
    if (d >= 0) {
      st = mpl_io__attr_write_i64(d, "row0", r->row0);
      if (st == MPL_OK) st = mpl_io__attr_write_i64(d, "col0", r->col0);
      H5Dclose(d);
    }
    mpl_free(buf);
    H5Gclose(g);
  }
  if (tensors >= 0) H5Gclose(tensors);
  if (H5Fclose(file) < 0 && st == MPL_OK) st = mpl_error_set(MPL_ERR_IO, "cannot finish %s", path);
  free(rects);
  return st;
}

static void remove_tree(const char *dir, int pp_size, int tp_size) {
  char path[4400];
  for (int p = 0; p < pp_size; p++)
    for (int t = 0; t < tp_size; t++) {
      snprintf(path, sizeof path, "%s/shard-pp%d-tp%d.h5", dir, p, t);
      unlink(path);
    }
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  unlink(path);
  rmdir(dir);
}

enum mpl_status mpl_io_shard(const char *model_path, int pp_size, const int *layers_per_stage, int tp_size,
                             const char *out_dir) {
  mpl_io__h5_quiet();
  if (pp_size < 1 || tp_size < 1)
    return mpl_error_set(MPL_ERR_ARG, "shard: --pp %d --tp %d: both must be at least 1", pp_size, tp_size);
  struct stat sb;
  if (stat(out_dir, &sb) == 0)
    return mpl_error_set(MPL_ERR_IO, "%s already exists: shard writes a new folder", out_dir);
  struct mpl_model_file *model = NULL;
  enum mpl_status st = mpl_io_open(model_path, MPI_COMM_SELF, 0, 1, 0, 1, &model);
  if (st != MPL_OK) return st;
  if (model->is_shard) {
    mpl_io_close(model);
    return mpl_error_set(MPL_ERR_ARG, "%s is a shard set: shard the model file", model_path);
  }
  struct mpl_model_config cfg;
  st = mpl_io_read_config(model, &cfg);
  /* every part first: a layout the model cannot take fails before anything is written */
  struct mpl_model_part *parts = calloc((size_t)pp_size * (size_t)tp_size, sizeof *parts);
  if (!parts && st == MPL_OK) st = mpl_error_set(MPL_ERR_NOMEM, "out of memory");
  for (int p = 0; st == MPL_OK && p < pp_size; p++)
    for (int t = 0; st == MPL_OK && t < tp_size; t++)
      st = mpl_model_part_for(&cfg, p, pp_size, layers_per_stage, t, tp_size, &parts[p * tp_size + t]);
  uint32_t source_crc = 0;
  uint64_t source_bytes = 0;
  if (st == MPL_OK) st = file_crc(model_path, &source_crc, &source_bytes);
  /* written into a temporary folder beside the final one, renamed at the end */
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_dir);
  if (st == MPL_OK && !mkdtemp(tmp)) st = mpl_error_set(MPL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  bool made_tmp = st == MPL_OK;
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "format", SHARD_FORMAT);
  cJSON_AddNumberToObject(root, "format_version", MPL_IO_FORMAT_VERSION);
  cJSON_AddStringToObject(root, "arch", mpl_arch_name(cfg.arch));
  cJSON_AddNumberToObject(root, "pp", pp_size);
  cJSON_AddNumberToObject(root, "tp", tp_size);
  cJSON *source = cJSON_AddObjectToObject(root, "source");
  cJSON_AddStringToObject(source, "name", base_name(model_path));
  cJSON_AddNumberToObject(source, "bytes", (double)source_bytes);
  cJSON_AddNumberToObject(source, "crc32", source_crc);
  cJSON *stages = cJSON_AddArrayToObject(root, "stages");
  cJSON *files = cJSON_AddArrayToObject(root, "files");
  for (int p = 0; st == MPL_OK && p < pp_size; p++) {
    const struct mpl_model_part *first = &parts[p * tp_size];
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "pp_rank", p);
    cJSON_AddNumberToObject(s, "layer_begin", first->layer_begin);
    cJSON_AddNumberToObject(s, "layer_end", first->layer_end);
    cJSON_AddBoolToObject(s, "has_embedding", first->has_embedding);
    cJSON_AddBoolToObject(s, "has_head", first->has_head);
    cJSON_AddItemToArray(stages, s);
    for (int t = 0; st == MPL_OK && t < tp_size; t++) {
      char name[64], path[4400];
      snprintf(name, sizeof name, "shard-pp%d-tp%d.h5", p, t);
      snprintf(path, sizeof path, "%s/%s", tmp, name);
      st = write_shard(model, &cfg, &parts[p * tp_size + t], path);
      uint32_t crc = 0;
      uint64_t n_bytes = 0;
      if (st == MPL_OK) st = file_crc(path, &crc, &n_bytes);
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "name", name);
      cJSON_AddNumberToObject(e, "pp_rank", p);
      cJSON_AddNumberToObject(e, "tp_rank", t);
      cJSON_AddNumberToObject(e, "bytes", (double)n_bytes);
      cJSON_AddNumberToObject(e, "crc32", crc);
      cJSON_AddItemToArray(files, e);
    }
  }
  if (st == MPL_OK) {
    char *text = cJSON_Print(root);
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.json", tmp);
    FILE *fp = fopen(path, "w");
    if (!text || !fp || fputs(text, fp) < 0 || fputc('\n', fp) < 0) st = mpl_error_set(MPL_ERR_IO, "cannot write %s", path);
    if (fp && fclose(fp) != 0 && st == MPL_OK) st = mpl_error_set(MPL_ERR_IO, "cannot write %s", path);
    cJSON_free(text);
  }
  if (st == MPL_OK) chmod(tmp, 0755); /* mkdtemp made it private */
  if (st == MPL_OK && rename(tmp, out_dir) != 0)
    st = mpl_error_set(MPL_ERR_IO, "cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
  if (st != MPL_OK && made_tmp) remove_tree(tmp, pp_size, tp_size);
  cJSON_Delete(root);
  free(parts);
  mpl_io_close(model);
  if (st != MPL_OK) mpl_error_wrap("shard %s", model_path);
  return st;
}
