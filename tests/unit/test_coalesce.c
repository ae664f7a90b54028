/*
 * test_coalesce.c — the normalizer's write coalescer leaves Redis as the uncoalesced commands do.
 *
 * Random blocks of HSET/HDEL/SADD/SREM/ZADD/SET and of other commands (DEL over several keys,
 * an EVAL-like command naming its key) are applied to a small model of Redis twice: command by
 * command, and through nz_coal_*; the two end states must be equal, and the coalesced run must
 * need fewer commands. The model (jansson objects) knows only what these commands do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coalesce.h"

typedef struct {
    json_t *db;      /* key -> {"t": type, "v": object or string} */
    int     ncmds;
} model_t;

static json_t *value_of(model_t *m, const char *key, const char *type)
{
    json_t *e = json_object_get(m->db, key);
    if (!e) {
        e = json_pack("{s:s,s:o}", "t", type, "v", json_object());
        json_object_set_new(m->db, key, e);
    }
    return json_object_get(e, "v");
}

static void drop_empty(model_t *m, const char *key)
{
    json_t *e = json_object_get(m->db, key);
    if (e && json_is_object(json_object_get(e, "v")) && json_object_size(json_object_get(e, "v")) == 0)
        json_object_del(m->db, key);
}

/* Apply one command; "OTHER key..." deletes its keys (like DEL), "NOTE key v" appends v to a
 * string (order-sensitive, like an EVAL that reads and writes its key). */
static int apply(void *arg, int argc, const char **argv, const size_t *lens)
{
    (void)lens;
    model_t    *m   = arg;
    const char *cmd = argv[0];
    m->ncmds++;
    if (strcmp(cmd, "MSET") == 0) {
        for (int i = 1; i + 1 < argc; i += 2)
            json_object_set_new(m->db, argv[i], json_pack("{s:s,s:s}", "t", "str", "v", argv[i + 1]));
        return 0;
    }
    if (strcmp(cmd, "SET") == 0) {
        json_object_set_new(m->db, argv[1], json_pack("{s:s,s:s}", "t", "str", "v", argv[2]));
        return 0;
    }
    if (strcmp(cmd, "OTHER") == 0) {
        for (int i = 1; i < argc; i++)
            json_object_del(m->db, argv[i]);
        return 0;
    }
    if (strcmp(cmd, "NOTE") == 0) {
        json_t     *e   = json_object_get(m->db, argv[1]);
        const char *old = e ? json_string_value(json_object_get(e, "v")) : NULL;
        char        buf[4096];
        snprintf(buf, sizeof buf, "%s%s", old ? old : "", argv[2]);
        json_object_set_new(m->db, argv[1], json_pack("{s:s,s:s}", "t", "str", "v", buf));
        return 0;
    }
    const char *key = argv[1];
    if (strcmp(cmd, "HSET") == 0 || strcmp(cmd, "ZADD") == 0) {
        json_t *v = value_of(m, key, cmd[0] == 'H' ? "hash" : "zset");
        for (int i = 2; i + 1 < argc; i += 2)   /* HSET f v / ZADD score member */
            json_object_set_new(v, argv[cmd[0] == 'H' ? i : i + 1],
                                json_string(argv[cmd[0] == 'H' ? i + 1 : i]));
    } else if (strcmp(cmd, "SADD") == 0) {
        json_t *v = value_of(m, key, "set");
        for (int i = 2; i < argc; i++)
            json_object_set_new(v, argv[i], json_true());
    } else if (strcmp(cmd, "HDEL") == 0 || strcmp(cmd, "SREM") == 0) {
        json_t *e = json_object_get(m->db, key);
        for (int i = 2; e && i < argc; i++)
            json_object_del(json_object_get(e, "v"), argv[i]);
        drop_empty(m, key);
    } else {
        fail_msg("unexpected command %s", cmd);
    }
    return 0;
}

