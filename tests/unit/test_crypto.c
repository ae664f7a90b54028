/*
 * test_crypto.c — sealing credentials, keys, HMAC, base64 and random tokens.
 *
 * The properties a user relies on: what is sealed opens only with the same key and AAD, any
 * change to the stored text is detected, and garbage input fails cleanly instead of crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mspsync/crypto.h"

static const char KEY_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/* base64 of the same 32 bytes */
static const char KEY_B64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static msp_secret_key_t test_key(void) {
    msp_secret_key_t k;
    char err[256];
    assert_int_equal(msp_secret_key_parse(&k, KEY_HEX, err, sizeof(err)), 0);
    return k;
}

static void sealed_secret_opens_with_same_key_and_aad(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    const char *pt = "syncro-api-key-0123456789";
    char *sealed = msp_secret_seal(&k, "acme/syncro", pt, strlen(pt));
    assert_non_null(sealed);
    assert_memory_equal(sealed, "v1:", 3);
    assert_null(strstr(sealed, pt));

    size_t len = 0;
    char *opened = msp_secret_open(&k, "acme/syncro", sealed, &len);
    assert_non_null(opened);
    assert_int_equal(len, strlen(pt));
    assert_string_equal(opened, pt);

    msp_secure_zero(opened, len);
    free(opened);
    free(sealed);
}

static void sealing_twice_gives_different_text(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    char *a = msp_secret_seal(&k, "acme/syncro", "same", 4);
    char *b = msp_secret_seal(&k, "acme/syncro", "same", 4);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void empty_and_binary_plaintext_roundtrip(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    size_t len = 99;
    char *sealed = msp_secret_seal(&k, NULL, "", 0);
    assert_non_null(sealed);
    char *opened = msp_secret_open(&k, NULL, sealed, &len);
    assert_non_null(opened);
    assert_int_equal(len, 0);
    assert_string_equal(opened, "");
    free(opened);
    free(sealed);

    const char bin[] = {'a', '\0', 'b', '\xff', '\n'};
    sealed = msp_secret_seal(&k, "", bin, sizeof(bin));
    assert_non_null(sealed);
    opened = msp_secret_open(&k, "", sealed, &len);
    assert_non_null(opened);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(opened, bin, sizeof(bin));
    free(opened);
    free(sealed);
}

static void ciphertext_copied_to_another_tenant_does_not_open(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    char *sealed = msp_secret_seal(&k, "acme/syncro", "secret", 6);
    assert_non_null(sealed);
    assert_null(msp_secret_open(&k, "globex/syncro", sealed, NULL));
    assert_null(msp_secret_open(&k, NULL, sealed, NULL));
    free(sealed);
}

static void tampered_ciphertext_does_not_open(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    char *sealed = msp_secret_seal(&k, "acme/syncro", "secret value", 12);
    assert_non_null(sealed);
    size_t n = strlen(sealed);
    /* flip one base64 character at every position after the prefix: each must be rejected */
    for (size_t i = 3; i < n; i++) {
        char saved = sealed[i];
        if (saved == '=')
            continue;
        sealed[i] = (saved == 'A') ? 'B' : 'A';
        char *opened = msp_secret_open(&k, "acme/syncro", sealed, NULL);
        if (opened) {
            /* changing only the unused low bits of the last base64 char decodes identically */
            free(opened);
            assert_true(i >= n - 3);
        }
        sealed[i] = saved;
    }
    char *ok = msp_secret_open(&k, "acme/syncro", sealed, NULL);
    assert_non_null(ok);
    free(ok);
    free(sealed);
}

static void wrong_key_does_not_open(void **state) {
    (void)state;
    msp_secret_key_t k = test_key(), other = test_key();
    other.key[31] ^= 1;
    char *sealed = msp_secret_seal(&k, "acme/syncro", "secret", 6);
    assert_non_null(sealed);
    assert_null(msp_secret_open(&other, "acme/syncro", sealed, NULL));
    free(sealed);
}

static void malformed_sealed_text_fails_cleanly(void **state) {
    (void)state;
    msp_secret_key_t k = test_key();
    const char *bad[] = {
        "",
        "v1:",
        "v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1:not base64!!",
        "v1:AAAA",                                 /* decodes, far too short */
        "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", /* 26 bytes: one short of nonce+tag */
        "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 30 bytes of zeros: tag fails */
        "v1:AAA",
        "v1: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "plaintext",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(msp_secret_open(&k, "acme/syncro", bad[i], NULL));
    assert_null(msp_secret_open(&k, "acme/syncro", NULL, NULL));
    assert_null(msp_secret_open(NULL, "acme/syncro", "v1:AAAA", NULL));
    assert_null(msp_secret_seal(NULL, "x", "y", 1));
}

static void key_parses_from_hex_and_base64(void **state) {
    (void)state;
    msp_secret_key_t a, b, c;
    char err[256];
    assert_int_equal(msp_secret_key_parse(&a, KEY_HEX, err, sizeof(err)), 0);
    assert_int_equal(msp_secret_key_parse(&b, KEY_B64, err, sizeof(err)), 0);
    assert_memory_equal(a.key, b.key, 32);
    for (int i = 0; i < 32; i++)
        assert_int_equal(a.key[i], i);
    /* key files usually end with a newline; upper-case hex is fine */
    assert_int_equal(msp_secret_key_parse(&c, "  000102030405060708090A0B0C0D0E0F"
                                              "101112131415161718191A1B1C1D1E1F\n",
                                          err, sizeof(err)),
                     0);
    assert_memory_equal(a.key, c.key, 32);
}

static void bad_key_is_rejected_without_echoing_it(void **state) {
    (void)state;
    msp_secret_key_t k;
    char err[256];
    const char *bad[] = {
        "",
        "short",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", /* 'g' */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",   /* 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",                      /* 43 chars */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8h",                     /* 33 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd!h8=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(msp_secret_key_parse(&k, bad[i], err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        if (strlen(bad[i]) > 5)
            assert_null(strstr(err, bad[i]));
    }
    assert_int_equal(msp_secret_key_parse(&k, NULL, err, sizeof(err)), -1);
    assert_int_equal(msp_secret_key_parse(&k, "x", NULL, 0), -1); /* errstr optional */
}

static void key_loads_from_env_or_file(void **state) {
    (void)state;
    msp_secret_key_t k;
    char err[512];
    char path[] = "/tmp/mspsync_test_key_XXXXXX";

    unsetenv("MSPSYNC_SECRET_KEY");
    unsetenv("MSPSYNC_SECRET_KEY_FILE");
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_SECRET_KEY"));

    setenv("MSPSYNC_SECRET_KEY", KEY_B64, 1);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), 0);
    assert_int_equal(k.key[31], 31);

    setenv("MSPSYNC_SECRET_KEY", "nope", 1);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_SECRET_KEY"));
    unsetenv("MSPSYNC_SECRET_KEY");

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", KEY_HEX);
    fclose(f);
    setenv("MSPSYNC_SECRET_KEY_FILE", path, 1);
    memset(&k, 0, sizeof(k));
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), 0);
    assert_int_equal(k.key[31], 31);

    /* both set: refuse to guess which one is meant */
    setenv("MSPSYNC_SECRET_KEY", KEY_HEX, 1);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), -1);
    unsetenv("MSPSYNC_SECRET_KEY");

    unlink(path);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    unsetenv("MSPSYNC_SECRET_KEY_FILE");
}

