/* mpillm's entry point: starts MPI, runs one subcommand on every rank, agrees on
 * its outcome, prints one error message on rank 0 and exits non-zero on all ranks. */
#include <stdio.h>
#include <string.h>

#include "mpillm/cli.h"
#include "mpillm/parallel.h"

static void print_usage(void) {
  printf("usage: mpillm COMMAND [options]   (mpirun -np N mpillm COMMAND ... for several ranks)\n\n"
         "mpillm runs large language models across MPI ranks: tensor, pipeline and data\n"
         "parallelism from one HDF5 model file.\n\ncommands:\n");
  for (int i = 0; i < mpl_cli_n_commands; i++)
    printf("  %-10s %s\n", mpl_cli_commands[i].name, mpl_cli_commands[i].summary);
  printf("\n`mpillm COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
  if (mpl_par_init(&argc, &argv) != MPL_OK) {
    fprintf(stderr, "mpillm: error: %s\n", mpl_error_message());
    return 1;
  }
  struct mpl_cli_ctx ctx = {mpl_par_world_rank(), mpl_par_world_size()};
  enum mpl_status status = MPL_OK;
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    if (ctx.world_rank == 0) print_usage();
    if (argc < 2) status = mpl_error_set(MPL_ERR_ARG, "no command given");
  } else if (strcmp(argv[1], "--version") == 0) {
    if (ctx.world_rank == 0) printf("mpillm %s\n", MPILLM_VERSION);
  } else {
    const struct mpl_cli_command *cmd = NULL;
    for (int i = 0; i < mpl_cli_n_commands; i++)
      if (strcmp(argv[1], mpl_cli_commands[i].name) == 0) cmd = &mpl_cli_commands[i];
    if (!cmd)
      status = mpl_error_set(MPL_ERR_ARG, "unknown command '%s' (see mpillm --help)", argv[1]);
    else if (!cmd->rank0_only || ctx.world_rank == 0)
      status = cmd->run(argc - 1, argv + 1, &ctx);
  }
  fflush(stdout);
  status = mpl_par_agree(MPI_COMM_WORLD, status);
  if (status != MPL_OK && ctx.world_rank == 0) fprintf(stderr, "mpillm: error: %s\n", mpl_error_message());
  mpl_par_finalize();
  return status == MPL_OK ? 0 : 1;
}
