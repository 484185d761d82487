/* --logits-out: the prompt's logits for verification, dataset /logits float32
 * [n_prompt_tokens][vocab] in an HDF5 file of its own. */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mpillm/runtime.h"

enum mpl_status mpl_rt_write_logits(const char *path, const float *logits, int n_rows, int vocab) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return mpl_error_set(MPL_ERR_IO, "cannot create %s (for --logits-out)", tmp);
  hsize_t dims[2] = {(hsize_t)n_rows, (hsize_t)vocab};
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t set = space >= 0 ? H5Dcreate2(file, "logits", H5T_IEEE_F32LE, space, H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT)
                         : -1;
  herr_t rc = set >= 0 ? H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, logits) : -1;
  if (set >= 0) H5Dclose(set);
  if (space >= 0) H5Sclose(space);
  if (H5Fclose(file) < 0) rc = -1;
  if (rc < 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return mpl_error_set(MPL_ERR_IO, "cannot write the logits to %s", path);
  }
  return MPL_OK;
}
