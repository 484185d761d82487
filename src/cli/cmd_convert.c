/* `mpillm convert HF_DIR -o model.h5 [--dtype f32|bf16]`: a Hugging Face directory
 * into one HDF5 model file. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "mpillm/io.h"

enum mpl_status mpl_cmd_convert(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  const char *out = NULL, *dtype_name = NULL;
  const struct mpl_opt opts[] = {
      {"output", 'o', MPL_OPT_STRING, &out, "FILE", "the model file to write (required)"},
      {"dtype", 0, MPL_OPT_STRING, &dtype_name, "f32|bf16",
       "stored weight type (default: as in the checkpoint; f16 becomes f32)"},
  };
  const struct mpl_cmd_spec spec = {"convert", "mpillm convert HF_DIR -o model.h5 [--dtype f32|bf16]",
                                    "Import a Hugging Face checkpoint directory into an HDF5 model file.",
                                    opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, &n_pos, &help);
  if (st != MPL_OK || help) {
    free(pos);
    return st;
  }
  enum mpl_dtype dtype = MPL_DTYPE_COUNT;
  if (!out) st = mpl_error_set(MPL_ERR_ARG, "convert: -o FILE is required");
  if (st == MPL_OK && dtype_name) {
    st = mpl_dtype_parse(dtype_name, &dtype);
    if (st == MPL_OK && dtype == MPL_DTYPE_F16)
      st = mpl_error_set(MPL_ERR_ARG, "--dtype f16: models are stored as f32 or bf16");
  }
  if (st == MPL_OK) {
    double t0 = mpl_time_now();
    st = mpl_io_convert(pos[0], out, dtype);
    if (st == MPL_OK) printf("wrote %s in %.1f s\n", out, mpl_time_now() - t0);
  }
  free(pos);
  return st;
}
