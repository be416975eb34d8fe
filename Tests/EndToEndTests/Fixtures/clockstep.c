/* Reads the guest's clocks for the guest-time test.
 *   clockstep            CLOCK_MONOTONIC read in a tight loop: the median step between reads
 *                        and the smallest non-zero one, in ns (a tick-based clock steps by
 *                        10 ms and mostly reads the same value twice).
 *   clockstep realtime   CLOCK_REALTIME in ns since the epoch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { READS = 20001 };

static long long now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int ascending(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "realtime") == 0) {
        printf("%lld\n", now(CLOCK_REALTIME));
        return 0;
    }
    static long long reads[READS], steps[READS - 1];
    for (int i = 0; i < READS; i++) reads[i] = now(CLOCK_MONOTONIC);
    long long smallest = -1;
    for (int i = 0; i < READS - 1; i++) {
        steps[i] = reads[i + 1] - reads[i];
        if (steps[i] < 0) {
            printf("backwards by %lld ns\n", -steps[i]);
            return 1;
        }
        if (steps[i] > 0 && (smallest < 0 || steps[i] < smallest)) smallest = steps[i];
    }
    qsort(steps, READS - 1, sizeof steps[0], ascending);
    printf("median_ns=%lld smallest_ns=%lld\n", steps[(READS - 1) / 2], smallest);
    return 0;
}
