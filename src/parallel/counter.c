/* The shared counter: one int64 in a window on rank 0, a passive-target epoch on
 * every rank for the counter's life, MPI_Fetch_and_op to take a value. */
#include "mpillm/parallel.h"
#include "internal.h"

/* Counters this rank holds now: mpl_par_progress calls MPI only while there is one. */
static int n_hosted;

enum mpl_status mpl_par_counter_create(MPI_Comm comm, struct mpl_par_counter *counter) {
  counter->win = MPI_WIN_NULL;
  counter->base = NULL;
  counter->host = false;
  bool root = mpl_par_comm_rank(comm) == 0;
  MPI_Aint size = root ? (MPI_Aint)sizeof(int64_t) : 0;
  enum mpl_status st = mpl_par__status(
      MPI_Win_allocate(size, sizeof(int64_t), MPI_INFO_NULL, comm, &counter->base, &counter->win),
      "MPI_Win_allocate (the shared counter)");
  st = mpl_par_agree(comm, st);
  if (st != MPL_OK) return st;
  MPI_Win_set_errhandler(counter->win, MPI_ERRORS_RETURN);
  /* the start value goes in through the window, then everyone may take from it */
  st = mpl_par__status(MPI_Win_lock_all(0, counter->win), "MPI_Win_lock_all");
  if (st == MPL_OK && root) {
    int64_t zero = 0;
    st = mpl_par__status(MPI_Put(&zero, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, counter->win), "MPI_Put");
    if (st == MPL_OK) st = mpl_par__status(MPI_Win_flush(0, counter->win), "MPI_Win_flush");
  }
  /* and nobody takes before the start value is in; on a failure, every rank frees */
  st = mpl_par_agree(comm, st);
  if (st != MPL_OK) {
    mpl_par_counter_free(counter);
    return st;
  }
  counter->host = root;
  n_hosted += root;
  return MPL_OK;
}

enum mpl_status mpl_par_counter_next(struct mpl_par_counter *counter, int64_t n, int64_t *first) {
  MPL_ASSERT(n >= 1, "taking %lld values from the counter", (long long)n);
  enum mpl_status st = mpl_par__status(
      MPI_Fetch_and_op(&n, first, MPI_INT64_T, 0, 0, MPI_SUM, counter->win), "MPI_Fetch_and_op");
  if (st == MPL_OK) st = mpl_par__status(MPI_Win_flush(0, counter->win), "MPI_Win_flush");
  return st;
}

void mpl_par_counter_free(struct mpl_par_counter *counter) {
  if (counter->win == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(counter->win);
  MPI_Win_free(&counter->win);
  counter->base = NULL;
  n_hosted -= counter->host;
  counter->host = false;
}

void mpl_par_progress(void) {
  if (n_hosted == 0) return;
  /* any call into the library runs its progress engine; a probe receives nothing */
  int flag;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
}
