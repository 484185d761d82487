/* `mpillm shard model.h5 --tp T --pp P [--pp-layers a,b,..] -o DIR`: pre-cut per-rank
 * shard files plus a manifest, which generate/bench load in place of the model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mpillm/io.h"

enum mpl_status mpl_cmd_shard(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  (void)ctx;
  long tp = 1, pp = 1;
  const char *out = NULL, *pp_layers = NULL;
  const struct mpl_opt opts[] = {
      {"tp", 0, MPL_OPT_INT, &tp, "T", "tensor-parallel ranks per stage (default 1)"},
      {"pp", 0, MPL_OPT_INT, &pp, "P", "pipeline stages (default 1)"},
      {"pp-layers", 0, MPL_OPT_STRING, &pp_layers, "a,b,..", "layers per stage (default: balanced by bytes)"},
      {"output", 'o', MPL_OPT_STRING, &out, "DIR", "the shard folder to create (required)"},
  };
  const struct mpl_cmd_spec spec = {"shard", "mpillm shard model.h5 --tp T --pp P [--pp-layers a,b,..] -o DIR",
                                    "Cut a model file into per-rank shard files plus a manifest.", opts,
                                    (int)(sizeof opts / sizeof opts[0]), 1, 1};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, &n_pos, &help);
  if (st != MPL_OK || help) {
    free(pos);
    return st;
  }
  int *layers = NULL;
  if (!out) st = mpl_error_set(MPL_ERR_ARG, "shard: -o DIR is required");
  if (st == MPL_OK && (tp < 1 || pp < 1 || tp > 4096 || pp > 4096))
    st = mpl_error_set(MPL_ERR_ARG, "shard: --tp %ld --pp %ld: each must be between 1 and 4096", tp, pp);
  if (st == MPL_OK && pp_layers) {
    layers = calloc((size_t)pp, sizeof *layers);
    const char *s = pp_layers;
    int n = 0;
    while (st == MPL_OK && *s) {
      char *end;
      long v = strtol(s, &end, 10);
      if (end == s || v < 1 || n == pp || (*end && *end != ','))
        st = mpl_error_set(MPL_ERR_ARG, "--pp-layers %s: expected %ld positive counts separated by commas",
                           pp_layers, pp);
      else
        layers[n++] = (int)v;
      s = *end ? end + 1 : end;
    }
    if (st == MPL_OK && n != pp)
      st = mpl_error_set(MPL_ERR_ARG, "--pp-layers %s: %d counts for --pp %ld", pp_layers, n, pp);
  }
  if (st == MPL_OK) {
    double t0 = mpl_time_now();
    st = mpl_io_shard(pos[0], (int)pp, layers, (int)tp, out);
    if (st == MPL_OK) printf("wrote %ld shard files and manifest.json to %s in %.1f s\n", pp * tp, out,
                             mpl_time_now() - t0);
  }
  free(layers);
  free(pos);
  return st;
}
