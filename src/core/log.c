/* Rank-prefixed logging to stderr, and the assertion path for bugs. */
#include "mpillm/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int log_rank = 0;
static enum mpl_log_level log_level = MPL_LOG_INFO;
static bool log_all_ranks = false;
static void (*abort_hook)(void) = NULL;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void mpl_log_init(int rank, enum mpl_log_level level, bool all_ranks) {
  log_rank = rank;
  log_level = level;
  log_all_ranks = all_ranks;
}

int mpl_log_rank(void) { return log_rank; }

bool mpl_log_enabled(enum mpl_log_level level) {
  if (level > log_level) return false;
  return log_rank == 0 || log_all_ranks;
}

void mpl_log(enum mpl_log_level level, const char *fmt, ...) {
  if (!mpl_log_enabled(level)) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* one fprintf per line keeps lines of different ranks from interleaving mid-line */
  fprintf(stderr, "[rank %d] %s: %s\n", log_rank, level_names[level], line);
}

void mpl_assert_set_abort_hook(void (*hook)(void)) { abort_hook = hook; }

void mpl_assert_fail(const char *file, int line, const char *fmt, ...) {
  char why[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  fprintf(stderr, "[rank %d] %s:%d: assertion failed: %s\n", log_rank, file, line, why);
  fflush(stderr);
  if (abort_hook) abort_hook();
  abort();
}
