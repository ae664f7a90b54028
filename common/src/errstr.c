/* errstr.c — see errstr.h. */
#include "mspsync/errstr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mspsync/utf8.h"

void msp_set_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (!errstr || errstr_size == 0) return;
    /* Format in full, then copy on a character boundary: a plain vsnprintf cut could end
     * inside a character, and echoed text may not be UTF-8 at all; either way the message
     * would be refused by jansson wherever it is logged or answered. */
    char *full = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&full, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        errstr[msp_utf8_prefix(errstr, errstr_size)] = '\0';
        return;
    }
    msp_utf8_copy(errstr, errstr_size, full);
    free(full);
}
