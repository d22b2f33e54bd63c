/*
 * LD_PRELOAD shim for the "sipmta-fsync" variant of bench/relay.sh.
 *
 * sled 0.34 (sipmta's spool) makes its log durable with sync_file_range(2) on Linux. That call
 * writes the dirty pages and waits for them, but it neither flushes the disk's volatile write
 * cache nor commits file metadata (size, extents), so the man page says it gives no durability
 * guarantee. Postfix fsyncs its queue files. To compare like with like without touching
 * sipmta's code, this shim turns every sync_file_range call into fdatasync(2) on the same file.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
    (void)offset;
    (void)nbytes;
    (void)flags;
    return fdatasync(fd);
}
