/* utf8.c — see utf8.h. */
#include "mspsync/utf8.h"

#include <string.h>

size_t msp_utf8_char_len(const unsigned char *p, size_t avail) {
    if (avail == 0) return 0;
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    /* the allowed range of the second byte depends on the lead byte (RFC 3629, section 4) */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
    if (n > avail) return 0;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* surrogates */
    else if (c == 0xF0) lo = 0x90; /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* A NUL is not a continuation byte, so on a NUL-terminated string this never reads past the end. */
static size_t char_len(const unsigned char *p) { return msp_utf8_char_len(p, 4); }

size_t msp_utf8_prefix(const char *s, size_t max_bytes) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = 0;
    while (p[len]) {
        size_t n = char_len(p + len);
        if (n == 0 || n > max_bytes - len) break;
        len += n;
    }
    return len;
}

size_t msp_utf8_chars_n(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

size_t msp_utf8_chars(const char *s) { return msp_utf8_chars_n(s, strlen(s)); }

size_t msp_utf8_copy(char *dst, size_t dst_size, const char *src) {
    static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */
    if (!dst || dst_size == 0) return 0;
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    size_t out = 0, room = dst_size - 1;
    while (*p) {
        size_t n = char_len(p);
        const void *from = n ? (const void *)p : (const void *)REPLACEMENT;
        size_t take = n ? n : sizeof(REPLACEMENT) - 1;
        if (take > room - out) break;
        memcpy(dst + out, from, take);
        out += take;
        p += n ? n : 1;
    }
    dst[out] = '\0';
    return out;
}
