/*
 * test_vendor.c — the vendor table: lookup by name, every row complete, record types in
 * dependency order, the hints and permissions a row gives, and the pagers' plans walked over
 * canned answers (no network): Syncro's numbered pages, ConnectWise RMM's definitions →
 * companies → devices of 4 companies → custom fields, and the cursors both write and resume from.
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

#include <event2/event.h>

#include "mspsync/vendor.h"

/* ------------------------------------------------------------------------------ the table */

static void test_vendors_are_found_by_name_once(void **state) {
    (void)state;
    assert_ptr_equal(msp_vendor_find("syncro"), &msp_vendor_syncro);
    assert_ptr_equal(msp_vendor_find("cwrmm"), &msp_vendor_cwrmm);
    assert_null(msp_vendor_find("ninja"));
    assert_null(msp_vendor_find("Syncro"));
    assert_null(msp_vendor_find(NULL));
    assert_ptr_equal(msp_vendor_implied(), &msp_vendor_syncro);
    char names[64];
    assert_string_equal(msp_vendor_names(names, sizeof(names)), "\"syncro\" or \"cwrmm\"");
}

static void test_rows_are_listed_at_their_id(void **state) {
    (void)state;
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        assert_non_null(v);
        assert_int_equal(v->id, i);
        assert_ptr_equal(msp_vendor_find(v->name), v);
    }
    assert_null(msp_vendor_at(MSP_VENDOR_COUNT));
}

/* The registry (vendors.def) is the one list: every line's row is listed at its id, its symbol
 * msp_vendor_<name> is the row named name, names are unique, and the rate settings keep the
 * MSPSYNC_<ID>_RATE_MILLI / _BURST spelling operators set. */
static void test_registry_lines_are_the_rows(void **state) {
    (void)state;
    static const struct {
        int id;
        const char *upper, *name;
        const msp_vendor_t *row;
    } lines[] = {
#define MSP_VENDOR(ID, name) {MSP_VENDOR_##ID, #ID, #name, &msp_vendor_##name},
#include "mspsync/vendors.def"
    };
    assert_int_equal(sizeof(lines) / sizeof(lines[0]), MSP_VENDOR_COUNT);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        char env[96];
        assert_int_equal(lines[i].id, i);
        assert_ptr_equal(msp_vendor_at(i), lines[i].row);
        assert_int_equal(lines[i].row->id, i);
        assert_string_equal(lines[i].row->name, lines[i].name);
        snprintf(env, sizeof(env), "MSPSYNC_%s_RATE_MILLI", lines[i].upper);
        assert_string_equal(lines[i].row->rate.rate_env, env);
        snprintf(env, sizeof(env), "MSPSYNC_%s_BURST", lines[i].upper);
        assert_string_equal(lines[i].row->rate.burst_env, env);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(lines[k].name, lines[i].name);
    }
}

/* The rate settings are read once for every row: two config rows per vendor, at its id. */
static void test_rate_rows_cover_every_row(void **state) {
    (void)state;
    msp_vendor_rates_t rates;
    msp_config_entry_t rows[2 * MSP_VENDOR_COUNT + 1];
    memset(&rates, 0, sizeof(rates));
    memset(rows, 0, sizeof(rows));
    assert_int_equal(msp_vendor_rate_rows(&rates, NULL, 0), 2 * MSP_VENDOR_COUNT);
    assert_int_equal(msp_vendor_rate_rows(&rates, rows, 2 * MSP_VENDOR_COUNT),
                     2 * MSP_VENDOR_COUNT);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        assert_string_equal(rows[2 * i].name, v->rate.rate_env);
        assert_string_equal(rows[2 * i].def, v->rate.rate_def);
        assert_ptr_equal(rows[2 * i].dest, &rates.milli[i]);
        assert_string_equal(rows[2 * i + 1].name, v->rate.burst_env);
        assert_ptr_equal(rows[2 * i + 1].dest, &rates.burst[i]);
    }
    /* loaded through a table like a service's: the defaults land at each row's id */
    const msp_config_entry_t tbl[] = {
        {"(vendor rates)", MSP_CFG_EXPAND, NULL, NULL, &rates, 0, 0, 0, msp_vendor_rate_rows},
        {NULL},
    };
    char err[256];
    assert_int_equal(msp_config_load("test", tbl, 0, NULL, err, sizeof(err)), 0);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        assert_int_equal(rates.milli[i], atoll(v->rate.rate_def));
        assert_int_equal(msp_vendor_rate_burst(&rates, v), atoll(v->rate.burst_def));
        assert_true(msp_vendor_rate_per_s(&rates, v) * 1000.0 == (double)rates.milli[i]);
    }
}

