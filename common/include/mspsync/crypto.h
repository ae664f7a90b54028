/*
 * crypto.h — secrets at rest (AES-256-GCM) and message signatures (HMAC-SHA256).
 *
 * Sealed format (printable, safe to store in Redis): "v1:" base64(nonce[12] | ciphertext | tag[16]).
 * The associated data (AAD) binds a ciphertext to where it is stored (e.g. "acme/syncro"), so a
 * ciphertext copied to another tenant's key fails to open.
 *
 * The key comes from MSPSYNC_SECRET_KEY (64 hex chars or base64 of 32 bytes) or from the file
 * named by MSPSYNC_SECRET_KEY_FILE (same encodings, surrounding whitespace ignored).
 *
 * Rotation: either may hold a key ring instead — several keys, newest first, separated by commas
 * or whitespace (one per line in a file). The newest seals; every listed key opens. To rotate:
 * put the new key in front, restart, re-seal everything (gateway POST /v1/secrets/reseal), check
 * that nothing is left under an old key (GET /v1/secrets), then drop the old key and restart. A
 * sealed value carries no key id: opening tries the keys in order (a GCM tag verifies only under
 * the key that sealed it), so the ring is at most MSP_SECRET_KEYS_MAX keys.
 */
#ifndef MSPSYNC_CRYPTO_H
#define MSPSYNC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define MSP_SECRET_KEYS_MAX 8

typedef struct msp_secret_key_s {
    unsigned char key[32];                            /**< the newest: seals and opens */
    unsigned char older[MSP_SECRET_KEYS_MAX - 1][32]; /**< open only, newest first */
    size_t older_cnt;
} msp_secret_key_t;

/**
 * @brief Load the key from the environment (see above). An empty variable counts as unset; setting
 *        both variables is an error (no silent precedence). errstr never contains key text.
 * @returns 0 or -1 with errstr.
 */
int msp_secret_key_load(msp_secret_key_t *k, char *errstr, size_t errstr_size);

/**
 * @brief Parse a key (64 hex chars or base64 of 32 bytes) or a key ring (several, newest first,
 * separated by commas or whitespace; at most MSP_SECRET_KEYS_MAX; the same key twice is an error)
 * from text. @returns 0 or -1 (k zeroed).
 */
int msp_secret_key_parse(msp_secret_key_t *k, const char *text, char *errstr, size_t errstr_size);

/**
 * @brief Encrypt plaintext with a fresh random nonce.
 * @returns a new NUL-terminated "v1:..." string (caller frees), or NULL on error.
 */
char *msp_secret_seal(const msp_secret_key_t *k, const char *aad, const char *plaintext,
                      size_t plaintext_len);

/**
 * @brief Decrypt and authenticate a sealed string.
 * @returns a new NUL-terminated plaintext (caller frees, ideally after msp_secure_zero), or NULL
 *          when the input is malformed, the AAD differs, or the tag does not verify.
 */
char *msp_secret_open(const msp_secret_key_t *k, const char *aad, const char *sealed,
                      size_t *plaintext_len);

/**
 * @brief msp_secret_open that also says which key of the ring opened it: *which = 0 the newest,
 * i > 0 the i-th older key (1 = the one before the newest), -1 none (NULL returned). which may
 * be NULL.
 */
char *msp_secret_open_ex(const msp_secret_key_t *k, const char *aad, const char *sealed,
                         size_t *plaintext_len, int *which);

/** @brief Zero memory in a way the compiler may not remove. */
void msp_secure_zero(void *p, size_t n);

/** @brief HMAC-SHA256 of data, written as 64 lowercase hex chars + NUL into out[65]. */
void msp_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t data_len,
                         char out[65]);

/** A key for HMAC-SHA256 prepared once (msp_hmac_key_new). */
typedef struct msp_hmac_key_s msp_hmac_key_t;

/**
 * @brief Prepare key for HMAC-SHA256: the hash states after its inner and outer pads, kept.
 * Signing with it (msp_hmac_key_hex) skips the key schedule and OpenSSL's algorithm lookup that
 * msp_hmac_sha256_hex pays on every call: for a secret that checks every request of a webhook.
 * @returns new (free with msp_hmac_key_free, which wipes it), or NULL (out of memory).
 */
msp_hmac_key_t *msp_hmac_key_new(const void *key, size_t key_len);

/** @brief Wipe and free (NULL-safe). */
void msp_hmac_key_free(msp_hmac_key_t *k);

/**
 * @brief HMAC-SHA256 of the bytes a then b (either may be empty), as msp_hmac_sha256_hex writes
 * it for their concatenation: 64 lowercase hex chars + NUL into out[65] ("" on failure).
 * k keeps a scratch state: one thread at a time per key.
 */
void msp_hmac_key_hex(msp_hmac_key_t *k, const void *a, size_t a_len, const void *b, size_t b_len,
                      char out[65]);

/** @brief Constant-time comparison of two NUL-terminated strings. @returns 1 equal, 0 not. */
int msp_consttime_streq(const char *a, const char *b);

/**
 * @brief Standard base64 (RFC 4648 alphabet, with padding, no line breaks).
 * Decoding is strict: length a multiple of 4, no whitespace, '=' only as trailing padding;
 * anything else gives NULL. The decoded buffer is NUL-terminated (the NUL not counted in *out_len).
 * @returns new string / new buffer (len in *out_len, may be NULL) or NULL; caller frees.
 */
char *msp_base64_encode(const unsigned char *data, size_t len);
unsigned char *msp_base64_decode(const char *text, size_t *out_len);

/** @brief n random bytes as 2n lowercase hex chars into out (size >= 2n+1). @returns 0 or -1. */
int msp_random_hex(char *out, size_t nbytes);

/**
 * @brief SHA-256 of data into out[32], with the digest fetched from OpenSSL's provider once per
 * process (EVP_Digest with EVP_sha256() fetches it on every call). @returns 0 or -1.
 */
int msp_sha256(const void *data, size_t len, unsigned char out[32]);

/**
 * @brief An identifier of n random bytes (n <= 32) as 2n lowercase hex chars, drawn from a
 * per-thread pool of CSPRNG bytes refilled 1 KiB at a time: as unpredictable as msp_random_hex at
 * a fraction of its cost per call (one RAND_bytes per 1 KiB, not per id). For ids made per record
 * (a merge's change id), never for secrets, whose bytes must not linger in a pool.
 * @returns 0 or -1.
 */
int msp_random_id_hex(char *out, size_t nbytes);

#endif
