/*
 * task.c — one piece of blocking work on a thread of its own, polled by the event loop (task.h).
 */
#include "mspsync/task.h"

static void *task_main(void *opaque) {
    msp_task_t *t = opaque;
    t->fn(t->arg);
    atomic_store(&t->ended, 1);
    return NULL;
}

int msp_task_start(msp_task_t *t, void (*fn)(void *arg), void *arg) {
    if (t->started)
        return 0;
    t->fn = fn;
    t->arg = arg;
    atomic_store(&t->ended, 0);
    if (pthread_create(&t->th, NULL, task_main, t) != 0)
        return -1;
    t->started = 1;
    return 1;
}

int msp_task_busy(const msp_task_t *t) { return t->started; }

int msp_task_reap(msp_task_t *t) {
    if (!t->started || !atomic_load(&t->ended))
        return 0;
    pthread_join(t->th, NULL);
    t->started = 0;
    return 1;
}

void msp_task_join(msp_task_t *t) {
    if (!t || !t->started)
        return;
    pthread_join(t->th, NULL);
    t->started = 0;
}
