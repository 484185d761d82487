/* Private to src/parallel: what mpl_par_init saw before MPI started. */
#ifndef MPILLM_PARALLEL_INTERNAL_H
#define MPILLM_PARALLEL_INTERNAL_H

#include <stdbool.h>

#include "mpillm/parallel.h"

/* true when mpirun/mpiexec started this process (a singleton's MPI_Init sets the same
 * variables later, so this is read before MPI_Init). Local. */
bool mpl_par__started_by_mpirun(void);

/* MPL_OK, or MPL_ERR_MPI with "<what> failed: <MPI's error string>". Local. */
enum mpl_status mpl_par__status(int rc, const char *what);

/* The sum all-reduce through node shared memory (shm_sum.c). attach: when every rank
 * of comm is on one node and MPILLM_SHM_ALLREDUCE is not "0", maps a window of two
 * 256 KiB buffers per rank and caches it on comm (otherwise, or when the window cannot
 * be had, nothing: sums go through MPI). Collective on comm; detach before freeing
 * comm, collective too. sum_f32: false when comm has no window or n does not fit (the
 * caller uses MPI_Allreduce); else true with *rc the barrier's MPI status. Collective. */
enum mpl_status mpl_par__shm_sum_attach(MPI_Comm comm);
void mpl_par__shm_sum_detach(MPI_Comm comm);
bool mpl_par__shm_sum_f32(MPI_Comm comm, float *buf, size_t n, int *rc);

#endif
