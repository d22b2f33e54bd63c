//! Black-box tests of the built `sipmta` binary against real peers live in `tests/daemon/`,
//! one scenario per file, sharing `tests/daemon/support`. This library is empty on purpose.
