//! `sipmta::malloc::tune` (RELIABILITY.md §5): after it, threads share at most
//! `sipmta::malloc::ARENA_MAX` glibc arenas instead of one each (up to 8 per core), so the free
//! space each arena keeps is not multiplied by the number of threads. Its own test binary: the
//! setting is process-wide and the check counts the process's arenas.
#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn threads_share_at_most_arena_max_arenas() {
    use std::sync::{Arc, Barrier};

    /// The arenas glibc has made so far: the `<heap>` elements of malloc_info's report.
    fn arenas() -> usize {
        let mut buf: *mut libc::c_char = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: open_memstream writes the buffer's address and size into the two locals and
        // the buffer stays valid (NUL-terminated) after fclose until we free it.
        let xml = unsafe {
            let f = libc::open_memstream(&mut buf, &mut len);
            assert!(!f.is_null(), "open_memstream failed");
            libc::malloc_info(0, f);
            libc::fclose(f);
            let xml = std::ffi::CStr::from_ptr(buf).to_string_lossy().into_owned();
            libc::free(buf.cast());
            xml
        };
        xml.matches("<heap nr=").count()
    }

    assert!(sipmta::malloc::tune(), "mallopt(M_ARENA_MAX) refused");
    // Eight threads allocating at once: without the cap each gets an arena of its own.
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let block = std::hint::black_box(vec![1u8; 64 << 10]);
                barrier.wait();
                drop(block);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("allocating thread panicked");
    }
    let n = arenas();
    assert!(n <= sipmta::malloc::ARENA_MAX, "{n} arenas after {threads} threads allocated");
}
