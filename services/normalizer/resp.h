/*
 * resp.h — growable byte buffers and Redis command pipelines built without per-command malloc.
 *
 * The normalizer talks to Redis in pipelines: all the reads of a batch segment go out in one
 * write, then the replies are read in order; all the writes of a segment go out the same way,
 * wrapped in MULTI/EXEC per run of one tenant's commands. Commands are encoded straight into one
 * growable RESP buffer (no hiredis sds per command) and handed to hiredis with a single
 * redisAppendFormattedCommand(); the buffer is kept between batches, so steady state allocates
 * nothing. A pipeline can be sent again after a failure (the bytes stay until nz_pipe_reset()).
 */
#ifndef NZ_RESP_H
#define NZ_RESP_H

#include <stddef.h>
#include <hiredis/hiredis.h>

/** A growable byte buffer. Zero-initialise; nz_buf_free() releases it. */
typedef struct nz_buf_s {
    char  *p;
    size_t len, cap;
} nz_buf_t;

/** @brief Make room for `extra` more bytes. @returns 0 or -1 (out of memory, buffer unchanged). */
int nz_buf_reserve(nz_buf_t *b, size_t extra);

/** @brief Append n bytes. @returns the offset where they start, or -1. */
long nz_buf_append(nz_buf_t *b, const void *data, size_t n);

/** @brief Append a NUL-terminated string including its NUL. @returns its offset, or -1. */
long nz_buf_append_str(nz_buf_t *b, const char *s);

/**
 * @brief Make an array of elem-sized items at *p hold at least need items (capacity doubles from
 * 64). @returns 0 or -1 (out of memory, array unchanged).
 */
int nz_grow(void **p, size_t *cap, size_t need, size_t elem);

/** @brief Forget the contents, keep the memory. */
static inline void nz_buf_reset(nz_buf_t *b) { b->len = 0; }

/** @brief Release the memory. NULL-safe. */
void nz_buf_free(nz_buf_t *b);

/** A pipeline of RESP-encoded commands. Zero-initialise. */
typedef struct nz_pipe_s {
    nz_buf_t buf;
    int      ncmds;
} nz_pipe_t;

/**
 * @brief Append one command whose arguments are the NUL-terminated strings after cmd, ending with
 * NULL, e.g. nz_pipe_cmd(p, "HGET", key, field, NULL). @returns 0 or -1 (out of memory).
 */
int nz_pipe_cmd(nz_pipe_t *p, const char *cmd, ...) __attribute__((sentinel));

/** @brief Same with explicit lengths (binary-safe). */
int nz_pipe_cmdv(nz_pipe_t *p, int argc, const char **argv, const size_t *lens);

/** @brief Drop every queued command, keep the memory. */
void nz_pipe_reset(nz_pipe_t *p);

/** @brief Release the memory. NULL-safe. */
void nz_pipe_free(nz_pipe_t *p);

/**
 * Called once per reply, in command order; the reply is borrowed (freed after the call).
 * Return 0 to go on, -1 to mark the run failed (the remaining replies are still read so that the
 * connection stays in step).
 */
typedef int (nz_reply_cb)(int index, redisReply *reply, void *opaque);

/**
 * @brief Send every queued command and read every reply. The queue is left as it was (reset it
 * after success). With cb NULL, any error reply — also one nested in an EXEC result — fails the
 * run. @returns 0 ok; -1 failed (errstr). After an I/O error c->err is set and c is unusable:
 * replace it (msp_redis_ensure) before the next call.
 */
int nz_pipe_run(redisContext *c, const nz_pipe_t *p, nz_reply_cb *cb, void *opaque,
                char *errstr, size_t errstr_size);

#endif
