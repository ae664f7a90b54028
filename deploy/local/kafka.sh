#!/usr/bin/env bash
# kafka.sh — a single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1 for
# local development and the integration tests. The jars come from deploy/local/install-deps.sh.
#
# Usage: kafka.sh start|stop|status [--dir DIR] [--port N] [--controller-port N] [--purge]
#                                   [--sasl] [--sasl-port N]
#        kafka.sh topics|groups [--dir DIR] [--] ARGS...
#   --dir DIR             state dir (default $MSPSYNC_LOCAL_DIR/run/kafka); holds server.properties,
#                         log4j.properties, data/ (log.dirs), server.log, kafka.out, kafka.pid,
#                         cluster.id, ports, bootstrap
#   --port N              client (PLAINTEXT) port; default: the one used last in DIR if still free,
#                         else a free loopback port
#   --controller-port N   KRaft controller port; default chosen the same way
#   --purge               stop only: delete DIR after the broker has exited
#   --sasl                start only: also a SASL_SSL listener, as managed Kafka offers it
#                         (SCRAM-SHA-512 and PLAIN over TLS), beside the PLAINTEXT one that local
#                         tools use. Give it on the first start of DIR (the SCRAM user is written when the storage is
#                         formatted); later starts keep it. Makes a CA and a broker certificate
#                         (openssl) and writes into DIR/sasl/: ca.pem, user, password, bootstrap
#                         ("127.0.0.1:PORT") and client.properties (librdkafka properties for
#                         MSPSYNC_KAFKA_PROPERTIES_FILE, SCRAM-SHA-512)
#   --sasl-port N         the SASL_SSL port; default: the one used last if still free, else a free one
#
# start   formats DIR/data on first use, starts the broker in the background, waits until it answers
#         metadata requests (MSPSYNC_KAFKA_START_TIMEOUT, default 90 s), writes "127.0.0.1:PORT" to
#         DIR/bootstrap and prints it on stdout. Already running: prints the bootstrap, exit 0.
# stop    SIGTERM, up to MSPSYNC_KAFKA_STOP_TIMEOUT (default 20) s, then SIGKILL. Exit 0 when stopped
#         (also when it was not running).
# status  prints the bootstrap and exits 0 when running and answering; exit 1 when the process is
#         there but does not answer, 3 when not running.
# topics  runs kafka-topics (org.apache.kafka.tools.TopicCommand) against the running broker:
#         kafka.sh topics --create --topic t --partitions 3; kafka.sh topics --list
# groups  the same for kafka-consumer-groups: kafka.sh groups --describe --group g
# Errors go to stderr. Env: MSPSYNC_LOCAL_DIR, MSPSYNC_KAFKA_LIBS (default
# $MSPSYNC_LOCAL_DIR/kafka/libs), MSPSYNC_KAFKA_HEAP (default "-Xms256m -Xmx768m"), JAVA_HOME.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; exit 2; }

cmd=${1:-}; [ $# -gt 0 ] && shift
dir="" port="" cport="" sport="" sasl=0 purge=0 passthrough=()
if [ "$cmd" = topics ] || [ "$cmd" = groups ]; then
    case "${1:-}" in --dir) dir=${2:?--dir needs a value}; shift 2 ;; --dir=*) dir=${1#*=}; shift ;; esac
    [ "${1:-}" = -- ] && shift
    passthrough=("$@"); set --
fi
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) dir=${1#*=}; shift ;;
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --port=*) port=${1#*=}; shift ;;
        --controller-port) cport=${2:?--controller-port needs a value}; shift 2 ;;
        --controller-port=*) cport=${1#*=}; shift ;;
        --purge) purge=1; shift ;;
        --sasl) sasl=1; shift ;;
        --sasl-port) sport=${2:?--sasl-port needs a value}; shift 2 ;;
        --sasl-port=*) sport=${1#*=}; shift ;;
        -h|--help) usage ;;
        *) msp_warn "unknown argument: $1"; usage ;;
    esac
