/* Reading safetensors files, with or without model.safetensors.index.json.
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {...}, "<name>": {"dtype": "BF16", "shape": [r, c],
 *                                       "data_offsets": [begin, end]}, ...}
 * then the data, offsets counted from the end of the header. Every header is
 * checked against the file before any tensor is used: a header that lies about
 * sizes is refused here, naming the file and tensor. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

static const struct {
  const char *name;
  int bytes;
  enum mpl_io__st_dtype dtype;
} st_dtypes[] = {
    {"F32", 4, MPL_ST_F32},   {"F16", 2, MPL_ST_F16},   {"BF16", 2, MPL_ST_BF16},
    {"F64", 8, MPL_ST_OTHER}, {"I64", 8, MPL_ST_OTHER}, {"I32", 4, MPL_ST_OTHER},
    {"I16", 2, MPL_ST_OTHER}, {"I8", 1, MPL_ST_OTHER},  {"U8", 1, MPL_ST_OTHER},
    {"BOOL", 1, MPL_ST_OTHER}, {"F8_E4M3", 1, MPL_ST_OTHER}, {"F8_E5M2", 1, MPL_ST_OTHER},
    {"U16", 2, MPL_ST_OTHER}, {"U32", 4, MPL_ST_OTHER}, {"U64", 8, MPL_ST_OTHER},
};

static enum mpl_status add_tensor(struct mpl_io__st_set *set, const struct mpl_io__st_tensor *t) {
  int n = set->n_tensors; /* capacity: 64, then doubled whenever n reaches a power of two */
  if (n == 0 || (n >= 64 && (n & (n - 1)) == 0)) {
    size_t cap = n == 0 ? 64 : (size_t)n * 2;
    void *p = realloc(set->tensors, cap * sizeof *set->tensors);
    if (!p) return mpl_error_set(MPL_ERR_NOMEM, "out of memory reading safetensors headers");
    set->tensors = p;
  }
  set->tensors[set->n_tensors++] = *t;
  return MPL_OK;
}

/* Maps one file, checks its header against its size and adds its tensors. */
static enum mpl_status open_file(struct mpl_io__st_set *set, const char *path) {
  int index = set->n_files;
  void *p = realloc(set->files, (size_t)(index + 1) * sizeof *set->files);
  if (!p) return mpl_error_set(MPL_ERR_NOMEM, "out of memory opening %s", path);
  set->files = p;
  memset(&set->files[index], 0, sizeof set->files[index]);
  snprintf(set->files[index].path, sizeof set->files[index].path, "%s", path);
  set->n_files++;

  int fd = open(path, O_RDONLY);
  if (fd < 0) return mpl_error_set(MPL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return mpl_error_set(MPL_ERR_IO, "%s is not a regular file", path);
  }
  size_t file_bytes = (size_t)sb.st_size;
  if (file_bytes < 8) {
    close(fd);
    return mpl_error_set(MPL_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes, no header)", path,
                         file_bytes);
  }
  void *map = mmap(NULL, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return mpl_error_set(MPL_ERR_IO, "cannot map %s: %s", path, strerror(errno));
  set->files[index].map = map;
  set->files[index].map_bytes = file_bytes;

  const unsigned char *bytes = map;
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; i--) header_bytes = header_bytes << 8 | bytes[i];
  if (header_bytes > file_bytes - 8)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "%s: truncated safetensors file: the header says %llu bytes, the file has %zu",
                         path, (unsigned long long)header_bytes, file_bytes - 8);
  size_t data_bytes = file_bytes - 8 - (size_t)header_bytes;
  const unsigned char *data = bytes + 8 + header_bytes;
  cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)header_bytes);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return mpl_error_set(MPL_ERR_FORMAT, "%s: the safetensors header is not a JSON object", path);
  }
  enum mpl_status st = MPL_OK;
  cJSON *item;
  cJSON_ArrayForEach(item, root) {
    if (strcmp(item->string, "__metadata__") == 0) continue;
    struct mpl_io__st_tensor t;
    memset(&t, 0, sizeof t);
    t.file_index = index;
    if (strlen(item->string) >= sizeof t.name) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor name too long: %.60s...", path, item->string);
      break;
    }
    snprintf(t.name, sizeof t.name, "%s", item->string);
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets) ||
        cJSON_GetArraySize(offsets) != 2) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s: header entry lacks dtype, shape or data_offsets",
                         path, t.name);
      break;
    }
    int elem_bytes = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
      if (strcmp(dtype->valuestring, st_dtypes[i].name) == 0) {
        elem_bytes = st_dtypes[i].bytes;
        t.dtype = st_dtypes[i].dtype;
      }
    if (elem_bytes == 0) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s has unknown dtype '%.20s'", path, t.name,
                         dtype->valuestring);
      break;
    }
    snprintf(t.dtype_name, sizeof t.dtype_name, "%s", dtype->valuestring);
    t.n_dims = cJSON_GetArraySize(shape);
    if (t.n_dims > MPL_IO_MAX_DIMS) {
      st = mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: tensor %s has %d dimensions (at most %d)", path,
                         t.name, t.n_dims, MPL_IO_MAX_DIMS);
      break;
    }
    double n_elems = 1;
    for (int i = 0; i < t.n_dims; i++) {
      cJSON *d = cJSON_GetArrayItem(shape, i);
      if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9e15) {
        st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s: bad shape", path, t.name);
        break;
      }
      t.shape[i] = (int64_t)d->valuedouble;
      n_elems *= d->valuedouble;
    }
    if (st != MPL_OK) break;
    double begin = cJSON_GetArrayItem(offsets, 0)->valuedouble;
    double end = cJSON_GetArrayItem(offsets, 1)->valuedouble;
    if (!(begin >= 0 && end >= begin && end <= (double)data_bytes)) {
      st = mpl_error_set(MPL_ERR_FORMAT,
                         "%s: tensor %s: data_offsets [%.0f, %.0f] lie outside the %zu data bytes "
                         "(truncated file or lying header)",
                         path, t.name, begin, end, data_bytes);
      break;
    }
    if (end - begin != n_elems * elem_bytes) {
      st = mpl_error_set(MPL_ERR_FORMAT,
                         "%s: tensor %s: data_offsets give %.0f bytes but shape x %s needs %.0f", path,
                         t.name, end - begin, t.dtype_name, n_elems * elem_bytes);
      break;
    }
    t.data = data + (size_t)begin;
    t.n_bytes = (size_t)(end - begin);
    if ((st = add_tensor(set, &t)) != MPL_OK) break;
  }
  cJSON_Delete(root);
  return st;
}

