/*
 * json_dump.h — json_dumps for the hot path, byte for byte what jansson writes.
 *
 * The normalizer serializes every record three times (the fingerprint's sorted form, the stored
 * source record, the merged asset it publishes), and jansson's json_dumps — a callback per token,
 * a UTF-8 decode per character — was a fifth of its time (perf, docs/benchmarks.md).
 * msp_json_dumps() writes the same bytes with runs copied whole.
 *
 * Identity with jansson 2.14 is a contract, not a hope: fingerprints are SHA-256 of the sorted
 * form and are stored, so a byte of difference would make every record look changed once.
 * tests/unit/test_json_fast.c compares both on generated trees. Flags other than JSON_COMPACT,
 * JSON_SORT_KEYS and JSON_ENCODE_ANY, and real numbers, are handed to jansson itself.
 */
#ifndef MSPSYNC_JSON_DUMP_H
#define MSPSYNC_JSON_DUMP_H

#include <stddef.h>
#include <jansson.h>

/**
 * @brief json_dumps(v, flags), same bytes, same allocator (free with msp_json_free or jansson's
 *        free function). @returns NULL when json_dumps would (not a container without
 *        JSON_ENCODE_ANY, invalid UTF-8 in a string made unchecked) or memory ran out.
 */
char *msp_json_dumps(const json_t *v, size_t flags);

/**
 * @brief What msp_json_dumps(v, flags) writes, with the top-level member named skip (if any, and
 *        v an object) left out, in the calling thread's scratch buffer: no allocation, no copy.
 *        NUL-terminated, *len bytes; valid until the thread's next dump. For hashing the text.
 * @returns the text, or NULL: flags other than ours, too deep a tree (jansson's case), invalid
 *          UTF-8, out of memory, or not a container without JSON_ENCODE_ANY.
 */
const char *msp_json_dump_view(const json_t *v, size_t flags, const char *skip, size_t *len);

/** @brief Free the calling thread's scratch buffer: call it before a thread that dumped exits. */
void msp_json_dumps_thread_done(void);

#endif
