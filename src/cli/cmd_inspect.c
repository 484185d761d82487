/* `mpillm inspect model.h5`: the config and a table of tensors, each checked
 * against its stored crc32 (and HDF5's Fletcher32); fails when any does not match.
 * On a shard folder: the config, then each shard file's tensors checked the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "commands.h"
#include "mpillm/blend.h"
#include "mpillm/io.h"

static void print_config(const struct mpl_model_config *c) {
  printf("config:\n");
  printf("  %-26s %s%s\n", "arch", mpl_arch_name(c->arch), c->qkv_bias ? " (q/k/v bias)" : "");
  printf("  %-26s %d\n", "vocab_size", c->vocab_size);
  printf("  %-26s %d\n", "hidden_size", c->hidden_size);
  printf("  %-26s %d\n", "intermediate_size", c->intermediate_size);
  printf("  %-26s %d\n", "num_hidden_layers", c->n_layers);
  printf("  %-26s %d\n", "num_attention_heads", c->n_heads);
  printf("  %-26s %d\n", "num_key_value_heads", c->n_kv_heads);
  printf("  %-26s %d\n", "head_dim", c->head_dim);
  printf("  %-26s %d\n", "max_position_embeddings", c->max_position_embeddings);
  if (c->arch != MPL_ARCH_GPT2) printf("  %-26s %g\n", "rope_theta", (double)c->rope_theta);
  printf("  %-26s %g\n", c->arch == MPL_ARCH_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps", (double)c->norm_eps);
  printf("  %-26s %s\n", "tie_word_embeddings", c->tie_word_embeddings ? "true" : "false");
  printf("  %-26s %d\n", "bos_token_id", c->bos_token_id);
  printf("  %-26s", "eos_token_id");
  for (int i = 0; i < c->n_eos; i++) printf("%s%d", i ? ", " : " ", c->eos_token_ids[i]);
  printf("\n");
}

/* A seed-network (blend) file has its own config. */
static void print_blend_config(const struct mpl_blend_config *c) {
  printf("config (seed network):\n");
  printf("  %-26s %d\n", "submodels", c->n_submodels);
  printf("  %-26s", "in_widths");
  for (int i = 0; i < c->n_submodels; i++) printf("%s%d", i ? "," : " ", c->in_widths[i]);
  printf("\n  %-26s %lld\n", "features", (long long)mpl_blend_n_features(c));
  printf("  %-26s %d\n", "hidden", c->hidden);
  printf("  %-26s %d\n", "classes", c->n_classes);
}

/* Every file of a shard set: its manifest crc32 (checked at open), then each tensor's rectangles. */
static enum mpl_status inspect_shards(const char *dir) {
  int pp = 0, tp = 0;
  enum mpl_status st = mpl_io_shard_layout(dir, &pp, &tp);
  if (st != MPL_OK) return st;
  printf("%s: shard set for pp %d x tp %d\n", dir, pp, tp);
  int n_bad = 0;
  char first[1024] = "";
  for (int p = 0; p < pp; p++)
    for (int t = 0; t < tp; t++) {
      struct mpl_model_file *f = NULL;
      enum mpl_status fst = mpl_io_open(dir, MPI_COMM_SELF, p, pp, t, tp, &f);
      if (fst == MPL_OK && p == 0 && t == 0) {
        struct mpl_model_config cfg;
        if (mpl_io_read_config(f, &cfg) == MPL_OK) print_config(&cfg);
        printf("\n%-22s %8s  %s\n", "file", "tensors", "checksums");
      }
      int n = fst == MPL_OK ? mpl_io_n_tensors(f) : 0, n_failed = 0;
      for (int i = 0; i < n; i++) {
        if (mpl_io_verify_tensor(f, mpl_io_tensor_name(f, i)) != MPL_OK) {
          if (n_failed++ == 0 && n_bad == 0) snprintf(first, sizeof first, "%s", mpl_error_message());
        }
      }
      if (fst != MPL_OK && n_bad == 0) snprintf(first, sizeof first, "%s", mpl_error_message());
      char name[64];
      snprintf(name, sizeof name, "pp %d, tp %d", p, t);
      printf("%-22s %8d  %s\n", name, n, fst != MPL_OK ? "FAILED (file)" : n_failed ? "FAILED" : "ok");
      n_bad += fst != MPL_OK || n_failed > 0;
      mpl_io_close(f);
    }
  if (n_bad > 0)
    return mpl_error_set(MPL_ERR_CHECKSUM, "%s: %d of %d shard files failed their checks (first: %s)", dir, n_bad,
                         pp * tp, first);
  return MPL_OK;
}

