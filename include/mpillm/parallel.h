/* mpillm parallel: the dp x pp x tp process grid, its communicators, the status
 * agreement that keeps ranks on the same branch, and the collective wrappers.
 * This module is the only code that calls MPI_*; the others hold MPI_Comm values
 * from struct mpl_grid and pass them back here. Every wrapper is timed so that the
 * share of time spent communicating can be reported (mpl_par_comm_seconds). */
#ifndef MPILLM_PARALLEL_H
#define MPILLM_PARALLEL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpillm/core.h"

/* Rank r of the world sits at
 *   r = (dp_rank * pp_size + pp_rank) * tp_size + tp_rank,
 * so the tensor-parallel ranks of one stage are neighbours (one node when ranks
 * are placed by core), then the stages of one replica, then the replicas. */
struct mpl_grid {
  MPI_Comm world;      /* a duplicate of MPI_COMM_WORLD, errors returned */
  int rank, size;      /* in world */
  int dp_size, pp_size, tp_size;
  int dp_rank, pp_rank, tp_rank;
  MPI_Comm tp_comm;    /* the tp_size ranks of one stage of one replica */
  MPI_Comm pp_comm;    /* the pp_size stages of one replica with this tp_rank */
  MPI_Comm dp_comm;    /* the dp_size replicas' ranks with this pp_rank and tp_rank */
  MPI_Comm replica_comm; /* all pp_size * tp_size ranks of this replica */
};

/* Starts MPI (thread level FUNNELED), sets MPI_ERRORS_RETURN, installs MPI_Abort
 * as the assertion hook and the rank into the log. Collective on MPI_COMM_WORLD. */
enum mpl_status mpl_par_init(int *argc, char ***argv);
/* Ends MPI if mpl_par_init started it. Collective on MPI_COMM_WORLD. */
void mpl_par_finalize(void);
int mpl_par_world_rank(void);
int mpl_par_world_size(void);

/* Fills the layout factors that are 0 ("not given") so that dp*pp*tp == n_ranks:
 * pp and dp default to 1 and tp takes the rest, except that when tp is given and
 * dp is not, dp takes the rest. A product that cannot match is MPL_ERR_ARG with a
 * message naming the factors. Local (same answer on every rank). */
enum mpl_status mpl_par_layout_resolve(int n_ranks, int *dp_size, int *pp_size, int *tp_size);

/* Builds the grid for a resolved layout. Collective on MPI_COMM_WORLD. Free with
 * mpl_par_grid_free (safe on a zeroed struct). */
enum mpl_status mpl_par_grid_init(struct mpl_grid *grid, int dp_size, int pp_size, int tp_size);
void mpl_par_grid_free(struct mpl_grid *grid);

/* The agreement: every rank of comm passes the status of the step it just took and
 * gets back the same answer. When some rank failed, every rank returns the status
 * of the lowest failing rank and holds its message, as
 * "[rank r] message" plus " (on all N ranks)" or " (and k more ranks failed)".
 * Call it after any step that can fail on some ranks and before the next
 * collective. Collective on comm. */
enum mpl_status mpl_par_agree(MPI_Comm comm, enum mpl_status local);

int mpl_par_comm_rank(MPI_Comm comm);
int mpl_par_comm_size(MPI_Comm comm);

/* Collective wrappers; each is collective on comm, returns MPL_ERR_MPI with a
 * message naming the operation when MPI fails, and adds its time to the
 * communication clock. Counts are elements, not bytes. */
