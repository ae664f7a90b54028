/*
 * priority.h — which work yields the CPU: bulk lanes are nicer than the incident path.
 *
 * On a machine (or a pod's CPU share) that runs several services, a full sync keeps the
 * fetcher and the records normalizer busy for seconds to minutes, and an incident that arrives
 * meanwhile waits for a core behind them: on the project's 2-core benchmark machine that wait
 * was most of an incident's p99 during a 15,000-asset sync (docs/benchmarks.md). Throughput
 * work does not mind a few milliseconds; an incident does. So the bulk services lower their own
 * scheduling priority at start (MSPSYNC_NICE: the fetcher and a normalizer that consumes only
 * raw.records default to 10; everything on the incident path stays at 0). Under CFS a thread of
 * niceness 10 weighs about a tenth of one at 0: an incident's thread that wakes up takes the
 * core at once, and a bulk service still gets every cycle nobody else wants.
 *
 * The niceness only orders threads that compete for the same CPUs under one scheduler: the
 * processes of one host or one container. Containers are ordered by their cgroups' CPU
 * weights instead (compose `cpu_shares`, a Kubernetes pod's CPU request); deploy/ sets those
 * in the same spirit.
 *
 * On Linux a niceness belongs to a thread and new threads inherit it: call msp_priority_apply()
 * before any thread is started (librdkafka's, the normalizer's prepare threads), right after
 * the configuration is read.
 */
#ifndef MSPSYNC_PRIORITY_H
#define MSPSYNC_PRIORITY_H

/** Default niceness of the bulk services (fetcher, records normalizer). */
#define MSP_NICE_BULK 10

/**
 * @brief Make the calling thread (and the threads it starts later) this nice: 0..19; lowering
 * it below the current value needs CAP_SYS_NICE, which we never ask for. @returns 0, or -1
 * (logged as a warning with the reason; the service runs on at its current priority).
 */
int msp_priority_apply(int niceness);

#endif
