/* The persistent thread pool: workers wait for a job generation number, claim
 * chunks of the job until none is left, and count the chunks done. A job costs one
 * wake-up and one join; nothing is allocated per job. Workers spin a little before sleeping so that the
 * back-to-back jobs of a decode step do not pay for a futex each. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "mpillm/tensor.h"
#include "tensor/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS 256
#define SPIN_ROUNDS 20000 /* pauses before a worker sleeps (tens of microseconds) */
#define CHUNKS_PER_THREAD 4

/* A job is cut into chunks (about CHUNKS_PER_THREAD per thread) that the threads
 * claim as they come, so that a thread the OS delays does not hold everyone at the
 * join: the others take its chunks. The claim word packs the job's generation, its
 * chunk count and the next chunk, so a late worker can never claim a chunk of a
 * newer job by mistake (its compare-and-swap fails on the generation). */
#define GEN_SHIFT 40
#define COUNT_SHIFT 20
#define FIELD_MASK ((UINT64_C(1) << 20) - 1)

struct pool {
  int n_threads; /* 0 until started */
  pthread_t workers[MAX_THREADS];
  _Atomic uint64_t claim; /* generation << 40 | n_chunks << 20 | next chunk */
  atomic_int done;        /* chunks finished in the current job */
  atomic_bool stop;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  /* the job, written before its generation is published */
  int64_t n, align;
  void (*fn)(void *ctx, int64_t begin, int64_t end, int thread);
  void *ctx;
  bool busy; /* a job is running (reentrance is a bug) */
};

static struct pool pool = {.mutex = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static uint64_t generation_of(uint64_t claim) { return claim >> GEN_SHIFT; }

/* Claims and runs chunks of job gen until none is left. */
static void run_chunks(uint64_t gen, int t) {
  for (;;) {
    uint64_t v = atomic_load_explicit(&pool.claim, memory_order_acquire);
    int64_t n_chunks = (int64_t)((v >> COUNT_SHIFT) & FIELD_MASK), c = (int64_t)(v & FIELD_MASK);
    if (generation_of(v) != gen || c >= n_chunks) return;
    if (!atomic_compare_exchange_weak_explicit(&pool.claim, &v, v + 1, memory_order_acq_rel,
                                               memory_order_acquire))
      continue;
    /* chunk c is ours: the job cannot change before it is done */
    int64_t blocks = (pool.n + pool.align - 1) / pool.align;
    int64_t b0 = c * blocks / n_chunks, b1 = (c + 1) * blocks / n_chunks;
    int64_t begin = b0 * pool.align, end = b1 * pool.align < pool.n ? b1 * pool.align : pool.n;
    if (begin < end) pool.fn(pool.ctx, begin, end, t);
    atomic_fetch_add_explicit(&pool.done, 1, memory_order_acq_rel);
  }
}

static void *worker_main(void *arg) {
  int t = (int)(intptr_t)arg;
  uint64_t seen = generation_of(atomic_load(&pool.claim));
  for (;;) {
    uint64_t gen;
    int spins = 0;
    while ((gen = generation_of(atomic_load_explicit(&pool.claim, memory_order_acquire))) == seen) {
      if (atomic_load_explicit(&pool.stop, memory_order_acquire)) return NULL;
      if (++spins < SPIN_ROUNDS) {
        CPU_RELAX();
        continue;
      }
      pthread_mutex_lock(&pool.mutex);
      while (generation_of(atomic_load(&pool.claim)) == seen && !atomic_load(&pool.stop))
        pthread_cond_wait(&pool.wake, &pool.mutex);
      pthread_mutex_unlock(&pool.mutex);
      spins = 0;
    }
    seen = gen;
    if (atomic_load_explicit(&pool.stop, memory_order_acquire)) return NULL;
    run_chunks(gen, t);
  }
}

static int threads_from_env(void) {
  const char *names[2] = {"MPILLM_THREADS", "OPENBLAS_NUM_THREADS"};
  for (int i = 0; i < 2; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) {
      int n = atoi(v);
      if (n >= 1) return n < MAX_THREADS ? n : MAX_THREADS;
    }
  }
  return 1;
}

void mpl_threads_shutdown(void) {
  if (pool.n_threads <= 1) {
    pool.n_threads = 0;
    return;
  }
  pthread_mutex_lock(&pool.mutex);
  atomic_store(&pool.stop, true);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  for (int t = 1; t < pool.n_threads; t++) pthread_join(pool.workers[t], NULL);
  atomic_store(&pool.stop, false);
  pool.n_threads = 0;
}

enum mpl_status mpl_threads_init(int n_threads) {
  if (n_threads <= 0) n_threads = threads_from_env();
  if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
  if (pool.n_threads == n_threads) return MPL_OK;
  mpl_threads_shutdown();
  for (int t = 1; t < n_threads; t++) {
    if (pthread_create(&pool.workers[t], NULL, worker_main, (void *)(intptr_t)t) != 0) {
      pool.n_threads = t; /* join the ones started */
      mpl_threads_shutdown();
      pool.n_threads = 1;
      return mpl_error_set(MPL_ERR_NOMEM, "cannot start thread %d of %d for the thread pool", t,
                           n_threads);
    }
  }
  pool.n_threads = n_threads;
  mpl_tensor__blas_threads(n_threads);
  return MPL_OK;
}

int mpl_threads_count(void) {
  if (pool.n_threads == 0 && mpl_threads_init(0) != MPL_OK) pool.n_threads = 1;
  return pool.n_threads;
}

void mpl_threads_for(int64_t n, int64_t align,
                     void (*fn)(void *ctx, int64_t begin, int64_t end, int thread), void *ctx) {
  if (n <= 0) return;
  if (align < 1) align = 1;
  int n_threads = mpl_threads_count();
  if (n_threads == 1 || n <= align) {
    fn(ctx, 0, n, 0);
    return;
  }
  MPL_ASSERT(!pool.busy, "mpl_threads_for called from inside a job");
  pool.busy = true;
  pool.n = n;
  pool.align = align;
  pool.fn = fn;
  pool.ctx = ctx;
  int64_t blocks = (n + align - 1) / align, max_chunks = (int64_t)n_threads * CHUNKS_PER_THREAD;
  int64_t n_chunks = blocks < max_chunks ? blocks : max_chunks;
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  uint64_t gen = (generation_of(atomic_load(&pool.claim)) + 1) & ((UINT64_C(1) << 24) - 1);
  pthread_mutex_lock(&pool.mutex);
  atomic_store_explicit(&pool.claim, gen << GEN_SHIFT | (uint64_t)n_chunks << COUNT_SHIFT,
                        memory_order_release);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  run_chunks(gen, 0);
  int spins = 0;
  while (atomic_load_explicit(&pool.done, memory_order_acquire) < n_chunks)
    if (++spins < SPIN_ROUNDS) CPU_RELAX();
    else sched_yield();
  pool.busy = false;
}
