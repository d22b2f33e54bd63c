//! Free-space checks, so the SMTP server can refuse with `452 4.3.1` before a write fails
//! half-way (DESIGN.md "Store").

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Octets available to unprivileged users on the filesystem holding `path` (`f_bavail`, not
/// `f_bfree`: the root reserve is not ours to spend).
#[allow(unsafe_code)]
pub fn available(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to writable memory of
    // the right type; statvfs only writes into it. We read it only after a zero return.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn current_directory_has_some_space() {
        let free = super::available(std::path::Path::new(".")).unwrap_or(0);
        assert!(free > 0);
        assert!(super::available(std::path::Path::new("/no/such/dir")).is_err());
    }
}
