/*
 * redis_server.c — see redis_server.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mspsync/redis.h"

int test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* 1: the server on url answers and is process pid (INFO server's process_id): the port was free
 * when chosen, but another test's redis-server may have taken it since and answer in our place.
 * 0: no answer yet. -1: someone else answers. */
static int server_is(const char *url, pid_t pid) {
    char err[128];
    redisContext *c = msp_redis_connect(url, err, sizeof(err));
    if (!c)
        return 0;
    int rc = 0;
    redisReply *r = redisCommand(c, "INFO server");
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "process_id:");
        rc = p && atol(p + strlen("process_id:")) == (long)pid ? 1 : p ? -1 : 0;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

int test_redis_start(test_redis_t *s) {
    const char *bin = getenv("MSPSYNC_REDIS_SERVER");
    if (!bin || !*bin)
        bin = "redis-server";
    s->pid = -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = test_free_port();
        if (port < 0)
            return -1;
        char portstr[16];
        snprintf(portstr, sizeof(portstr), "%d", port);
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, STDOUT_FILENO);
            execlp(bin, bin, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--daemonize", "no", (char *)NULL);
            _exit(127);
        }
        s->pid = pid;
        snprintf(s->url, sizeof(s->url), "127.0.0.1:%d", port);
        int status, who = 0;
        for (int i = 0; i < 400 && who == 0; i++) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                s->pid = -1;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                    return -1; /* no binary */
                break;         /* exited: the port was taken; another one */
            }
            who = server_is(s->url, pid);
            if (who == 0)
                usleep(50000);
        }
        if (who == 1)
            return 0;
        test_redis_stop(s);
    }
    return -1;
}

void test_redis_stop(test_redis_t *s) {
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    int status;
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = -1;
            return;
        }
        usleep(20000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = -1;
}

redisContext *test_redis_connect(const test_redis_t *s) {
    char err[256] = "";
    redisContext *c = msp_redis_connect(s->url, err, sizeof(err));
    if (!c)
        fail_msg("connect %s: %s", s->url, err);
    return c;
}

int64_t test_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
