/* What the bench and eval commands compute besides time: summary statistics, the
 * peak resident memory of the process, and the log-likelihood of a token. */
#include <math.h>
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

double mpl_rt_row_max(const float *x, int n) {
  double max = -1.0e300;
  for (int i = 0; i < n; i++)
    if (x[i] > max) max = x[i];
  return max;
}

double mpl_rt_row_sum_exp(const float *x, int n, double max) {
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += exp((double)x[i] - max);
  return sum;
}

double mpl_rt_nll(const float *logits, int n, int32_t target) {
  double max = mpl_rt_row_max(logits, n);
  return log(mpl_rt_row_sum_exp(logits, n, max)) + max - (double)logits[target];
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
