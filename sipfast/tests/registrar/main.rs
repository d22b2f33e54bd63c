//! Tests of the built-in registrar/proxy (`sipfast::registrar`) over real sockets: our own
//! user agents (`sipfast::ua::SipAgent`) registering and calling each other through it, raw
//! SIP for the corners, and sipp as a foreign user agent. One scenario per file; `support`
//! starts the registrar on a free loopback port.
//!
//! Needs the Debian package `sip-tester` for the sipp scenarios (./tests/run.sh installs it).

mod support;

mod agents_call;
mod cancel;
mod late;
mod options;
mod raw;
mod refusals;
mod sipp;
