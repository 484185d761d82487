/* Status names and the per-thread error message that travels with a failing status. */
#include "mpillm/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MPL_ERROR_BYTES 1024

static _Thread_local char error_message[MPL_ERROR_BYTES];
static _Thread_local enum mpl_status error_status = MPL_OK;

static const char *const status_names[MPL_STATUS_COUNT] = {
    [MPL_OK] = "ok",
    [MPL_ERR_ARG] = "bad argument",
    [MPL_ERR_IO] = "i/o error",
    [MPL_ERR_FORMAT] = "bad file format",
    [MPL_ERR_CHECKSUM] = "checksum mismatch",
    [MPL_ERR_UNSUPPORTED] = "not supported",
    [MPL_ERR_RANGE] = "out of range",
    [MPL_ERR_NOMEM] = "out of memory",
    [MPL_ERR_MPI] = "MPI error",
};

const char *mpl_status_name(enum mpl_status status) {
  if ((int)status < 0 || status >= MPL_STATUS_COUNT) return "unknown status";
  return status_names[status];
}

enum mpl_status mpl_error_set(enum mpl_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  error_status = status;
  return status;
}

enum mpl_status mpl_error_wrap(const char *fmt, ...) {
  char prefix[MPL_ERROR_BYTES];
  char old[MPL_ERROR_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, error_message, sizeof old);
  snprintf(error_message, sizeof error_message, "%s: %s", prefix, old);
  return error_status;
}

const char *mpl_error_message(void) { return error_message; }
enum mpl_status mpl_error_status(void) { return error_status; }

void mpl_error_clear(void) {
  error_message[0] = '\0';
  error_status = MPL_OK;
}
