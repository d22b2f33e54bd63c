//! `decide` through the public API: each kind of evidence, each precedence conflict of
//! DESIGN.md "Routing rules", the one-domain rule for header and body evidence, messages
//! parsed from raw text, and generated-input properties.

mod evidence_kinds;
mod multi_domain;
mod precedence;
mod properties;
mod support;
