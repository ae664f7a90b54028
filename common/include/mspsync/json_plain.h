/*
 * json_plain.h — the run of bytes a JSON string holds as they are.
 *
 * Inside a JSON string, a byte that is printable ASCII other than '"' and '\\' is itself, in
 * both directions: the scanner (json_pick.c) has nothing to check and the writer (json_dump.c)
 * nothing to escape. Both look for the next byte that is not such a byte, eight at a time.
 */
#ifndef MSPSYNC_JSON_PLAIN_H
#define MSPSYNC_JSON_PLAIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * @brief How many bytes of p[0..n) come before the first one that is '"', '\\', a control
 *        character or a non-ASCII byte (n when there is none).
 *
 * Eight bytes at a time (little-endian machines): in the word's mask below, a borrow only comes
 * from a lower byte that is flagged itself, so the lowest flagged byte is always a true one and
 * its index is exact; higher flags may be false alarms, which are never read.
 */
static inline size_t msp_json_plain_len(const unsigned char *p, size_t n) {
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
        uint64_t m = ((w - ones * 0x20) | (quote - ones) | (slash - ones) | w) & high;
        if (m)
            return i + (size_t)(__builtin_ctzll(m) >> 3);
    }
#endif
    for (; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x80 || p[i] == '"' || p[i] == '\\')
            break;
    return i;
}

#endif