enum mpl_status mpl_par_barrier(MPI_Comm comm);
enum mpl_status mpl_par_bcast(MPI_Comm comm, void *buf, size_t n_bytes, int root);
enum mpl_status mpl_par_allreduce_sum_f32(MPI_Comm comm, float *buf, size_t n);
enum mpl_status mpl_par_allreduce_sum_f64(MPI_Comm comm, double *buf, size_t n);
enum mpl_status mpl_par_allreduce_max_f64(MPI_Comm comm, double *buf, size_t n);
enum mpl_status mpl_par_allreduce_sum_i64(MPI_Comm comm, int64_t *buf, size_t n);
enum mpl_status mpl_par_allreduce_max_i64(MPI_Comm comm, int64_t *buf, size_t n);
/* For each of n pairs, the largest value and, among equal values, the smallest
 * index (greedy sampling over a vocabulary split across ranks). */
enum mpl_status mpl_par_allreduce_maxloc(MPI_Comm comm, float *values, int64_t *indices, size_t n);
/* Gathers n_bytes from every rank to root; recv (root only) is laid out in rank
 * order, rank i's piece at displs[i] with counts[i] bytes (root only). */
enum mpl_status mpl_par_gatherv(MPI_Comm comm, const void *send, size_t n_bytes, void *recv,
                                const size_t *counts, const size_t *displs, int root);
enum mpl_status mpl_par_allgather(MPI_Comm comm, const void *send, size_t n_bytes, void *recv);
/* Scatters from root: rank i gets counts[i] bytes from send + displs[i] (send, counts,
 * displs on the root only) into recv (n_bytes, its own count). */
enum mpl_status mpl_par_scatterv(MPI_Comm comm, const void *send, const size_t *counts,
                                 const size_t *displs, void *recv, size_t n_bytes, int root);
/* Sums n floats of every rank into recv on root (recv ignored elsewhere). */
enum mpl_status mpl_par_reduce_sum_f32(MPI_Comm comm, const float *send, float *recv, size_t n,
                                       int root);
/* MPI_Comm_split with errors returned; free the result with mpl_par_comm_free (safe on
 * MPI_COMM_NULL). */
enum mpl_status mpl_par_comm_split(MPI_Comm comm, int color, int key, MPI_Comm *out);
void mpl_par_comm_free(MPI_Comm *comm);
/* Point to point, blocking. Local to the pair. */
enum mpl_status mpl_par_send(MPI_Comm comm, const void *buf, size_t n_bytes, int dest, int tag);
enum mpl_status mpl_par_recv(MPI_Comm comm, void *buf, size_t n_bytes, int source, int tag);
/* Started now, completed by mpl_par_wait (the buffer is MPI's until then). A rank that
 * blocks in a send while a reply to it is on its way posts the reply's receive first,
 * so that the two cannot wait for each other (MPI completes a send whose receive is
 * posted); a rank sends what the next one needs later without waiting for it to
 * listen (a blocking send of more than a few hundred bytes waits for the receiver:
 * Open MPI's shared memory sends only those inline). A request set to
 * MPL_PAR_REQUEST_NULL, or waited for, waits no more. */
struct mpl_par_request {
  MPI_Request req;
  MPI_Comm comm;
  bool recv;
};
#define MPL_PAR_REQUEST_NULL ((struct mpl_par_request){MPI_REQUEST_NULL, MPI_COMM_NULL, false})
enum mpl_status mpl_par_irecv(MPI_Comm comm, void *buf, size_t n_bytes, int source, int tag,
                              struct mpl_par_request *r);
enum mpl_status mpl_par_isend(MPI_Comm comm, const void *buf, size_t n_bytes, int dest, int tag,
                              struct mpl_par_request *r);
enum mpl_status mpl_par_wait(struct mpl_par_request *r);

/* The launch as the ranks see it. mpl_par_threads_resolve picks the threads per
 * rank: MPILLM_THREADS, else OPENBLAS_NUM_THREADS, else SLURM_CPUS_PER_TASK, else
 * the node's cores / its ranks (at least 1); *source names where it came from
 * (a static string). Collective on comm (it counts the ranks per node). */
