/*
 * kept_secrets.c — which secrets the gateway keeps registered for log redaction, and why.
 *
 * The log registry (msp_log_redact) counts holders. The gateway is the holder of what it stored:
 * a tenant's Syncro API key, ConnectWise RMM client secret, MTP webhook secret (and the previous
 * one during a rotation). A secret is registered only after its store succeeded — a key the
 * vendor refused was never stored, may be any word (say "queued"), and must not hide that word
 * from later log lines — and forgotten when the integration is removed or disabled or the secret
 * is replaced. One slot per "<tenant>/<what>" holds the plaintext the registration was made with,
 * because forgetting needs the same string.
 *
 * A gateway that restarts starts empty: it never opens stored secrets just to register them.
 * Single-threaded like the rest of the gateway (the loop thread only).
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/crypto.h"
#include "mspsync/log.h"

struct gw_kept_s {
    char              name[128];  /* "<tenant>/<what>" */
    char             *secret;     /* owned, registered once with msp_log_redact */
    struct gw_kept_s *next;
};

static gw_kept_t **slot_of(gw_t *gw, const char *name) {
    gw_kept_t **pp = &gw->kept;
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void kept_free(gw_kept_t *k) {
    msp_log_unredact(k->secret);
    msp_secure_zero(k->secret, strlen(k->secret));
    free(k->secret);
    free(k);
}

void gw_secret_keep(gw_t *gw, const char *tenant, const char *what, const char *secret) {
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", tenant, what);
    gw_kept_t **pp = slot_of(gw, name), *old = *pp, *k = NULL;
    if (secret) {
        k = calloc(1, sizeof(*k));
        if (k && !(k->secret = strdup(secret))) {
            free(k);
            k = NULL;
        }
        if (!k) {
            /* Out of memory: keep the old registration rather than none. */
            MSP_WARN("redact.oom", tenant, "could not register the new %s secret for log "
                     "redaction", what);
            return;
        }
        snprintf(k->name, sizeof(k->name), "%s", name);
        msp_log_redact(k->secret);  /* before the old one goes: the same string never lapses */
    }
    if (k) {
        k->next = old ? old->next : NULL;
        *pp = k;
    } else if (old) {
        *pp = old->next;
    }
    if (old)
        kept_free(old);
}

void gw_secret_rename(gw_t *gw, const char *tenant, const char *from, const char *to) {
    char name[128];
    gw_secret_keep(gw, tenant, to, NULL);
    snprintf(name, sizeof(name), "%s/%s", tenant, from);
    gw_kept_t *k = *slot_of(gw, name);
    if (k)
        snprintf(k->name, sizeof(k->name), "%s/%s", tenant, to);
}

void gw_secrets_forget_all(gw_t *gw) {
    while (gw->kept) {
        gw_kept_t *k = gw->kept;
        gw->kept = k->next;
        kept_free(k);
    }
}