/* The per-process auth state is made and freed through the rows: a slot for each row that has
 * one (ConnectWise RMM's token cache), none for a row whose key is its header (Syncro); a call
 * cancelled after the close touches nothing; a failed open leaves nothing open. */
static void test_auth_state_comes_from_the_rows(void **state) {
    (void)state;
    struct event_base *base = event_base_new();
    msp_http_opts_t hopts = {.timeout_ms = 1000};
    msp_http_t *http = msp_http_new(base, &hopts);
    redisContext *redis = NULL;
    msp_vendor_auth_t a;
    msp_vendor_auth_env_t env = {base, http, &redis, NULL, 1000};
    assert_int_equal(msp_vendor_auth_open(&a, &env), 0);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        assert_true(!v->auth_new == !v->auth_free);
        assert_true(!v->auth_new == !msp_vendor_auth_state(&a, v));
        /* a row that defers authentication keeps its state there */
        assert_true(!v->auth_cancel || v->auth_new);
    }
    assert_null(msp_vendor_auth_state(&a, &msp_vendor_syncro));
    assert_non_null(msp_vendor_auth_state(&a, &msp_vendor_cwrmm));
    msp_vendor_auth_close(&a);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
        assert_null(a.state[i]);
    msp_cwrmm_integration_t in;
    memset(&in, 0, sizeof(in));
    msp_vendor_cred_t cred = {&msp_vendor_cwrmm, &in};
    msp_vendor_auth_cancel(&a, &cred, &in); /* closed: nothing to cancel, nothing touched */
    msp_vendor_auth_close(&a);
    msp_vendor_auth_close(NULL);
    env.http = NULL; /* the token cache cannot be made: nothing stays open */
    assert_int_equal(msp_vendor_auth_open(&a, &env), -1);
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
        assert_null(a.state[i]);
    msp_http_destroy(http);
    event_base_free(base);
}

static void assert_pager_complete(const msp_pager_ops_t *o) {
    assert_non_null(o);
    assert_non_null(o->create);
    assert_non_null(o->seek);
    assert_non_null(o->cursor);
    assert_non_null(o->request);
    assert_non_null(o->classify);
    assert_non_null(o->response);
    assert_non_null(o->progress);
    assert_non_null(o->advance);
    assert_non_null(o->destroy);
}

static void assert_row_complete(const msp_vendor_t *v) {
    assert_true(v->name && v->name[0] && v->label && v->label[0]);
    assert_true(v->sealed_field && v->sealed_field[0]);
    assert_non_null(v->stats_prefix);
    assert_true(v->rate.rate_env && v->rate.rate_def && atoll(v->rate.rate_def) > 0);
    assert_true(atoll(v->rate.rate_def) <= v->rate.rate_max && v->rate.rate_help);
    assert_true(v->rate.burst_env && v->rate.burst_def && atoll(v->rate.burst_def) > 0);
    assert_true(atoll(v->rate.burst_def) <= v->rate.burst_max && v->rate.burst_help);
    assert_true(v->rate.bucket_tag && v->rate.bucket_tag[0]);
    assert_non_null(v->describe);
    assert_non_null(v->forbidden);
    assert_true(v->cred_new && v->cred_fields && v->cred_fields[0] && v->cred_from_reply &&
                v->cred_free && v->cred_base_url && v->cred_bucket);
    assert_non_null(v->id_valid);
    assert_non_null(v->auth_get);
    /* a vendor that defers authentication must let a waiter go */
    assert_true(!v->auth_rejected || v->auth_cancel);
    for (int k = 0; k < MSP_HINT_COUNT; k++)
        if (k != MSP_HINT_FORBIDDEN)
            assert_true(v->hints[k] && v->hints[k][0]);
    /* the gateway's GET and DELETE of it: what it shows, and keys that fit one DEL */
    assert_true(v->admin && v->admin->shown);
    size_t drop = 0;
    for (const char *const *k = v->extra_keys; k && *k; k++)
        drop++;
    for (const char *const *k = v->admin->removal_keys; k && *k; k++)
        drop++;
    assert_true(drop <= MSP_VENDOR_DROP_KEYS_MAX);
    drop = 0;
    for (const char *const *k = v->admin->purge_keys; k && *k; k++)
        drop++;
    assert_true(drop <= MSP_VENDOR_DROP_KEYS_MAX);
    assert_true(!v->admin->purge_keys || v->admin->delete_alone_purges);
    assert_true(v->types_cnt > 0 && v->types_cnt <= MSP_VENDOR_TYPES_MAX);
    for (size_t i = 0; i < v->types_cnt; i++) {
        const msp_vendor_type_t *t = &v->types[i];
        assert_true(t->type && t->plural && t->map);
        assert_pager_complete(t->pager);
        assert_ptr_equal(msp_vendor_type(v, t->type), t);
        assert_ptr_equal(msp_vendor_type(v, t->plural), t);
        assert_non_null(msp_vendor_permissions(v, t->feature));
        /* a pass that can be partial must keep the mark it starts from */
        assert_true(!t->pager->partial || t->pager->mark);
    }
}

