/* `mpillm info`: what this run sees (ranks, layout, threads, libraries), so that a
 * launch can be checked before a long job. */
#include <cblas.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

enum mpl_status mpl_cmd_info(int argc, char **argv, struct mpl_cli_ctx *ctx) {
  long dp = 0, pp = 0, tp = 0;
  const struct mpl_opt opts[] = {
      {"dp", 0, MPL_OPT_INT, &dp, "D", "data-parallel replicas (default: inferred)"},
      {"pp", 0, MPL_OPT_INT, &pp, "P", "pipeline stages (default 1)"},
      {"tp", 0, MPL_OPT_INT, &tp, "T", "tensor-parallel ranks per stage (default: the rest)"},
  };
  const struct mpl_cmd_spec spec = {"info", "mpillm info [--dp D --pp P --tp T]",
                                    "Show the layout, threads and libraries this run sees.", opts,
                                    (int)(sizeof opts / sizeof opts[0]), 0, 0};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  enum mpl_status st = mpl_cli_parse(&spec, argc, argv, &pos, &n_pos, &help);
  free(pos);
  if (st != MPL_OK || help) return st;
  int d = (int)dp, p = (int)pp, t = (int)tp;
  st = mpl_par_layout_resolve(ctx->world_size, &d, &p, &t);
  if (st != MPL_OK) return st;
  struct mpl_grid grid;
  st = mpl_par_grid_init(&grid, d, p, t);
  st = mpl_par_agree(MPI_COMM_WORLD, st);
  if (st != MPL_OK) return st;
  if (grid.rank == 0) {
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi_version, &len);
    for (int i = 0; i < len; i++)
      if (mpi_version[i] == '\n' || mpi_version[i] == ',') {
        mpi_version[i] = '\0';
        break;
      }
    printf("mpillm %s\n", MPILLM_VERSION);
    printf("ranks      %d (dp %d x pp %d x tp %d)\n", grid.size, d, p, t);
    printf("MPI        %s\n", mpi_version);
    printf("HDF5       %u.%u.%u (%s)\n", maj, min, rel,
#ifdef MPILLM_HDF5_PARALLEL
           "parallel"
#else
           "serial"
#endif
    );
    printf("OpenBLAS   %s, %d threads\n", openblas_get_config(), openblas_get_num_threads());
  }
  mpl_par_grid_free(&grid);
  return MPL_OK;
}
