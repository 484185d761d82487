/* Timed wrappers around the MPI collectives and point-to-point calls the runtime uses,
 * and the opt-in emulated network delay they add to messages between emulated hosts. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpillm/parallel.h"
#include "internal.h"

static double comm_seconds = 0.0;

/* --- the emulated network (see parallel.h: mpl_par_net_configure) --------------- */
static struct {
  bool on;
  double latency_s;     /* per crossing step */
  double bytes_per_s;   /* 0: no bandwidth term */
  int n_world;
  int *host_of_world;   /* [n_world] host index of each world rank */
  double added_seconds; /* delay this process added since configure */
  int keyval;           /* caches struct net_comm_hosts on each communicator */
  int generation;       /* bumped by each configure: older cached hosts are stale */
} net = {false, 0.0, 0.0, 0, NULL, 0.0, MPI_KEYVAL_INVALID, 0};

/* the hosts of one communicator's ranks, cached on it as an attribute */
struct net_comm_hosts {
  int generation;
  int n_hosts;
  int *host_of; /* [comm size] */
};

static int net_hosts_delete(MPI_Comm comm, int keyval, void *value, void *extra) {
  (void)comm, (void)keyval, (void)extra;
  struct net_comm_hosts *h = value;
  free(h->host_of);
  free(h);
  return MPI_SUCCESS;
}

static const struct net_comm_hosts *net_hosts(MPI_Comm comm) {
  void *value = NULL;
  int found = 0;
  MPI_Comm_get_attr(comm, net.keyval, &value, &found);
  if (found && ((struct net_comm_hosts *)value)->generation == net.generation) return value;
  if (found) MPI_Comm_delete_attr(comm, net.keyval);
  int size = mpl_par_comm_size(comm);
  struct net_comm_hosts *h = calloc(1, sizeof *h);
  if (h) h->generation = net.generation;
  int *ranks = malloc((size_t)size * sizeof *ranks);
  int *world_ranks = malloc((size_t)size * sizeof *world_ranks);
  char *seen = calloc((size_t)net.n_world, 1);
  MPL_ASSERT(h && ranks && world_ranks && seen, "no memory for the hosts of %d ranks", size);
  h->host_of = malloc((size_t)size * sizeof *h->host_of);
  MPL_ASSERT(h->host_of, "no memory for the hosts of %d ranks", size);
  MPI_Group group, world_group;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  for (int i = 0; i < size; i++) ranks[i] = i;
  MPI_Group_translate_ranks(group, size, ranks, world_group, world_ranks);
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  for (int i = 0; i < size; i++) {
    int host = world_ranks[i] >= 0 ? net.host_of_world[world_ranks[i]] : 0;
    h->host_of[i] = host;
    if (!seen[host]) h->n_hosts++;
    seen[host] = 1;
  }
  free(ranks);
  free(world_ranks);
  free(seen);
  MPI_Comm_set_attr(comm, net.keyval, h);
  return h;
}

static int ceil_log2(int n) {
  int steps = 0;
  while ((1 << steps) < n) steps++;
  return steps;
}

static double net_step(double n_bytes) {
  return net.latency_s + (net.bytes_per_s > 0 ? n_bytes / net.bytes_per_s : 0.0);
}

/* waits the modelled time: a wake-up from sleep takes 50-200 us here (ms under load),
 * as long as the latency being emulated, so the last 2 ms are spun (sched_yield in the
 * loop handed the core to other processes for ~70 us each time); longer waits sleep
 * first. The spin is bounded by the delay itself. */