static void test_every_row_sets_every_required_field(void **state) {
    (void)state;
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
        assert_row_complete(msp_vendor_at(i));
}

static void test_customers_sync_before_assets(void **state) {
    (void)state;
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        assert_string_equal(v->types[0].type, "customer");
        assert_string_equal(v->types[v->types_cnt - 1].type, "asset");
        assert_null(msp_vendor_type(v, "incident"));
    }
    /* the guides: tickets and users alongside customers, devices and settings after them */
    static const char *const syncro[] = {"customer", "contact", "ticket", "setting", "asset"};
    assert_int_equal(msp_vendor_syncro.types_cnt, 5);
    for (size_t k = 0; k < 5; k++)
        assert_string_equal(msp_vendor_syncro.types[k].type, syncro[k]);
    assert_int_equal(msp_vendor_cwrmm.types_cnt, 2);
    assert_string_equal(msp_vendor_syncro.types[1].feature, "contacts");
    assert_string_equal(msp_vendor_syncro.types[2].feature, "tickets");
}

static void test_job_types_are_taken_in_dependency_order(void **state) {
    (void)state;
    json_t *names = json_pack("[s,s]", "assets", "customers");
    int idx[MSP_VENDOR_TYPES_MAX];
    size_t n = 0;
    assert_int_equal(msp_vendor_types_wanted(&msp_vendor_cwrmm, names, idx, &n), -1);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    json_decref(names);
    names = json_pack("[s,s]", "assets", "customer");
    assert_int_equal(msp_vendor_types_wanted(&msp_vendor_syncro, names, idx, &n), 1);
    json_decref(names);
    char said[64];
    assert_string_equal(msp_vendor_type_names(&msp_vendor_cwrmm, " and/or ", said, sizeof(said)),
                        "\"customers\" and/or \"assets\"");
}

static void test_only_syncro_is_the_merge_primary(void **state) {
    (void)state;
    assert_true(msp_vendor_syncro.merge_primary);
    assert_false(msp_vendor_cwrmm.merge_primary);
    assert_string_equal(msp_vendor_syncro.stats_prefix, "");
    assert_string_equal(msp_vendor_cwrmm.stats_prefix, "cwrmm_");
}

static void test_forbidden_hints_name_the_permission_of_the_call(void **state) {
    char hint[300];
    (void)state;
    msp_vendor_hint(&msp_vendor_syncro, MSP_HINT_FORBIDDEN, "GET", "customer_assets", hint,
                    sizeof(hint));
    assert_string_equal(hint, "update the API key or grant its group \"Assets - List/Search\" in "
                              "Syncro, then save the integration again");
    msp_vendor_hint(&msp_vendor_cwrmm, MSP_HINT_FORBIDDEN, "GET",
                    "/api/platform/v1/company/companies", hint, sizeof(hint));
    assert_string_equal(hint, "grant the API client the scope \"platform.companies.read\" in "
                              "ConnectWise RMM (or fix its credentials), then save the "
                              "integration again");
    msp_vendor_hint(&msp_vendor_cwrmm, MSP_HINT_KEPT_FAILING, NULL, NULL, hint, sizeof(hint));
    assert_string_equal(hint, "ConnectWise RMM kept failing; check its status page or the network");
}