static void hmac_matches_rfc4231_test_case_2(void **state) {
    (void)state;
    char out[65];
    const char *data = "what do ya want for nothing?";
    msp_hmac_sha256_hex("Jefe", 4, data, strlen(data), out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* an empty key is legal HMAC (RFC 2104) */
    msp_hmac_sha256_hex(NULL, 0, "", 0, out);
    assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* A prepared key signs as the one-shot HMAC does: RFC 4231 case 6 (a key longer than the block),
 * keys of every length around the block, the data split anywhere, and again with the same key. */
static void prepared_hmac_key_signs_like_the_one_shot(void **state) {
    (void)state;
    char want[65], got[65];
    const char *c6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    unsigned char key6[131];
    memset(key6, 0xaa, sizeof(key6));
    msp_hmac_key_t *k = msp_hmac_key_new(key6, sizeof(key6));
    assert_non_null(k);
    msp_hmac_key_hex(k, c6, 10, c6 + 10, strlen(c6) - 10, got);
    assert_string_equal(got, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    msp_hmac_key_free(k);

    unsigned char key[200], data[300];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 13);
    static const size_t key_lens[] = {0, 1, 32, 63, 64, 65, 200};
    for (size_t kl = 0; kl < sizeof(key_lens) / sizeof(key_lens[0]); kl++) {
        k = msp_hmac_key_new(key, key_lens[kl]);
        assert_non_null(k);
        for (size_t len = 0; len <= sizeof(data); len += 37)
            for (size_t cut = 0; cut <= len; cut += 11) {
                msp_hmac_sha256_hex(key_lens[kl] ? key : NULL, key_lens[kl], data, len, want);
                msp_hmac_key_hex(k, data, cut, data + cut, len - cut, got);
                assert_string_equal(got, want);
            }
        msp_hmac_key_free(k);
    }
    msp_hmac_key_free(NULL);
}

static void consttime_streq_compares_whole_strings(void **state) {
    (void)state;
    assert_int_equal(msp_consttime_streq("abc", "abc"), 1);
    assert_int_equal(msp_consttime_streq("", ""), 1);
    assert_int_equal(msp_consttime_streq("abc", "abd"), 0);
    assert_int_equal(msp_consttime_streq("abc", "abcd"), 0);
    assert_int_equal(msp_consttime_streq("abcd", "abc"), 0);
    assert_int_equal(msp_consttime_streq(NULL, "abc"), 0);
    assert_int_equal(msp_consttime_streq("abc", NULL), 0);
}

static void base64_roundtrips_binary_of_every_small_length(void **state) {
    (void)state;
    static const char *const expect[] = {"", "AA==", "AP8=", "AP8A", "AP8A/w==", "AP8A/wA="};
    const unsigned char bin[] = {0x00, 0xff, 0x00, 0xff, 0x00};
    for (size_t len = 0; len <= 5; len++) {
        char *enc = msp_base64_encode(bin, len);
        assert_non_null(enc);
        assert_string_equal(enc, expect[len]);
        size_t out_len = 99;
        unsigned char *dec = msp_base64_decode(enc, &out_len);
        assert_non_null(dec);
        assert_int_equal(out_len, len);
        if (len)
            assert_memory_equal(dec, bin, len);
        free(dec);
        free(enc);
    }

    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *enc = msp_base64_encode(all, sizeof(all));
    size_t out_len = 0;
    unsigned char *dec = msp_base64_decode(enc, &out_len);
    assert_non_null(dec);
    assert_int_equal(out_len, 256);
    assert_memory_equal(dec, all, 256);
    free(dec);
    free(enc);
}

static void base64_decode_rejects_malformed_text(void **state) {
    (void)state;
    const char *bad[] = {"A", "AA", "AAA", "A===", "====", "AA=A", "AB C", " AAA", "AA\n=",
                         "YWJj\n", "YW*j"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(msp_base64_decode(bad[i], NULL));
    assert_null(msp_base64_decode(NULL, NULL));
    assert_null(msp_base64_encode(NULL, 3));
}

static void random_hex_has_requested_length(void **state) {
    (void)state;
    char a[2 * 100 + 1], b[2 * 100 + 1];
    memset(a, 'x', sizeof(a));
    assert_int_equal(msp_random_hex(a, 16), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);

    assert_int_equal(msp_random_hex(a, 100), 0); /* more than one internal chunk */
    assert_int_equal(strlen(a), 200);
    assert_int_equal(strspn(a, "0123456789abcdef"), 200);
    assert_int_equal(msp_random_hex(b, 100), 0);
    assert_string_not_equal(a, b);

    assert_int_equal(msp_random_hex(a, 0), 0);
    assert_string_equal(a, "");
    assert_int_equal(msp_random_hex(NULL, 4), -1);
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* Ids from the per-thread pool: the right form, no repeat across several refills of the pool. */
static void random_id_hex_is_distinct_across_refills(void **state) {
    (void)state;
    enum { N = 300 }; /* 300 x 16 bytes: the 1 KiB pool refilled four times */
    static char ids[N][33];
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'x', sizeof ids[i]);
        assert_int_equal(msp_random_id_hex(ids[i], 16), 0);
        assert_int_equal(strlen(ids[i]), 32);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
    }
    qsort(ids, N, sizeof ids[0], cmp_id);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);

    char odd[2 * 7 + 1];
    assert_int_equal(msp_random_id_hex(odd, 7), 0);
    assert_int_equal(strlen(odd), 14);
    char big[2 * 33 + 1];
    assert_int_equal(msp_random_id_hex(big, 33), -1);
    assert_int_equal(msp_random_id_hex(NULL, 4), -1);
}

static void secure_zero_clears_memory(void **state) {
    (void)state;
    char buf[16];
    memset(buf, 'x', sizeof(buf));
    msp_secure_zero(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    msp_secure_zero(NULL, 10); /* NULL-safe */
}

/* A key ring, newest first: the newest seals, every key opens and says which one it was. */
static void key_ring_seals_with_the_newest_and_opens_with_any(void **state) {
    (void)state;
    static const char NEW_HEX[] =
        "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";
    msp_secret_key_t old, ring, only_new;
    char err[256], text[300];
    int which = 7;
    size_t len = 0;
    assert_int_equal(msp_secret_key_parse(&old, KEY_HEX, err, sizeof(err)), 0);
    assert_int_equal(old.older_cnt, 0);
    snprintf(text, sizeof(text), " %s,\n%s \n", NEW_HEX, KEY_B64); /* the same old key, base64 */
    assert_int_equal(msp_secret_key_parse(&ring, text, err, sizeof(err)), 0);
    assert_int_equal(ring.older_cnt, 1);
    assert_int_equal(msp_secret_key_parse(&only_new, NEW_HEX, err, sizeof(err)), 0);

    char *under_old = msp_secret_seal(&old, "acme/syncro", "key-1", 5);
    char *p = msp_secret_open_ex(&ring, "acme/syncro", under_old, &len, &which);
    assert_non_null(p);
    assert_string_equal(p, "key-1");
    assert_int_equal(which, 1); /* opened by the older key */
    free(p);
    char *under_ring = msp_secret_seal(&ring, "acme/syncro", "key-1", 5);
    p = msp_secret_open_ex(&ring, "acme/syncro", under_ring, &len, &which);
    assert_int_equal(which, 0);
    free(p);
    p = msp_secret_open_ex(&only_new, "acme/syncro", under_ring, &len, &which); /* sealed by new */
    assert_non_null(p);
    free(p);
    assert_null(msp_secret_open_ex(&old, "acme/syncro", under_ring, &len, &which));
    assert_int_equal(which, -1);
    assert_null(msp_secret_open_ex(&only_new, "acme/syncro", under_old, &len, &which));
    assert_int_equal(which, -1);
    /* The AAD still binds under every key of the ring. */
    assert_null(msp_secret_open_ex(&ring, "other/syncro", under_old, &len, &which));
    free(under_old);
    free(under_ring);
}

static void key_ring_refusals_name_the_key_not_its_text(void **state) {
    (void)state;
    msp_secret_key_t k;
    char err[256], text[700];
    snprintf(text, sizeof(text), "%s,%s", KEY_HEX, KEY_B64);
    assert_int_equal(msp_secret_key_parse(&k, text, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "keys 1 and 2 are the same"));
    snprintf(text, sizeof(text), "%s deadbeef", KEY_HEX);
    assert_int_equal(msp_secret_key_parse(&k, text, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 2 of the ring"));
    assert_null(strstr(err, "deadbeef"));
    assert_int_equal(msp_secret_key_parse(&k, " ,\n", err, sizeof(err)), -1);
    text[0] = 0;
    for (int i = 0; i < MSP_SECRET_KEYS_MAX + 1; i++) {
        char one[70];
        snprintf(one, sizeof(one), "%s%02x ",
                 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", i);
        strcat(text, one);
    }
    assert_int_equal(msp_secret_key_parse(&k, text, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
    /* MSPSYNC_SECRET_KEYS is the ring's variable; only one of the three may be set. */
    snprintf(text, sizeof(text), "%s,%s",
             "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff", KEY_HEX);
    unsetenv("MSPSYNC_SECRET_KEY");
    unsetenv("MSPSYNC_SECRET_KEY_FILE");
    setenv("MSPSYNC_SECRET_KEYS", text, 1);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), 0);
    assert_int_equal(k.older_cnt, 1);
    setenv("MSPSYNC_SECRET_KEY", KEY_HEX, 1);
    assert_int_equal(msp_secret_key_load(&k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "only one"));
    unsetenv("MSPSYNC_SECRET_KEY");
    unsetenv("MSPSYNC_SECRET_KEYS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sealed_secret_opens_with_same_key_and_aad),
        cmocka_unit_test(sealing_twice_gives_different_text),
        cmocka_unit_test(empty_and_binary_plaintext_roundtrip),
        cmocka_unit_test(ciphertext_copied_to_another_tenant_does_not_open),
        cmocka_unit_test(tampered_ciphertext_does_not_open),
        cmocka_unit_test(wrong_key_does_not_open),
        cmocka_unit_test(malformed_sealed_text_fails_cleanly),
        cmocka_unit_test(key_parses_from_hex_and_base64),
        cmocka_unit_test(bad_key_is_rejected_without_echoing_it),
        cmocka_unit_test(key_loads_from_env_or_file),
        cmocka_unit_test(hmac_matches_rfc4231_test_case_2),
        cmocka_unit_test(prepared_hmac_key_signs_like_the_one_shot),
        cmocka_unit_test(consttime_streq_compares_whole_strings),
        cmocka_unit_test(base64_roundtrips_binary_of_every_small_length),
        cmocka_unit_test(base64_decode_rejects_malformed_text),
        cmocka_unit_test(random_hex_has_requested_length),
        cmocka_unit_test(random_id_hex_is_distinct_across_refills),
        cmocka_unit_test(secure_zero_clears_memory),
        cmocka_unit_test(key_ring_seals_with_the_newest_and_opens_with_any),
        cmocka_unit_test(key_ring_refusals_name_the_key_not_its_text),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
