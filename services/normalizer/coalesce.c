/* coalesce.c — see coalesce.h. */
#include "coalesce.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

enum { K_HSET, K_HDEL, K_SADD, K_SREM, K_ZADD, K_MSET, K_COUNT };
static const char *const kind_cmd[K_COUNT] = {"HSET", "HDEL", "SADD", "SREM", "ZADD", "MSET"};
static const int kind_nargs[K_COUNT] = {2, 1, 1, 1, 2, 2};   /* per item, MSET's include the key */

typedef struct {
    int    kind, alive;
    long   key;          /* offset in strs; unused for MSET */
    size_t key_len;
    int    first, last;  /* argument list (args[].next), -1 = empty */
    int    nargs;
} group_t;

typedef struct {
    long   off;
    size_t len;
    int    next;
} arg_t;

typedef struct {
    long   key;
    size_t key_len;
    int    group;        /* -1 none */
} entry_t;

struct nz_coal_s {
    nz_emit_fn  *emit;
    void        *emit_arg;
    nz_buf_t     strs;
    group_t     *g;
    size_t       ng, gcap;
    arg_t       *a;
    size_t       na, acap;
    entry_t     *e;
    size_t       ne, ecap;
    int         *slots;      /* entry index or -1 */
    size_t       nslots;
    int          mset;       /* the open MSET group or -1 */
    const char **argv;       /* emit scratch */
    size_t      *lens;
    size_t       vcap, lcap;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int rehash(nz_coal_t *c, size_t nslots)
{
    int *s = malloc(nslots * sizeof *s);
    if (!s)
        return -1;
    memset(s, 0xff, nslots * sizeof *s);
    for (size_t i = 0; i < c->ne; i++) {
        size_t j = (size_t)hash(c->strs.p + c->e[i].key, c->e[i].key_len) & (nslots - 1);
        while (s[j] >= 0)
            j = (j + 1) & (nslots - 1);
        s[j] = (int)i;
    }
    free(c->slots);
    c->slots  = s;
    c->nslots = nslots;
    return 0;
}

/* The entry of key, made when absent. @returns its index or -1 (out of memory). */
static int entry(nz_coal_t *c, const char *key, size_t len)
{
    if ((c->ne + 1) * 2 > c->nslots && rehash(c, c->nslots ? c->nslots * 2 : 256) < 0)
        return -1;
    size_t j = (size_t)hash(key, len) & (c->nslots - 1);
    for (; c->slots[j] >= 0; j = (j + 1) & (c->nslots - 1)) {
        const entry_t *e = &c->e[c->slots[j]];
        if (e->key_len == len && memcmp(c->strs.p + e->key, key, len) == 0)
            return c->slots[j];
    }
    long off = nz_buf_append(&c->strs, key, len + 1);   /* with its NUL: argv are C strings */
    if (off < 0 || nz_grow((void **)&c->e, &c->ecap, c->ne + 1, sizeof *c->e) < 0)
        return -1;
    c->e[c->ne] = (entry_t){off, len, -1};
    c->slots[j] = (int)c->ne;
    return (int)c->ne++;
}

/* s is NUL-terminated at len. */
static int add_arg(nz_coal_t *c, group_t *g, const char *s, size_t len)
{
    long off = nz_buf_append(&c->strs, s, len + 1);
    if (off < 0 || nz_grow((void **)&c->a, &c->acap, c->na + 1, sizeof *c->a) < 0)
        return -1;
    c->a[c->na] = (arg_t){off, len, -1};
    if (g->last >= 0)
        c->a[g->last].next = (int)c->na;
    else
        g->first = (int)c->na;
    g->last = (int)c->na++;
    g->nargs++;
    return 0;
}

static int emit_group(nz_coal_t *c, int gi)
{
    group_t *g = &c->g[gi];
    if (!g->alive)
        return 0;
    g->alive = 0;
    if (g->nargs == 0)
        return 0;
    size_t argc = (size_t)g->nargs + 2;
    if (nz_grow((void **)&c->argv, &c->vcap, argc, sizeof *c->argv) < 0 ||
        nz_grow((void **)&c->lens, &c->lcap, argc, sizeof *c->lens) < 0)
        return -1;
    size_t n = 0;
    c->argv[n] = kind_cmd[g->kind];
    c->lens[n++] = strlen(kind_cmd[g->kind]);
    if (g->kind != K_MSET) {
        c->argv[n] = c->strs.p + g->key;
        c->lens[n++] = g->key_len;
    }
    for (int i = g->first; i >= 0; i = c->a[i].next) {
        c->argv[n] = c->strs.p + c->a[i].off;
        c->lens[n++] = c->a[i].len;
    }
    if (gi == c->mset)
        c->mset = -1;
    return c->emit(c->emit_arg, (int)n, c->argv, c->lens);
}

static int new_group(nz_coal_t *c, int kind, long key, size_t key_len)
{
    if (nz_grow((void **)&c->g, &c->gcap, c->ng + 1, sizeof *c->g) < 0)
        return -1;
    c->g[c->ng] = (group_t){kind, 1, key, key_len, -1, -1, 0};
    return (int)c->ng++;
}

static int kind_of(const char *cmd)
{
    for (int k = 0; k < K_MSET; k++)
        if (strcmp(cmd, kind_cmd[k]) == 0)
            return k;
    return strcmp(cmd, "SET") == 0 ? K_MSET : -1;
}

nz_coal_t *nz_coal_new(nz_emit_fn *emit, void *arg)
{
    nz_coal_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->emit     = emit;
    c->emit_arg = arg;
    c->mset     = -1;
    return c;
}

void nz_coal_free(nz_coal_t *c)
{
    if (!c)
        return;
    nz_buf_free(&c->strs);
    free(c->g);
    free(c->a);
    free(c->e);
    free(c->slots);
    free(c->argv);
    free(c->lens);
    free(c);
}

void nz_coal_discard(nz_coal_t *c)
{
    nz_buf_reset(&c->strs);
    c->ng = c->na = c->ne = 0;
    c->mset = -1;
    if (c->slots)
        memset(c->slots, 0xff, c->nslots * sizeof *c->slots);
}

int nz_coal_flush(nz_coal_t *c)
{
    int rc = 0;
    for (size_t i = 0; i < c->ng && rc == 0; i++)
        rc = emit_group(c, (int)i);
    nz_coal_discard(c);
    return rc;
}

int nz_coal_other(nz_coal_t *c, int argc, const char **argv, const size_t *lens, int nkeys,
                  const char *const *keys)
{
    for (int k = 0; k < nkeys; k++) {
        int ei = entry(c, keys[k], strlen(keys[k]));
        if (ei < 0)
            return -1;
        if (c->e[ei].group >= 0 && emit_group(c, c->e[ei].group) < 0)
            return -1;
    }
    return c->emit(c->emit_arg, argc, argv, lens);
}

int nz_coal_cmdv(nz_coal_t *c, int argc, const char **argv)
{
    int kind = argc >= 2 ? kind_of(argv[0]) : -1;
    if (kind < 0 || argc - 2 != (kind == K_MSET ? 1 : kind_nargs[kind])) {
        size_t lens[16];
        if (argc > 16)
            return -1;
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        return nz_coal_other(c, argc, argv, lens, argc >= 2 ? 1 : 0, argv + 1);
    }
    const char *key = argv[1];
    int         ei  = entry(c, key, strlen(key));
    if (ei < 0)
        return -1;
    int gi = c->e[ei].group;
    if (gi >= 0 && c->g[gi].alive && c->g[gi].kind == kind && (kind != K_MSET || gi == c->mset)) {
        /* same kind on the same key: gather */
    } else {
        if (gi >= 0 && emit_group(c, gi) < 0)   /* another kind pending on this key first */
            return -1;
        if (kind == K_MSET) {
            if (c->mset < 0 && (c->mset = new_group(c, K_MSET, 0, 0)) < 0)
                return -1;
            gi = c->mset;
        } else if ((gi = new_group(c, kind, c->e[ei].key, c->e[ei].key_len)) < 0) {
            return -1;
        }
        c->e[ei].group = gi;
    }
    group_t *g = &c->g[gi];
    if (kind == K_MSET && add_arg(c, g, key, strlen(key)) < 0)
        return -1;
    for (int i = 2; i < argc; i++)
        if (add_arg(c, g, argv[i], strlen(argv[i])) < 0)
            return -1;
    return 0;
}

int nz_coal_cmd(nz_coal_t *c, const char *cmd, const char *key, ...)
{
    const char *argv[16] = {cmd, key};
    int         argc     = 2;
    va_list     ap;
    va_start(ap, key);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (argc == 16) {
            va_end(ap);
            return -1;
        }
        argv[argc++] = s;
    }
    va_end(ap);
    return nz_coal_cmdv(c, argc, argv);
}
