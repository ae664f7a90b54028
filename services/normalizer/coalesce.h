/*
 * coalesce.h — one variadic Redis command per key instead of one command per record.
 *
 * A batch's writes are per record: HSET inv:fp:asset <id> <fp>, HSET inv:link <src> <asset>,
 * SADD, ZADD, SREM, SET ... — about a dozen small commands for each record, and Redis spent its
 * time dispatching them (INFO commandstats, docs/benchmarks.md). Within one MULTI/EXEC block the
 * coalescer gathers what goes to the same key into one command (HSET k f1 v1 f2 v2 ..., SADD k m1
 * m2 ..., ZADD k s1 m1 ..., and every SET of the block into one MSET), so that a block costs a
 * command per key it touches.
 *
 * Order is kept where it matters: commands on different keys commute, and the commands on one
 * key go out in the order they were given — a gathered command is emitted before any other
 * command that touches its key (nz_coal_other names the keys of such a command), and a second
 * kind of command on a key (HSET then HDEL) starts a new group after the first. nz_coal_flush
 * emits the rest in the order the groups were opened. Replies change accordingly: callers that
 * only check for errors (the write pipelines) are the only users.
 */
#ifndef NZ_COALESCE_H
#define NZ_COALESCE_H

#include <stddef.h>

/** Receives each command to send, arguments borrowed for the call. @returns 0 or -1. */
typedef int (nz_emit_fn)(void *arg, int argc, const char **argv, const size_t *lens);

typedef struct nz_coal_s nz_coal_t;

/** @brief A coalescer writing through emit(arg, ...). @returns new or NULL. */
nz_coal_t *nz_coal_new(nz_emit_fn *emit, void *arg);

/** @brief Free it (pending commands are dropped). NULL-safe. */
void nz_coal_free(nz_coal_t *c);

/**
 * @brief A command that can be gathered: HSET key f v, HDEL key f, SADD key m, SREM key m,
 * ZADD key score m, SET key v (NUL-terminated arguments after key, NULL-terminated).
 * Anything else is emitted at once as by nz_coal_other. @returns 0 or -1 (out of memory or emit).
 */
int nz_coal_cmd(nz_coal_t *c, const char *cmd, const char *key, ...) __attribute__((sentinel));

/** @brief The same with argv[0] = command, argv[1] = key (argc <= 16, C strings). */
int nz_coal_cmdv(nz_coal_t *c, int argc, const char **argv);

/**
 * @brief Any other command: the pending groups of its keys (keys[0..nkeys)) are emitted first,
 * then argv. @returns 0 or -1.
 */
int nz_coal_other(nz_coal_t *c, int argc, const char **argv, const size_t *lens, int nkeys,
                  const char *const *keys);

/** @brief Emit every pending group, in the order they were opened. @returns 0 or -1. */
int nz_coal_flush(nz_coal_t *c);

/** @brief Drop every pending group without emitting (an aborted batch). */
void nz_coal_discard(nz_coal_t *c);

#endif
