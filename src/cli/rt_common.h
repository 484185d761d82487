/* What generate, bench and eval share: the layout and thread options, starting the
 * runtime with them, and rank 0's tokenizer from the model file. */
#ifndef MPILLM_CLI_RT_COMMON_H
#define MPILLM_CLI_RT_COMMON_H

#include "mpillm/cli.h"
#include "mpillm/runtime.h"
#include "mpillm/tokenizer.h"

struct mpl_cli_rt_args {
  long dp, pp, tp, threads;
  const char *layers; /* "3,5": layers per pipeline stage */
  bool verbose;
};

#define MPL_CLI_RT_OPTS(a)                                                                     \
  {"dp", 0, MPL_OPT_INT, &(a).dp, "D", "data-parallel replicas (default: inferred)"},          \
  {"pp", 0, MPL_OPT_INT, &(a).pp, "P", "pipeline stages (default 1)"},                         \
  {"tp", 0, MPL_OPT_INT, &(a).tp, "T", "tensor-parallel ranks per stage (default: the rest)"}, \
  {"pp-layers", 0, MPL_OPT_STRING, &(a).layers, "a,b,..", "layers per pipeline stage (default: balanced by bytes)"}, \
  {"threads", 't', MPL_OPT_INT, &(a).threads, "N", "threads per rank (default: MPILLM_THREADS, else cores / ranks)"}, \
  {"verbose", 'v', MPL_OPT_FLAG, &(a).verbose, NULL, "log the launch, the layout and per-rank details"}

/* The pool's threads per rank: threads > 0, else resolved (MPILLM_THREADS, ...,
 * cores / ranks per node); logs the launch line (a warning when a node is
 * oversubscribed). Collective on MPI_COMM_WORLD. */
enum mpl_status mpl_cli_threads_start(long threads);

/* Starts threads, logs the launch line, resolves the layout and loads the model
 * part of every rank. Collective on MPI_COMM_WORLD. */
enum mpl_status mpl_cli_rt_start(const struct mpl_cli_rt_args *a, const char *model_path,
                                 struct mpl_rt **rt);

/* Rank 0: the tokenizer stored in the model file (*tok NULL, no error, when the file
 * has none). Local. */
enum mpl_status mpl_cli_rt_tokenizer(const char *model_path, const struct mpl_rt *rt,
                                     struct mpl_tokenizer **tok);

/* Rank 0: the stop tokens: the config's eos ids and the tokenizer's. *ids freed by
 * the caller with free(). Local. */
enum mpl_status mpl_cli_rt_eos(const struct mpl_model_config *cfg, const struct mpl_tokenizer *tok,
                               int32_t **ids, int *n_ids);

#endif
