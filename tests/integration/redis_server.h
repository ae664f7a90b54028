/*
 * redis_server.h — a redis-server of a C test's own, on a free loopback port (MSPSYNC_REDIS_SERVER
 * overrides the binary). The Python tests have theirs in harness.py.
 */
#ifndef MSPSYNC_TEST_REDIS_SERVER_H
#define MSPSYNC_TEST_REDIS_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct {
    pid_t pid;    /* -1: not running */
    char url[256]; /* "127.0.0.1:<port>", or the URL the test was given */
} test_redis_t;

/** @brief A loopback TCP port free at the time of the call, or -1. */
int test_free_port(void);

/**
 * @brief Start redis-server (no persistence) on one free port after another until the one that
 * answers is this process (up to 5 tries, each waiting up to 20 s: a loaded machine starts it
 * slowly). @returns 0, or -1 (no binary, or no port could be had).
 */
int test_redis_start(test_redis_t *s);

/** @brief SIGTERM (SIGKILL after 2 s) and reap. Safe when not running. */
void test_redis_stop(test_redis_t *s);

/** @brief A connection to s, or the calling cmocka test fails with the reason. */
redisContext *test_redis_connect(const test_redis_t *s);

/** @brief CLOCK_MONOTONIC in microseconds. */
int64_t test_mono_us(void);

#endif