static void net_wait(double seconds) {
  if (seconds <= 0) return;
  net.added_seconds += seconds;
  double deadline = mpl_time_now() + seconds;
  double sleep_s = seconds - 2e-3;
  if (sleep_s > 0) {
    struct timespec ts = {(time_t)sleep_s, (long)(fmod(sleep_s, 1.0) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
  }
  while (mpl_time_now() < deadline) {
  }
}

/* bcast: a binomial tree over the hosts, ceil(log2 h) crossing steps of the whole message */
static void net_bcast(MPI_Comm comm, size_t n_bytes) {
  if (!net.on) return;
  const struct net_comm_hosts *h = net_hosts(comm);
  if (h->n_hosts > 1) net_wait(ceil_log2(h->n_hosts) * net_step((double)n_bytes));
}

/* allreduce: the cheaper of recursive doubling over hosts (ceil(log2 h) steps of the
 * whole message) and a ring (2(h-1) steps of 1/h of it), as MPI picks by size */
static void net_allreduce(MPI_Comm comm, size_t n_bytes) {
  if (!net.on) return;
  const struct net_comm_hosts *h = net_hosts(comm);
  if (h->n_hosts <= 1) return;
  double doubling = ceil_log2(h->n_hosts) * net_step((double)n_bytes);
  double ring = 2.0 * (h->n_hosts - 1) * net_step((double)n_bytes / h->n_hosts);
  net_wait(doubling < ring ? doubling : ring);
}

/* barrier: ceil(log2 h) latencies */
static void net_barrier(MPI_Comm comm) {
  if (!net.on) return;
  const struct net_comm_hosts *h = net_hosts(comm);
  if (h->n_hosts > 1) net_wait(ceil_log2(h->n_hosts) * net.latency_s);
}

/* gather to one rank (or to all): ceil(log2 h) latencies, plus every byte that comes
 * from another host crossing once into the receiver's host. remote_bytes is known on
 * the receiving rank only; senders add nothing. */
static void net_gather(MPI_Comm comm, double remote_bytes) {
  if (!net.on) return;
  const struct net_comm_hosts *h = net_hosts(comm);
  if (h->n_hosts <= 1) return;
  net_wait(ceil_log2(h->n_hosts) * net.latency_s +
           (net.bytes_per_s > 0 ? remote_bytes / net.bytes_per_s : 0.0));
}

/* point to point: the receiver pays one step when the sender is on another host */
static void net_recv(MPI_Comm comm, int source, size_t n_bytes) {
  if (!net.on || source < 0) return;
  const struct net_comm_hosts *h = net_hosts(comm);
  int me = mpl_par_comm_rank(comm);
  if (h->host_of[source] != h->host_of[me]) net_wait(net_step((double)n_bytes));
}

enum mpl_status mpl_par_net_configure(double latency_us, double bw_mbps, int host_ranks) {
  free(net.host_of_world);
  net.host_of_world = NULL;
  net.on = false;
  net.added_seconds = 0.0;
  net.generation++;
  if (latency_us < 0 || bw_mbps < 0 || host_ranks < 0)
    return mpl_error_set(MPL_ERR_ARG,
                         "emulated network: latency %g us, bandwidth %g Mbit/s and %d ranks per "
                         "host must not be negative",
                         latency_us, bw_mbps, host_ranks);
  if (latency_us == 0 && bw_mbps == 0) return MPL_OK;
  if (net.keyval == MPI_KEYVAL_INVALID)
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, net_hosts_delete, &net.keyval, NULL);
  int rank = mpl_par_world_rank();
  net.n_world = mpl_par_world_size();
  net.host_of_world = calloc((size_t)net.n_world, sizeof *net.host_of_world);
  if (!net.host_of_world)
    return mpl_error_set(MPL_ERR_NOMEM, "no memory for the hosts of %d ranks", net.n_world);
  if (host_ranks > 0) {
    for (int r = 0; r < net.n_world; r++) net.host_of_world[r] = r / host_ranks;
  } else {
    /* the real nodes: the host of a rank is the world rank of its node's first rank */
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) !=
        MPI_SUCCESS)
      return mpl_error_set(MPL_ERR_MPI, "MPI_Comm_split_type(SHARED) for the emulated network failed");
    int leader = rank;
    MPI_Bcast(&leader, 1, MPI_INT, 0, node);
    MPI_Comm_free(&node);
    if (MPI_Allgather(&leader, 1, MPI_INT, net.host_of_world, 1, MPI_INT, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
      return mpl_error_set(MPL_ERR_MPI, "MPI_Allgather of the emulated hosts failed");
  }
  net.latency_s = latency_us * 1e-6;
  net.bytes_per_s = bw_mbps * 1e6 / 8.0;
  net.on = true;
  return MPL_OK;
}

static enum mpl_status env_number(const char *name, double *value) {
  const char *v = getenv(name);
  if (!v || !*v) return MPL_OK;
  char *end = NULL;
  double x = strtod(v, &end);
  if (*end != '\0' || !(x >= 0) || !isfinite(x))
    return mpl_error_set(MPL_ERR_ARG, "%s=%s is not a non-negative number", name, v);
  *value = x;
  return MPL_OK;
}

enum mpl_status mpl_par_net_configure_from_env(void) {
  double latency_us = 0, bw_mbps = 0, host_ranks = 0;
  enum mpl_status st = env_number("MPILLM_NET_DELAY_US", &latency_us);
  if (st == MPL_OK) st = env_number("MPILLM_NET_BW_MBPS", &bw_mbps);
  if (st == MPL_OK) st = env_number("MPILLM_NET_HOST_RANKS", &host_ranks);
  if (st == MPL_OK && host_ranks != floor(host_ranks))
    st = mpl_error_set(MPL_ERR_ARG, "MPILLM_NET_HOST_RANKS=%s is not a whole number",
                       getenv("MPILLM_NET_HOST_RANKS"));
  if (st != MPL_OK) return st;
  st = mpl_par_net_configure(latency_us, bw_mbps, (int)host_ranks);
  if (st == MPL_OK && net.on) {
    int n_hosts = 0;
    for (int r = 0; r < net.n_world; r++)
      if (net.host_of_world[r] + 1 > n_hosts) n_hosts = net.host_of_world[r] + 1;
    char hosts[64];
    if (host_ranks > 0)
      snprintf(hosts, sizeof hosts, "%d hosts of %d ranks", n_hosts, (int)host_ranks);
    else
      snprintf(hosts, sizeof hosts, "hosts = the real nodes");
    mpl_log_info("emulated network on: %g us latency, %s per message crossing hosts (%s)",
                 latency_us, bw_mbps > 0 ? "plus bytes / bandwidth" : "no bandwidth term", hosts);
  }
  return st;
}

double mpl_par_net_delay_seconds(void) { return net.added_seconds; }

/* the opt-in split of waiting from transfer (see parallel.h) */
static bool measure_waiting = false;
static double wait_seconds = 0.0;

void mpl_par_comm_measure_waiting(bool on) { measure_waiting = on; }
double mpl_par_comm_wait_seconds(void) { return wait_seconds; }

/* Before a reduction: a barrier, timed apart, so that the reduction's own time is the
 * transfer and the barrier's is waiting for the slowest rank to arrive. */
static void wait_for_all(MPI_Comm comm) {
  if (!measure_waiting) return;
  double t0 = mpl_time_now();
  MPI_Barrier(comm);
  wait_seconds += mpl_time_now() - t0;
}

double mpl_par_comm_seconds(void) { return comm_seconds; }
void mpl_par_comm_reset(void) { comm_seconds = wait_seconds = 0.0; }

enum mpl_status mpl_par__status(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return MPL_OK;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return mpl_error_set(MPL_ERR_MPI, "%s failed: %s", what, text);
}

static enum mpl_status check(int rc, const char *what, double t0) {
  comm_seconds += mpl_time_now() - t0;
  return mpl_par__status(rc, what);
}

/* MPI counts are int: larger buffers would need derived types; no caller sends 2 GiB */
static int count_of(size_t n, const char *what) {
  MPL_ASSERT(n <= (size_t)INT_MAX, "%s of %zu elements exceeds MPI's int count", what, n);
  return (int)n;
}

enum mpl_status mpl_par_barrier(MPI_Comm comm) {
  double t0 = mpl_time_now();
  int rc = MPI_Barrier(comm);
  if (rc == MPI_SUCCESS) net_barrier(comm);
  return check(rc, "MPI_Barrier", t0);
}

enum mpl_status mpl_par_bcast(MPI_Comm comm, void *buf, size_t n_bytes, int root) {
  double t0 = mpl_time_now();
  int rc = MPI_Bcast(buf, count_of(n_bytes, "bcast"), MPI_BYTE, root, comm);
  if (rc == MPI_SUCCESS) net_bcast(comm, n_bytes);
  return check(rc, "MPI_Bcast", t0);
}

static enum mpl_status allreduce(MPI_Comm comm, void *buf, size_t n, MPI_Datatype type, MPI_Op op,
                                 const char *what) {
  wait_for_all(comm);
  double t0 = mpl_time_now();
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, count_of(n, what), type, op, comm);
  if (rc == MPI_SUCCESS && net.on) {
    int type_bytes = 0;
    MPI_Type_size(type, &type_bytes);
    net_allreduce(comm, n * (size_t)type_bytes);
  }
  return check(rc, what, t0);
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

/* MPI's v-collectives take int counts and displacements: the root's size_t ones, converted */
static void int_counts(int size, const size_t *counts, const size_t *displs, const char *what,
                       int **icounts, int **idispls) {
  *icounts = malloc((size_t)size * sizeof **icounts);
  *idispls = malloc((size_t)size * sizeof **idispls);
  MPL_ASSERT(*icounts && *idispls, "no memory for %s counts", what);
  for (int i = 0; i < size; i++) {
    (*icounts)[i] = count_of(counts[i], what);
    (*idispls)[i] = count_of(displs[i], what);
  }
}

enum mpl_status mpl_par_gatherv(MPI_Comm comm, const void *send, size_t n_bytes, void *recv,
                                const size_t *counts, const size_t *displs, int root) {
  int size = mpl_par_comm_size(comm);
  int is_root = mpl_par_comm_rank(comm) == root;
  int *icounts = NULL, *idispls = NULL;
  if (is_root) int_counts(size, counts, displs, "gatherv", &icounts, &idispls);
  double t0 = mpl_time_now();
  int rc = MPI_Gatherv(send, count_of(n_bytes, "gatherv"), MPI_BYTE, recv, icounts, idispls,
                       MPI_BYTE, root, comm);
  free(icounts);
  free(idispls);
  if (rc == MPI_SUCCESS && is_root && net.on) {
    const struct net_comm_hosts *h = net_hosts(comm);
    double remote = 0;
    for (int i = 0; i < size; i++)
      if (h->host_of[i] != h->host_of[root]) remote += (double)counts[i];
    net_gather(comm, remote);
  }
  return check(rc, "MPI_Gatherv", t0);
}

enum mpl_status mpl_par_allgather(MPI_Comm comm, const void *send, size_t n_bytes, void *recv) {
  double t0 = mpl_time_now();
  int n = count_of(n_bytes, "allgather");
  int rc = MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm);
  if (rc == MPI_SUCCESS && net.on) {
    const struct net_comm_hosts *h = net_hosts(comm);
    int me = mpl_par_comm_rank(comm), size = mpl_par_comm_size(comm), remote = 0;
    for (int i = 0; i < size; i++) remote += h->host_of[i] != h->host_of[me];
    net_gather(comm, (double)remote * (double)n_bytes);
  }
  return check(rc, "MPI_Allgather", t0);
}

