/* Core: statuses and messages, CRC-32, byte formatting, aligned allocation. */
#include <string.h>

#include "mpillm/core.h"
#include "mpl_test.h"

static void test_error_set_and_wrap(void) {
  mpl_error_clear();
  CU_ASSERT_EQUAL(mpl_error_status(), MPL_OK);
  CU_ASSERT_STRING_EQUAL(mpl_error_message(), "");
  enum mpl_status st = mpl_error_set(MPL_ERR_IO, "cannot open %s", "model.h5");
  CU_ASSERT_EQUAL(st, MPL_ERR_IO);
  CU_ASSERT_EQUAL(mpl_error_wrap("loading %s", "the model"), MPL_ERR_IO);
  CU_ASSERT_STRING_EQUAL(mpl_error_message(), "loading the model: cannot open model.h5");
  CU_ASSERT_STRING_EQUAL(mpl_status_name(MPL_ERR_CHECKSUM), "checksum mismatch");
  CU_ASSERT_STRING_EQUAL(mpl_status_name((enum mpl_status)99), "unknown status");
  mpl_error_clear();
}

static void test_crc32_known_value(void) {
  /* the standard check value of CRC-32 */
  CU_ASSERT_EQUAL(mpl_crc32(0, "123456789", 9), 0xCBF43926u);
  uint32_t part = mpl_crc32(0, "1234", 4);
  CU_ASSERT_EQUAL(mpl_crc32(part, "56789", 5), 0xCBF43926u);
}

static void test_format_bytes(void) {
  char buf[32];
  CU_ASSERT_STRING_EQUAL(mpl_format_bytes(512, buf, sizeof buf), "512 B");
  CU_ASSERT_STRING_EQUAL(mpl_format_bytes(1536, buf, sizeof buf), "1.5 KiB");
  CU_ASSERT_STRING_EQUAL(mpl_format_bytes(3.0 * 1024 * 1024 * 1024, buf, sizeof buf), "3.0 GiB");
}

static void test_alloc_aligned_zeroed(void) {
  unsigned char *p = mpl_alloc(1000, "a test buffer");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL((uintptr_t)p % 64, 0);
  int all_zero = 1;
  for (int i = 0; i < 1000; i++) all_zero &= p[i] == 0;
  CU_ASSERT(all_zero);
  mpl_free(p);
  mpl_free(NULL);
}

static void test_alloc_failure_names_what(void) {
  mpl_error_clear();
  void *p = mpl_alloc(SIZE_MAX / 2, "the KV cache");
  CU_ASSERT_PTR_NULL(p);
  CU_ASSERT_EQUAL(mpl_error_status(), MPL_ERR_NOMEM);
  CU_ASSERT_PTR_NOT_NULL(strstr(mpl_error_message(), "the KV cache"));
}

MPL_TEST_SUITE(core, MPL_TEST(test_error_set_and_wrap), MPL_TEST(test_crc32_known_value),
               MPL_TEST(test_format_bytes), MPL_TEST(test_alloc_aligned_zeroed),
               MPL_TEST(test_alloc_failure_names_what))