static void test_feature_permissions_cover_the_pagers_calls(void **state) {
    (void)state;
    const char *const *p = msp_vendor_permissions(&msp_vendor_syncro, "assets");
    assert_string_equal(p[0], "Assets - List/Search");
    p = msp_vendor_permissions(&msp_vendor_cwrmm, "customers");
    assert_string_equal(p[0], "platform.companies.read");
    assert_null(msp_vendor_permissions(&msp_vendor_cwrmm, "billing"));
}

/* A type's sync is switched by a feature: each row declares the feature with its permissions. */
static void test_every_type_names_a_declared_feature(void **state) {
    (void)state;
    for (size_t i = 0; msp_vendor_at(i); i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        for (size_t k = 0; k < v->types_cnt; k++) {
            assert_non_null(v->types[k].feature);
            assert_non_null(msp_vendor_permissions(v, v->types[k].feature));
        }
    }
    assert_string_equal(msp_vendor_type(&msp_vendor_syncro, "asset")->feature, "assets");
}

static void test_record_ids_are_checked_by_the_vendors_rule(void **state) {
    (void)state;
    assert_true(msp_vendor_syncro.id_valid("1234567890123"));
    assert_false(msp_vendor_syncro.id_valid("12a"));
    assert_false(msp_vendor_syncro.id_valid(""));
    assert_true(msp_vendor_cwrmm.id_valid("3f1c-77ab_X"));
    assert_false(msp_vendor_cwrmm.id_valid("a/b"));
    assert_false(msp_vendor_cwrmm.id_valid(""));
}

/* ------------------------------------------------------------------------------ the pagers */

/* A canned answer; body is copied (the pagers never keep it). */
static msp_http_response_t answer(long status, const char *body, const char *link_next) {
    msp_http_response_t r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = strdup(body);
    r.body_len = strlen(body);
    r.retry_after_ms = -1;
    r.link_next = link_next ? strdup(link_next) : NULL;
    return r;
}

static void answer_free(msp_http_response_t *r) {
    free(r->body);
    free(r->link_next);
}

/* Ask the next request, check its method and path, and feed it the canned answer. */
static msp_pager_step_t step(const msp_pager_ops_t *o, msp_pager_t *p, const char *method,
                             const char *path, long status, const char *body, const char *link,
                             json_t **records, int *last) {
    msp_pager_req_t req;
    char err[256] = "";
    assert_int_equal(o->request(p, &req), 0);
    assert_string_equal(req.method, method);
    assert_string_equal(req.path, path);
    free(req.body);
    msp_http_response_t res = answer(status, body, link);
    assert_int_equal(o->classify(p, &res), MSP_HTTP_OK);
    msp_pager_step_t s = o->response(p, &res, records, last, err, sizeof(err));
    answer_free(&res);
    return s;
}

