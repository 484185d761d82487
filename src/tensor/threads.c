/* The persistent thread pool: workers wait for a job generation number, run their
 * range of the job, and count themselves done. A job costs one wake-up and one join;
 * nothing is allocated per job. Workers spin a little before sleeping so that the
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

struct pool {
  int n_threads; /* 0 until started */
  pthread_t workers[MAX_THREADS];
  atomic_uint_fast64_t generation;
  atomic_int pending; /* workers not yet done with the current job */
  atomic_bool stop;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  /* the job */
  int64_t n, align;
  void (*fn)(void *ctx, int64_t begin, int64_t end, int thread);
  void *ctx;
  bool busy; /* a job is running (reentrance is a bug) */
  uint_fast64_t start_generation; /* the generation new workers have seen */
};

static struct pool pool = {.mutex = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void range_of(int64_t n, int64_t align, int t, int n_threads, int64_t *begin, int64_t *end) {
  int64_t blocks = (n + align - 1) / align;
  int64_t base = blocks / n_threads, extra = blocks % n_threads;
  int64_t b0 = t * base + (t < extra ? t : extra);
  int64_t b1 = b0 + base + (t < extra ? 1 : 0);
  *begin = b0 * align < n ? b0 * align : n;
  *end = b1 * align < n ? b1 * align : n;
}

static void run_share(int t) {
  int64_t begin, end;
  range_of(pool.n, pool.align, t, pool.n_threads, &begin, &end);
  if (begin < end) pool.fn(pool.ctx, begin, end, t);
}

static void *worker_main(void *arg) {
  int t = (int)(intptr_t)arg;
  uint_fast64_t seen = pool.start_generation;
  for (;;) {
    uint_fast64_t gen;
    int spins = 0;
    while ((gen = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
      if (atomic_load_explicit(&pool.stop, memory_order_acquire)) return NULL;
      if (++spins < SPIN_ROUNDS) {
        CPU_RELAX();
        continue;
      }
      pthread_mutex_lock(&pool.mutex);
      while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop))
        pthread_cond_wait(&pool.wake, &pool.mutex);
      pthread_mutex_unlock(&pool.mutex);
      spins = 0;
    }
    seen = gen;
    if (atomic_load_explicit(&pool.stop, memory_order_acquire)) return NULL;
    run_share(t);
    atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel);
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
  atomic_store(&pool.pending, 0);
  pool.start_generation = atomic_load(&pool.generation);
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
  atomic_store_explicit(&pool.pending, n_threads - 1, memory_order_relaxed);
  pthread_mutex_lock(&pool.mutex);
  atomic_fetch_add_explicit(&pool.generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  run_share(0);
  int spins = 0;
  while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0)
    if (++spins < SPIN_ROUNDS) CPU_RELAX();
    else sched_yield();
  pool.busy = false;
}