enum mpl_status mpl_par_send(MPI_Comm comm, const void *buf, size_t n_bytes, int dest, int tag) {
  double t0 = mpl_time_now();
  return check(MPI_Send(buf, count_of(n_bytes, "send"), MPI_BYTE, dest, tag, comm), "MPI_Send", t0);
}

enum mpl_status mpl_par_recv(MPI_Comm comm, void *buf, size_t n_bytes, int source, int tag) {
  double t0 = mpl_time_now();
  MPI_Status status;
  int rc = MPI_Recv(buf, count_of(n_bytes, "recv"), MPI_BYTE, source, tag, comm, &status);
  if (rc == MPI_SUCCESS && net.on) {
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    net_recv(comm, status.MPI_SOURCE, (size_t)got);
  }
  return check(rc, "MPI_Recv", t0);
}

enum mpl_status mpl_par_irecv(MPI_Comm comm, void *buf, size_t n_bytes, int source, int tag,
                              struct mpl_par_request *r) {
  double t0 = mpl_time_now();
  r->comm = comm;
  r->recv = true;
  return check(MPI_Irecv(buf, count_of(n_bytes, "irecv"), MPI_BYTE, source, tag, comm, &r->req),
               "MPI_Irecv", t0);
}

enum mpl_status mpl_par_isend(MPI_Comm comm, const void *buf, size_t n_bytes, int dest, int tag,
                              struct mpl_par_request *r) {
  double t0 = mpl_time_now();
  r->comm = comm;
  r->recv = false;
  return check(MPI_Isend(buf, count_of(n_bytes, "isend"), MPI_BYTE, dest, tag, comm, &r->req),
               "MPI_Isend", t0);
}

