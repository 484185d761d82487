/* mpillm io: the HDF5 model file, per-rank shard sets, and import from Hugging Face
 * directories (config.json, safetensors, tokenizer files). Knows formats, not math.
 *
 * The model file (format_version 1), as `h5ls -r` shows it:
 *   /                  attrs format="mpillm", format_version=1, arch="llama"|"qwen2"|"gpt2"|"blend"
 *   /config            attrs: the fields of struct mpl_model_config, under the names
 *                      of the Hugging Face config.json (hidden_size, num_attention_heads, ...)
 *   /tensors/<name>    one dataset per tensor, named as in the checkpoint
 *                      ("model.layers.0.self_attn.q_proj.weight"), shape as in the
 *                      checkpoint, f32 or bf16 (a 16-bit HDF5 float with bf16's layout,
 *                      so h5dump shows values), chunked with Fletcher32; attrs
 *                      crc32 (of the stored little-endian bytes) and dtype
 *                      (tiles of ~1 MiB at most 512 columns wide, so row and column
 *                      slices both read little extra). GPT-2's Conv1D weights (c_attn,
 *                      c_proj, c_fc) are stored as in the checkpoint, [in, out]: the
 *                      engine handles the orientation; GPT-2 names always carry the
 *                      "transformer." prefix (added when the checkpoint lacks it). With
 *                      tied embeddings there is no lm_head.weight.
 *   /tokenizer         scalar UTF-8 string datasets tokenizer.json, tokenizer_config.json,
 *                      generation_config.json (those the checkpoint had)
 * A shard set is a folder of such files, one per (pp_rank, tp_rank), each holding
 * only that rank's rectangles, plus manifest.json; it is opened with the same calls,
 * and reads in the full tensor's coordinates work on it unchanged (the shard file and
 * manifest layouts are described in src/io/shard.c and README.md). */
#ifndef MPILLM_IO_H
#define MPILLM_IO_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpillm/core.h"
#include "mpillm/model.h"
#include "mpillm/tensor.h"

struct mpl_model_file; /* opaque: an open model file or shard set */

#define MPL_IO_MAX_DIMS 4
struct mpl_tensor_info {
  int n_dims;
  int64_t shape[MPL_IO_MAX_DIMS]; /* of the whole tensor, as in the checkpoint */
  enum mpl_dtype dtype;           /* as stored */
};

/* Opens a model file or a shard folder for the rank at (pp_rank, tp_rank) of a
 * layout with pp_size x tp_size. comm is the communicator of the ranks that read
 * together (collective MPI-IO reads when HDF5 is parallel); MPI_COMM_SELF reads
 * alone. Errors name the path. Collective on comm. Close with mpl_io_close. */
enum mpl_status mpl_io_open(const char *path, MPI_Comm comm, int pp_rank, int pp_size, int tp_rank,
                            int tp_size, struct mpl_model_file **out);
void mpl_io_close(struct mpl_model_file *file);
const char *mpl_io_path(const struct mpl_model_file *file);

/* Reads /config into cfg and checks it (mpl_model_config_check). Local. */
enum mpl_status mpl_io_read_config(struct mpl_model_file *file, struct mpl_model_config *cfg);

bool mpl_io_has_tensor(struct mpl_model_file *file, const char *name);
/* Shape and stored dtype of a tensor; MPL_ERR_FORMAT naming the tensor and file when absent. Local. */
enum mpl_status mpl_io_tensor_info(struct mpl_model_file *file, const char *name,
                                   struct mpl_tensor_info *info);

/* Reads rows [row0, row0+n_rows) and columns [col0, col0+n_cols) of a 2-D tensor
 * (a 1-D tensor is one row: row0 = 0, n_rows = 1), converted to dst_dtype, into dst
 * laid out [n_rows][n_cols]. Reads only that rectangle from disk. Collective on the
 * file's comm (every rank calls it, a rank with nothing to read passes n_rows = 0). */
enum mpl_status mpl_io_read_rect(struct mpl_model_file *file, const char *name, int64_t row0,
                                 int64_t n_rows, int64_t col0, int64_t n_cols,
                                 enum mpl_dtype dst_dtype, void *dst);

/* A file under /tokenizer ("tokenizer.json") as a NUL-terminated string the caller
 * frees with free(); *text = NULL without error when the file has none. Local. */
enum mpl_status mpl_io_read_text(struct mpl_model_file *file, const char *name, char **text);

/* Tensors of an open file, in name order: the count and the i-th name. Local. */
int mpl_io_n_tensors(const struct mpl_model_file *file);
const char *mpl_io_tensor_name(const struct mpl_model_file *file, int i);
/* Reads a whole tensor (a shard: its rectangles) and checks the stored crc32 and
 * HDF5's Fletcher32: MPL_ERR_CHECKSUM naming the tensor and file when either fails. Local. */
enum mpl_status mpl_io_verify_tensor(struct mpl_model_file *file, const char *name);

/* Imports a Hugging Face directory (config.json, model.safetensors or its index,
 * tokenizer files) into a model file at out_path, stored as dtype (MPL_DTYPE_F32,
 * MPL_DTYPE_BF16, or MPL_DTYPE_COUNT to keep f32/bf16 as they are, f16 -> f32).
 * Refuses what the engine does not implement, naming the field; writes to a
 * temporary file renamed at the end, so a failure leaves nothing. Local. */
enum mpl_status mpl_io_convert(const char *hf_dir, const char *out_path, enum mpl_dtype dtype);

/* Cuts a model file into the shard set of a pp_size x tp_size layout in out_dir (a
 * new folder): one file per (pp_rank, tp_rank) with the rectangles that
 * mpl_model_part_rects names for that part, plus manifest.json. layers_per_stage
 * as for mpl_model_part_for (NULL: balanced by bytes). Written to a temporary
 * folder renamed at the end. Local. */
enum mpl_status mpl_io_shard(const char *model_path, int pp_size, const int *layers_per_stage, int tp_size,
                             const char *out_dir);

/* The layout a shard folder was cut for (from its manifest.json); MPL_ERR_IO or
 * MPL_ERR_FORMAT naming the folder when it is not a shard set. Local. */
enum mpl_status mpl_io_shard_layout(const char *dir, int *pp_size, int *tp_size);

#endif
