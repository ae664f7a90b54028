/*
 * utf8.h — cutting and cleaning text on UTF-8 character boundaries.
 *
 * Text from users and vendors is UTF-8, and jansson refuses a string that is not valid UTF-8
 * (json_string() returns NULL). So a byte-counting cut (snprintf into a fixed buffer, "%.64s")
 * that lands inside a multi-byte character turns a good text into one that cannot be sent: a
 * ticket subject that vanishes from the request, an error answer that loses its message. Every
 * place that cuts text to a byte budget goes through this module instead.
 *
 * Invariants:
 *  - A cut never ends inside a character: what msp_utf8_prefix() measures and what
 *    msp_utf8_copy() writes is always valid UTF-8, whatever the input.
 *  - No marker ("…") is appended to cut text. A budget such as Syncro's 250-byte subject is a
 *    hard limit the marker would have to share, the cut texts in error messages already sit
 *    between quotes, and a marker would be indistinguishable from text that ends in "…". A cut
 *    is therefore always a plain prefix of the original (cleaned) text.
 *
 * Valid UTF-8 is RFC 3629's: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no bytes C0, C1, F5..FF.
 */
#ifndef MSPSYNC_UTF8_H
#define MSPSYNC_UTF8_H

#include <stddef.h>

/**
 * @brief Length of the longest prefix of s that is at most max_bytes bytes long and is valid
 *        UTF-8 ending on a character boundary.
 *
 * Stops at the terminating NUL, before a character that would not fit, and before the first
 * byte that does not start a complete valid character (so invalid input is cut there rather
 * than echoed broken). s must be NUL-terminated; bytes after the stop are never read.
 * @returns a byte count <= max_bytes and <= strlen(s).
 */
size_t msp_utf8_prefix(const char *s, size_t max_bytes);

/**
 * @brief Length (1..4) of the valid character that starts at p, reading at most avail bytes;
 *        0 when p starts an invalid or incomplete sequence (or avail is 0).
 */
size_t msp_utf8_char_len(const unsigned char *p, size_t avail);

/**
 * printf arguments for a "%.*s" that prints at most max_bytes bytes of s, cut on a character
 * boundary: printf("got \"%.*s\"", MSP_UTF8_CUT(s, 64)). Evaluates s twice.
 */
#define MSP_UTF8_CUT(s, max_bytes) (int)msp_utf8_prefix((s), (max_bytes)), (s)

/**
 * @brief Copies src into dst (dst_size bytes, NUL included), cut on a character boundary so
 *        that it fits, each byte of src that does not start a valid character replaced by
 *        U+FFFD (EF BF BD). dst is always valid UTF-8 and NUL-terminated (when dst_size > 0).
 *
 * Use it where text leaves for a strict consumer (a JSON string, a vendor field) and may be
 * too long or not UTF-8 at all. dst and src must not overlap.
 * @returns the length written (strlen(dst)).
 */
size_t msp_utf8_copy(char *dst, size_t dst_size, const char *src);

/**
 * @brief Characters (code points) of a UTF-8 string, for limits stated in characters: every
 *        byte that is not a continuation byte counts one (exact for valid UTF-8, which is
 *        what jansson hands out).
 */
size_t msp_utf8_chars(const char *s);

/** @brief msp_utf8_chars of the len bytes at s (not NUL-terminated). */
size_t msp_utf8_chars_n(const char *s, size_t len);

#endif
