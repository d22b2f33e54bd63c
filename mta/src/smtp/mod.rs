//! Inbound SMTP (RFC 5321 and the ESMTP extensions of DESIGN.md "Message flow").

pub mod data;
pub mod reply;