static void test_syncro_pager_walks_numbered_pages_until_total_pages(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_type(&msp_vendor_syncro, "asset")->pager;
    msp_pager_conf_t conf = {"https://acme.syncromsp.com/api/v1", 0, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    char cur[64];
    json_t *recs = NULL;
    int last = -1;
    o->cursor(p, 0, cur, sizeof(cur));
    assert_string_equal(cur, "asset:1");
    assert_int_equal(step(o, p, "GET", "customer_assets", 200,
                          "{\"assets\":[{\"id\":1}],\"meta\":{\"page\":1,\"total_pages\":2}}", NULL,
                          &recs, &last),
                     MSP_PAGER_PAGE);
    assert_int_equal(json_array_size(recs), 1);
    assert_false(last);
    json_decref(recs);
    o->cursor(p, 1, cur, sizeof(cur));
    assert_string_equal(cur, "asset:2");
    o->advance(p);
    assert_int_equal(step(o, p, "GET", "customer_assets", 200,
                          "{\"assets\":[{\"id\":2}],\"meta\":{\"page\":2,\"total_pages\":2}}", NULL,
                          &recs, &last),
                     MSP_PAGER_PAGE);
    assert_true(last);
    json_decref(recs);
    assert_int_equal(o->seek(p, "asset:7"), 7);
    assert_int_equal(o->seek(p, "customer:7"), -1);
    assert_int_equal(o->seek(p, "asset:0:-"), -1);
    o->destroy(p);
}

/* The URL of the pager's next request (what the path leaves out: the query). */
static void next_url(const msp_pager_ops_t *o, msp_pager_t *p, char *out, size_t size) {
    msp_pager_req_t req;
    assert_int_equal(o->request(p, &req), 0);
    snprintf(out, size, "%s", req.url);
    free(req.body);
}

static void test_syncro_tickets_are_incremental_from_their_mark(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_type(&msp_vendor_syncro, "tickets")->pager;
    char url[2048], mark[MSP_MARK_MAX];
    json_t *recs = NULL;
    int last = -1;
    /* a full pass: no filter; its mark is the latest updated_at read */
    msp_pager_conf_t conf = {"https://acme.syncromsp.com/api/v1", 0, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    next_url(o, p, url, sizeof(url));
    assert_string_equal(url, "https://acme.syncromsp.com/api/v1/tickets?page=1");
    assert_int_equal(o->mark(p, mark, sizeof(mark)), 0);
    assert_int_equal(step(o, p, "GET", "tickets", 200,
                          "{\"tickets\":[{\"id\":1,\"updated_at\":\"2026-03-01T10:00:00.000Z\"},"
                          "{\"id\":2,\"updated_at\":\"2026-03-02T00:10:00.000Z\"},{\"id\":3}],"
                          "\"meta\":{\"page\":1,\"total_pages\":1}}",
                          NULL, &recs, &last),
                     MSP_PAGER_PAGE);
    json_decref(recs);
    assert_false(o->partial(p));
    assert_int_equal(o->mark(p, mark, sizeof(mark)), 1);
    assert_string_equal(mark, "2026-03-02T00:10:00.000Z");
    o->destroy(p);
    /* the next incremental pass asks since the day before the mark's date (date granularity
     * and time zones both covered), and keeps the mark when nothing newer comes */
    conf.since = mark;
    p = o->create(&conf, NULL);
    next_url(o, p, url, sizeof(url));
    assert_string_equal(
        url,
        "https://acme.syncromsp.com/api/v1/tickets?since_updated_at=2026-03-01T00:00:00Z&page=1");
    assert_true(o->partial(p));
    assert_int_equal(step(o, p, "GET", "tickets", 200,
                          "{\"tickets\":[],\"meta\":{\"page\":1,\"total_pages\":0}}", NULL, &recs,
                          &last),
                     MSP_PAGER_PAGE);
    assert_true(last);
    json_decref(recs);
    char kept[MSP_MARK_MAX];
    assert_int_equal(o->mark(p, kept, sizeof(kept)), 1);
    assert_string_equal(kept, mark);
    o->destroy(p);
    /* a mark that is no date makes a full pass, never a smaller one */
    conf.since = "garbage";
    p = o->create(&conf, NULL);
    next_url(o, p, url, sizeof(url));
    assert_string_equal(url, "https://acme.syncromsp.com/api/v1/tickets?page=1");
    assert_false(o->partial(p));
    o->destroy(p);
    /* contacts have no change filter in the document: always full, never partial */
    assert_null(msp_vendor_type(&msp_vendor_syncro, "contacts")->pager->mark);
    assert_null(msp_vendor_type(&msp_vendor_syncro, "contacts")->pager->partial);
}

static void test_syncro_settings_are_one_object(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_type(&msp_vendor_syncro, "settings")->pager;
    msp_pager_conf_t conf = {"https://acme.syncromsp.com/api/v1", 0, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    char url[2048], cur[64];
    json_t *recs = NULL;
    int last = -1;
    next_url(o, p, url, sizeof(url));
    assert_string_equal(url, "https://acme.syncromsp.com/api/v1/tickets/settings");
    o->cursor(p, 0, cur, sizeof(cur));
    assert_string_equal(cur, "setting:1");
    assert_int_equal(step(o, p, "GET", "tickets/settings", 200,
                          "{\"ticket_status_list\":[\"New\"],\"users\":[]}", NULL, &recs, &last),
                     MSP_PAGER_PAGE);
    assert_true(last);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);
    assert_int_equal(step(o, p, "GET", "tickets/settings", 200, "[1]", NULL, &recs, &last),
                     MSP_PAGER_BAD);
    o->destroy(p);
}

static const char *const DEFS =
    "[{\"id\":\"d-p\",\"name\":\"Purchase Date\",\"entityType\":\"endpoint\"},"
    "{\"id\":\"d-w\",\"name\":\"Warranty Expiration\",\"entityType\":\"endpoint\"}]";
static const char *const COMPANIES =
    "[{\"id\":\"c1\"},{\"id\":\"c2\"},{\"id\":\"c3\"},{\"id\":\"c4\"},{\"id\":\"c5\"}]";
#define DEVICES_PATH "/api/platform/v2/device/categories/all/endpoints"
#define DEV(id)                                                                                    \
    "{\"platform\":[{\"companyID\":\"c1\",\"siteID\":\"s1\",\"endpoints\":[{\"endpointID\":\"" id  \
    "\"}]}]}"

static void test_cwrmm_device_pager_follows_its_plan(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_cwrmm.types[1].pager;
    msp_pager_conf_t conf = {"http://cw.test", 500, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    json_t *recs = NULL;
    int last = -1;
    char cur[128];
    o->cursor(p, 0, cur, sizeof(cur));
    assert_string_equal(cur, "asset:0:-");
    assert_int_equal(step(o, p, "GET", "/api/platform/v1/custom-field/definitions", 200, DEFS, NULL,
                          &recs, &last),
                     MSP_PAGER_NEXT);
    assert_int_equal(
        step(o, p, "GET", "/api/platform/v1/company/companies", 200, COMPANIES, NULL, &recs, &last),
        MSP_PAGER_NEXT);
    /* group 0 (c1..c4), a first page with a next link, one device: its custom fields next */
    assert_int_equal(step(o, p, "POST", DEVICES_PATH, 200, DEV("e1"),
                          "http://cw.test" DEVICES_PATH "?cursor=abc", &recs, &last),
                     MSP_PAGER_NEXT);
    assert_int_equal(
        step(o, p, "GET", "/api/platform/v2/device/endpoints/e1/custom-fields", 200,
             "[{\"attributeId\":\"d-p\",\"name\":\"Purchase Date\",\"value\":\"2024-01-02\"}]",
             NULL, &recs, &last),
        MSP_PAGER_PAGE);
    assert_false(last);
    assert_int_equal(json_array_size(recs), 1);
    assert_non_null(json_object_get(json_array_get(recs, 0), "customFieldValues"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0), "siteID")),
                        "s1");
    json_decref(recs);
    o->cursor(p, 0, cur, sizeof(cur));
    assert_string_equal(cur, "asset:0:-");
    o->cursor(p, 1, cur, sizeof(cur));
    assert_string_equal(cur, "asset:0:abc");
    o->advance(p);
    /* the group's last page: 404 is "no more devices", then group 1 (c5) is the last */
    msp_http_response_t gone = answer(404, "", NULL);
    assert_int_equal(o->classify(p, &gone), MSP_HTTP_OK);
    answer_free(&gone);
    assert_int_equal(step(o, p, "POST", DEVICES_PATH, 404, "", NULL, &recs, &last), MSP_PAGER_PAGE);
    assert_false(last);
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);
    o->cursor(p, 1, cur, sizeof(cur));
    assert_string_equal(cur, "asset:1:-");
    o->advance(p);
    assert_int_equal(step(o, p, "POST", DEVICES_PATH, 404, "", NULL, &recs, &last), MSP_PAGER_PAGE);
    assert_true(last);
    json_decref(recs);
    o->destroy(p);
}

