/* `mpillm infer`: runs the seed network (a blend model file) on a batch of feature
 * rows over all ranks, in one of the four execution modes, and writes the class
 * probabilities (and the pre-head z on request) from rank 0. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "mpillm/blend.h"
#include "rt_common.h"

enum mpl_status mpl_cmd_infer(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  const char *model_path = NULL, *input = NULL, *dataset = "x", *mode_name = "split";
  const char *output = NULL;
  double alpha = 0.5;
  bool save_z = false;
  long threads = 0;
  const struct mpl_opt opts[] = {
      {"model", 'm', MPL_OPT_STRING, &model_path, "FILE", "blend model file (mpillm convert)"},
      {"input", 0, MPL_OPT_STRING, &input, "X.h5", "HDF5 file with the input rows [B, features] f32"},
      {"dataset", 0, MPL_OPT_STRING, &dataset, "NAME", "dataset of the input file (default x)"},
      {"mode", 0, MPL_OPT_STRING, &mode_name, "MODE",
       "model | data | split | mix (default split)"},
      {"alpha", 0, MPL_OPT_DOUBLE, &alpha, "A",
       "split: share of rows on the model-parallel path; mix: weight of z_model (default 0.5)"},
      {"output", 'o', MPL_OPT_STRING, &output, "Z.h5", "output file: /probs [B, C] (and /z)"},
      {"save-z", 0, MPL_OPT_FLAG, &save_z, NULL, "also write the pre-head z [B, L*h] as /z"},
      {"threads", 't', MPL_OPT_INT, &threads, "N", "threads per rank (default: MPILLM_THREADS, else cores / ranks)"},
  };
  const struct mpl_cmd_spec spec = {
      "infer", "mpirun -np N mpillm infer -m blend.h5 --input X.h5 [--mode M] [--alpha A] -o Z.h5",
      "Run the seed network (blend model) on a batch of rows.", opts,
      (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  /* the options are the same on every rank: each rank refuses them alike */
  if (!model_path) return mpl_error_set(MPL_ERR_ARG, "infer: -m MODEL is required");
  if (!input) return mpl_error_set(MPL_ERR_ARG, "infer: --input X.h5 is required");
  if (!output) return mpl_error_set(MPL_ERR_ARG, "infer: -o Z.h5 is required");
  if (!(alpha >= 0.0 && alpha <= 1.0))
    return mpl_error_set(MPL_ERR_RANGE, "infer: --alpha %g is outside [0, 1]", alpha);
  enum mpl_blend_mode mode;
  if ((st = mpl_blend_mode_parse(mode_name, &mode)) != MPL_OK) return st;

  if ((st = mpl_cli_threads_start(threads)) != MPL_OK) return st;
  struct mpl_blend_runner *runner = NULL;
  if ((st = mpl_blend_runner_create(model_path, mode, MPI_COMM_WORLD, &runner)) != MPL_OK)
    return st;
  const struct mpl_blend_config *cfg = mpl_blend_runner_config(runner);
  const int64_t n_features = mpl_blend_n_features(cfg);
  const int64_t n_z = (int64_t)cfg->n_submodels * cfg->hidden;
  mpl_log_debug("%s", mpl_blend_runner_describe(runner));

  /* rank 0 is the coordinator: it reads the batch and checks it against the model */
  float *x = NULL, *probs = NULL, *z = NULL;
  int64_t n_rows = 0, n_cols = 0;
  if (ctx->world_rank == 0) {
    st = mpl_blend_read_matrix(input, dataset, &x, &n_rows, &n_cols);
    if (st == MPL_OK && n_cols != n_features)
      st = mpl_error_set(MPL_ERR_FORMAT,
                         "%s: dataset '%s' has %lld features per row but the model %s takes %lld "
                         "(the sum of its in_widths)",
                         input, dataset, (long long)n_cols, model_path, (long long)n_features);
    if (st == MPL_OK) {
      probs = mpl_alloc((size_t)(n_rows * cfg->n_classes + 1) * sizeof(float), "probabilities");
      if (save_z) z = mpl_alloc((size_t)(n_rows * n_z + 1) * sizeof(float), "z");
      if (!probs || (save_z && !z)) st = MPL_ERR_NOMEM;
    }
  }
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st == MPL_OK) st = mpl_par_bcast(MPI_COMM_WORLD, &n_rows, sizeof n_rows, 0);
  if (st == MPL_OK) st = mpl_blend_runner_run(runner, x, n_rows, alpha, probs, save_z, z);
  if (st == MPL_OK && ctx->world_rank == 0) {
    const char *names[2] = {"probs", "z"};
    const float *data[2] = {probs, z};
    int64_t cols[2] = {cfg->n_classes, n_z};
    st = mpl_blend_write_matrices(output, save_z ? 2 : 1, names, data, n_rows, cols);
    if (st == MPL_OK)
      mpl_log_info("wrote %s: probs [%lld, %d]%s (%s)", output, (long long)n_rows, cfg->n_classes,
                   save_z ? " and z" : "", mpl_blend_runner_describe(runner));
  }
  mpl_free(x);
  mpl_free(probs);
  mpl_free(z);
  mpl_blend_runner_destroy(runner);
  return st;
}
