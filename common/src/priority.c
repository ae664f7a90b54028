/*
 * priority.c — see priority.h. setpriority(PRIO_PROCESS, 0) acts on the calling thread on
 * Linux (a deviation from POSIX that glibc documents), which is what "before any thread
 * starts" relies on.
 */
#include "mspsync/priority.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "mspsync/log.h"

int msp_priority_apply(int niceness) {
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && now == niceness)
        return 0;
    if (setpriority(PRIO_PROCESS, 0, niceness) != 0) {
        MSP_WARN("priority.unchanged", NULL, "could not set the niceness to %d (now %d): %s",
                 niceness, now, strerror(errno));
        return -1;
    }
    MSP_INFO("priority.set", NULL, "niceness %d", niceness);
    return 0;
}