static void test_cwrmm_devices_reuse_the_companies_the_company_pager_read(void **state) {
    (void)state;
    const msp_pager_ops_t *co = msp_vendor_cwrmm.types[0].pager;
    const msp_pager_ops_t *o = msp_vendor_cwrmm.types[1].pager;
    msp_pager_conf_t conf = {"http://cw.test", 500, NULL};
    msp_pager_t *cp = co->create(&conf, NULL);
    json_t *recs = NULL;
    int last = 0;
    assert_int_equal(step(co, cp, "GET", "/api/platform/v1/company/companies", 200, COMPANIES, NULL,
                          &recs, &last),
                     MSP_PAGER_PAGE);
    assert_true(last);
    assert_int_equal(json_array_size(recs), 5);
    json_decref(recs);
    msp_pager_t *p = o->create(&conf, cp);
    co->destroy(cp);
    /* definitions (none of the dates), then straight to the devices: no second companies call */
    assert_int_equal(step(o, p, "GET", "/api/platform/v1/custom-field/definitions", 200, "[]", NULL,
                          &recs, &last),
                     MSP_PAGER_NEXT);
    assert_int_equal(step(o, p, "POST", DEVICES_PATH, 200, DEV("e1"), NULL, &recs, &last),
                     MSP_PAGER_PAGE);
    assert_null(json_object_get(json_array_get(recs, 0), "customFieldValues"));
    json_decref(recs);
    o->destroy(p);
}

