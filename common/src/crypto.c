/*
 * crypto.c — vendor credentials at rest and webhook signatures, on OpenSSL libcrypto.
 *
 * Sealing is AES-256-GCM with a fresh 12-byte nonce from RAND_bytes for every call, so the same
 * plaintext never seals to the same text and a nonce is never reused under one key (2^32 seals
 * per key keeps the collision risk negligible; we seal a handful of credentials per tenant). The
 * 16-byte tag authenticates nonce, ciphertext and the caller's AAD; the "v1:" prefix leaves room
 * for a future format or key rotation without guessing.
 *
 * Invariants: key material and plaintext copies that pass through this file are wiped with
 * OPENSSL_cleanse before their memory is released; error strings never contain key text;
 * every parse of untrusted input (sealed strings, base64, key text) is length-checked before it
 * reaches OpenSSL, which takes int lengths.
 */
#include "mspsync/errstr.h"
#include "mspsync/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SEAL_PREFIX     "v1:"
#define SEAL_PREFIX_LEN 3
#define NONCE_LEN       12
#define TAG_LEN         16
/* A key file is a single line; anything bigger is not a key. */
#define KEY_FILE_MAX    4096


void msp_secure_zero(void *p, size_t n) {
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* ---- base64 ---------------------------------------------------------------------------- */

char *msp_base64_encode(const unsigned char *data, size_t len) {
    size_t out_len;
    char *out;

    if (!data && len)
        return NULL;
    /* EVP_EncodeBlock takes an int; 4/3 growth must also fit. */
    if (len > (size_t)INT_MAX / 4 * 3 - 3)
        return NULL;

    out_len = 4 * ((len + 2) / 3);
    out     = malloc(out_len + 1);
    if (!out)
        return NULL;
    if (len == 0) {
        out[0] = '\0';
        return out;
    }
    /* EVP_EncodeBlock writes padding and the terminating NUL, with no newlines. */
    if (EVP_EncodeBlock((unsigned char *)out, data, (int)len) != (int)out_len) {
        free(out);
        return NULL;
    }
    return out;
}

static int is_b64_char(unsigned char c) {
    /* explicit ranges: isalnum() depends on the locale */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

unsigned char *msp_base64_decode(const char *text, size_t *out_len) {
    size_t len, i, pad = 0;
    unsigned char *out;
    int n;

    if (!text)
        return NULL;
    len = strlen(text);
    if (len % 4 != 0 || len > (size_t)INT_MAX)
        return NULL;

    /* EVP_DecodeBlock is lenient (it skips surrounding whitespace and decodes '=' as zero
     * bits), so validate strictly first: alphabet only, '=' only as the last one or two chars. */
    if (len >= 1 && text[len - 1] == '=') {
        pad++;
        if (text[len - 2] == '=')
            pad++;
    }
    for (i = 0; i < len - pad; i++)
        if (!is_b64_char((unsigned char)text[i]))
            return NULL;

    out = malloc(len / 4 * 3 + 1);
    if (!out)
        return NULL;
    if (len == 0) {
        out[0] = '\0';
        if (out_len)
            *out_len = 0;
        return out;
    }
    n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
    if (n < 0 || (size_t)n != len / 4 * 3) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as decoded zero bytes. */
    out[(size_t)n - pad] = '\0';
    if (out_len)
        *out_len = (size_t)n - pad;
    return out;
}

/* ---- keys ------------------------------------------------------------------------------ */

static int hex_val(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_one(unsigned char out[32], const char *s, size_t len, char *errstr,
                     size_t errstr_size) {
    size_t i;

    if (len == 64) {
        int ok = 1;
        for (i = 0; i < 32; i++) {
            int hi = hex_val((unsigned char)s[2 * i]);
            int lo = hex_val((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                ok = 0;
                break;
            }
            out[i] = (unsigned char)(hi << 4 | lo);
        }
        if (ok)
            return 0;
        msp_secure_zero(out, 32);
    } else if (len == 44) {
        char b64[45];
        unsigned char *raw;
        size_t raw_len = 0;

        memcpy(b64, s, 44);
        b64[44] = '\0';
        raw     = msp_base64_decode(b64, &raw_len);
        msp_secure_zero(b64, sizeof(b64));
        if (raw && raw_len == 32) {
            memcpy(out, raw, 32);
            msp_secure_zero(raw, raw_len);
            free(raw);
            return 0;
        }
        if (raw) {
            msp_secure_zero(raw, raw_len);
            free(raw);
        }
    }

    /* Never echo the text: it may be a slightly mistyped real key. */
    msp_set_err(errstr, errstr_size,
            "secret key must be 64 hex characters or base64 of 32 bytes (got %zu characters)", len);
    return -1;
}

static int key_sep(int c) { return c == ',' || isspace(c); }

int msp_secret_key_parse(msp_secret_key_t *k, const char *text, char *errstr, size_t errstr_size) {
    unsigned char ring[MSP_SECRET_KEYS_MAX][32];
    size_t n = 0;
    char perr[160];

    if (!k || !text) {
        msp_set_err(errstr, errstr_size, "secret key: no key given");
        return -1;
    }
    memset(k, 0, sizeof(*k));
    for (const char *s = text; *s;) {
        while (*s && key_sep((unsigned char)*s))
            s++;
        const char *e = s;
        while (*e && !key_sep((unsigned char)*e))
            e++;
        if (e == s)
            break;
        if (n == MSP_SECRET_KEYS_MAX) {
            msp_set_err(errstr, errstr_size, "secret key ring: more than %d keys",
                        MSP_SECRET_KEYS_MAX);
            goto fail;
        }
        if (parse_one(ring[n], s, (size_t)(e - s), perr, sizeof(perr)) != 0) {
            if (n == 0 && !*e)
                msp_set_err(errstr, errstr_size, "%s", perr);
            else /* which one, never what it says */
                msp_set_err(errstr, errstr_size, "key %zu of the ring: %s", n + 1, perr);
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            if (CRYPTO_memcmp(ring[i], ring[n], 32) == 0) {
                msp_set_err(errstr, errstr_size, "secret key ring: keys %zu and %zu are the same",
                            i + 1, n + 1);
                n++;
                goto fail;
            }
        n++;
        s = e;
    }
    if (n == 0) {
        msp_set_err(errstr, errstr_size, "secret key: no key given");
        return -1;
    }
    memcpy(k->key, ring[0], 32);
    for (size_t i = 1; i < n; i++)
        memcpy(k->older[i - 1], ring[i], 32);
    k->older_cnt = n - 1;
    msp_secure_zero(ring, sizeof(ring));
    return 0;
fail:
    msp_secure_zero(ring, sizeof(ring));
    msp_secure_zero(k, sizeof(*k));
    return -1;
}

int msp_secret_key_load(msp_secret_key_t *k, char *errstr, size_t errstr_size) {
    const char *env  = getenv("MSPSYNC_SECRET_KEY");
    const char *ring = getenv("MSPSYNC_SECRET_KEYS");
    const char *path = getenv("MSPSYNC_SECRET_KEY_FILE");
    char buf[KEY_FILE_MAX + 1];
    char perr[160];
    size_t n;
    FILE *f;
    int r;

    if (env && !*env)
        env = NULL;
    if (ring && !*ring)
        ring = NULL;
    if (path && !*path)
        path = NULL;

    if ((env != NULL) + (ring != NULL) + (path != NULL) > 1) {
        msp_set_err(
            errstr, errstr_size,
            "set only one of MSPSYNC_SECRET_KEY, MSPSYNC_SECRET_KEYS and MSPSYNC_SECRET_KEY_FILE");
        return -1;
    }
    if (ring)
        env = ring;
    if (env) {
        if (msp_secret_key_parse(k, env, perr, sizeof(perr)) == -1) {
            msp_set_err(errstr, errstr_size, "%s: %s",
                        ring ? "MSPSYNC_SECRET_KEYS" : "MSPSYNC_SECRET_KEY", perr);
            return -1;
        }
        return 0;
    }
    if (!path) {
        msp_set_err(
            errstr, errstr_size,
            "MSPSYNC_SECRET_KEY, MSPSYNC_SECRET_KEYS or MSPSYNC_SECRET_KEY_FILE is required");
        return -1;
    }

    f = fopen(path, "re");
    if (!f) {
        msp_set_err(errstr, errstr_size, "MSPSYNC_SECRET_KEY_FILE: %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    r = ferror(f);
    fclose(f);
    if (r) {
        msp_secure_zero(buf, sizeof(buf));
        msp_set_err(errstr, errstr_size, "MSPSYNC_SECRET_KEY_FILE: %s: read error", path);
        return -1;
    }
    if (n > KEY_FILE_MAX) {
        msp_secure_zero(buf, sizeof(buf));
        msp_set_err(errstr, errstr_size, "MSPSYNC_SECRET_KEY_FILE: %s: file too large for a key", path);
        return -1;
    }
    buf[n] = '\0';
    r      = msp_secret_key_parse(k, buf, perr, sizeof(perr));
    msp_secure_zero(buf, sizeof(buf));
    if (r == -1) {
        msp_set_err(errstr, errstr_size, "MSPSYNC_SECRET_KEY_FILE: %s: %s", path, perr);
        return -1;
    }
    return 0;
}

/* ---- AES-256-GCM ----------------------------------------------------------------------- */

char *msp_secret_seal(const msp_secret_key_t *k, const char *aad, const char *plaintext,
                      size_t plaintext_len) {
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf  = NULL;
    char *b64 = NULL, *out = NULL;
    size_t buf_len, b64_len, aad_len = aad ? strlen(aad) : 0;
    int n, fin;

    if (!k || (!plaintext && plaintext_len))
        return NULL;
    if (plaintext_len > (size_t)INT_MAX / 2 || aad_len > (size_t)INT_MAX)
        return NULL;

    buf_len = NONCE_LEN + plaintext_len + TAG_LEN;
    buf     = malloc(buf_len);
    if (!buf)
        return NULL;
    if (RAND_bytes(buf, NONCE_LEN) != 1)
        goto done;

    ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        goto done;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, buf) != 1)
        goto done;
    if (aad_len && EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1)
        goto done;
    n = 0;
    if (plaintext_len &&
        EVP_EncryptUpdate(ctx, buf + NONCE_LEN, &n, (const unsigned char *)plaintext,
                          (int)plaintext_len) != 1)
        goto done;
    /* GCM is a stream mode: Final emits nothing, but it must run to compute the tag. */
    if (EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + n, &fin) != 1 ||
        (size_t)n + (size_t)fin != plaintext_len)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + plaintext_len) !=
        1)
        goto done;

    b64 = msp_base64_encode(buf, buf_len);
    if (!b64)
        goto done;
    b64_len = strlen(b64);
    out     = malloc(SEAL_PREFIX_LEN + b64_len + 1);
    if (out) {
        memcpy(out, SEAL_PREFIX, SEAL_PREFIX_LEN);
        memcpy(out + SEAL_PREFIX_LEN, b64, b64_len + 1);
    }

done:
    EVP_CIPHER_CTX_free(ctx);
    free(b64);
    free(buf); /* ciphertext only: nothing secret */
    return out;
}

static char *open_with(const unsigned char *key, const char *aad, const char *sealed,
                       size_t *plaintext_len) {
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *raw  = NULL;
    unsigned char *pt   = NULL;
    size_t raw_len = 0, ct_len, aad_len = aad ? strlen(aad) : 0;
    int n = 0, fin = 0, ok = 0;

    if (!sealed || strncmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN) != 0)
        return NULL;
    if (aad_len > (size_t)INT_MAX)
        return NULL;

    raw = msp_base64_decode(sealed + SEAL_PREFIX_LEN, &raw_len);
    if (!raw || raw_len < NONCE_LEN + TAG_LEN)
        goto done;
    ct_len = raw_len - NONCE_LEN - TAG_LEN;

    pt = malloc(ct_len + 1);
    if (!pt)
        goto done;

    ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        goto done;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw) != 1)
        goto done;
    if (aad_len && EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1)
        goto done;
    n = 0;
    if (ct_len && EVP_DecryptUpdate(ctx, pt, &n, raw + NONCE_LEN, (int)ct_len) != 1)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + ct_len) != 1)
        goto done;
    /* The tag is checked here; before this point pt holds unauthenticated data. */
    if (EVP_DecryptFinal_ex(ctx, pt + n, &fin) != 1 || (size_t)n + (size_t)fin != ct_len)
        goto done;

    pt[ct_len] = '\0';
    if (plaintext_len)
        *plaintext_len = ct_len;
    ok = 1;

done:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok && pt) {
        msp_secure_zero(pt, ct_len);
        free(pt);
        pt = NULL;
    }
    return (char *)pt;
}

char *msp_secret_open_ex(const msp_secret_key_t *k, const char *aad, const char *sealed,
                         size_t *plaintext_len, int *which) {
    char *pt = NULL;
    if (which)
        *which = -1;
    if (!k)
        return NULL;
    for (size_t i = 0; !pt && i <= k->older_cnt && i < MSP_SECRET_KEYS_MAX; i++) {
        pt = open_with(i == 0 ? k->key : k->older[i - 1], aad, sealed, plaintext_len);
        if (pt && which)
            *which = (int)i;
    }
    return pt;
}

char *msp_secret_open(const msp_secret_key_t *k, const char *aad, const char *sealed,
                      size_t *plaintext_len) {
    return msp_secret_open_ex(k, aad, sealed, plaintext_len, NULL);
}

/* ---- signatures and tokens ------------------------------------------------------------- */

static void to_hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i]     = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

void msp_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t data_len,
                         char out[65]) {
    static const unsigned char empty[1] = {0};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    out[0] = '\0';
    if (key_len > (size_t)INT_MAX || (!key && key_len) || (!data && data_len))
        return;
    /* OpenSSL 3 rejects a NULL key even with length 0; an empty key is valid HMAC. */
    if (!HMAC(EVP_sha256(), key ? key : empty, (int)key_len, data ? data : empty, data_len, md,
              &md_len) ||
        md_len != 32)
        return;
    to_hex(md, 32, out);
    msp_secure_zero(md, sizeof(md));
}

