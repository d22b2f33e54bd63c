//! The SIP fast path of sipmta (DESIGN.md "Fast path"; seed 004, fourth embodiment).
//!
//! This crate will hold everything that turns an E.164 number into a TCP stream carrying SMTP
//! straight to the destination's final mail server:
//!
//! - [`ua`]: a SIP user agent (UAC and UAS) on rsipstack `=0.7.14`, behind a small interface of
//!   its own (no rsipstack type in it) so the stack can be swapped: REGISTER with digest
//!   authentication and refresh, INVITE with the SDP offer, CANCEL, BYE, OPTIONS (answered with
//!   our protocols, and sent to probe a number's), CRLF keep-alive;
//! - [`registrar`]: the built-in SIP registrar and stateful proxy that `sipmta serve` runs on
//!   127.0.0.1:5060 by default (REGISTER with digest auth, locations behind a trait, INVITE,
//!   ACK, BYE, CANCEL and OPTIONS routed with Record-Route), standing in for Kamailio;
//! - [`sdp`]: sans-IO SDP (RFC 4566 subset) for the `m=application <port> TCP smtp http` offer,
//!   the callee's answer or `488`, and the caller's reading of the answer, with the RFC 4145
//!   `setup`/`connection` role rules and the `fp-token`; and the capability description of an
//!   OPTIONS answer (`m=application 0 TCP smtp http`, RFC 3261 §11.2);
//! - [`fp1`]: the FP/1 preamble on the stream (`FP/1 HELLO`, `PROTOS?`, `USE`, `OK`, `ERR`): a
//!   sans-IO codec, the token, and async caller/callee handshakes that leave the first SMTP octet
//!   unread; the protocol table they feed is kept per number in the store;
//! - fast-path sessions that the daemon's outbound SMTP client runs over, with reuse.
//!
//! Parts of this list are still to be written; each module's own doc says what it covers.

pub mod fp1;
pub mod registrar;
pub mod sdp;
pub mod ua;
