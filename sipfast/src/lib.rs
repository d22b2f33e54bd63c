//! The SIP fast path of sipmta (DESIGN.md "Fast path"; seed 004, fourth embodiment).
//!
//! This crate will hold everything that turns an E.164 number into a TCP stream carrying SMTP
//! straight to the destination's final mail server:
//!
//! - a SIP user agent (UAC and UAS) on rsipstack `=0.7.14`, behind a small internal trait so the
//!   stack can be swapped: REGISTER with digest authentication and refresh, INVITE with the
//!   application SDP offer, CANCEL, BYE, OPTIONS;
//! - the built-in registrar/proxy that `sipmta serve` runs on 127.0.0.1:5060 by default;
//! - a sans-IO SDP module for the `m=application <port> TCP smtp http` offer and RFC 4145
//!   `setup`/`connection` role rules;
//! - the sans-IO FP/1 preamble (`FP/1 HELLO`, `PROTOS?`, `USE`, `OK`) and the protocol table
//!   kept per number;
//! - fast-path sessions that the daemon's outbound SMTP client runs over, with reuse.
//!
//! Nothing here is implemented yet: the foundation issue only fixes the crate's place in the
//! workspace. The fast-path issue fills it in.

pub mod fp1;
