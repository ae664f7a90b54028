/*
 * offtrack.c — per-partition in-flight offsets, committed in order.
 *
 * Each (topic, partition) owns a sorted array of the offsets that began and have not yet been
 * popped, each with a done flag. The live window is [head, len): popping the lowest offsets
 * only advances head, and the array is compacted when the dead prefix grows past half of it, so
 * begin, pop and done (binary search) stay cheap with thousands of messages in flight.
 * Invariant: offs[head] is the lowest offset not yet committable; when the entry at head becomes
 * done, it and every done entry after it are popped and the committable position becomes the
 * last popped offset + 1.
 *
 * Partitions live in a chained hash table keyed by (topic, partition) that doubles as it fills.
 */
#include "mspsync/offtrack.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct part_s {
    struct part_s *next;  /* hash chain */
    char *topic;
    int32_t partition;
    int64_t *offs;
    bool *done;
    size_t head, len, cap;  /* live entries are [head, len) */
    size_t pending;         /* live entries not yet done */
} part_t;

struct msp_offtrack_s {
    part_t **buckets;
    size_t nbuckets;
    size_t nparts;
    int inflight;           /* begun and not done, across partitions */
};

static uint64_t part_hash(const char *topic, int32_t partition) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= (uint32_t)partition;
    h *= 1099511628211ULL;
    return h ^ (h >> 29);
}

msp_offtrack_t *msp_offtrack_new(void) {
    msp_offtrack_t *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->nbuckets = 16;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    return t;
}

static void part_free(part_t *p) {
    free(p->topic);
    free(p->offs);
    free(p->done);
    free(p);
}

void msp_offtrack_destroy(msp_offtrack_t *t) {
    if (!t) return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        part_t *p = t->buckets[i];
        while (p) {
            part_t *next = p->next;
            part_free(p);
            p = next;
        }
    }
    free(t->buckets);
    free(t);
}

static part_t **part_slot(msp_offtrack_t *t, const char *topic, int32_t partition) {
    part_t **pp = &t->buckets[part_hash(topic, partition) & (t->nbuckets - 1)];
    while (*pp && ((*pp)->partition != partition || strcmp((*pp)->topic, topic) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow_table(msp_offtrack_t *t) {
    size_t n = t->nbuckets * 2;
    part_t **b = calloc(n, sizeof(*b));
    if (!b) return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        part_t *p = t->buckets[i];
        while (p) {
            part_t *next = p->next;
            size_t k = part_hash(p->topic, p->partition) & (n - 1);
            p->next = b[k];
            b[k] = p;
            p = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static part_t *part_get(msp_offtrack_t *t, const char *topic, int32_t partition, bool create) {
    part_t **pp = part_slot(t, topic, partition);
    if (*pp || !create) return *pp;
    part_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    *pp = p;
    if (++t->nparts > t->nbuckets * 2) grow_table(t);
    return p;
}

/* Make room for one more live entry at the end. */
static int part_reserve(part_t *p) {
    if (p->head > 0 && (p->len == p->cap || p->head * 2 >= p->len)) {
        size_t live = p->len - p->head;
        memmove(p->offs, p->offs + p->head, live * sizeof(*p->offs));
        memmove(p->done, p->done + p->head, live * sizeof(*p->done));
        p->head = 0;
        p->len = live;
    }
    if (p->len < p->cap) return 0;
    size_t cap = p->cap ? p->cap * 2 : 64;
    int64_t *offs = realloc(p->offs, cap * sizeof(*offs));
    if (!offs) return -1;
    p->offs = offs;
    bool *done = realloc(p->done, cap * sizeof(*done));
    if (!done) return -1;
    p->done = done;
    p->cap = cap;
    return 0;
}

/* Index of the first live entry >= offset. */
static size_t lower_bound(const part_t *p, int64_t offset) {
    size_t lo = p->head, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->offs[mid] < offset) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int msp_offtrack_begin(msp_offtrack_t *t, const char *topic, int32_t partition, int64_t offset) {
    if (!t || !topic || offset < 0) return -1;
    part_t *p = part_get(t, topic, partition, true);
    if (!p || part_reserve(p) != 0) return -1;
    size_t i = p->len;
    if (p->len > p->head && p->offs[p->len - 1] >= offset) {
        /* not ascending (should not happen): keep the array sorted anyway */
        i = lower_bound(p, offset);
        if (i < p->len && p->offs[i] == offset) return -1; /* already in flight */
        memmove(p->offs + i + 1, p->offs + i, (p->len - i) * sizeof(*p->offs));
        memmove(p->done + i + 1, p->done + i, (p->len - i) * sizeof(*p->done));
    }
    p->offs[i] = offset;
    p->done[i] = false;
    p->len++;
    p->pending++;
    t->inflight++;
    return 0;
}

int64_t msp_offtrack_done(msp_offtrack_t *t, const char *topic, int32_t partition, int64_t offset) {
    if (!t || !topic) return -1;
    part_t *p = part_get(t, topic, partition, false);
    if (!p) return -1;
    size_t i = lower_bound(p, offset);
    if (i == p->len || p->offs[i] != offset || p->done[i]) return -1; /* unknown or twice */
    p->done[i] = true;
    p->pending--;
    t->inflight--;
    if (i != p->head) return -1; /* a lower offset is still in flight */
    int64_t last = offset;
    while (p->head < p->len && p->done[p->head]) last = p->offs[p->head++];
    if (p->head == p->len) p->head = p->len = 0;
    return last + 1;
}

void msp_offtrack_forget(msp_offtrack_t *t, const char *topic, int32_t partition) {
    if (!t || !topic) return;
    part_t **pp = part_slot(t, topic, partition);
    part_t *p = *pp;
    if (!p) return;
    *pp = p->next;
    t->inflight -= (int)p->pending;
    t->nparts--;
    part_free(p);
}

int msp_offtrack_inflight(const msp_offtrack_t *t) { return t ? t->inflight : 0; }
