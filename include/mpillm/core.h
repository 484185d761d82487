/* mpillm core: status codes, the per-thread error message, rank-prefixed logging,
 * assertions for bugs, aligned allocation and a wall clock. No MPI, no files. */
#ifndef MPILLM_CORE_H
#define MPILLM_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every action that the world can make fail returns one of these. Bugs are not
 * statuses: they are MPL_ASSERTs. */
enum mpl_status {
  MPL_OK = 0,
  MPL_ERR_ARG,         /* bad option, argument or request from the user */
  MPL_ERR_IO,          /* a file is missing, unreadable or unwritable */
  MPL_ERR_FORMAT,      /* a file is readable but its content is wrong */
  MPL_ERR_CHECKSUM,    /* a stored checksum does not match the data */
  MPL_ERR_UNSUPPORTED, /* valid input that asks for something not implemented */
  MPL_ERR_RANGE,       /* a value outside its limit (context length, alpha, ...) */
  MPL_ERR_NOMEM,       /* an allocation failed */
  MPL_ERR_MPI,         /* an MPI call returned an error */
  MPL_STATUS_COUNT
};

#if defined(__GNUC__)
#define MPL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MPL_NORETURN __attribute__((noreturn))
#else
#define MPL_PRINTF(f, a)
#define MPL_NORETURN
#endif

/* Short lowercase name of a status ("io error", ...). Local. */
const char *mpl_status_name(enum mpl_status status);

/* Records status and a message for this thread and returns status, so that
 * `return mpl_error_set(MPL_ERR_IO, "cannot open %s", path);` reads as one step.
 * The message names the file, tensor, field or rank at fault. Local. */
enum mpl_status mpl_error_set(enum mpl_status status, const char *fmt, ...) MPL_PRINTF(2, 3);

/* Prepends context ("loading model.h5: ") to this thread's message; returns the
 * recorded status. Local. */
enum mpl_status mpl_error_wrap(const char *fmt, ...) MPL_PRINTF(1, 2);

/* This thread's last message ("" when none) and status (MPL_OK when none). Local. */
const char *mpl_error_message(void);
enum mpl_status mpl_error_status(void);
void mpl_error_clear(void);

enum mpl_log_level { MPL_LOG_ERROR = 0, MPL_LOG_WARN, MPL_LOG_INFO, MPL_LOG_DEBUG };

/* Sets this process's rank for the "[rank r]" prefix, the most verbose level
 * printed, and whether ranks other than 0 print at all (they are quiet unless
 * all_ranks). Local; call once at start-up. */
void mpl_log_init(int rank, enum mpl_log_level level, bool all_ranks);
int mpl_log_rank(void);
bool mpl_log_enabled(enum mpl_log_level level);
/* Writes "[rank r] <level>: <message>\n" to stderr when enabled. Local. */
void mpl_log(enum mpl_log_level level, const char *fmt, ...) MPL_PRINTF(2, 3);
#define mpl_log_error(...) mpl_log(MPL_LOG_ERROR, __VA_ARGS__)
#define mpl_log_warn(...) mpl_log(MPL_LOG_WARN, __VA_ARGS__)
#define mpl_log_info(...) mpl_log(MPL_LOG_INFO, __VA_ARGS__)
#define mpl_log_debug(...) mpl_log(MPL_LOG_DEBUG, __VA_ARGS__)

/* Bugs only: prints "[rank r] file:line: why" and ends the job through the abort
 * hook (MPI_Abort once the parallel module is up, abort() before). */
MPL_NORETURN void mpl_assert_fail(const char *file, int line, const char *fmt, ...) MPL_PRINTF(3, 4);
void mpl_assert_set_abort_hook(void (*hook)(void));
#define MPL_ASSERT(cond, ...)                                  \
  do {                                                         \
    if (!(cond)) mpl_assert_fail(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

/* 64-byte aligned, zero-filled allocation; NULL with MPL_ERR_NOMEM recorded on
 * failure (the message says how many bytes and for what). Free with mpl_free;
 * mpl_free(NULL) is safe. Local. */
void *mpl_alloc(size_t n_bytes, const char *what);
void mpl_free(void *ptr);

/* Monotonic wall clock in seconds. Local. */
double mpl_time_now(void);

/* CRC-32 (zlib's polynomial) of a buffer, continuing from crc (start with 0). Local. */
uint32_t mpl_crc32(uint32_t crc, const void *data, size_t n_bytes);

/* Counts and sizes in messages: "1.5 GiB". Writes into buf and returns it. Local. */
const char *mpl_format_bytes(double n_bytes, char *buf, size_t buf_bytes);

#endif