static void test_cwrmm_device_cursor_resumes_a_group(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_cwrmm.types[1].pager;
    msp_pager_conf_t conf = {"http://cw.test", 500, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    char cur[128];
    assert_int_equal(o->seek(p, "asset:3:xyz"), 1);
    o->cursor(p, 0, cur, sizeof(cur));
    assert_string_equal(cur, "asset:3:xyz");
    assert_int_equal(o->seek(p, "customer:1"), -1);
    /* without companies the pull cannot end: it asks definitions first */
    msp_pager_req_t req;
    assert_int_equal(o->request(p, &req), 0);
    assert_string_equal(req.path, "/api/platform/v1/custom-field/definitions");
    free(req.body);
    o->destroy(p);
}

static void test_cwrmm_unreadable_answer_is_bad_and_names_the_call(void **state) {
    (void)state;
    const msp_pager_ops_t *o = msp_vendor_cwrmm.types[0].pager;
    msp_pager_conf_t conf = {"http://cw.test", 500, NULL};
    msp_pager_t *p = o->create(&conf, NULL);
    msp_http_response_t res = answer(200, "{\"not\":\"an array\"}", NULL);
    json_t *recs = NULL;
    int last = 0;
    char err[256];
    assert_int_equal(o->response(p, &res, &recs, &last, err, sizeof(err)), MSP_PAGER_BAD);
    assert_string_equal(err, "ConnectWise RMM GET /api/platform/v1/company/companies: not a JSON "
                             "array");
    answer_free(&res);
    o->destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vendors_are_found_by_name_once),
        cmocka_unit_test(test_rows_are_listed_at_their_id),
        cmocka_unit_test(test_registry_lines_are_the_rows),
        cmocka_unit_test(test_rate_rows_cover_every_row),
        cmocka_unit_test(test_auth_state_comes_from_the_rows),
        cmocka_unit_test(test_every_row_sets_every_required_field),
        cmocka_unit_test(test_customers_sync_before_assets),
        cmocka_unit_test(test_job_types_are_taken_in_dependency_order),
        cmocka_unit_test(test_only_syncro_is_the_merge_primary),
        cmocka_unit_test(test_forbidden_hints_name_the_permission_of_the_call),
        cmocka_unit_test(test_feature_permissions_cover_the_pagers_calls),
        cmocka_unit_test(test_every_type_names_a_declared_feature),
        cmocka_unit_test(test_record_ids_are_checked_by_the_vendors_rule),
        cmocka_unit_test(test_syncro_pager_walks_numbered_pages_until_total_pages),
        cmocka_unit_test(test_syncro_tickets_are_incremental_from_their_mark),
        cmocka_unit_test(test_syncro_settings_are_one_object),
        cmocka_unit_test(test_cwrmm_device_pager_follows_its_plan),
        cmocka_unit_test(test_cwrmm_devices_reuse_the_companies_the_company_pager_read),
        cmocka_unit_test(test_cwrmm_device_cursor_resumes_a_group),
        cmocka_unit_test(test_cwrmm_unreadable_answer_is_bad_and_names_the_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
