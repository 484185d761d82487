/* Aligned allocation, the clock, CRC-32 and byte formatting. */
#include "mpillm/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

void *mpl_alloc(size_t n_bytes, const char *what) {
  size_t rounded = (n_bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void *ptr = aligned_alloc(64, rounded);
  if (!ptr) {
    char size[32];
    mpl_error_set(MPL_ERR_NOMEM, "cannot allocate %s for %s",
                  mpl_format_bytes((double)n_bytes, size, sizeof size), what ? what : "a buffer");
    return NULL;
  }
  memset(ptr, 0, rounded);
  return ptr;
}

void mpl_free(void *ptr) { free(ptr); }

double mpl_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint32_t mpl_crc32(uint32_t crc, const void *data, size_t n_bytes) {
  const unsigned char *bytes = data;
  /* zlib takes uInt lengths: feed large buffers in pieces */
  while (n_bytes > 0) {
    uInt piece = n_bytes > (1u << 30) ? (1u << 30) : (uInt)n_bytes;
    crc = (uint32_t)crc32(crc, bytes, piece);
    bytes += piece;
    n_bytes -= piece;
  }
  return crc;
}

const char *mpl_format_bytes(double n_bytes, char *buf, size_t buf_bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (n_bytes >= 1024.0 && unit < 4) {
    n_bytes /= 1024.0;
    unit++;
  }
  snprintf(buf, buf_bytes, unit == 0 ? "%.0f %s" : "%.1f %s", n_bytes, units[unit]);
  return buf;
}
