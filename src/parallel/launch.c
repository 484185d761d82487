/* What a launch looks like from inside: which launcher started the ranks, how many
 * ranks share each node, how many threads each should use and why, and which CPUs
 * each may run on. Rank 0 prints it in one line at start so that oversubscription
 * and bad binding are visible before a long job. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mpillm/parallel.h"

/* a positive integer from the environment, or 0 when unset or not a number */
static int env_positive(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end = NULL;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n <= 0 || n > 1 << 20) return 0;
  return (int)n;
}

static int node_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* the node-local communicator of comm (ranks that share memory) */
static enum mpl_status node_comm_of(MPI_Comm comm, MPI_Comm *node) {
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, mpl_par_comm_rank(comm), MPI_INFO_NULL,
                          node) != MPI_SUCCESS)
    return mpl_error_set(MPL_ERR_MPI, "MPI_Comm_split_type(SHARED) for the node-local ranks failed");
  return MPL_OK;
}

enum mpl_status mpl_par_threads_resolve(MPI_Comm comm, int *n_threads, const char **source) {
  MPI_Comm node = MPI_COMM_NULL;
  enum mpl_status st = node_comm_of(comm, &node);
  if (st != MPL_OK) return st;
  int ranks_here = mpl_par_comm_size(node);
  MPI_Comm_free(&node);
  static const char *const vars[] = {"MPILLM_THREADS", "OPENBLAS_NUM_THREADS", "SLURM_CPUS_PER_TASK"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    int n = env_positive(vars[i]);
    if (n > 0) {
      *n_threads = n;
      *source = vars[i];
      return MPL_OK;
    }
  }
  int n = node_cores() / ranks_here;
  *n_threads = n > 0 ? n : 1;
  *source = "cores/ranks-per-node";
  return MPL_OK;
}

/* "0-3,8" for the CPUs this process may run on */
static void affinity_text(char *buf, size_t buf_bytes, int *n_cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  *n_cpus = 0;
  if (sched_getaffinity(0, sizeof set, &set) != 0) {
    snprintf(buf, buf_bytes, "?");
    return;
  }
  size_t used = 0;
  buf[0] = '\0';
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &set)) continue;
    int last = c;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) last++;
    *n_cpus += last - c + 1;
    int w = last > c ? snprintf(buf + used, buf_bytes - used, "%s%d-%d", used ? "," : "", c, last)
                     : snprintf(buf + used, buf_bytes - used, "%s%d", used ? "," : "", c);
    if (w < 0 || (size_t)w >= buf_bytes - used) break;
    used += (size_t)w;
    c = last;
  }
}

static void launcher_text(char *buf, size_t buf_bytes) {
  const char *job = getenv("SLURM_JOB_ID");
  const char *step = getenv("SLURM_STEP_ID");
  bool mpirun = mpl_par__started_by_mpirun();
  if (job && mpirun)
    snprintf(buf, buf_bytes, "Slurm job %s, mpirun inside the allocation", job);
  else if (job && step)
    snprintf(buf, buf_bytes, "Slurm job %s step %s (srun)", job, step);
  else if (job)
    snprintf(buf, buf_bytes, "Slurm job %s (no step: not started by srun)", job);
  else if (mpirun)
    snprintf(buf, buf_bytes, "Open MPI mpirun");
  else
    snprintf(buf, buf_bytes, "none (singleton)");
}

/* what every rank contributes to the report */
struct launch_rank {
  int node;        /* world rank of the node's first rank: names the node */
  int n_on_node;   /* ranks on this node */
  int cores;       /* CPUs online on this node */
  int n_cpus;      /* CPUs this rank may use */
  int threads;
  char host[64];
  char cpus[64];
};

