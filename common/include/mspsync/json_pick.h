/*
 * json_pick.h — parse a JSON object but build only the members a reader uses.
 *
 * A vendor record is mostly members nobody reads: a 2.6 kB Syncro asset carries its customer,
 * its RMM store and its address (1.8 kB) beside the 0.7 kB the canonical mapping looks at, and
 * building jansson trees for all of it was 40 % of the normalizer's time (perf, docs/benchmarks.md).
 * msp_json_pick() checks the whole text as strictly as jansson does and builds only the members
 * it is asked for; each kept member is built by jansson itself (json_loadb on its bytes), so a
 * kept value is exactly what json_loadb would have made of it.
 *
 * Strictness of the members it skips (RFC 8259 as jansson reads it): structure, string escapes
 * (no \u0000, no lone surrogate), control characters, UTF-8 (RFC 3629), number grammar, nesting
 * depth up to 2048, nothing but white space after the value. One difference, on purpose: the
 * range of a skipped number is not checked (jansson refuses an integer beyond 64 bits or a real
 * beyond DBL_MAX anywhere in a text; a skipped member cannot affect a record, so it does not make
 * the record unusable).
 *
 * msp_json_flat() is the cheaper walk for a hot path that reads a small flat object, such as a
 * webhook body: it builds nothing and hands back the bytes of members that are strings without
 * escapes (or null). Anything else is not refused but declined (-1), and the caller parses the
 * text with jansson, which accepts it or names its error: the shortcut never decides an error.
 */
#ifndef MSPSYNC_JSON_PICK_H
#define MSPSYNC_JSON_PICK_H

#include <stddef.h>
#include <jansson.h>

/** What the caller wants of one top-level member. */
typedef enum {
    MSP_PICK_SKIP = 0,   /**< check it, don't build it */
    MSP_PICK_KEEP = 1,   /**< build it (json_loadb on its bytes) */
    MSP_PICK_SPAN = 2,   /**< check it and hand back its bytes (msp_json_pick_t.span) */
    MSP_PICK_NESTED = 3, /**< an object: build it picking its members with
                               msp_json_pick_t.nested, in the same pass; another value: KEEP */
} msp_pick_t;

/** Decides per top-level member name (NUL-terminated, unescaped). */
typedef msp_pick_t msp_pick_fn(const char *name, void *arg);

typedef struct msp_json_pick_s {
    msp_pick_fn *want;        /**< NULL = keep every member */
    void        *arg;
    const char *span; /**< out: the bytes of the last MSP_PICK_SPAN (or _NESTED)
                                   member, or NULL */
    size_t       span_len;
    /** how want's MSP_PICK_NESTED picks the member (want sets it; NULL = keep every member) */
    struct msp_json_pick_s *nested;
    /** the object built so far, for want to read while it decides (borrowed; set before each
     *  call: the members before this one that it kept) */
    const json_t *built;
} msp_json_pick_t;

/**
 * @brief Parse buf[0, len) as one JSON value.
 * An object gets the members `pick->want` keeps (all when want is NULL); any other value is
 * built whole (JSON_DECODE_ANY). On failure err (may be NULL) says where, as jansson does
 * (text, line, column, position).
 * @returns a new reference, or NULL when the text is not valid JSON or memory ran out.
 */
json_t *msp_json_pick(const char *buf, size_t len, msp_json_pick_t *pick, json_error_t *err);

/** One member of a flat object (msp_json_flat): its bytes inside the quotes, borrowed from the
 *  text. Neither has an escape, so the bytes are the value; both are valid UTF-8. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value; /**< NULL when the value is null */
    size_t value_len;
} msp_json_member_t;

/**
 * @brief Split buf[0, len) when it is one JSON object whose members are all strings without
 *        escapes, or null: out gets its members in order. Such a text is accepted by
 *        json_loadb(JSON_REJECT_DUPLICATES) exactly when this accepts it, with these values.
 * @returns the number of members (at most max), or -1 when the text is anything else — invalid,
 *          or valid but outside this shape (an escape in a name or value, a number, true, false,
 *          an array, an object, more than max members, a name twice).
 */
int msp_json_flat(const char *buf, size_t len, msp_json_member_t *out, int max);

/** @brief msp_pick_fn for a NULL-terminated array of names (arg): keep those, skip the rest. */
msp_pick_t msp_pick_names(const char *name, void *arg);

#endif
