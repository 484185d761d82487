/* MPI start-up and the dp x pp x tp process grid with one communicator per axis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mpillm/parallel.h"

static int started_mpi = 0;
static bool by_mpirun = false;

bool mpl_par__started_by_mpirun(void) { return by_mpirun; }

static void abort_job(void) { MPI_Abort(MPI_COMM_WORLD, 134); }

enum mpl_status mpl_par_init(int *argc, char ***argv) {
  int initialized = 0;
  by_mpirun = getenv("OMPI_MCA_orte_launch") != NULL;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return mpl_error_set(MPL_ERR_MPI, "MPI_Init_thread failed");
    started_mpi = 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const char *all = getenv("MPILLM_LOG_ALL_RANKS");
  const char *level = getenv("MPILLM_LOG_LEVEL");
  enum mpl_log_level lvl = MPL_LOG_INFO;
  if (level && strcmp(level, "debug") == 0) lvl = MPL_LOG_DEBUG;
  if (level && strcmp(level, "warn") == 0) lvl = MPL_LOG_WARN;
  mpl_log_init(rank, lvl, all && strcmp(all, "0") != 0);
  mpl_assert_set_abort_hook(abort_job);
  return mpl_par_net_configure_from_env();
}

void mpl_par_finalize(void) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (started_mpi && !finalized) MPI_Finalize();
}

int mpl_par_world_rank(void) { return mpl_par_comm_rank(MPI_COMM_WORLD); }
int mpl_par_world_size(void) { return mpl_par_comm_size(MPI_COMM_WORLD); }

int mpl_par_comm_rank(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int mpl_par_comm_size(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}

static enum mpl_status layout_error(int n_ranks, int dp, int pp, int tp) {
  char d[16] = "?", p[16] = "?", t[16] = "?";
  if (dp) snprintf(d, sizeof d, "%d", dp);
  if (pp) snprintf(p, sizeof p, "%d", pp);
  if (tp) snprintf(t, sizeof t, "%d", tp);
  return mpl_error_set(MPL_ERR_ARG,
                       "layout --dp %s --pp %s --tp %s does not fit %d ranks "
                       "(dp x pp x tp must equal the number of ranks)",
                       d, p, t, n_ranks);
}

enum mpl_status mpl_par_layout_resolve(int n_ranks, int *dp_size, int *pp_size, int *tp_size) {
  if (*dp_size < 0 || *pp_size < 0 || *tp_size < 0)
    return mpl_error_set(MPL_ERR_ARG, "layout factors must be positive (--dp %d --pp %d --tp %d)",
                         *dp_size, *pp_size, *tp_size);
  int pp = *pp_size ? *pp_size : 1;
  int dp = *dp_size, tp = *tp_size;
  if (dp == 0 && tp == 0) dp = 1;
  if (tp == 0) {
    if (n_ranks % (dp * pp) == 0) tp = n_ranks / (dp * pp);
  } else if (dp == 0) {
    if (n_ranks % (tp * pp) == 0) dp = n_ranks / (tp * pp);
  }
  if (dp <= 0 || tp <= 0 || dp * pp * tp != n_ranks)
    return layout_error(n_ranks, *dp_size, *pp_size, *tp_size);
  *dp_size = dp;
  *pp_size = pp;
  *tp_size = tp;
  return MPL_OK;
}

static enum mpl_status split(MPI_Comm parent, int color, int key, MPI_Comm *out, const char *what) {
  if (MPI_Comm_split(parent, color, key, out) != MPI_SUCCESS)
    return mpl_error_set(MPL_ERR_MPI, "MPI_Comm_split for the %s communicator failed", what);
  MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
  return MPL_OK;
}

enum mpl_status mpl_par_grid_init(struct mpl_grid *grid, int dp_size, int pp_size, int tp_size) {
  memset(grid, 0, sizeof *grid);
  grid->world = grid->tp_comm = grid->pp_comm = grid->dp_comm = grid->replica_comm = MPI_COMM_NULL;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &grid->world) != MPI_SUCCESS)
    return mpl_error_set(MPL_ERR_MPI, "MPI_Comm_dup of the world failed");
  MPI_Comm_set_errhandler(grid->world, MPI_ERRORS_RETURN);
  MPI_Comm_rank(grid->world, &grid->rank);
  MPI_Comm_size(grid->world, &grid->size);
  MPL_ASSERT(dp_size * pp_size * tp_size == grid->size, "unresolved layout %dx%dx%d for %d ranks",
             dp_size, pp_size, tp_size, grid->size);
  grid->dp_size = dp_size;
  grid->pp_size = pp_size;
  grid->tp_size = tp_size;
  grid->tp_rank = grid->rank % tp_size;
  grid->pp_rank = (grid->rank / tp_size) % pp_size;
  grid->dp_rank = grid->rank / (tp_size * pp_size);
  enum mpl_status st = split(grid->world, grid->dp_rank * pp_size + grid->pp_rank, grid->tp_rank,
                             &grid->tp_comm, "tensor-parallel");
  if (st == MPL_OK)
    st = split(grid->world, grid->dp_rank * tp_size + grid->tp_rank, grid->pp_rank, &grid->pp_comm,
               "pipeline");
  if (st == MPL_OK)
    st = split(grid->world, grid->pp_rank * tp_size + grid->tp_rank, grid->dp_rank, &grid->dp_comm,
               "data-parallel");
  if (st == MPL_OK)
    st = split(grid->world, grid->dp_rank, grid->rank, &grid->replica_comm, "replica");
  if (st != MPL_OK) mpl_par_grid_free(grid);
  return st;
}

static void free_comm(MPI_Comm *comm) {
  if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
  *comm = MPI_COMM_NULL;
}

void mpl_par_grid_free(struct mpl_grid *grid) {
  if (!grid) return;
  /* a zeroed struct holds 0, which is not MPI_COMM_NULL in Open MPI: only free what init set */
  if (grid->size == 0) return;
  free_comm(&grid->tp_comm);
  free_comm(&grid->pp_comm);
  free_comm(&grid->dp_comm);
  free_comm(&grid->replica_comm);
  free_comm(&grid->world);
  grid->size = 0;
}
