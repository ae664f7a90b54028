/* errstr.c — see errstr.h. */
#include "mspsync/errstr.h"

#include <stdarg.h>
#include <stdio.h>

void msp_set_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (!errstr || errstr_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}
