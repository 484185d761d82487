/* The sum all-reduce of a communicator whose ranks share one node, through node shared
 * memory: each rank copies its vector into its own slot of a window that every rank
 * maps (MPI_Win_allocate_shared), one barrier, and each rank adds up the slots in rank
 * order. Decode's all-reduces are a few KiB, where MPI_Allreduce's rounds of messages
 * (with a rendezvous above the shared-memory eager limit, 4 KiB in Open MPI's vader)
 * cost more than the data: here the only round trip is the barrier. Every rank adds in
 * the same order, so all get the same bits. Two buffers alternate, so one barrier per
 * call is enough: by the time any rank passes call k's barrier, every rank has
 * finished reading the buffer of call k-1, the one call k+1 writes. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* floats per rank and buffer: 256 KiB, 32 rows of a 2048-wide hidden state; longer
 * vectors (prompts) go through MPI_Allreduce, whose bandwidth-bound ring is right there */
enum { SHM_SUM_FLOATS = 65536 };

struct shm_sum {
  MPI_Win win;
  int size;
  unsigned long calls;
  float **slot[2]; /* slot[buffer][rank]: that rank's part of the window */
};

static int shm_keyval = MPI_KEYVAL_INVALID;

static struct shm_sum *attached(MPI_Comm comm) {
  if (shm_keyval == MPI_KEYVAL_INVALID || comm == MPI_COMM_NULL) return NULL;
  void *value = NULL;
  int found = 0;
  MPI_Comm_get_attr(comm, shm_keyval, &value, &found);
  return found ? value : NULL;
}

static void free_state(struct shm_sum *s) {
  if (!s) return;
  free(s->slot[0]);
  free(s->slot[1]);
  free(s);
}

/* 1 on this rank when the shared-memory sum is wanted (MPILLM_SHM_ALLREDUCE is not "0")
 * and every rank of comm is on this rank's node */
static int node_local(MPI_Comm comm, int size) {
  const char *env = getenv("MPILLM_SHM_ALLREDUCE");
  if (env && strcmp(env, "0") == 0) return 0;
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS) return 0;
  int ok = mpl_par_comm_size(node) == size;
  MPI_Comm_free(&node);
  return ok;
}

enum mpl_status mpl_par__shm_sum_attach(MPI_Comm comm) {
  int size = mpl_par_comm_size(comm), rank = mpl_par_comm_rank(comm);
  if (size < 2) return MPL_OK;
  int ok = node_local(comm, size), all = 0;
  int rc = MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
  if (rc != MPI_SUCCESS) return mpl_par__status(rc, "MPI_Allreduce(agreeing on a shared-memory sum)");
  if (!all) return MPL_OK;

  struct shm_sum *s = calloc(1, sizeof *s);
  if (s) {
    s->size = size;
    s->slot[0] = calloc((size_t)size, sizeof(float *));
    s->slot[1] = calloc((size_t)size, sizeof(float *));
  }
  ok = s && s->slot[0] && s->slot[1];
  rc = MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm);
  if (rc != MPI_SUCCESS || !ok) {
    free_state(s);
    return rc != MPI_SUCCESS ? mpl_par__status(rc, "MPI_Allreduce(agreeing on a shared-memory sum)")
                             : mpl_error_set(MPL_ERR_NOMEM, "no memory for the shared-memory sum of %d ranks", size);
  }
  float *mine = NULL;
  rc = MPI_Win_allocate_shared((MPI_Aint)(2 * SHM_SUM_FLOATS * sizeof(float)), (int)sizeof(float), MPI_INFO_NULL,
                               comm, &mine, &s->win);
  if (rc != MPI_SUCCESS) {
    /* collective: when it fails, it fails everywhere; the sums then go through MPI */
    free_state(s);
    mpl_par__status(rc, "MPI_Win_allocate_shared");
    if (rank == 0)
      mpl_log_warn("no shared-memory window for the tensor-parallel sums (%s): they go through MPI_Allreduce",
                   mpl_error_message());
    mpl_error_clear();
    return MPL_OK;
  }
  for (int r = 0; r < size; r++) {
    MPI_Aint bytes = 0;
    int disp = 0;
    float *base = NULL;
    MPI_Win_shared_query(s->win, r, &bytes, &disp, &base);
    s->slot[0][r] = base;
    s->slot[1][r] = base + SHM_SUM_FLOATS;
  }
  (void)mine;
  MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win);
  if (shm_keyval == MPI_KEYVAL_INVALID)
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, &shm_keyval, NULL);
  MPI_Comm_set_attr(comm, shm_keyval, s);
  mpl_log_debug("sums of %d ranks through node shared memory", size);
  return MPL_OK;
}

void mpl_par__shm_sum_detach(MPI_Comm comm) {
  struct shm_sum *s = attached(comm);
  if (!s) return;
  MPI_Comm_delete_attr(comm, shm_keyval);
  MPI_Win_unlock_all(s->win);
  MPI_Win_free(&s->win);
  free_state(s);
}

bool mpl_par__shm_sum_f32(MPI_Comm comm, float *buf, size_t n, int *rc) {
  struct shm_sum *s = attached(comm);
  if (!s || n > SHM_SUM_FLOATS) return false;
  int b = (int)(s->calls++ & 1);
  memcpy(s->slot[b][mpl_par_comm_rank(comm)], buf, n * sizeof(float));
  MPI_Win_sync(s->win);
  *rc = MPI_Barrier(comm);
  if (*rc != MPI_SUCCESS) return true;
  MPI_Win_sync(s->win);
  memcpy(buf, s->slot[b][0], n * sizeof(float));
  for (int r = 1; r < s->size; r++) {
    const float *part = s->slot[b][r];
    for (size_t i = 0; i < n; i++) buf[i] += part[i];
  }
  return true;
}