done
case "$cmd" in start|stop|status|topics|groups) ;; *) usage ;; esac
[ -z "$port" ] || msp_check_port_arg "$port"
[ -z "$cport" ] || msp_check_port_arg "$cport"
[ -z "$sport" ] || msp_check_port_arg "$sport"

dir=${dir:-$MSPSYNC_LOCAL_DIR/run/kafka}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
LIBS=${MSPSYNC_KAFKA_LIBS:-$MSPSYNC_LOCAL_DIR/kafka/libs}
PIDFILE="$dir/kafka.pid"
PROPS="$dir/server.properties"
SASL_DIR="$dir/sasl"
START_TIMEOUT=${MSPSYNC_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${MSPSYNC_KAFKA_STOP_TIMEOUT:-20}

java_bin() {
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"
    else command -v java || msp_die "java not found (run deploy/local/install-deps.sh)"; fi
}

# pid of the broker of this DIR, or nothing
running_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    msp_pid_matches "$pid" "$PROPS" || return 1
    echo "$pid"
}

current_port() { sed -n 's/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$PROPS" 2>/dev/null; }

# 0 when the broker on $1 answers a metadata request and lists itself
answers() {
    local p=$1 out
    if command -v kcat >/dev/null; then
        out=$(timeout 5 kcat -b "127.0.0.1:$p" -L -m 2 -X topic.metadata.refresh.interval.ms=-1 2>/dev/null) || return 1
        grep -q "broker 1 at 127.0.0.1:$p" <<<"$out"
    else  # no kcat: the broker logs this line once it is serving
        grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null && ! msp_port_free "$p"
    fi
}

wait_ready() {  # pid port
    local pid=$1 p=$2 start=$SECONDS
    while ! answers "$p"; do
        if ! msp_pid_alive "$pid"; then
            msp_warn "broker exited during start-up; last lines of $dir/server.log and kafka.out:"
            tail -n 30 "$dir/server.log" "$dir/kafka.out" >&2 2>/dev/null || true
            rm -f "$PIDFILE"
            return 1
        fi
        if [ $((SECONDS - start)) -ge "$START_TIMEOUT" ]; then
            msp_warn "broker (pid $pid) not answering on 127.0.0.1:$p after ${START_TIMEOUT}s; see $dir/server.log"
            return 1
        fi
        sleep 0.25
    done
}

# The CA, the broker's key store and the client's credentials in $SASL_DIR, made once.
sasl_material() {
    local d=$SASL_DIR
    [ -s "$d/broker.p12" ] && [ -s "$d/password" ] && return 0
    command -v openssl >/dev/null || msp_die "--sasl needs openssl"
    mkdir -p "$d"
    chmod 700 "$d"
    (
        set -e
        cd "$d"
        openssl rand -hex 16 >password
        openssl rand -hex 16 >keystore.password
        echo mspsync >user
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=mspsync local Kafka CA"
        openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=127.0.0.1"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile broker.ext -out broker.pem
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -passout "pass:$(cat keystore.password)" -out broker.p12
        rm -f broker.csr broker.ext ca.srl
    ) >>"$dir/kafka.out" 2>&1 || msp_die "making the TLS material in $d failed; see $dir/kafka.out"
}

# The SASL_SSL listener's lines of server.properties (port).
sasl_config() {
    local ks user pw
    ks=$(cat "$SASL_DIR/keystore.password") user=$(cat "$SASL_DIR/user") pw=$(cat "$SASL_DIR/password")
    cat <<SASL_EOF

# SASL_SSL listener (kafka.sh --sasl): SCRAM-SHA-512 (user written at format time) and PLAIN
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$user="$pw";
ssl.keystore.type=PKCS12
ssl.keystore.location=$SASL_DIR/broker.p12
ssl.keystore.password=$ks
ssl.key.password=$ks
SASL_EOF
}

# What a client needs: DIR/sasl/bootstrap and client.properties (librdkafka names).
sasl_client_files() {  # port
    echo "127.0.0.1:$1" >"$SASL_DIR/bootstrap"
    cat >"$SASL_DIR/client.properties" <<CLIENT_EOF
# written by deploy/local/kafka.sh --sasl: librdkafka properties for MSPSYNC_KAFKA_PROPERTIES_FILE
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=$(cat "$SASL_DIR/user")
sasl.password=$(cat "$SASL_DIR/password")
ssl.ca.location=$SASL_DIR/ca.pem
CLIENT_EOF
    chmod 600 "$SASL_DIR/client.properties"
}

write_config() {  # port cport [sasl-port]
    cat >"$PROPS" <<PROPS_EOF
# written by deploy/local/kafka.sh — regenerated on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$2
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2${3:+,SASL_SSL://127.0.0.1:$3}
advertised.listeners=PLAINTEXT://127.0.0.1:$1${3:+,SASL_SSL://127.0.0.1:$3}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$dir/data

# one node: replication 1 everywhere
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
num.partitions=6
auto.create.topics.enable=false
delete.topic.enable=true

# fast tests: no rebalance delay, fewer internal partitions to create on first use,
# compaction passes soon after a segment can be cleaned
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
log.cleaner.backoff.ms=1000
auto.leader.rebalance.enable=false

# small machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
PROPS_EOF
    [ -z "${3:-}" ] || sasl_config >>"$PROPS"
    cat >"$dir/log4j.properties" <<LOG_EOF
# written by deploy/local/kafka.sh: everything to server.log, WARN and above also on the console
log4j.rootLogger=INFO, file, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$dir/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
LOG_EOF
    cat >"$dir/tools-log4j.properties" <<LOG_EOF
# written by deploy/local/kafka.sh: for \`kafka.sh topics|groups\`
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG_EOF
}

do_start() {
    local pid p cp java cid
    compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null \
        || msp_die "no Kafka jars in $LIBS (run deploy/local/install-deps.sh)"
    exec 9>"$dir/.lock"
    flock -w 120 9 || msp_die "could not lock $dir/.lock"

    if pid=$(running_pid); then
        p=$(current_port)
        if [ -n "$port" ] && [ "$port" != "$p" ]; then
            msp_die "already running in $dir on port $p (asked for $port); stop it first"
        fi
        wait_ready "$pid" "$p" || exit 1
        echo "127.0.0.1:$p" >"$dir/bootstrap"
        echo "127.0.0.1:$p"
        return 0
    fi
    rm -f "$PIDFILE"

    # ports: asked for > used last time (if still free) > new free ones
    local last_p="" last_cp=""
    if [ -f "$dir/ports" ]; then read -r last_p last_cp <"$dir/ports" || true; fi
    p=$port cp=$cport
    if [ -z "$p" ] && [ -n "$last_p" ] && [ "$last_p" != "$cp" ] && msp_port_free "$last_p"; then p=$last_p; fi
    if [ -z "$cp" ] && [ -n "$last_cp" ] && [ "$last_cp" != "$p" ] && msp_port_free "$last_cp"; then cp=$last_cp; fi
    if [ -z "$p" ] || [ -z "$cp" ]; then
        local fresh; mapfile -t fresh < <(msp_free_port 3)
        local f; for f in "${fresh[@]}"; do
            if [ -z "$p" ] && [ "$f" != "$cp" ]; then p=$f
            elif [ -z "$cp" ] && [ "$f" != "$p" ]; then cp=$f; fi
        done
    fi
    [ "$p" != "$cp" ] || msp_die "--port and --controller-port must differ"
    msp_port_free "$p" || msp_die "port $p on 127.0.0.1 is in use"
    msp_port_free "$cp" || msp_die "controller port $cp on 127.0.0.1 is in use"
    echo "$p $cp" >"$dir/ports"
    local sp=""
    [ -d "$SASL_DIR" ] && sasl=1
    if [ "$sasl" = 1 ]; then
        sasl_material
        sp=$sport
        if [ -z "$sp" ] && [ -s "$SASL_DIR/port" ] && msp_port_free "$(cat "$SASL_DIR/port")"; then
            sp=$(cat "$SASL_DIR/port")
        fi
        while [ -z "$sp" ] || [ "$sp" = "$p" ] || [ "$sp" = "$cp" ]; do sp=$(msp_free_port 1); done
        msp_port_free "$sp" || msp_die "SASL port $sp on 127.0.0.1 is in use"
        echo "$sp" >"$SASL_DIR/port"
    fi
    write_config "$p" "$cp" "$sp"

    java=$(java_bin)
    if [ ! -f "$dir/data/meta.properties" ]; then
        local scram=()
        [ -z "$sp" ] || scram=(--add-scram "SCRAM-SHA-512=[name=$(cat "$SASL_DIR/user"),password=$(cat "$SASL_DIR/password")]")
        if [ -s "$dir/cluster.id" ]; then cid=$(cat "$dir/cluster.id")
        else
            cid=$("$java" -Dlog4j.configuration="file:$dir/tools-log4j.properties" -cp "$LIBS/*" \
                kafka.tools.StorageTool random-uuid 2>>"$dir/kafka.out" | tail -n1)
            [ -n "$cid" ] || msp_die "StorageTool random-uuid failed; see $dir/kafka.out"
            echo "$cid" >"$dir/cluster.id"
        fi
        "$java" -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$LIBS/*" \
            kafka.tools.StorageTool format -t "$cid" -c "$PROPS" "${scram[@]}" >>"$dir/kafka.out" 2>&1 \
            || { tail -n 20 "$dir/kafka.out" >&2; msp_die "StorageTool format failed"; }
    fi

    local heap=${MSPSYNC_KAFKA_HEAP:--Xms256m -Xmx768m}
    local t0=$SECONDS
    echo "=== $(date -u +%FT%TZ) kafka.sh start on 127.0.0.1:$p (controller $cp)" >>"$dir/kafka.out"
    # own session (no terminal signals), stdin closed, lock fd not inherited; the shell writes its
    # own pid and execs java, so the pid file holds the JVM's pid
    # shellcheck disable=SC2016,SC2086  # $heap: several JVM options
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-start "$PIDFILE" \
        "$java" $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
        -Dlog4j.configuration="file:$dir/log4j.properties" \
        -cp "$LIBS/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$dir/kafka.out" 2>&1 9>&- &
    local i
    for i in $(seq 1 40); do [ -s "$PIDFILE" ] && break; sleep 0.05; done
    pid=$(cat "$PIDFILE" 2>/dev/null) || msp_die "broker did not start; see $dir/kafka.out"
    wait_ready "$pid" "$p" || exit 1
    echo "kafka.sh: ready after $((SECONDS - t0)) s" >>"$dir/kafka.out"
    [ -z "$sp" ] || sasl_client_files "$sp"
    echo "127.0.0.1:$p" >"$dir/bootstrap"
    echo "127.0.0.1:$p"
}

do_stop() {
    local pid i
    exec 9>"$dir/.lock"
    flock -w 120 9 || msp_die "could not lock $dir/.lock"
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do msp_pid_alive "$pid" || break; sleep 0.1; done
        if msp_pid_alive "$pid"; then
            msp_warn "broker (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do msp_pid_alive "$pid" || break; sleep 0.1; done
            msp_pid_alive "$pid" && msp_die "broker (pid $pid) survived SIGKILL"
        fi
    fi
    rm -f "$PIDFILE"
    [ "$purge" = 1 ] && msp_purge_state_dir "$dir" kafka.sh "$(basename "$PROPS")" ports
    return 0
}

do_status() {
    local pid p
    if ! pid=$(running_pid); then msp_warn "not running ($dir)"; exit 3; fi
    p=$(current_port)
    if answers "$p"; then echo "127.0.0.1:$p"; exit 0; fi
    msp_warn "pid $pid is running but 127.0.0.1:$p does not answer"
    exit 1
}

do_tool() {  # main class
    local pid p
    pid=$(running_pid) || { msp_warn "not running ($dir)"; exit 3; }
    p=$(current_port)
    exec "$(java_bin)" -Xmx256m -Dlog4j.configuration="file:$dir/tools-log4j.properties" \
        -cp "$LIBS/*" "$1" --bootstrap-server "127.0.0.1:$p" "${passthrough[@]}"
}
do_topics() { do_tool org.apache.kafka.tools.TopicCommand; }
do_groups() { do_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand; }

"do_$cmd"
