/* Writing a model file: everything goes to a temporary file in the same folder,
 * renamed to its final name only when complete, so a failed run leaves nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

enum mpl_status mpl_io__writer_create(struct mpl_io__writer *w, const char *path) {
  memset(w, 0, sizeof *w);
  w->file = H5I_INVALID_HID;
  mpl_io__h5_quiet();
  snprintf(w->path, sizeof w->path, "%s", path);
  snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(w->tmp_path);
  if (fd < 0) {
    int err = errno;
    w->tmp_path[0] = '\0';
    return mpl_error_set(MPL_ERR_IO, "cannot create %s: %s", path, strerror(err));
  }
  close(fd);
  w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (w->file < 0) {
    enum mpl_status st =
        mpl_error_set(MPL_ERR_IO, "cannot create HDF5 file %s: %s", w->tmp_path, mpl_io__h5_message());
    mpl_io__writer_abort(w);
    return st;
  }
  return MPL_OK;
}

enum mpl_status mpl_io__writer_commit(struct mpl_io__writer *w) {
  herr_t err = H5Fclose(w->file);
  w->file = H5I_INVALID_HID;
  if (err < 0) {
    enum mpl_status st = mpl_error_set(MPL_ERR_IO, "cannot finish %s: %s", w->tmp_path, mpl_io__h5_message());
    mpl_io__writer_abort(w);
    return st;
  }
  chmod(w->tmp_path, 0644); /* mkstemp made it private */
  if (rename(w->tmp_path, w->path) != 0) {
    enum mpl_status st =
        mpl_error_set(MPL_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
    mpl_io__writer_abort(w);
    return st;
  }
  w->tmp_path[0] = '\0';
  return MPL_OK;
}

void mpl_io__writer_abort(struct mpl_io__writer *w) {
  if (w->file > 0) H5Fclose(w->file);
  w->file = H5I_INVALID_HID;
  if (w->tmp_path[0]) unlink(w->tmp_path);
  w->tmp_path[0] = '\0';
}

enum mpl_status mpl_io__slurp(const char *path, bool optional, char **text, size_t *n_bytes) {
  *text = NULL;
  if (n_bytes) *n_bytes = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (optional && errno == ENOENT) return MPL_OK;
    return mpl_error_set(MPL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  }
  enum mpl_status st = MPL_OK;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return mpl_error_set(MPL_ERR_IO, "%s is not a regular file", path);
  }
  size_t n = (size_t)sb.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return mpl_error_set(MPL_ERR_NOMEM, "cannot allocate %zu bytes for %s", n + 1, path);
  }
  if (n > 0 && fread(buf, 1, n, f) != n) {
    st = mpl_error_set(MPL_ERR_IO, "cannot read %s", path);
    free(buf);
    buf = NULL;
  } else {
    buf[n] = '\0';
  }
  fclose(f);
  *text = buf;
  if (n_bytes) *n_bytes = n;
  return st;
}
