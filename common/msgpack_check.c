/*
 * msgpack_check.c - allocation-free structural check of msgpack bytes; see msgpack_check.h.
 *
 * The walk keeps, per nesting level, how many child objects are still expected; reading an
 * object decrements its parent's count, and an array or map pushes a new level.
 */
#include "msgpack_check.h"

#include <stdint.h>

/* read_be - big-endian unsigned integer of n bytes. */
static uint64_t read_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int msgpack_check(const char *buf, size_t len, unsigned max_depth, size_t max_objects, const char **why)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = 0, objects = 0;
    uint64_t expect[33]; /* children still expected per level; level 0 is the top */
    unsigned depth = 0;
    if (max_depth > 32)
        max_depth = 32;
    expect[0] = 1;
    *why = "";

    while (depth > 0 || expect[0] > 0) {
        if (expect[depth] == 0) { /* container finished */
            depth--;
            continue;
        }
        if (pos >= len) {
            *why = "truncated";
            return -1;
        }
        if (++objects > max_objects) {
            *why = "too many objects";
            return -1;
        }
        expect[depth]--;
        unsigned char c = p[pos++];
        uint64_t payload = 0;   /* bytes of data following the header */
        uint64_t children = 0;  /* for arrays and maps */
        size_t hdr = 0;         /* extra header bytes holding a length */
        int container = 0;

        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            /* fixint, nil, bool */
        } else if (c >= 0xa0 && c <= 0xbf) {
            payload = c & 0x1f;
        } else if (c >= 0x90 && c <= 0x9f) {
            children = c & 0x0f;
            container = 1;
        } else if (c >= 0x80 && c <= 0x8f) {
            children = (uint64_t)(c & 0x0f) * 2;
            container = 1;
        } else {
            switch (c) {
            case 0xcc: case 0xd0: payload = 1; break;
            case 0xcd: case 0xd1: payload = 2; break;
            case 0xca: case 0xce: case 0xd2: payload = 4; break;
            case 0xcb: case 0xcf: case 0xd3: payload = 8; break;
            case 0xd4: payload = 2; break;  /* fixext 1: type + 1 */
            case 0xd5: payload = 3; break;
            case 0xd6: payload = 5; break;
            case 0xd7: payload = 9; break;
            case 0xd8: payload = 17; break;
            case 0xc4: case 0xd9: hdr = 1; break;
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1; payload = 1; break; /* ext 8: len + type */
            case 0xc8: hdr = 2; payload = 1; break;
            case 0xc9: hdr = 4; payload = 1; break;
            case 0xdc: hdr = 2; container = 1; break;
            case 0xdd: hdr = 4; container = 1; break;
            case 0xde: hdr = 2; container = 2; break;
            case 0xdf: hdr = 4; container = 2; break;
            default:
                *why = "invalid type byte";
                return -1;
            }
            if (hdr) {
                if (len - pos < hdr) {
                    *why = "truncated";
                    return -1;
                }
                uint64_t n = read_be(p + pos, hdr);
                pos += hdr;
                if (container)
                    children = container == 2 ? n * 2 : n;
                else
                    payload += n;
            }
        }
        if (payload > len - pos) {
            *why = "length exceeds the data";
            return -1;
        }
        pos += (size_t)payload;
        if (container) {
            if (children > len - pos) {
                *why = "count exceeds the data";
                return -1;
            }
            /* an empty container is a level of nesting too, though nothing is pushed for it */
            if (depth + 1 > max_depth) {
                *why = "nested too deeply";
                return -1;
            }
            if (children > 0)
                expect[++depth] = children;
        }
    }
    if (pos != len) {
        *why = "trailing bytes";
        return -1;
    }
    return 0;
}
