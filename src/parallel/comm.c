/* Timed wrappers around the MPI collectives and point-to-point calls the runtime uses. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/parallel.h"

static double comm_seconds = 0.0;

double mpl_par_comm_seconds(void) { return comm_seconds; }
void mpl_par_comm_reset(void) { comm_seconds = 0.0; }

static enum mpl_status check(int rc, const char *what, double t0) {
  comm_seconds += mpl_time_now() - t0;
  if (rc == MPI_SUCCESS) return MPL_OK;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return mpl_error_set(MPL_ERR_MPI, "%s failed: %s", what, text);
}

/* MPI counts are int: larger buffers would need derived types; no caller sends 2 GiB */
static int count_of(size_t n, const char *what) {
  MPL_ASSERT(n <= (size_t)INT_MAX, "%s of %zu elements exceeds MPI's int count", what, n);
  return (int)n;
}

enum mpl_status mpl_par_barrier(MPI_Comm comm) {
  double t0 = mpl_time_now();
  return check(MPI_Barrier(comm), "MPI_Barrier", t0);
}

enum mpl_status mpl_par_bcast(MPI_Comm comm, void *buf, size_t n_bytes, int root) {
  double t0 = mpl_time_now();
  return check(MPI_Bcast(buf, count_of(n_bytes, "bcast"), MPI_BYTE, root, comm), "MPI_Bcast", t0);
}

static enum mpl_status allreduce(MPI_Comm comm, void *buf, size_t n, MPI_Datatype type, MPI_Op op,
                                 const char *what) {
  double t0 = mpl_time_now();
  return check(MPI_Allreduce(MPI_IN_PLACE, buf, count_of(n, what), type, op, comm), what, t0);
}

enum mpl_status mpl_par_allreduce_sum_f32(MPI_Comm comm, float *buf, size_t n) {
  return allreduce(comm, buf, n, MPI_FLOAT, MPI_SUM, "MPI_Allreduce(sum, float)");
}
enum mpl_status mpl_par_allreduce_sum_f64(MPI_Comm comm, double *buf, size_t n) {
  return allreduce(comm, buf, n, MPI_DOUBLE, MPI_SUM, "MPI_Allreduce(sum, double)");
}
enum mpl_status mpl_par_allreduce_max_f64(MPI_Comm comm, double *buf, size_t n) {
  return allreduce(comm, buf, n, MPI_DOUBLE, MPI_MAX, "MPI_Allreduce(max, double)");
}
enum mpl_status mpl_par_allreduce_sum_i64(MPI_Comm comm, int64_t *buf, size_t n) {
  return allreduce(comm, buf, n, MPI_INT64_T, MPI_SUM, "MPI_Allreduce(sum, int64)");
}
enum mpl_status mpl_par_allreduce_max_i64(MPI_Comm comm, int64_t *buf, size_t n) {
  return allreduce(comm, buf, n, MPI_INT64_T, MPI_MAX, "MPI_Allreduce(max, int64)");
}

enum mpl_status mpl_par_allreduce_maxloc(MPI_Comm comm, float *values, int64_t *indices, size_t n) {
  /* MPI_MAXLOC wants int indices: vocabularies fit, token positions do not matter here */
  struct {
    float value;
    int index;
  } *pairs = malloc((n ? n : 1) * sizeof *pairs);
  MPL_ASSERT(pairs != NULL, "no memory for %zu maxloc pairs", n);
  for (size_t i = 0; i < n; i++) {
    MPL_ASSERT(indices[i] >= 0 && indices[i] <= INT_MAX, "maxloc index %lld out of int range",
               (long long)indices[i]);
    pairs[i].value = values[i];
    pairs[i].index = (int)indices[i];
  }
  enum mpl_status st = allreduce(comm, pairs, n, MPI_FLOAT_INT, MPI_MAXLOC, "MPI_Allreduce(maxloc)");
  for (size_t i = 0; st == MPL_OK && i < n; i++) {
    values[i] = pairs[i].value;
    indices[i] = pairs[i].index;
  }
  free(pairs);
  return st;
}

enum mpl_status mpl_par_gatherv(MPI_Comm comm, const void *send, size_t n_bytes, void *recv,
                                const size_t *counts, const size_t *displs, int root) {
  int size = mpl_par_comm_size(comm);
  int is_root = mpl_par_comm_rank(comm) == root;
  int *icounts = NULL, *idispls = NULL;
  if (is_root) {
    icounts = malloc((size_t)size * sizeof *icounts);
    idispls = malloc((size_t)size * sizeof *idispls);
    MPL_ASSERT(icounts && idispls, "no memory for gatherv counts");
    for (int i = 0; i < size; i++) {
      icounts[i] = count_of(counts[i], "gatherv piece");
      idispls[i] = count_of(displs[i], "gatherv displacement");
    }
  }
  double t0 = mpl_time_now();
  int rc = MPI_Gatherv(send, count_of(n_bytes, "gatherv"), MPI_BYTE, recv, icounts, idispls,
                       MPI_BYTE, root, comm);
  free(icounts);
  free(idispls);
  return check(rc, "MPI_Gatherv", t0);
}

enum mpl_status mpl_par_allgather(MPI_Comm comm, const void *send, size_t n_bytes, void *recv) {
  double t0 = mpl_time_now();
  int n = count_of(n_bytes, "allgather");
  return check(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm), "MPI_Allgather", t0);
}

enum mpl_status mpl_par_send(MPI_Comm comm, const void *buf, size_t n_bytes, int dest, int tag) {
  double t0 = mpl_time_now();
  return check(MPI_Send(buf, count_of(n_bytes, "send"), MPI_BYTE, dest, tag, comm), "MPI_Send", t0);
}

enum mpl_status mpl_par_recv(MPI_Comm comm, void *buf, size_t n_bytes, int source, int tag) {
  double t0 = mpl_time_now();
  return check(MPI_Recv(buf, count_of(n_bytes, "recv"), MPI_BYTE, source, tag, comm,
                        MPI_STATUS_IGNORE),
               "MPI_Recv", t0);
}
