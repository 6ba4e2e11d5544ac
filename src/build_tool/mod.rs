//! What the build tool does around a sandboxed run, with the crate's rules:
//! police the directives a script printed ([`directives`]), show what every
//! package declares and is approved ([`report`]), edit the consumer's
//! configuration ([`config_edit`]), word the error for requests that are
//! not approved ([`messages`]), hint the grant a failed script lacked
//! ([`hints`]) and keep what a run was refused ([`record`]). Nothing here runs
//! a script.

pub mod config_edit;
pub mod directives;
pub mod hints;
pub mod messages;
pub mod record;
pub mod report;
