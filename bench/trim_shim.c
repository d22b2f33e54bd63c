/*
 * LD_PRELOAD shim for bench/soak.sh's allocator experiments (A_ENV / B_ENV):
 *
 *   A_ENV="LD_PRELOAD=/path/trim_shim.so TRIM_INTERVAL=30" bench/soak.sh
 *
 * A thread started when the library loads calls glibc's malloc_trim(0) every TRIM_INTERVAL
 * seconds (30 by default). malloc_trim(0) hands back to the kernel (MADV_DONTNEED) the whole
 * free pages inside every arena, not only the top of the main heap as free() does. If a
 * daemon's RSS stays flat with the shim while its live heap (malloc_info) is flat either way,
 * the growth without it is memory glibc keeps free in its arenas, not memory sipmta holds.
 * Build: cc -O2 -shared -fPIC -pthread -o trim_shim.so bench/trim_shim.c
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *trimmer(void *arg)
{
    unsigned interval = (unsigned)(unsigned long)arg;
    for (;;) {
        sleep(interval);
        malloc_trim(0);
    }
    return NULL;
}

__attribute__((constructor)) static void start_trimmer(void)
{
    const char *s = getenv("TRIM_INTERVAL");
    long interval = s ? atol(s) : 30;
    pthread_t t;
    pthread_attr_t attr;
    if (interval <= 0)
        return;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_create(&t, &attr, trimmer, (void *)(unsigned long)interval);
    pthread_attr_destroy(&attr);
}
