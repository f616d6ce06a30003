/*
 * util.h - generic helpers that know nothing of mail: clocks, ids, checked allocation.
 *
 * Allocation failure is treated as fatal (util_oom() logs and aborts): every caller would
 * otherwise have to invent a recovery for a condition it cannot act on. All other errors are
 * returned.
 */
#ifndef CLAWBACK_UTIL_H
#define CLAWBACK_UTIL_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* util_now_ms - wall-clock time in milliseconds since the epoch. */
int64_t util_now_ms(void);
/* util_monotonic_ms - monotonic clock in milliseconds (for deadlines and intervals). */
int64_t util_monotonic_ms(void);
/* util_deadline_ts - the absolute time ms milliseconds from now on clock (for
 * pthread_cond_timedwait: CLOCK_MONOTONIC with a util_cond_init_monotonic condition). */
struct timespec util_deadline_ts(clockid_t clock, int64_t ms);
/* util_cond_init_monotonic - initialise cond so that its timed waits read CLOCK_MONOTONIC (a
 * change of the wall clock cannot stretch or cut them). */
void util_cond_init_monotonic(pthread_cond_t *cond);

/* util_xmalloc, util_xcalloc, util_xrealloc, util_xstrdup, util_xstrndup - allocate or abort.
 * util_xstrdup(NULL) returns NULL. Caller owns the result. */
void *util_xmalloc(size_t size);
void *util_xcalloc(size_t count, size_t size);
void *util_xrealloc(void *ptr, size_t size);
char *util_xstrdup(const char *s);
char *util_xstrndup(const char *s, size_t n);

/* util_uuid - write a random (v4) UUID in canonical lower-case form into out[37]. */
void util_uuid(char out[37]);
/* util_put_int - v in decimal at out (at least 21 bytes, not NUL-terminated); the length. As
 * printf's "%lld" without printf: for text built by the thousand. */
size_t util_put_int(char *out, int64_t v);
/* util_uuid_text - 16 bytes in the canonical 8-4-4-4-12 lower-case hex form, into out[37]. */
void util_uuid_text(const unsigned char bytes[16], char out[37]);

/* util_strlcpy - copy with truncation, always NUL-terminated; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* util_cmp_strings - qsort comparator for an array of C strings (char *), byte order. */
int util_cmp_strings(const void *a, const void *b);

/* util_parse_int64 - parse a whole decimal string into *out; 0 on success, -1 otherwise. */
int util_parse_int64(const char *s, int64_t *out);

/* util_read_file - read a whole file ("-": standard input) of at most max bytes into *data
 * (NUL-terminated, caller frees) and *len. 0, or -1 with a reason in err (nothing to free). */
int util_read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen);

#endif
