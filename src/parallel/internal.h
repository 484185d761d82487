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

#endif
