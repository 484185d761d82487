/* `mpillm blend-init`: writes a seed-network (blend) model file of a given shape with
 * random weights (Glorot-uniform kernels, small biases, a fixed seed), for benchmarks
 * and experiments at the design's size without a training run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/blend.h"

/* splitmix64: a small, well-mixed generator; the file is the same for a seed everywhere */
static uint64_t next_u64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void fill(float *w, size_t n, float limit, uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    w[i] = limit * (float)(2.0 * ((double)(next_u64(s) >> 11) / 9007199254740992.0) - 1.0);
}

/* "200,200,200" into widths; the count must equal n_expected */
static enum mpl_status parse_widths(const char *text, int *widths, int n_expected) {
  int n = 0;
  const char *p = text;
  while (*p) {
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (end == p || v <= 0 || v > INT32_MAX)
      return mpl_error_set(MPL_ERR_ARG, "--in-widths '%s': widths must be positive whole numbers", text);
    if (n < MPL_BLEND_MAX_SUBMODELS) widths[n] = (int)v;
    n++;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      return mpl_error_set(MPL_ERR_ARG, "--in-widths '%s' is not a comma-separated list", text);
  }
  if (n != n_expected)
    return mpl_error_set(MPL_ERR_ARG,
                         "--in-widths lists %d width%s but --submodels is %d: one width per sub-model",
                         n, n == 1 ? "" : "s", n_expected);
  return MPL_OK;
}

enum mpl_status mpl_cmd_blend_init(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  long n_sub = 0, hidden = 0, classes = 0, seed = 1, features = 0;
  const char *widths = NULL, *output = NULL;
  bool shards = false;
  const struct mpl_opt opts[] = {
      {"submodels", 'L', MPL_OPT_INT, &n_sub, "L", "number of sub-models (required)"},
      {"in-widths", 0, MPL_OPT_STRING, &widths, "W1,W2,..", "feature slice width of each sub-model (required)"},
      {"features", 0, MPL_OPT_INT, &features, "F", "check: the widths must add up to F (optional)"},
      {"hidden", 0, MPL_OPT_INT, &hidden, "H", "width of both dense layers of a sub-model (required)"},
      {"classes", 'C', MPL_OPT_INT, &classes, "C", "classes of the softmax head (required)"},
      {"seed", 0, MPL_OPT_INT, &seed, "S", "random seed (default 1)"},
      {"output", 'o', MPL_OPT_STRING, &output, "FILE", "model file to write (required)"},
      {"shards", 0, MPL_OPT_FLAG, &shards, NULL,
       "one file per sub-model beside FILE (FILE.sub<i>.h5), linked from FILE"},
  };
  const struct mpl_cmd_spec spec = {
      "blend-init",
      "mpillm blend-init --submodels L --in-widths W1,..,WL --hidden H --classes C -o blend.h5 "
      "(or --config configs/blend_example.ini -o blend.h5)",
      "Write a seed-network (blend) model with random weights.", opts,
      (int)(sizeof opts / sizeof opts[0]), 0, 0};
  bool help = false;
  enum mpl_status st = mpl_cli_parse_options(&spec, argc, argv, &help);
  if (st != MPL_OK || help) return st;
  if (!output || !widths || n_sub <= 0 || hidden <= 0 || classes <= 0)
    return mpl_error_set(MPL_ERR_ARG,
                         "blend-init needs --submodels, --in-widths, --hidden, --classes (all "
                         "positive) and -o FILE");
  if (n_sub > MPL_BLEND_MAX_SUBMODELS || hidden > INT32_MAX || classes > INT32_MAX)
    return mpl_error_set(MPL_ERR_ARG, "blend-init: at most %d sub-models", MPL_BLEND_MAX_SUBMODELS);
  struct mpl_blend_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.n_submodels = (int)n_sub;
  cfg.hidden = (int)hidden;
  cfg.n_classes = (int)classes;
  if ((st = parse_widths(widths, cfg.in_widths, cfg.n_submodels)) != MPL_OK) return st;
  if (features > 0 && mpl_blend_n_features(&cfg) != features)
    return mpl_error_set(MPL_ERR_ARG, "--in-widths %s add up to %lld features, not --features %ld",
                         widths, (long long)mpl_blend_n_features(&cfg), features);
  if ((st = mpl_blend_config_check(&cfg, "blend-init")) != MPL_OK) return st;
  struct mpl_blend_model m;
  if ((st = mpl_blend_model_alloc(&cfg, 0, cfg.n_submodels, &m)) != MPL_OK) return st;
  uint64_t s = (uint64_t)seed;
  size_t h = (size_t)cfg.hidden, c = (size_t)cfg.n_classes;
  for (int i = 0; i < cfg.n_submodels; i++) {
    size_t in = (size_t)cfg.in_widths[i];
    fill(m.w0[i], in * h, (float)sqrt(6.0 / (double)(in + h)), &s);
    fill(m.b0[i], h, 0.1f, &s);
    fill(m.w1[i], h * h, (float)sqrt(6.0 / (double)(2 * h)), &s);
    fill(m.b1[i], h, 0.1f, &s);
  }
  size_t lh = (size_t)cfg.n_submodels * h;
  fill(m.head_w, lh * c, (float)sqrt(6.0 / (double)(lh + c)), &s);
  fill(m.head_b, c, 0.1f, &s);
  st = shards ? mpl_blend_file_write_shards(output, &m) : mpl_blend_file_write(output, &m);
  char size[32];
  if (st == MPL_OK)
    printf("wrote %s: L=%d, %lld features, h=%d, C=%d, %s of weights (seed %ld)\n", output,
           cfg.n_submodels, (long long)mpl_blend_n_features(&cfg), cfg.hidden, cfg.n_classes,
           mpl_format_bytes((double)mpl_blend_model_bytes(&m), size, sizeof size), seed);
  mpl_blend_model_free(&m);
  return st;
}
