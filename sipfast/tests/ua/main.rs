//! Tests of the SIP user agent (`sipfast::ua`) against real peers: Kamailio as registrar and
//! proxy between two agents, sipp as the remote user agent or registrar. One scenario per file;
//! `support` starts the peers on free loopback ports and stops them.
//!
//! Needs the Debian packages `kamailio` and `sip-tester` (./tests/run.sh installs them).

mod support;

mod agent_requests;
mod kamailio_auth;
mod kamailio_call;
mod keepalive;
mod options;
mod sipp_registrar;
mod sipp_uas;
