/* Sampler: the random stream against xoshiro256**'s reference outputs, and each
 * filter against distributions worked out by hand. */
#include <math.h>
#include <string.h>

#include "mpillm/runtime.h"
#include "mpl_test.h"

static void test_rng_reference_outputs(void) {
  /* the reference implementation (prng.di.unimi.it) from state {1, 2, 3, 4} */
  struct mpl_sampler_rng rng = {{1, 2, 3, 4}};
  CU_ASSERT_EQUAL(mpl_sampler_rng_next(&rng), 11520ull);
  CU_ASSERT_EQUAL(mpl_sampler_rng_next(&rng), 0ull);
  CU_ASSERT_EQUAL(mpl_sampler_rng_next(&rng), 1509978240ull);
  CU_ASSERT_EQUAL(mpl_sampler_rng_next(&rng), 1215971899390074240ull);
  /* seeding through splitmix64 (its outputs for 42) */
  mpl_sampler_rng_seed(&rng, 42);
  CU_ASSERT_EQUAL(rng.s[0], 0xbdd732262feb6e95ull);
  CU_ASSERT_EQUAL(rng.s[3], 0x581ce1ff0e4ae394ull);
  CU_ASSERT_EQUAL(mpl_sampler_rng_next(&rng), 0x15780b2e0c2ec716ull);
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; i++) {
    double u = mpl_sampler_rng_uniform(&rng);
    lo = u < lo ? u : lo;
    hi = u > hi ? u : hi;
  }
  CU_ASSERT(lo >= 0.0 && lo < 0.01 && hi < 1.0 && hi > 0.99);
}

/* logits whose softmax is p exactly */
static const double P4[4] = {0.1, 0.2, 0.3, 0.4};
static void logits_of(const double *p, int n, float *out) {
  for (int i = 0; i < n; i++) out[i] = (float)log(p[i]);
}

static void probs_with(struct mpl_sampler_params *p, const float *logits, int n,
                       const int32_t *hist, int n_hist, double *probs) {
  struct mpl_sampler *s = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(p, n, &s), MPL_OK);
  mpl_sampler_probs(s, logits, hist, n_hist, probs);
  mpl_sampler_destroy(s);
}

#define NEAR(a, b) CU_ASSERT_DOUBLE_EQUAL((a), (b), 1e-6)

static void test_greedy_and_ties(void) {
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  CU_ASSERT(mpl_sampler_is_greedy(&p));
  float logits[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  struct mpl_sampler *s = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(&p, 5, &s), MPL_OK);
  CU_ASSERT_EQUAL(mpl_sampler_sample(s, logits, NULL, 0), 1); /* smallest id of the tie */
  mpl_sampler_destroy(s);
  p.repeat_penalty = 1.5;
  CU_ASSERT(!mpl_sampler_is_greedy(&p));
}

static void test_temperature_distribution(void) {
  float logits[4];
  logits_of(P4, 4, logits);
  double probs[4];
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  p.temperature = 1.0;
  probs_with(&p, logits, 4, NULL, 0, probs);
  for (int i = 0; i < 4; i++) NEAR(probs[i], P4[i]);
  /* T = 2: p^(1/2), renormalised */
  p.temperature = 2.0;
  probs_with(&p, logits, 4, NULL, 0, probs);
  double z = 0;
  for (int i = 0; i < 4; i++) z += sqrt(P4[i]);
  for (int i = 0; i < 4; i++) NEAR(probs[i], sqrt(P4[i]) / z);
}

static void test_top_k_top_p_min_p(void) {
  float logits[4];
  logits_of(P4, 4, logits);
  double probs[4];
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  p.temperature = 1.0;
  p.top_k = 2;
  probs_with(&p, logits, 4, NULL, 0, probs);
  NEAR(probs[0], 0.0); NEAR(probs[1], 0.0); NEAR(probs[2], 3.0 / 7); NEAR(probs[3], 4.0 / 7);
  /* top-p 0.5: 0.4 alone is not enough, 0.4 + 0.3 is */
  p.top_k = 0;
  p.top_p = 0.5;
  probs_with(&p, logits, 4, NULL, 0, probs);
  NEAR(probs[1], 0.0); NEAR(probs[2], 3.0 / 7); NEAR(probs[3], 4.0 / 7);
  p.top_p = 0.35;
  probs_with(&p, logits, 4, NULL, 0, probs);
  NEAR(probs[2], 0.0); NEAR(probs[3], 1.0);
  p.top_p = 0.95;
  probs_with(&p, logits, 4, NULL, 0, probs);
  for (int i = 0; i < 4; i++) NEAR(probs[i], P4[i]);
  /* min-p 0.55: keep p >= 0.22, i.e. 0.3 and 0.4 */
  p.top_p = 1.0;
  p.min_p = 0.55;
  probs_with(&p, logits, 4, NULL, 0, probs);
  NEAR(probs[0], 0.0); NEAR(probs[1], 0.0); NEAR(probs[2], 3.0 / 7); NEAR(probs[3], 4.0 / 7);
  /* combined: min-p keeps three, top-k two of them */
  p.min_p = 0.45;
  p.top_k = 2;
  probs_with(&p, logits, 4, NULL, 0, probs);
  NEAR(probs[1], 0.0); NEAR(probs[2], 3.0 / 7); NEAR(probs[3], 4.0 / 7);
}