enum mpl_status mpl_par_threads_resolve(MPI_Comm comm, int *n_threads, const char **source);
/* A shared counter: its value lives on rank 0 of comm, and any rank takes the next
 * values (fetch-and-add, MPI one-sided) without rank 0 taking part -- the
 * ticket dispenser that lets replicas pull work as they free up. Create and free are
 * collective on comm; next is local to the caller. Where the network has no remote
 * atomics (Open MPI's osc/pt2pt: TCP, or no UCX), a take completes only when rank 0
 * enters MPI: rank 0 calls mpl_par_progress during long computations. */
struct mpl_par_counter {
  MPI_Win win;
  int64_t *base;
  bool host; /* this rank holds the value */
};
enum mpl_status mpl_par_counter_create(MPI_Comm comm, struct mpl_par_counter *counter);
/* Takes n >= 1 consecutive values in one round trip: *first = the counter before this
 * call's increment of n, the caller's values are *first .. *first + n - 1 (0, 1, 2, ...
 * over all callers, each value to one caller). */
enum mpl_status mpl_par_counter_next(struct mpl_par_counter *counter, int64_t n, int64_t *first);
void mpl_par_counter_free(struct mpl_par_counter *counter);
/* Lets MPI serve the takes waiting on a counter this rank holds (one MPI_Iprobe); does
 * nothing when it holds none. Local; call it from the thread that calls MPI, often
 * (the forward pass does, where tensor-parallel ranks would sum). */
void mpl_par_progress(void);

/* Gathers launcher (Slurm job / Open MPI / none), ranks and ranks per node, threads per
 * rank (n_threads <= 0: resolved here) and each rank's CPU binding, and writes one line
 * into line on rank 0 ("" elsewhere), ending in WARNING parts when a node's ranks x
 * threads exceed its cores or a rank has fewer CPUs than threads. Commands call it at
 * start and log the line. Collective on comm. */
enum mpl_status mpl_par_launch_report(MPI_Comm comm, int n_threads, const char *threads_source,
                                      char *line, size_t line_bytes);

/* The emulated network, for multi-host experiments on one machine: an opt-in delay
 * that the wrappers above add to messages crossing emulated hosts, after the real
 * MPI call. Host of world rank r: r / host_ranks (host_ranks 0: the real nodes).
 * One crossing step costs latency + bytes / bandwidth; per call, with h hosts in comm:
 *   recv from another host: 1 step (the receiver waits; send adds nothing)
 *   bcast: ceil(log2 h) steps; barrier: ceil(log2 h) latencies
 *   allreduce: min(ceil(log2 h) steps, 2(h-1) steps of bytes/h)
 *   gatherv (root) / scatterv (root) / allgather: ceil(log2 h) latencies + off-host
 *     bytes / bandwidth; reduce (root): as bcast
 * latency 0 and bandwidth 0 turn it off. Collective on MPI_COMM_WORLD. */
enum mpl_status mpl_par_net_configure(double latency_us, double bw_mbps, int host_ranks);
/* Reads MPILLM_NET_DELAY_US, MPILLM_NET_BW_MBPS (Mbit/s) and MPILLM_NET_HOST_RANKS;
 * mpl_par_init calls it. A bad value is MPL_ERR_ARG naming it. Collective on world. */
enum mpl_status mpl_par_net_configure_from_env(void);
/* Seconds of emulated delay this process added since the last configure. Local. */
double mpl_par_net_delay_seconds(void);

/* Seconds this process spent inside the wrappers since start or the last reset. Local. */
double mpl_par_comm_seconds(void);
void mpl_par_comm_reset(void);
/* Diagnostics: with on, every all-reduce first waits at a barrier timed apart, so
 * that mpl_par_comm_seconds counts the transfer and mpl_par_comm_wait_seconds the
 * waiting for the slowest rank (which the barrier adds nothing to: the all-reduce
 * would have waited as long). Off by default; reset with mpl_par_comm_reset. Local. */
void mpl_par_comm_measure_waiting(bool on);
double mpl_par_comm_wait_seconds(void);

#endif
