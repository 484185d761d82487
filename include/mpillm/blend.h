/* mpillm blend: the seed network of the original design, a first-class model type.
 * L sub-models M_i, each Dense(in_i -> h, ReLU) -> Dense(h -> h, ReLU) applied to its
 * feature slice x_i of the input; z = concat_i M_i(x_i) [B, L*h]; a head
 * Dense(L*h -> C, softmax). The functions live in three modules under one prefix:
 * src/model/blend.c (config, weights, forward), src/io/blend_file.c and
 * src/io/keras.c (the HDF5 file and the Keras import), src/runtime/blend_run.c (model-,
 * data-parallel, split and mix execution over MPI ranks).
 *
 * The file (format_version 1), as `h5ls -r` shows it:
 *   /                 attrs format="mpillm", format_version=1, arch="blend"
 *   /config           attrs n_submodels (L), in_widths (int [L]), n_features (their sum),
 *                     hidden (h), classes (C)
 *   /tensors/submodel_<i>.dense_0.kernel [in_i, h]  .bias [h]
 *   /tensors/submodel_<i>.dense_1.kernel [h, h]     .bias [h]
 *   /tensors/head.kernel [L*h, C]                    head.bias [C]
 * (or, sharded, /tensors/submodel_<i>.* are external links into <name>.sub<i>.h5)
 * every tensor f32 with attrs crc32 (of its little-endian bytes) and dtype="f32".
 * Dense kernels are [in, out] (Keras's layout): y = x @ kernel + bias. */
#ifndef MPILLM_BLEND_H
#define MPILLM_BLEND_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpillm/core.h"

#define MPL_BLEND_MAX_SUBMODELS 1024

struct mpl_blend_config {
  int n_submodels;                        /* L */
  int in_widths[MPL_BLEND_MAX_SUBMODELS]; /* feature slice width of each sub-model */
  int hidden;                             /* h: output width of both dense layers */
  int n_classes;                          /* C */
};

/* Sum of in_widths (the feature count of X) and the first column of slice i. Local. */
int64_t mpl_blend_n_features(const struct mpl_blend_config *cfg);
int64_t mpl_blend_feature_offset(const struct mpl_blend_config *cfg, int i);
/* Refuses a config that cannot describe a network (MPL_ERR_FORMAT naming the field,
 * prefixed by where, e.g. the file). Local. */
enum mpl_status mpl_blend_config_check(const struct mpl_blend_config *cfg, const char *where);

/* The weights of sub-models [sub_begin, sub_end) and the head rows that multiply their
 * outputs (head rows [sub_begin*h, sub_end*h)), plus the head bias. One slab; the
 * caller owns the struct, mpl_blend_model_free releases the slab (zeroed struct safe). */
struct mpl_blend_model {
  struct mpl_blend_config cfg;
  int sub_begin, sub_end;
  float **w0;    /* [n_held] -> [in_i][h] */
  float **b0;    /* [n_held] -> [h] */
  float **w1;    /* [n_held] -> [h][h] */
  float **b1;    /* [n_held] -> [h] */
  float *head_w; /* [(sub_end - sub_begin) * h][C] */
  float *head_b; /* [C] */
  void *slab;
};

/* Allocates (zeroed) weights for sub-models [sub_begin, sub_end) of cfg. Local. */
enum mpl_status mpl_blend_model_alloc(const struct mpl_blend_config *cfg, int sub_begin,
                                      int sub_end, struct mpl_blend_model *model);
void mpl_blend_model_free(struct mpl_blend_model *model);
/* Bytes of weights held. Local. */
size_t mpl_blend_model_bytes(const struct mpl_blend_model *model);

/* Runs held sub-models [first, last) on x [n_rows][ldx], whose columns are the
 * features of those sub-models from offset(first) on (sub-model i reads columns
 * offset(i) - offset(first) ...), and writes M_i(x_i) [n_rows][h] at column
 * (i - first)*h of z [n_rows][ldz]. Local. */
void mpl_blend_submodels_forward(const struct mpl_blend_model *model, int first, int last,
                                 const float *x, int64_t ldx, int64_t n_rows, float *z,
                                 int64_t ldz);
/* logits [n_rows][C] = z [n_rows][(last-first)*h] @ head rows of sub-models
 * [first, last), without bias (the row-parallel piece of the head). Local. */
void mpl_blend_head_partial(const struct mpl_blend_model *model, int first, int last,
                            const float *z, int64_t n_rows, float *logits);
/* probs = softmax(logits + head bias), in place, [n_rows][C]. Local. */
void mpl_blend_head_finish(const struct mpl_blend_model *model, float *logits, int64_t n_rows);

/* --- the file (src/io/blend_file.c) --------------------------------------------- */