enum mpl_status mpl_par_launch_report(MPI_Comm comm, int n_threads, const char *threads_source,
                                      char *line, size_t line_bytes) {
  if (line_bytes) line[0] = '\0';
  const char *source = threads_source ? threads_source : "given";
  enum mpl_status st = MPL_OK;
  if (n_threads <= 0) st = mpl_par_threads_resolve(comm, &n_threads, &source);
  if (st != MPL_OK) return st;

  int rank = mpl_par_comm_rank(comm), size = mpl_par_comm_size(comm);
  MPI_Comm node = MPI_COMM_NULL;
  st = node_comm_of(comm, &node);
  if (st != MPL_OK) return st;
  struct launch_rank me;
  memset(&me, 0, sizeof me);
  me.n_on_node = mpl_par_comm_size(node);
  me.node = rank;
  MPI_Bcast(&me.node, 1, MPI_INT, 0, node); /* the leader's rank names the node */
  MPI_Comm_free(&node);
  me.cores = node_cores();
  me.threads = n_threads;
  int len = 0;
  char host[MPI_MAX_PROCESSOR_NAME];
  MPI_Get_processor_name(host, &len);
  snprintf(me.host, sizeof me.host, "%s", host);
  affinity_text(me.cpus, sizeof me.cpus, &me.n_cpus);

  struct launch_rank *all = NULL;
  if (rank == 0) {
    all = calloc((size_t)size, sizeof *all);
    MPL_ASSERT(all != NULL, "no memory for the launch report of %d ranks", size);
  }
  int rc = MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, 0, comm);
  if (rc != MPI_SUCCESS) {
    free(all);
    return mpl_error_set(MPL_ERR_MPI, "MPI_Gather of the launch report failed");
  }
  if (rank != 0) return MPL_OK;

  int n_nodes = 0, max_per_node = 0, min_per_node = size;
  for (int r = 0; r < size; r++) {
    if (all[r].node != r) continue;
    n_nodes++;
    if (all[r].n_on_node > max_per_node) max_per_node = all[r].n_on_node;
    if (all[r].n_on_node < min_per_node) min_per_node = all[r].n_on_node;
  }
  char launcher[128];
  launcher_text(launcher, sizeof launcher);
  char per_node[32];
  if (min_per_node == max_per_node)
    snprintf(per_node, sizeof per_node, "%d", max_per_node);
  else
    snprintf(per_node, sizeof per_node, "%d-%d", min_per_node, max_per_node);
  size_t used = (size_t)snprintf(line, line_bytes,
                                 "launch: %s | %d ranks on %d node%s (%s per node) | %d thread%s "
                                 "per rank (from %s) | cpus",
                                 launcher, size, n_nodes, n_nodes == 1 ? "" : "s", per_node,
                                 n_threads, n_threads == 1 ? "" : "s", source);
  /* binding of each rank, at most 16 shown: the line stays one line on big jobs */
  for (int r = 0; r < size && used < line_bytes; r++) {
    int w = r < 16 ? snprintf(line + used, line_bytes - used, " r%d:%s", r, all[r].cpus)
                   : snprintf(line + used, line_bytes - used, " ... (%d more)", size - 16);
    if (w < 0) break;
    used += (size_t)w;
    if (r >= 16) break;
  }
  /* oversubscription: per node, ranks x threads against its cores; per rank, threads
   * against the CPUs its binding allows */
  for (int r = 0; r < size && used < line_bytes; r++) {
    if (all[r].node == r && all[r].n_on_node * all[r].threads > all[r].cores) {
      int w = snprintf(line + used, line_bytes - used,
                       " | WARNING oversubscribed: node %s runs %d ranks x %d threads = %d > %d cores",
                       all[r].host, all[r].n_on_node, all[r].threads,
                       all[r].n_on_node * all[r].threads, all[r].cores);
      if (w > 0) used += (size_t)w;
      break; /* one node named is enough to act on */
    }
  }
  for (int r = 0; r < size && used < line_bytes; r++) {
    if (all[r].n_cpus > 0 && all[r].threads > all[r].n_cpus) {
      int w = snprintf(line + used, line_bytes - used,
                       " | WARNING rank %d is bound to %d cpu%s (%s) for %d threads", r,
                       all[r].n_cpus, all[r].n_cpus == 1 ? "" : "s", all[r].cpus, all[r].threads);
      if (w > 0) used += (size_t)w;
      break;
    }
  }
  free(all);
  return MPL_OK;
}
