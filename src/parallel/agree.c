/* The status agreement: ranks that took a step which can fail on some of them agree
 * on one outcome, so that no rank waits in a collective for a rank that has left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/parallel.h"

enum mpl_status mpl_par_agree(MPI_Comm comm, enum mpl_status local) {
  int size = mpl_par_comm_size(comm);
  int *statuses = malloc((size_t)size * sizeof *statuses);
  MPL_ASSERT(statuses != NULL, "no memory for %d statuses in the agreement", size);
  int mine = (int)local;
  if (MPI_Allgather(&mine, 1, MPI_INT, statuses, 1, MPI_INT, comm) != MPI_SUCCESS) {
    free(statuses);
    return mpl_error_set(MPL_ERR_MPI, "MPI_Allgather in the status agreement failed");
  }
  int first = -1, n_failed = 0;
  for (int i = 0; i < size; i++) {
    if (statuses[i] == MPL_OK) continue;
    if (first < 0) first = i;
    n_failed++;
  }
  if (first < 0) {
    free(statuses);
    return MPL_OK;
  }
  enum mpl_status agreed = (enum mpl_status)statuses[first];
  free(statuses);

  /* the lowest failing rank's message, with its world rank, reaches everyone */
  char message[1024];
  memset(message, 0, sizeof message);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  if (mpl_par_comm_rank(comm) == first)
    snprintf(message, sizeof message, "[rank %d] %s", world_rank,
             mpl_error_message()[0] ? mpl_error_message() : mpl_status_name(local));
  if (MPI_Bcast(message, sizeof message, MPI_CHAR, first, comm) != MPI_SUCCESS)
    return mpl_error_set(MPL_ERR_MPI, "MPI_Bcast in the status agreement failed");
  message[sizeof message - 1] = '\0';
  /* a message agreed on before (an inner step's, passed up) is kept as it is */
  const char *inner = strchr(message, ']');
  if (inner && strncmp(inner + 1, " [rank ", 7) == 0) return mpl_error_set(agreed, "%s", inner + 2);
  if (size > 1 && n_failed == size)
    mpl_error_set(agreed, "%s (on all %d ranks)", message, size);
  else if (n_failed > 1)
    mpl_error_set(agreed, "%s (and %d more ranks failed)", message, n_failed - 1);
  else
    mpl_error_set(agreed, "%s", message);
  return agreed;
}