/* Reads and checks root attrs and /config; errors name the file and the field. Local. */
enum mpl_status mpl_blend_file_read_config(const char *path, struct mpl_blend_config *cfg);
/* Reads the config and only the tensors of sub-models [sub_begin, sub_end) and their
 * head rows into model (allocated here; free with mpl_blend_model_free). Tensors read
 * whole are checked against their crc32; a missing or misshapen tensor is
 * MPL_ERR_FORMAT naming it and the file. Local (each rank opens the file itself). */
enum mpl_status mpl_blend_file_load(const char *path, int sub_begin, int sub_end,
                                    struct mpl_blend_model *model);
/* Writes a whole model (sub_begin 0, sub_end L) to path through a temporary file and
 * a rename, so that nothing is left half-written. Local. */
enum mpl_status mpl_blend_file_write(const char *path, const struct mpl_blend_model *model);
/* The same as shards: sub-model i's tensors go to "<path without .h5>.sub<i>.h5" and
 * the main file's /tensors/submodel_<i>.* are HDF5 external links to them (config and
 * head stay in the main file), so that in model mode a rank opens only its own
 * shards. Readers need no change; a missing shard is named by the rank that needs
 * it. Local. */
enum mpl_status mpl_blend_file_write_shards(const char *path, const struct mpl_blend_model *model);

/* Reads a 2-D f32 dataset (name, e.g. "x") of an HDF5 file: *data [*n_rows][*n_cols],
 * freed by the caller with mpl_free. Local. */
enum mpl_status mpl_blend_read_matrix(const char *path, const char *name, float **data,
                                      int64_t *n_rows, int64_t *n_cols);
/* Writes datasets names[k] = data[k] [n_rows][n_cols[k]] to a new file through a
 * temporary file and a rename. Local. */
enum mpl_status mpl_blend_write_matrices(const char *path, int n, const char *const *names,
                                         const float *const *data, int64_t n_rows,
                                         const int64_t *n_cols);

/* --- the Keras import (src/io/keras.c) -------------------------------------------- */

/* Reads a Keras HDF5 model file (model.save("x.h5"), Keras 2 or 3) holding the seed
 * network as a functional model: one Input per branch, Dense(relu) -> Dense(relu)
 * per branch, Concatenate, Dense(softmax). Sub-model i is the branch of the model's
 * i-th input (head rows are permuted to match when the Concatenate takes the branches
 * in another order). MPL_ERR_FORMAT / MPL_ERR_UNSUPPORTED name the layer. Local. */
enum mpl_status mpl_blend_keras_read(const char *path, struct mpl_blend_model *model);

/* --- parallel execution (src/runtime/blend_run.c) ---------------------------------- */

enum mpl_blend_mode {
  MPL_BLEND_MODE_MODEL = 0, /* rank owns sub-models, feature slices of the whole batch */
  MPL_BLEND_MODE_DATA,      /* every rank owns all, a row shard each */
  MPL_BLEND_MODE_SPLIT,     /* a share alpha of the rows model-parallel, the rest data */
  MPL_BLEND_MODE_MIX,       /* z = alpha z_model + (1 - alpha) z_data on the whole batch */
  MPL_BLEND_MODE_COUNT
};
const char *mpl_blend_mode_name(enum mpl_blend_mode mode);
/* MPL_ERR_ARG naming the value. Local. */
enum mpl_status mpl_blend_mode_parse(const char *name, enum mpl_blend_mode *mode);

struct mpl_blend_runner; /* opaque */

/* Plans the ranks of comm for mode and loads each rank's weights from path (model
 * mode: only its sub-models and head rows; the other modes: everything). Collective
 * on comm; every rank returns the same status. Destroy with mpl_blend_runner_destroy. */
enum mpl_status mpl_blend_runner_create(const char *path, enum mpl_blend_mode mode, MPI_Comm comm,
                                        struct mpl_blend_runner **out);
void mpl_blend_runner_destroy(struct mpl_blend_runner *runner);
const struct mpl_blend_config *mpl_blend_runner_config(const struct mpl_blend_runner *runner);
/* Bytes of weights this rank holds. Local. */
size_t mpl_blend_runner_weight_bytes(const struct mpl_blend_runner *runner);
/* One line describing the plan ("mode model on 7 ranks, L=5: 2 model-parallel groups
 * (last of 2 ranks); rank 0 holds sub-models [0, 1), ..."). */
const char *mpl_blend_runner_describe(const struct mpl_blend_runner *runner);

/* Runs a batch: x [n_rows][n_features] on the root (rank 0 of comm) is spread over
 * the ranks by the runner's mode, probs [n_rows][C] and, with want_z, z [n_rows][L*h]
 * (in mix mode the blended z) come back on the root (x, probs, z are ignored
 * elsewhere). n_rows, alpha and want_z are global; alpha outside [0, 1] is
 * MPL_ERR_RANGE. In mix mode the root also checks that both paths gave the same z and
 * fails when they differ. Collective on comm; every rank returns the same status. */
enum mpl_status mpl_blend_runner_run(struct mpl_blend_runner *runner, const float *x,
                                     int64_t n_rows, double alpha, float *probs, bool want_z,
                                     float *z);

#endif
