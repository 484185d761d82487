/* Token sampling: repetition penalty, greedy, temperature, top-k, top-p, min-p, and
 * the xoshiro256** stream that makes a seeded request reproducible on any layout
 * (the driver samples from the full row of logits, whatever the split). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"

void mpl_sampler_params_default(struct mpl_sampler_params *p) {
  p->temperature = 0.0;
  p->top_k = 0;
  p->top_p = 1.0;
  p->min_p = 0.0;
  p->repeat_penalty = 1.0;
  p->seed = 0;
}

enum mpl_status mpl_sampler_params_check(const struct mpl_sampler_params *p, const char *what) {
  if (!(p->temperature >= 0.0) || !isfinite(p->temperature))
    return mpl_error_set(MPL_ERR_ARG, "%s: temperature %g must be >= 0", what, p->temperature);
  if (p->top_k < 0) return mpl_error_set(MPL_ERR_ARG, "%s: top-k %d must be >= 0", what, p->top_k);
  if (!(p->top_p > 0.0 && p->top_p <= 1.0))
    return mpl_error_set(MPL_ERR_ARG, "%s: top-p %g must be in (0, 1]", what, p->top_p);
  if (!(p->min_p >= 0.0 && p->min_p <= 1.0))
    return mpl_error_set(MPL_ERR_ARG, "%s: min-p %g must be in [0, 1]", what, p->min_p);
  if (!(p->repeat_penalty > 0.0) || !isfinite(p->repeat_penalty))
    return mpl_error_set(MPL_ERR_ARG, "%s: repeat penalty %g must be > 0", what, p->repeat_penalty);
  return MPL_OK;
}

bool mpl_sampler_is_greedy(const struct mpl_sampler_params *p) {
  return p->temperature <= 0.0 && p->repeat_penalty == 1.0;
}

/* splitmix64, to spread one 64-bit seed over xoshiro's 256 bits of state */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mpl_sampler_rng_seed(struct mpl_sampler_rng *rng, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

uint64_t mpl_sampler_rng_next(struct mpl_sampler_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double mpl_sampler_rng_uniform(struct mpl_sampler_rng *rng) {
  return (double)(mpl_sampler_rng_next(rng) >> 11) * 0x1.0p-53;
}

struct candidate {
  double p; /* logit after the penalty, then probability */
  int32_t id;
};

struct mpl_sampler {
  struct mpl_sampler_params params;
  struct mpl_sampler_rng rng;
  int vocab_size;
  struct candidate *cands; /* [vocab_size] */
  double *penalized;       /* [vocab_size] logits after the repetition penalty */
  uint8_t *seen;           /* [vocab_size] */
};

enum mpl_status mpl_sampler_create(const struct mpl_sampler_params *p, int vocab_size,
                                   struct mpl_sampler **out) {
  *out = NULL;
  MPL_ASSERT(vocab_size > 0, "sampler over an empty vocabulary");
  struct mpl_sampler *s = mpl_alloc(sizeof *s, "sampler");
  if (!s) return MPL_ERR_NOMEM;
  s->params = *p;
  s->vocab_size = vocab_size;
  mpl_sampler_rng_seed(&s->rng, p->seed);
  s->cands = mpl_alloc((size_t)vocab_size * sizeof *s->cands, "sampler candidates");
  s->penalized = mpl_alloc((size_t)vocab_size * sizeof *s->penalized, "sampler logits");
  s->seen = mpl_alloc((size_t)vocab_size, "sampler history");
  if (!s->cands || !s->penalized || !s->seen) {
    mpl_sampler_destroy(s);
    return MPL_ERR_NOMEM;
  }
  *out = s;
  return MPL_OK;
}

void mpl_sampler_destroy(struct mpl_sampler *s) {
  if (!s) return;
  mpl_free(s->cands);
  mpl_free(s->penalized);
  mpl_free(s->seen);
  mpl_free(s);
}

/* larger probability first, then smaller id, so every run orders ties alike */
static int by_prob_desc(const void *a, const void *b) {
  const struct candidate *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

static void penalize(struct mpl_sampler *s, const float *logits, const int32_t *history,
                     int n_history) {
  int n = s->vocab_size;
  for (int i = 0; i < n; i++) s->penalized[i] = logits[i];
  double r = s->params.repeat_penalty;
  if (r == 1.0) return;
  memset(s->seen, 0, (size_t)n);
  for (int i = 0; i < n_history; i++) {
    int32_t t = history[i];
    if (t < 0 || t >= n || s->seen[t]) continue;
    s->seen[t] = 1;
    s->penalized[t] = s->penalized[t] > 0 ? s->penalized[t] / r : s->penalized[t] * r;
  }
}

static int32_t argmax(const double *x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

/* Fills s->cands[0..*n_out) with the surviving tokens and their normalised
 * probabilities, most likely first when a filter needed the order, else in id order. */
static void filter(struct mpl_sampler *s, int *n_out) {
  const struct mpl_sampler_params *p = &s->params;
  int n = s->vocab_size;
  double max = s->penalized[argmax(s->penalized, n)];
  double inv_t = 1.0 / p->temperature;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double e = exp((s->penalized[i] - max) * inv_t);
    s->cands[i].p = e;
    s->cands[i].id = i;
    sum += e;
  }
  /* min-p is relative to the most likely token, whose unnormalised weight is 1 */
  int m = n;
  if (p->min_p > 0.0) {
    m = 0;
    for (int i = 0; i < n; i++)
      if (s->cands[i].p >= p->min_p) s->cands[m++] = s->cands[i];
  }
  bool sorted = false;
  if (p->top_k > 0 && p->top_k < m) {
    qsort(s->cands, (size_t)m, sizeof *s->cands, by_prob_desc);
    sorted = true;
    m = p->top_k;
  }
  if (p->top_p < 1.0) {
    if (!sorted) qsort(s->cands, (size_t)m, sizeof *s->cands, by_prob_desc);
    double cum = 0.0, keep = p->top_p * sum;
    int k = 0;
    while (k < m) {
      cum += s->cands[k++].p;
      if (cum >= keep) break;
    }
    m = k;
  }
  double total = 0.0;
  for (int i = 0; i < m; i++) total += s->cands[i].p;
  for (int i = 0; i < m; i++) s->cands[i].p /= total;
  *n_out = m;
}

int32_t mpl_sampler_sample(struct mpl_sampler *s, const float *logits, const int32_t *history,
                           int n_history) {
  penalize(s, logits, history, n_history);
  if (s->params.temperature <= 0.0) return argmax(s->penalized, s->vocab_size);
  int m = 0;
  filter(s, &m);
  double u = mpl_sampler_rng_uniform(&s->rng), cum = 0.0;
  for (int i = 0; i < m; i++) {
    cum += s->cands[i].p;
    if (u < cum) return s->cands[i].id;
  }
  return s->cands[m - 1].id; /* u within rounding of 1 */
}

void mpl_sampler_probs(struct mpl_sampler *s, const float *logits, const int32_t *history,
                       int n_history, double *probs) {
  int n = s->vocab_size;
  for (int i = 0; i < n; i++) probs[i] = 0.0;
  penalize(s, logits, history, n_history);
  if (s->params.temperature <= 0.0) {
    probs[argmax(s->penalized, n)] = 1.0;
    return;
  }
  int m = 0;
  filter(s, &m);
  for (int i = 0; i < m; i++) probs[s->cands[i].id] = s->cands[i].p;
}
