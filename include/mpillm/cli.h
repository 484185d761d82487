/* mpillm cli: the subcommand table and the one option parser every subcommand uses.
 * Options come from the command line and, with --config FILE, from an INI file:
 * keys are long option names, read from the [mpillm] section and from the section
 * named after the subcommand; the command line wins over the file. */
#ifndef MPILLM_CLI_H
#define MPILLM_CLI_H

#include <stdbool.h>

#include "mpillm/core.h"
#include "mpillm/parallel.h"

enum mpl_opt_type {
  MPL_OPT_FLAG,   /* dst: bool*, no value */
  MPL_OPT_INT,    /* dst: long* */
  MPL_OPT_DOUBLE, /* dst: double* */
  MPL_OPT_STRING, /* dst: const char** (points into argv or into the parser's copy) */
};

struct mpl_opt {
  const char *name;       /* long name without dashes: "temperature" */
  char short_name;        /* 'p', or 0 */
  enum mpl_opt_type type;
  void *dst;
  const char *value_name; /* shown in --help: "T" */
  const char *help;       /* one line; say the default */
};

struct mpl_cmd_spec {
  const char *name;       /* "generate" */
  const char *usage;      /* "mpillm generate -m MODEL (-p TEXT | --prompt-ids IDS) [options]" */
  const char *summary;    /* one line for `mpillm --help` */
  const struct mpl_opt *opts;
  int n_opts;
  int min_positional, max_positional;
};

/* Parses argv (argv[0] is the subcommand name) against spec. Positional arguments
 * are returned in *positional (count *n_positional, pointing into argv; the caller
 * frees the array with free()). With
 * --help, prints the help on rank 0 and sets *help_shown. Unknown options, missing
 * values and bad numbers are MPL_ERR_ARG naming the option. Local. */
enum mpl_status mpl_cli_parse(const struct mpl_cmd_spec *spec, int argc, char **argv,
                              char ***positional, int *n_positional, bool *help_shown);
/* mpl_cli_parse for commands that take no positional arguments. Local. */
enum mpl_status mpl_cli_parse_options(const struct mpl_cmd_spec *spec, int argc, char **argv,
                                      bool *help_shown);
void mpl_cli_print_help(const struct mpl_cmd_spec *spec);

/* What a subcommand gets: the world is up (MPI started); the grid is not built,
 * since commands decide their layout. */
struct mpl_cli_ctx {
  int world_rank, world_size;
};

struct mpl_cli_command {
  const char *name;
  const char *summary;
  /* Collective on MPI_COMM_WORLD unless rank0_only. Returns a status that main()
   * agrees on across ranks; the message is printed once by rank 0. */
  enum mpl_status (*run)(int argc, char **argv, struct mpl_cli_ctx *ctx);
  bool rank0_only; /* convert, inspect, tokenize...: the other ranks do nothing */
};

extern const struct mpl_cli_command mpl_cli_commands[];
extern const int mpl_cli_n_commands;

#endif