enum mpl_status mpl_par_wait(struct mpl_par_request *r) {
  double t0 = mpl_time_now();
  MPI_Status status;
  bool pending = r->req != MPI_REQUEST_NULL;
  int rc = MPI_Wait(&r->req, &status);
  if (rc == MPI_SUCCESS && pending && r->recv && net.on) {
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    net_recv(r->comm, status.MPI_SOURCE, (size_t)got);
  }
  return check(rc, "MPI_Wait", t0);
}

enum mpl_status mpl_par_scatterv(MPI_Comm comm, const void *send, const size_t *counts,
                                 const size_t *displs, void *recv, size_t n_bytes, int root) {
  int size = mpl_par_comm_size(comm);
  int is_root = mpl_par_comm_rank(comm) == root;
  int *icounts = NULL, *idispls = NULL;
  if (is_root) int_counts(size, counts, displs, "scatterv", &icounts, &idispls);
  double t0 = mpl_time_now();
  int rc = MPI_Scatterv(send, icounts, idispls, MPI_BYTE, recv, count_of(n_bytes, "scatterv"),
                        MPI_BYTE, root, comm);
  free(icounts);
  free(idispls);
  /* the mirror of a gather: the root pays for every byte it sends to another host */
  if (rc == MPI_SUCCESS && is_root && net.on) {
    const struct net_comm_hosts *h = net_hosts(comm);
    double remote = 0;
    for (int i = 0; i < size; i++)
      if (h->host_of[i] != h->host_of[root]) remote += (double)counts[i];
    net_gather(comm, remote);
  }
  return check(rc, "MPI_Scatterv", t0);
}

enum mpl_status mpl_par_reduce_sum_f32(MPI_Comm comm, const float *send, float *recv, size_t n,
                                       int root) {
  double t0 = mpl_time_now();
  int rc = MPI_Reduce(send, recv, count_of(n, "reduce"), MPI_FLOAT, MPI_SUM, root, comm);
  /* a binomial tree like bcast's, run backwards */
  if (rc == MPI_SUCCESS && mpl_par_comm_rank(comm) == root) net_bcast(comm, n * sizeof(float));
  return check(rc, "MPI_Reduce(sum, float)", t0);
}

enum mpl_status mpl_par_comm_split(MPI_Comm comm, int color, int key, MPI_Comm *out) {
  *out = MPI_COMM_NULL;
  double t0 = mpl_time_now();
  enum mpl_status st = check(MPI_Comm_split(comm, color, key, out), "MPI_Comm_split", t0);
  if (st == MPL_OK) MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
  return st;
}

void mpl_par_comm_free(MPI_Comm *comm) {
  if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
  *comm = MPI_COMM_NULL;
}
