#!/bin/sh
# mspsync-healthcheck — the image's HEALTHCHECK: finds which mspsync service this container runs
# and asks its /healthz on the address and port the service's own settings give, so one image-level
# check serves every service without a per-service override.
#
#   gateway                     MSPSYNC_HTTP_BIND:MSPSYNC_HTTP_PORT (default 8080)
#   fetcher, normalizer,        MSPSYNC_METRICS_BIND:MSPSYNC_METRICS_PORT (defaults 9100, 9101,
#   ticket-creator, write-back, 9103, 9104, 9106: each service's config table)
#   billing
#   simulators, anything else   healthy while the process lives (they have no /healthz)
#
# MSPSYNC_HEALTH_URL, when set, is asked instead. Exit 0 healthy, 1 not (Docker's convention).
set -eu

if [ -n "${MSPSYNC_HEALTH_URL:-}" ]; then
    exec curl -fsS -m 3 -o /dev/null "$MSPSYNC_HEALTH_URL"
fi

# The service is the first mspsync-* process (pid 1, or the child of an init such as docker-init).
svc=
for f in /proc/[0-9]*/cmdline; do
    cmd=$(tr '\0' '\n' <"$f" 2>/dev/null | head -n 1) || continue
    case "${cmd##*/}" in
        mspsync-healthcheck) ;;
        mspsync-*|syncro-sim|cwrmm-sim) svc=${cmd##*/}; break ;;
    esac
done

case "$svc" in
    mspsync-gateway)        bind=${MSPSYNC_HTTP_BIND:-127.0.0.1};    port=${MSPSYNC_HTTP_PORT:-8080} ;;
    mspsync-fetcher)        bind=${MSPSYNC_METRICS_BIND:-127.0.0.1}; port=${MSPSYNC_METRICS_PORT:-9100} ;;
    mspsync-normalizer)     bind=${MSPSYNC_METRICS_BIND:-127.0.0.1}; port=${MSPSYNC_METRICS_PORT:-9101} ;;
    mspsync-ticket-creator) bind=${MSPSYNC_METRICS_BIND:-127.0.0.1}; port=${MSPSYNC_METRICS_PORT:-9103} ;;
    mspsync-write-back)     bind=${MSPSYNC_METRICS_BIND:-127.0.0.1}; port=${MSPSYNC_METRICS_PORT:-9104} ;;
    mspsync-billing)        bind=${MSPSYNC_METRICS_BIND:-127.0.0.1}; port=${MSPSYNC_METRICS_PORT:-9106} ;;
    "") echo "no mspsync process in this container" >&2; exit 1 ;;
    *) exit 0 ;;
esac
# A wildcard bind is reached on loopback; port 0 ("any free port") cannot be probed from here.
case "$bind" in 0.0.0.0|::|"") bind=127.0.0.1 ;; esac
[ "$port" != 0 ] || { echo "$svc listens on a free port (0): set MSPSYNC_HEALTH_URL" >&2; exit 1; }
case "$bind" in *:*) bind="[$bind]" ;; esac
exec curl -fsS -m 3 -o /dev/null "http://$bind:$port/healthz"
