/*
 * errstr.h — the one way common/ writes a human error into a caller's errstr buffer
 * (librdkafka style: char *errstr, size_t errstr_size; NULL or size 0 means "not wanted").
 */
#ifndef MSPSYNC_ERRSTR_H
#define MSPSYNC_ERRSTR_H

#include <stddef.h>

/** @brief printf into errstr, cut on a UTF-8 character boundary, bytes that are not UTF-8
 *         replaced by U+FFFD (see utf8.h); does nothing when errstr is NULL or size 0. */
void msp_set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