static void test_repeat_penalty(void) {
  float logits[3] = {2.0f, -1.0f, 1.0f};
  int32_t hist[3] = {0, 1, 0};
  double probs[3];
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  p.repeat_penalty = 2.0;
  p.temperature = 1.0;
  /* {2, -1, 1} -> {1, -2, 1}: each seen token penalised once */
  probs_with(&p, logits, 3, hist, 3, probs);
  double z = 2 * exp(1.0) + exp(-2.0);
  NEAR(probs[0], exp(1.0) / z); NEAR(probs[1], exp(-2.0) / z); NEAR(probs[2], exp(1.0) / z);
  p.temperature = 0.0;
  struct mpl_sampler *s = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(&p, 3, &s), MPL_OK);
  int32_t hist0[1] = {0};
  CU_ASSERT_EQUAL(mpl_sampler_sample(s, logits, hist, 3), 0); /* tie 1 vs 1: smallest id */
  float l2[3] = {2.0f, -1.0f, 1.5f};
  CU_ASSERT_EQUAL(mpl_sampler_sample(s, l2, hist0, 1), 2); /* 2/2 = 1 < 1.5 */
  CU_ASSERT_EQUAL(mpl_sampler_sample(s, l2, NULL, 0), 0);
  mpl_sampler_destroy(s);
}

/* draws follow the distribution and a seed replays them */
static void test_draws_and_seeds(void) {
  float logits[4];
  logits_of(P4, 4, logits);
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  p.temperature = 1.0;
  p.seed = 1234;
  struct mpl_sampler *a = NULL, *b = NULL, *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(&p, 4, &a), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(&p, 4, &b), MPL_OK);
  p.seed = 1235;
  CU_ASSERT_EQUAL_FATAL(mpl_sampler_create(&p, 4, &c), MPL_OK);
  enum { N = 100000 };
  int count[4] = {0}, same = 1, differ = 0;
  for (int i = 0; i < N; i++) {
    int32_t x = mpl_sampler_sample(a, logits, NULL, 0);
    int32_t y = mpl_sampler_sample(b, logits, NULL, 0);
    int32_t w = mpl_sampler_sample(c, logits, NULL, 0);
    CU_ASSERT_FATAL(x >= 0 && x < 4);
    count[x]++;
    same &= x == y;
    differ += x != w;
  }
  CU_ASSERT(same);
  CU_ASSERT(differ > N / 2);
  /* 5 sigma of a binomial with N = 1e5 is below 0.008 */
  for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL((double)count[i] / N, P4[i], 0.008);
  mpl_sampler_destroy(a);
  mpl_sampler_destroy(b);
  mpl_sampler_destroy(c);
}

static void test_params_check(void) {
  struct mpl_sampler_params p;
  mpl_sampler_params_default(&p);
  CU_ASSERT_EQUAL(mpl_sampler_params_check(&p, "request 3"), MPL_OK);
  p.top_p = 0.0;
  CU_ASSERT_EQUAL(mpl_sampler_params_check(&p, "request 3"), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "top-p"));
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "request 3"));
  mpl_sampler_params_default(&p);
  p.temperature = -1;
  CU_ASSERT_EQUAL(mpl_sampler_params_check(&p, "x"), MPL_ERR_ARG);
  mpl_sampler_params_default(&p);
  p.repeat_penalty = 0;
  CU_ASSERT_EQUAL(mpl_sampler_params_check(&p, "x"), MPL_ERR_ARG);
}

MPL_TEST_SUITE(runtime_sampler, MPL_TEST(test_rng_reference_outputs), MPL_TEST(test_greedy_and_ties),
               MPL_TEST(test_temperature_distribution), MPL_TEST(test_top_k_top_p_min_p),
               MPL_TEST(test_repeat_penalty), MPL_TEST(test_draws_and_seeds),
               MPL_TEST(test_params_check))