enum mpl_status mpl_io__st_open(const char *dir, struct mpl_io__st_set *set) {
  memset(set, 0, sizeof *set);
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  char *index_text = NULL;
  enum mpl_status st = mpl_io__slurp(path, true, &index_text, NULL);
  if (st != MPL_OK) return st;
  if (!index_text) { /* one file */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, F_OK) != 0) {
      char bin[4096];
      snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
      return mpl_error_set(MPL_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json%s", dir,
                           access(bin, F_OK) == 0 ? " (pytorch_model.bin is not read: convert it to "
                                                    "safetensors first)"
                                                  : "");
    }
    st = open_file(set, path);
    if (st != MPL_OK) mpl_io__st_close(set);
    return st;
  }
  cJSON *root = cJSON_Parse(index_text);
  free(index_text);
  cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(map)) {
    cJSON_Delete(root);
    return mpl_error_set(MPL_ERR_FORMAT, "%s: no weight_map object", path);
  }
  /* open each distinct file once, in the order the map names them */
  cJSON *entry;
  cJSON_ArrayForEach(entry, map) {
    if (!cJSON_IsString(entry) || strchr(entry->valuestring, '/')) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: weight_map entry %s is not a file name in the folder", path,
                         entry->string);
      break;
    }
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", dir, entry->valuestring);
    bool seen = false;
    for (int i = 0; i < set->n_files; i++) seen |= strcmp(set->files[i].path, file) == 0;
    if (!seen && (st = open_file(set, file)) != MPL_OK) break;
  }
  /* every tensor the map names must be in the file it names */
  if (st == MPL_OK) {
    cJSON_ArrayForEach(entry, map) {
      const struct mpl_io__st_tensor *t = mpl_io__st_find(set, entry->string);
      if (!t || strcmp(strrchr(set->files[t->file_index].path, '/') + 1, entry->valuestring) != 0) {
        st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is not in %s as the index says", path,
                           entry->string, entry->valuestring);
        break;
      }
    }
  }
  cJSON_Delete(root);
  if (st != MPL_OK) mpl_io__st_close(set);
  return st;
}

void mpl_io__st_close(struct mpl_io__st_set *set) {
  for (int i = 0; i < set->n_files; i++)
    if (set->files[i].map) munmap(set->files[i].map, set->files[i].map_bytes);
  free(set->files);
  free(set->tensors);
  memset(set, 0, sizeof *set);
}

const struct mpl_io__st_tensor *mpl_io__st_find(const struct mpl_io__st_set *set, const char *name) {
  for (int i = 0; i < set->n_tensors; i++)
    if (strcmp(set->tensors[i].name, name) == 0) return &set->tensors[i];
  return NULL;
}