struct msp_hmac_key_s {
    EVP_MD_CTX *inner, *outer; /* SHA-256 after key ^ ipad, after key ^ opad (RFC 2104) */
    EVP_MD_CTX *work;          /* a copy of one of them, per signature */
};

void msp_hmac_key_free(msp_hmac_key_t *k) {
    if (!k)
        return;
    EVP_MD_CTX_free(k->inner); /* the provider wipes the hash state it frees */
    EVP_MD_CTX_free(k->outer);
    EVP_MD_CTX_free(k->work);
    free(k);
}

msp_hmac_key_t *msp_hmac_key_new(const void *key, size_t key_len) {
    enum { BLOCK = 64 }; /* SHA-256's block size */
    unsigned char k0[BLOCK] = {0}, pad[BLOCK];
    unsigned int n = 0;
    msp_hmac_key_t *k = calloc(1, sizeof(*k));
    int ok = k && (k->inner = EVP_MD_CTX_new()) && (k->outer = EVP_MD_CTX_new()) &&
             (k->work = EVP_MD_CTX_new()) && (key || !key_len);
    if (ok && key_len > BLOCK) /* a long key is its hash */
        ok = EVP_Digest(key, key_len, k0, &n, EVP_sha256(), NULL);
    else if (ok && key_len)
        memcpy(k0, key, key_len);
    for (int i = 0; ok && i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(k->inner, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(k->inner, pad, BLOCK);
    for (int i = 0; ok && i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(k->outer, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(k->outer, pad, BLOCK);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) {
        msp_hmac_key_free(k);
        return NULL;
    }
    return k;
}

void msp_hmac_key_hex(msp_hmac_key_t *k, const void *a, size_t a_len, const void *b, size_t b_len,
                      char out[65]) {
    unsigned char ih[32], md[32];
    unsigned int n = 0, m = 0;
    out[0] = '\0';
    if (!k || (!a && a_len) || (!b && b_len))
        return;
    int ok =
        EVP_MD_CTX_copy_ex(k->work, k->inner) && (!a_len || EVP_DigestUpdate(k->work, a, a_len)) &&
        (!b_len || EVP_DigestUpdate(k->work, b, b_len)) && EVP_DigestFinal_ex(k->work, ih, &n) &&
        n == 32 && EVP_MD_CTX_copy_ex(k->work, k->outer) && EVP_DigestUpdate(k->work, ih, 32) &&
        EVP_DigestFinal_ex(k->work, md, &m) && m == 32;
    if (ok)
        to_hex(md, 32, out);
    OPENSSL_cleanse(ih, sizeof(ih));
    OPENSSL_cleanse(md, sizeof(md));
}

int msp_consttime_streq(const char *a, const char *b) {
    size_t la, lb;

    if (!a || !b)
        return 0;
    /* The length is not secret (signatures and tokens have fixed sizes); the contents are. */
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

int msp_sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    pthread_once(&sha256_once, sha256_fetch);
    const EVP_MD *md = sha256_md ? sha256_md : EVP_sha256();
    return EVP_Digest(data ? data : "", data ? len : 0, out, &n, md, NULL) == 1 && n == 32 ? 0 : -1;
}

int msp_random_id_hex(char *out, size_t nbytes) {
    static _Thread_local struct {
        unsigned char b[1024];
        size_t used;
        int filled;
    } pool;

    if (!out || nbytes > 32)
        return -1;
    if (!pool.filled || pool.used + nbytes > sizeof pool.b) {
        if (RAND_bytes(pool.b, (int)sizeof pool.b) != 1) {
            out[0] = '\0';
            return -1;
        }
        pool.filled = 1;
        pool.used = 0;
    }
    to_hex(pool.b + pool.used, nbytes, out);
    memset(pool.b + pool.used, 0, nbytes); /* an id handed out is not kept */
    pool.used += nbytes;
    return 0;
}

int msp_random_hex(char *out, size_t nbytes) {
    unsigned char chunk[64];
    size_t done = 0;

    if (!out)
        return -1;
    while (done < nbytes) {
        size_t n = nbytes - done < sizeof(chunk) ? nbytes - done : sizeof(chunk);
        if (RAND_bytes(chunk, (int)n) != 1) {
            msp_secure_zero(chunk, sizeof(chunk));
            out[0] = '\0';
            return -1;
        }
        to_hex(chunk, n, out + 2 * done);
        done += n;
    }
    out[2 * nbytes] = '\0';
    msp_secure_zero(chunk, sizeof(chunk));
    return 0;
}