enum mpl_status mpl_cmd_inspect(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  const struct mpl_cmd_spec spec = {"inspect", "mpillm inspect (model.h5 | SHARD_DIR)",
                                    "Print a model file's config and tensors, checking every checksum.", NULL,
                                    0, 1, 1};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, &n_pos, &help);
  if (st != MPL_OK || help) {
    free(pos);
    return st;
  }
  struct stat sb;
  if (stat(pos[0], &sb) == 0 && S_ISDIR(sb.st_mode)) {
    st = inspect_shards(pos[0]);
    free(pos);
    return st;
  }
  struct mpl_model_file *f = NULL;
  st = mpl_io_open(pos[0], MPI_COMM_SELF, 0, 1, 0, 1, &f);
  free(pos);
  if (st != MPL_OK) return st;
  struct mpl_model_config cfg;
  struct mpl_blend_config blend;
  printf("%s\n", mpl_io_path(f));
  if (mpl_blend_file_read_config(mpl_io_path(f), &blend) == MPL_OK) {
    print_blend_config(&blend);
    st = MPL_OK;
  } else {
    mpl_error_clear();
    st = mpl_io_read_config(f, &cfg);
    if (st == MPL_OK) print_config(&cfg);
    else printf("config: %s\n", mpl_error_message());
  }
  enum mpl_status config_st = st;

  int n = mpl_io_n_tensors(f), n_bad = 0;
  char first_bad[200] = ""; /* copied: the names go with the file */
  char first_message[1024] = "";
  double total = 0;
  printf("\n%-52s %-14s %-5s %12s  %s\n", "name", "shape", "dtype", "bytes", "checksum");
  for (int i = 0; i < n; i++) {
    const char *name = mpl_io_tensor_name(f, i);
    struct mpl_tensor_info info;
    mpl_io_tensor_info(f, name, &info);
    char shape[64];
    size_t at = 0;
    int64_t n_elems = 1;
    at += (size_t)snprintf(shape + at, sizeof shape - at, "[");
    for (int d = 0; d < info.n_dims; d++) {
      at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lld", d ? ", " : "", (long long)info.shape[d]);
      n_elems *= info.shape[d];
    }
    snprintf(shape + at, sizeof shape - at, "]");
    size_t bytes = (size_t)n_elems * mpl_dtype_bytes(info.dtype);
    total += (double)bytes;
    enum mpl_status vst = mpl_io_verify_tensor(f, name);
    if (vst != MPL_OK && n_bad++ == 0) {
      snprintf(first_bad, sizeof first_bad, "%s", name);
      snprintf(first_message, sizeof first_message, "%s", mpl_error_message());
    }
    printf("%-52s %-14s %-5s %12zu  %s\n", name, shape, mpl_dtype_name(info.dtype), bytes,
           vst == MPL_OK ? "ok" : "FAILED");
  }
  char size[32];
  printf("\n%d tensors, %s, %d checksum failures\n", n, mpl_format_bytes(total, size, sizeof size), n_bad);
  mpl_io_close(f);
  if (n_bad > 0)
    return mpl_error_set(MPL_ERR_CHECKSUM, "%d of %d tensors failed their checksum (first: %s: %s)", n_bad, n,
                         first_bad, first_message);
  return config_st;
}
