/* Requests (ids, JSON lines), the token-balanced split, and the statistics and
 * log-likelihood the bench and eval commands report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/runtime.h"
#include "mpl_test.h"

static void test_parse_ids(void) {
  int32_t *ids = NULL;
  int n = 0;
  CU_ASSERT_EQUAL_FATAL(mpl_rt_parse_ids("1, 22,333", &ids, &n), MPL_OK);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT(ids[0] == 1 && ids[1] == 22 && ids[2] == 333);
  free(ids);
  CU_ASSERT_EQUAL(mpl_rt_parse_ids("1,x,3", &ids, &n), MPL_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "item 2"));
  CU_ASSERT_EQUAL(mpl_rt_parse_ids("1,-4", &ids, &n), MPL_ERR_ARG);
  CU_ASSERT_EQUAL(mpl_rt_parse_ids("", &ids, &n), MPL_ERR_ARG);
  CU_ASSERT_PTR_NULL(ids);
}

static const char *write_file(const char *name, const char *text) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", mpl_test_scratch_dir(), name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return path;
}

static void test_read_requests(void) {
  const char *path = write_file("req.jsonl",
                                "{\"id\": \"a\", \"prompt\": \"Hello\", \"max_tokens\": 5}\n"
                                "\n"
                                "{\"ids\": [1, 2, 3], \"temperature\": 0.7, \"top_k\": 40, \"seed\": 9}\n");
  struct mpl_sampler_params d;
  mpl_sampler_params_default(&d);
  d.top_p = 0.9;
  struct mpl_request *r = NULL;
  int n = 0;
  CU_ASSERT_EQUAL_FATAL(mpl_rt_read_requests(path, &d, &r, &n), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT_STRING_EQUAL(r[0].id, "a");
  CU_ASSERT_STRING_EQUAL(r[0].text, "Hello");
  CU_ASSERT_EQUAL(r[0].max_tokens, 5);
  CU_ASSERT(!r[0].has_sampling && !r[0].has_seed);
  CU_ASSERT_STRING_EQUAL(r[1].id, "1");
  CU_ASSERT_PTR_NULL(r[1].text);
  CU_ASSERT_EQUAL(r[1].n_prompt, 3);
  CU_ASSERT_EQUAL(r[1].prompt[2], 3);
  CU_ASSERT_EQUAL(r[1].max_tokens, -1);
  CU_ASSERT(r[1].has_sampling && r[1].has_seed);
  CU_ASSERT_DOUBLE_EQUAL(r[1].sampling.temperature, 0.7, 1e-12);
  CU_ASSERT_EQUAL(r[1].sampling.top_k, 40);
  CU_ASSERT_DOUBLE_EQUAL(r[1].sampling.top_p, 0.9, 1e-12); /* the default */
  CU_ASSERT_EQUAL(r[1].sampling.seed, 9u);
  mpl_rt_requests_free(r, n);
}

static void test_bad_requests_name_the_line(void) {
  struct mpl_sampler_params d;
  mpl_sampler_params_default(&d);
  struct mpl_request *r = NULL;
  int n = 0;
  const char *path = write_file("bad1.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": 3}\n");
  CU_ASSERT_EQUAL(mpl_rt_read_requests(path, &d, &r, &n), MPL_ERR_FORMAT);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "bad1.jsonl:2"));
  path = write_file("bad2.jsonl", "{\"prompt\": \"x\", \"top_p\": 2}\n");
  CU_ASSERT_EQUAL(mpl_rt_read_requests(path, &d, &r, &n), MPL_ERR_FORMAT);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "top_p"));
  path = write_file("bad3.jsonl", "not json\n");
  CU_ASSERT_EQUAL(mpl_rt_read_requests(path, &d, &r, &n), MPL_ERR_FORMAT);
  path = write_file("bad4.jsonl", "{\"ids\": [1, 2.5]}\n");
  CU_ASSERT_EQUAL(mpl_rt_read_requests(path, &d, &r, &n), MPL_ERR_FORMAT);
  CU_ASSERT_EQUAL(mpl_rt_read_requests("/nonexistent/req.jsonl", &d, &r, &n), MPL_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "/nonexistent/req.jsonl"));
  CU_ASSERT_PTR_NULL(r);
}

static void test_balance_by_tokens(void) {
  /* one long request and four short ones: the long one alone on a group */
  int64_t costs[5] = {10, 100, 20, 30, 40};
  int g[5];
  mpl_rt_balance(costs, 5, 2, g);
  int64_t load[2] = {0, 0};
  for (int i = 0; i < 5; i++) load[g[i]] += costs[i];
  CU_ASSERT_EQUAL(g[1], 0);
  CU_ASSERT_EQUAL(load[0], 100);
  CU_ASSERT_EQUAL(load[1], 100);
  /* equal costs spread round robin from the lowest group */
  int64_t same[4] = {5, 5, 5, 5};
  int h[4];
  mpl_rt_balance(same, 4, 3, h);
  CU_ASSERT(h[0] == 0 && h[1] == 1 && h[2] == 2 && h[3] == 0);
}

static void test_statistics(void) {
  double x[5] = {3, 1, 4, 1, 5};
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_mean(x, 5), 2.8, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_stddev(x, 5), sqrt(3.2), 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_quantile(x, 5, 0.5), 3.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_quantile(x, 5, 0.95), 4.8, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_quantile(x, 5, 0.0), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(x[0], 3.0, 0); /* the input is not sorted in place */
  CU_ASSERT(mpl_rt_peak_rss_bytes() > 0);
}

static void test_nll(void) {
  float l[3] = {0.0f, (float)log(2.0), (float)log(5.0)}; /* softmax 1/8, 2/8, 5/8 */
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_nll(l, 3, 0), log(8.0), 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_nll(l, 3, 2), log(8.0 / 5.0), 1e-6);
  float big[2] = {1000.0f, 1000.0f}; /* no overflow */
  CU_ASSERT_DOUBLE_EQUAL(mpl_rt_nll(big, 2, 1), log(2.0), 1e-9);
}

MPL_TEST_SUITE(runtime_requests, MPL_TEST(test_parse_ids), MPL_TEST(test_read_requests),
               MPL_TEST(test_bad_requests_name_the_line), MPL_TEST(test_balance_by_tokens),
               MPL_TEST(test_statistics), MPL_TEST(test_nll))
