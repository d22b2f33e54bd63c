//! Black-box tests: the built `sipmta` daemon in a temp dir on ephemeral loopback ports, driven
//! by real peers. One scenario per file; `support` starts daemons and runs swaks.
//!
//! Run them with `./tests/run.sh` (it installs swaks and the other peers when missing).

#![allow(clippy::unwrap_used)]

mod support;

mod abuse;
mod auth_tls;
mod crash;
mod crash_load;
mod delivery;
mod demo;
mod deploy;
mod dkim;
mod fastpath;
mod fastpath_abuse;
mod fastpath_inline;
mod faults;
mod install;
mod kamailio_deploy;
mod learning;
mod lifecycle;
mod limits;
mod locators;
mod observe;
mod options;
mod registrar;
mod relay;
mod relay_mx;
mod reload;
mod routes;
mod sendmail;
mod smuggling;
