/* What the bench command measures besides time: summary statistics, the peak
 * resident memory of the process and a simple multi-threaded read-bandwidth probe
 * (the denominator of the "share of memory bandwidth" figure). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"

double mpl_rt_mean(const double *x, int n) {
  if (n <= 0) return 0.0;
  double s = 0.0;
  for (int i = 0; i < n; i++) s += x[i];
  return s / n;
}

double mpl_rt_stddev(const double *x, int n) {
  if (n <= 1) return 0.0;
  double m = mpl_rt_mean(x, n), s = 0.0;
  for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
  return sqrt(s / (n - 1));
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double mpl_rt_quantile(const double *x, int n, double q) {
  if (n <= 0) return 0.0;
  double *c = malloc((size_t)n * sizeof *c);
  MPL_ASSERT(c != NULL, "no memory for %d samples", n);
  memcpy(c, x, (size_t)n * sizeof *c);
  qsort(c, (size_t)n, sizeof *c, by_value);
  double pos = q * (n - 1);
  int lo = (int)floor(pos);
  int hi = lo + 1 < n ? lo + 1 : lo;
  double v = c[lo] + (pos - lo) * (c[hi] - c[lo]);
  free(c);
  return v;
}

double mpl_rt_nll(const float *logits, int n, int32_t target) {
  double max = logits[0];
  for (int i = 1; i < n; i++)
    if (logits[i] > max) max = logits[i];
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += exp((double)logits[i] - max);
  return -((double)logits[target] - max - log(sum));
}

size_t mpl_rt_peak_rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %zu kB", &kib) == 1) break;
  fclose(f);
  return kib * 1024;
}

struct probe_job {
  const uint64_t *data;
  size_t n;
  uint64_t sum;
};

/* four independent accumulators so the loop is bound by loads, not by one add chain */
static void *probe_run(void *arg) {
  struct probe_job *j = arg;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= j->n; i += 4) {
    a += j->data[i];
    b ^= j->data[i + 1];
    c += j->data[i + 2];
    d ^= j->data[i + 3];
  }
  for (; i < j->n; i++) a += j->data[i];
  j->sum = a + b + c + d;
  return NULL;
}

double mpl_rt_read_bandwidth(size_t n_bytes, int n_threads, int reps) {
  if (n_threads < 1) n_threads = 1;
  size_t n = n_bytes / sizeof(uint64_t);
  uint64_t *data = mpl_alloc(n * sizeof *data, "bandwidth probe buffer");
  if (!data) return 0.0;
  for (size_t i = 0; i < n; i++) data[i] = i * 0x9e3779b97f4a7c15ull; /* touch every page */
  struct probe_job *jobs = calloc((size_t)n_threads, sizeof *jobs);
  pthread_t *threads = calloc((size_t)n_threads, sizeof *threads);
  MPL_ASSERT(jobs && threads, "no memory for %d probe threads", n_threads);
  double best = 0.0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = mpl_time_now();
    for (int t = 0; t < n_threads; t++) {
      size_t begin = n * (size_t)t / (size_t)n_threads, end = n * (size_t)(t + 1) / (size_t)n_threads;
      jobs[t] = (struct probe_job){data + begin, end - begin, 0};
      if (t > 0) pthread_create(&threads[t], NULL, probe_run, &jobs[t]);
    }
    probe_run(&jobs[0]);
    for (int t = 1; t < n_threads; t++) pthread_join(threads[t], NULL);
    double dt = mpl_time_now() - t0;
    for (int t = 0; t < n_threads; t++) sink += jobs[t].sum;
    if (dt > 0 && n * sizeof *data / dt > best) best = (double)(n * sizeof *data) / dt;
  }
  (void)sink;
  free(jobs);
  free(threads);
  mpl_free(data);
  return best;
}
