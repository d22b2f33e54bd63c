//! glibc malloc settings for the daemon (RELIABILITY.md §5, the residual RSS creep).
//!
//! glibc gives threads their own arenas, up to 8 per core, so 16 on the 2-core soak machine.
//! The daemon's threads (tokio's workers and its blocking pool, which comes and goes) spread
//! message-sized blocks (1-256 KiB bodies and the buffers that grow to hold them) over all of
//! them. Each arena keeps the free space inside its heap (only a free top above the trim
//! threshold goes back to the kernel, and sled's 8 MiB segment buffers raise that threshold to
//! 16 MiB within minutes), and each arena's heap keeps reaching a little higher. In the soak,
//! the heap in use stayed flat (17-21 MiB) while the arenas' free space grew by 8-10 MiB, spread
//! over the 16 of them, and RSS with it: the creep. With two arenas the same load left RSS flat
//! from minute 20 and 9 MiB lower (bench/results/creep-2026-11-21.md).
//!
//! [`tune`] caps the arenas at [`ARENA_MAX`] unless the operator set a cap
//! (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).

/// The arena cap [`tune`] sets.
pub const ARENA_MAX: usize = 2;

/// Cap glibc's arenas at [`ARENA_MAX`] unless the environment set a cap. Returns whether it
/// did. Call it at start, before any thread is spawned (a thread keeps the arena it got); a
/// no-op off glibc.
pub fn tune() -> bool {
    let env_set = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max"));
    !env_set && set_arena_max(ARENA_MAX)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: usize) -> bool {
    let Ok(arenas) = libc::c_int::try_from(arenas) else { return false };
    // SAFETY: mallopt only changes malloc's parameters; M_ARENA_MAX takes a count and returns
    // 0 when it refuses one.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) -> bool {
    false
}
