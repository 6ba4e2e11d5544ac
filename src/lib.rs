//! Sandboxing for Cargo build scripts: policies and the runners that enforce them.
//!
//! This crate knows nothing of Cargo. Cargo (through the fork's patch series)
//! calls it in three steps for every build script it is about to run:
//!
//! 1. **Parse.** The package's `[package.build-sandbox]` table becomes a
//!    [`Request`] ([`Request::from_toml`]); the consumer's `[build-sandbox]`
//!    configuration becomes a [`ConsumerConfig`] ([`ConsumerConfig::from_toml`]:
//!    runner, trust, default limits, [`Grant`]s, allowed [`Weakening`]s). Errors
//!    carry the key path so that Cargo can point at the offending key.
//! 2. **Decide.** The consumer's [`Approval`] for a package
//!    ([`ConsumerConfig::approval`]) is its matching grants, default limits and
//!    [`Trust`] mode.
//!    [`EffectivePolicy::new`] combines the [`Baseline`] every script gets with
//!    what the approval grants: a package's declaration never adds to it (it
//!    only lowers limits), unless the consumer opted into [`Trust::Declared`].
//!    [`RunnerSelection::choose`] picks the runner.
//! 3. **Run.** [`runner::SandboxedScript::new`] makes the
//!    [`runner::SandboxRunner`] ([`runner::create`]), which refuses a policy it
//!    cannot enforce ([`runner::SandboxRunner::check`]).
//!    [`runner::SandboxedScript::run`] runs the [`runner::Invocation`],
//!    streaming its printable output lines to Cargo's callbacks, and records
//!    what the runner refused for the `help:` of a failed run.
//!
//! The modules point one way: `policy` (requests, grants, trust, limits, the
//! effective policy) depends on nothing else here; `runner` (the trait, its
//! errors, output streaming and the runners) and `build_tool` (what the build
//! tool does around a run: policing directives, reports, configuration edits,
//! hints) depend on `policy` only. Policy and build-tool items are used from
//! the crate root, runner items from [`runner`].
//!
//! Around these steps Cargo applies its own policy with the crate's helpers
//! (see `design/cargo-policy.md`): before any script runs it stops the build if
//! [`Approval::unapproved`] is not empty for some package, with
//! [`unapproved_error`], and refuses a policy that opens its own state
//! ([`EffectivePolicy::opened_protected`]); `cargo build-sandbox report` prints
//! [`ReportEntry`]s and `cargo build-sandbox approve|allow` call [`add_grant`];
//! after a sandboxed script ran it refuses directives that would run code
//! or write files outside the sandbox ([`runner::SandboxedScript::police`])
//! and prints the script's text through [`neutralize_control`] (its error
//! output through [`printable_output`]). Messages name Cargo's tables and
//! files as Cargo passes them ([`ConfigNames`]).
//!
//! Deny by default: a sandboxed script gets nothing but the baseline unless the
//! consumer grants it more, and a runner that cannot enforce a policy
//! must refuse to run rather than run with less protection.

mod build_tool;
mod policy;
#[cfg(feature = "runners")]
pub mod runner;

pub use build_tool::config_edit::{ConfigEditError, add_grant, describe_grant, grant_snippet};
pub use build_tool::directives::{
    ERROR_OUTPUT_TAIL, ForbiddenDirective, neutralize_control, neutralize_message,
    police_directives, printable_output,
};
pub use build_tool::hints::suggest_grant;
pub use build_tool::messages::{ConfigNames, Unapproved, unapproved_error};
pub use build_tool::record::DenialRecord;
pub use build_tool::report::{ReportEntry, render_report_human, render_report_json};
pub use policy::config::{ConsumerConfig, Weakening};
pub use policy::effective::{Baseline, EffectivePolicy};
#[cfg(test)]
pub(crate) use policy::grants::grants_for;
pub use policy::grants::{Grant, PackageMatcher, RunnerSelection};
pub use policy::trust::{Approval, Trust};
pub use policy::{
    DEFAULT_DISK_LIMIT, DEFAULT_OUTPUT_LIMIT, Denial, EnvPattern, LimitKind, Limits, NetTarget,
    PolicyError, Preset, Program, Request, RunnerKind,
};