static uint64_t rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void random_blocks_end_in_the_same_state(void **state)
{
    (void)state;
    static const char *const hkeys[] = {"h1", "h2", "h3"}, *const skeys[] = {"s1", "s2"},
                             *const strs[] = {"k1", "k2", "k3"}, *const fields[] = {"a", "b", "c", "d"};
    long direct_total = 0, coal_total = 0;
    for (int block = 0; block < 3000; block++) {
        model_t    direct = {json_object(), 0}, coal = {json_object(), 0};
        nz_coal_t *c      = nz_coal_new(apply, &coal);
        assert_non_null(c);
        for (int i = 0, n = 1 + (int)rnd(40); i < n; i++) {
            char        val[16];
            const char *f = fields[rnd(4)];
            snprintf(val, sizeof val, "v%d", i);
            const char *argv[4];
            size_t      lens[4] = {0};
            switch (rnd(8)) {
            case 0: argv[0] = "HSET"; argv[1] = hkeys[rnd(3)]; argv[2] = f; argv[3] = val;
                    apply(&direct, 4, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "HSET", argv[1], f, val, NULL), 0); break;
            case 1: argv[0] = "HDEL"; argv[1] = hkeys[rnd(3)]; argv[2] = f;
                    apply(&direct, 3, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "HDEL", argv[1], f, NULL), 0); break;
            case 2: argv[0] = "SADD"; argv[1] = skeys[rnd(2)]; argv[2] = f;
                    apply(&direct, 3, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "SADD", argv[1], f, NULL), 0); break;
            case 3: argv[0] = "SREM"; argv[1] = skeys[rnd(2)]; argv[2] = f;
                    apply(&direct, 3, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "SREM", argv[1], f, NULL), 0); break;
            case 4: argv[0] = "ZADD"; argv[1] = "z"; argv[2] = val; argv[3] = f;
                    apply(&direct, 4, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "ZADD", "z", val, f, NULL), 0); break;
            case 5: argv[0] = "SET"; argv[1] = strs[rnd(3)]; argv[2] = val;
                    apply(&direct, 3, argv, lens);
                    assert_int_equal(nz_coal_cmd(c, "SET", argv[1], val, NULL), 0); break;
            case 6: {   /* a command over several keys of several kinds */
                const char *keys[2] = {rnd(2) ? hkeys[rnd(3)] : skeys[rnd(2)], strs[rnd(3)]};
                const char *av[3]   = {"OTHER", keys[0], keys[1]};
                apply(&direct, 3, av, lens);
                assert_int_equal(nz_coal_other(c, 3, av, lens, 2, keys), 0);
                break;
            }
            default: {  /* order-sensitive on a string key also written by SET */
                const char *key   = strs[rnd(3)];
                const char *av[3] = {"NOTE", key, val};
                apply(&direct, 3, av, lens);
                assert_int_equal(nz_coal_other(c, 3, av, lens, 1, &key), 0);
                break;
            }
            }
        }
        assert_int_equal(nz_coal_flush(c), 0);
        if (!json_equal(direct.db, coal.db)) {
            char *a = json_dumps(direct.db, JSON_SORT_KEYS), *b = json_dumps(coal.db, JSON_SORT_KEYS);
            fail_msg("block %d: direct %s, coalesced %s", block, a, b);
        }
        assert_true(coal.ncmds <= direct.ncmds);
        direct_total += direct.ncmds;
        coal_total += coal.ncmds;
        nz_coal_free(c);
        json_decref(direct.db);
        json_decref(coal.db);
    }
    print_message("commands: %ld direct, %ld coalesced\n", direct_total, coal_total);
    assert_true(coal_total * 4 < direct_total * 3);   /* it does gather */
}

static void one_key_per_command_for_a_batch_of_records(void **state)
{
    (void)state;
    model_t    m = {json_object(), 0};
    nz_coal_t *c = nz_coal_new(apply, &m);
    char       id[16], fp[16];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "src%d", i);
        snprintf(fp, sizeof fp, "fp%d", i);
        assert_int_equal(nz_coal_cmd(c, "HSET", "t:inv:fp:asset", id, fp, NULL), 0);
        assert_int_equal(nz_coal_cmd(c, "SREM", "t:inv:srcgone:asset", id, NULL), 0);
        assert_int_equal(nz_coal_cmd(c, "HSET", "t:inv:seen:asset", id, "job", NULL), 0);
        assert_int_equal(nz_coal_cmd(c, "SET", id, fp, NULL), 0);
    }
    assert_int_equal(nz_coal_flush(c), 0);
    assert_int_equal(m.ncmds, 4);   /* HSET fp, SREM srcgone, HSET seen, MSET */
    assert_int_equal(json_object_size(json_object_get(json_object_get(m.db, "t:inv:fp:asset"), "v")), 500);
    nz_coal_free(c);
    json_decref(m.db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_blocks_end_in_the_same_state),
        cmocka_unit_test(one_key_per_command_for_a_batch_of_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
