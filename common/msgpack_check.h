/*
 * msgpack_check.h - validate untrusted msgpack bytes before msgpack-c unpacks them.
 *
 * msgpack-c allocates count * sizeof(msgpack_object) as soon as it reads an array or map
 * header, so a 5-byte header inside a small frame can ask for gigabytes. This walker reads
 * the bytes without allocating and accepts them only if: they hold exactly one object that
 * ends at the end of the buffer; every length and count fits in the bytes that remain
 * (each element takes at least one byte); nesting is at most max_depth; and the total number
 * of objects is at most max_objects. After it accepts, unpacking allocates at most about
 * 48 bytes per object.
 */
#ifndef CLAWBACK_MSGPACK_CHECK_H
#define CLAWBACK_MSGPACK_CHECK_H

#include <stddef.h>

#define MSGPACK_CHECK_DEFAULT_DEPTH 8
#define MSGPACK_CHECK_DEFAULT_OBJECTS 200000

/* msgpack_check - 0 when buf[0..len) is one well-formed object within the limits, -1 with a
 * static reason in *why otherwise. */
int msgpack_check(const char *buf, size_t len, unsigned max_depth, size_t max_objects, const char **why);

#endif
