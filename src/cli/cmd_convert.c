/* `mpillm convert HF_DIR -o model.h5 [--dtype f32|bf16]`: a Hugging Face directory
 * into one HDF5 model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/blend.h"
#include "mpillm/io.h"

enum mpl_status mpl_cmd_convert(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  const char *out = NULL, *dtype_name = NULL, *from = "hf";
  bool shards = false;
  const struct mpl_opt opts[] = {
      {"output", 'o', MPL_OPT_STRING, &out, "FILE", "the model file to write (required)"},
      {"dtype", 0, MPL_OPT_STRING, &dtype_name, "f32|bf16",
       "stored weight type (default: as in the checkpoint; f16 becomes f32)"},
      {"from", 0, MPL_OPT_STRING, &from, "hf|keras",
       "hf: a Hugging Face directory (default); keras: the seed network's Keras .h5"},
      {"shards", 0, MPL_OPT_FLAG, &shards, NULL,
       "keras: one file per sub-model beside the output (FILE.sub<i>.h5), linked from it"},
  };
  const struct mpl_cmd_spec spec = {"convert", "mpillm convert HF_DIR -o model.h5 [--dtype f32|bf16] | convert --from keras FILE.h5 -o blend.h5",
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
  if (st == MPL_OK && strcmp(from, "keras") == 0) {
    /* the seed network saved by Keras (model.save("x.h5")) into a blend model file */
    struct mpl_blend_model model;
    st = mpl_blend_keras_read(pos[0], &model);
    if (st == MPL_OK)
      st = shards ? mpl_blend_file_write_shards(out, &model) : mpl_blend_file_write(out, &model);
    if (st == MPL_OK)
      printf("wrote %s: blend model, L=%d, %lld features, h=%d, C=%d\n", out, model.cfg.n_submodels,
             (long long)mpl_blend_n_features(&model.cfg), model.cfg.hidden, model.cfg.n_classes);
    mpl_blend_model_free(&model);
    free(pos);
    return st;
  }
  if (st == MPL_OK && strcmp(from, "hf") != 0)
    st = mpl_error_set(MPL_ERR_ARG, "convert: --from '%s' is not hf or keras", from);
  if (st == MPL_OK) {
    double t0 = mpl_time_now();
    st = mpl_io_convert(pos[0], out, dtype);
    if (st == MPL_OK) printf("wrote %s in %.1f s\n", out, mpl_time_now() - t0);
  }
  free(pos);
  return st;
}
