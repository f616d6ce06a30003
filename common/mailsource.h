/*
 * mailsource.h - the messages stored under a path: single message files, mboxes, maildirs and
 * directory trees of them (for `clawback ingest PATH...`).
 *
 * mailsource_walk() hands each message to a callback as bytes and knows nothing else of mail:
 * parsing is the caller's business. Files are mapped read-only (mmap, MAP_PRIVATE), so an mbox
 * of several gigabytes costs address space, not memory; pages already handed over are dropped
 * as the walk moves on. A message is copied only when mbox ">From " escapes must be undone.
 *
 * What a path holds is decided as follows:
 *   - a regular file whose first line starts with "From " is an mbox (one message or many);
 *   - any other regular file is one RFC 5322 message;
 *   - a directory holding both cur/ and new/ is a maildir: the files of cur/ then new/, each in
 *     byte order; tmp/ and everything else in the maildir (Maildir++ ".Folder" subfolders too)
 *     is left alone;
 *   - any other directory is walked depth first, entries in byte order (strcmp), directories
 *     that are maildirs treated as such.
 * Inside directories, names starting with "." are skipped silently, symbolic links are not
 * followed and FIFOs, sockets and devices are not opened (each is reported). The path given
 * to mailsource_walk itself is followed if it is a symbolic link and may start with ".".
 *
 * Hostile or broken input is bounded and never fatal: directory nesting (MAILSOURCE_MAX_DEPTH),
 * entries per directory (MAILSOURCE_MAX_ENTRIES), path length (origins are at most
 * MAILSOURCE_ORIGIN_MAX bytes with the NUL), file size (max_file) and message size
 * (max_message). What cannot be read or exceeds a limit is reported through the error
 * callback, counted, and the walk goes on.
 *
 * Caveat of mmap: a file truncated by another process while it is being walked raises SIGBUS.
 * Mail stores are appended to or replaced, rarely truncated in place; walk a copy of an mbox
 * that a mail client is actively compacting.
 */
#ifndef CLAWBACK_MAILSOURCE_H
#define CLAWBACK_MAILSOURCE_H

#include <limits.h>
#include <stddef.h>

#define MAILSOURCE_MAX_DEPTH 32                    /* directories below the path walked */
#define MAILSOURCE_MAX_ENTRIES (10u * 1000 * 1000) /* names read per directory */
#define MAILSOURCE_ORIGIN_MAX (PATH_MAX + 32)      /* an origin, "#N" and NUL included */

/* mailsource_fn - one message: origin names it for error messages ("path" for a file, "path#N"
 * (N counted from 1) for the Nth message of an mbox); data/len are the message bytes (not
 * NUL-terminated, valid only during the call; an mbox "From " separator line is NOT included).
 * Return 0 to go on, non-zero to stop the walk (mailsource_walk then returns that value). */
typedef int (*mailsource_fn)(void *ctx, const char *origin, const char *data, size_t len);

typedef struct {
    size_t messages; /* handed to fn */
    size_t skipped;  /* files that could not be read, or were too large, mbox messages too large,
                      * directories not walked: each reported once via the error callback */
} mailsource_stats_t;

/* mailsource_error_fn - a file skipped, with a reason (e.g. "big.eml: larger than the limit of N
 * bytes"). The reason is a complete line that starts with the origin; both strings are valid
 * only during the call. */
typedef void (*mailsource_error_fn)(void *ctx, const char *origin, const char *reason);

/* mailsource_walk - every message under path: a regular file holding one RFC 5322 message, or an mbox
 * (a file whose first line starts with "From "; split at every line starting with "From " that follows
 * an empty line or starts the file; mboxrd/mboxo ">From " escapes are undone in the bytes handed over -- this
 * needs a copy only for messages that contain such lines), a maildir (a directory with cur/ and new/: the
 * files in both, skipping tmp/ and dot files), or any other directory (walked recursively, files in
 * sorted order, dot files and dot directories skipped, symlinks not followed, depth capped at 32).
 * Files larger than max_file bytes are skipped (reported); messages larger than max_message inside an
 * mbox are skipped (reported). Files are read with mmap (read-only, MAP_PRIVATE) so a 4 GB mbox is not
 * loaded into memory; empty files are skipped silently. Returns 0, the non-zero value fn returned, or -1
 * with a reason in err when path itself cannot be opened.
 *
 * Details: in an mbox, the empty line before each "From " separator (and one at the end of the
 * file) belongs to the mbox format and is not handed over; lines matching ">+From " lose one
 * ">". max_message applies to every message, a single message file included; it is compared
 * with the bytes in the file. Messages that are empty once the separator is taken off are
 * skipped silently but still counted in the "#N" numbering, so N is always the Nth "From "
 * separator. A path that is neither a regular file nor a directory is an error (-1). err is
 * emptied first, so a -1 that fn returned leaves it empty. on_error and stats may be NULL.
 */
int mailsource_walk(const char *path, size_t max_file, size_t max_message, mailsource_fn fn,
                    mailsource_error_fn on_error, void *ctx, mailsource_stats_t *stats, char *err,
                    size_t errlen);

#endif
