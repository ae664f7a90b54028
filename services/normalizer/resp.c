/*
 * resp.c — RESP encoding into one reusable buffer and pipelined execution (see resp.h).
 *
 * Invariant: after nz_pipe_run() returns, exactly p->ncmds replies have been consumed from the
 * connection, or the connection is in error. A pipeline is never left half-read, otherwise the
 * next command would get a stale reply.
 */
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nz_buf_reserve(nz_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p   = p;
    b->cap = cap;
    return 0;
}

long nz_buf_append(nz_buf_t *b, const void *data, size_t n)
{
    if (nz_buf_reserve(b, n) < 0)
        return -1;
    long off = (long)b->len;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return off;
}

long nz_buf_append_str(nz_buf_t *b, const char *s)
{
    return nz_buf_append(b, s, strlen(s) + 1);
}

void nz_buf_free(nz_buf_t *b)
{
    if (!b)
        return;
    free(b->p);
    b->p   = NULL;
    b->len = b->cap = 0;
}

/* "<prefix><n>\r\n" without snprintf's locale machinery on the hot path. */
static void put_len(nz_buf_t *b, char prefix, size_t n)
{
    char tmp[24];
    int  i = (int)sizeof tmp;
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    tmp[--i] = prefix;
    memcpy(b->p + b->len, tmp + i, sizeof tmp - (size_t)i);
    b->len += sizeof tmp - (size_t)i;
}

int nz_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (*cap >= need)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p   = q;
    *cap = n;
    return 0;
}

int nz_pipe_cmdv(nz_pipe_t *p, int argc, const char **argv, const size_t *lens)
{
    size_t need = 24;
    for (int i = 0; i < argc; i++)
        need += 24 + lens[i] + 2;
    if (nz_buf_reserve(&p->buf, need) < 0)
        return -1;
    put_len(&p->buf, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        put_len(&p->buf, '$', lens[i]);
        memcpy(p->buf.p + p->buf.len, argv[i], lens[i]);
        p->buf.len += lens[i];
        p->buf.p[p->buf.len++] = '\r';
        p->buf.p[p->buf.len++] = '\n';
    }
    p->ncmds++;
    return 0;
}

int nz_pipe_cmd(nz_pipe_t *p, const char *cmd, ...)
{
    const char *argv[16];
    size_t      lens[16];
    int         argc = 0;
    va_list     ap;

    argv[argc] = cmd;
    lens[argc] = strlen(cmd);
    argc++;
    va_start(ap, cmd);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (argc == 16) {
            va_end(ap);
            return -1;
        }
        argv[argc] = s;
        lens[argc] = strlen(s);
        argc++;
    }
    va_end(ap);
    return nz_pipe_cmdv(p, argc, argv, lens);
}

void nz_pipe_reset(nz_pipe_t *p)
{
    nz_buf_reset(&p->buf);
    p->ncmds = 0;
}

void nz_pipe_free(nz_pipe_t *p)
{
    if (!p)
        return;
    nz_buf_free(&p->buf);
    p->ncmds = 0;
}

/* First error reply in r (EXEC answers an array whose elements may be errors). */
static const redisReply *find_error(const redisReply *r)
{
    if (!r)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR)
        return r;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = find_error(r->element[i]);
            if (e)
                return e;
        }
    return NULL;
}

int nz_pipe_run(redisContext *c, const nz_pipe_t *p, nz_reply_cb *cb, void *opaque,
                char *errstr, size_t errstr_size)
{
    int failed = 0;

    if (p->ncmds == 0)
        return 0;
    if (!c || c->err) {
        snprintf(errstr, errstr_size, "redis not connected%s%s", c ? ": " : "", c ? c->errstr : "");
        return -1;
    }
    if (redisAppendFormattedCommand(c, p->buf.p, p->buf.len) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis append: %s", c->errstr);
        return -1;
    }
    for (int i = 0; i < p->ncmds; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK || !v) {
            snprintf(errstr, errstr_size, "redis reply %d/%d: %s", i + 1, p->ncmds,
                     c->errstr[0] ? c->errstr : "no reply");
            if (v)
                freeReplyObject(v);
            return -1;          /* c->err is set: the caller reconnects */
        }
        redisReply *r = v;
        if (cb) {
            if (cb(i, r, opaque) < 0 && !failed) {
                failed = 1;
                snprintf(errstr, errstr_size, "redis reply %d/%d rejected%s%s", i + 1, p->ncmds,
                         r->type == REDIS_REPLY_ERROR ? ": " : "",
                         r->type == REDIS_REPLY_ERROR ? r->str : "");
            }
        } else {
            const redisReply *e = find_error(r);
            if (e && !failed) {
                failed = 1;
                snprintf(errstr, errstr_size, "redis command %d/%d: %s", i + 1, p->ncmds, e->str);
            }
        }
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}
