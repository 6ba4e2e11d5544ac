//! The [`SandboxRunner`] trait: how a build script is executed.
//!
//! Cargo prepares an [`Invocation`] (the command it would run today plus the
//! [`EffectivePolicy`]) and hands it to a runner together with two line
//! callbacks. The runner first [`checks`](SandboxRunner::check) that it can
//! enforce the policy — a runner that cannot must refuse, never run with less
//! protection — and then runs the script, feeding each stdout and stderr line to
//! the callbacks as it arrives (Cargo parses `cargo::` directives and echoes
//! `-vv` output there) and returning the exit status and the captured output.
//!
//! Runners are chosen by [`RunnerKind`] and created by [`create`], which gets
//! what a runner needs from the embedding program in a [`RunnerContext`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::Context as _;

use crate::{Denial, EffectivePolicy, RunnerKind, Weakening};

pub mod native;
mod noop;
mod script;
pub(crate) mod stream;
#[cfg(unix)]
pub mod wasmtime;

#[cfg(unix)]
pub use self::wasmtime::WasmtimeRunner;
#[cfg(target_os = "linux")]
pub use native::NativeRunner;
pub use noop::NoopRunner;
pub use script::SandboxedScript;

pub use crate::LimitKind;

/// A line callback: receives one line without its line terminator.
pub type LineCallback<'a> = &'a mut dyn FnMut(&str) -> anyhow::Result<()>;

/// One build-script execution, as Cargo would perform it.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// The build-script executable (or, for wasmtime, component).
    pub program: &'a Path,
    /// Its arguments (none for build scripts today).
    pub args: &'a [OsString],
    /// Variables Cargo sets (`Some`) or removes (`None`); the rest of Cargo's own
    /// environment is what the script would inherit without a sandbox.
    pub env: &'a BTreeMap<String, Option<OsString>>,
    /// The working directory (the package root for build scripts).
    pub cwd: &'a Path,
    /// Cargo's jobserver, shared with the script so that `cc` and friends
    /// stay within `-j`.
    pub jobserver: Option<&'a jobserver::Client>,
    /// The sysroot of the compiler in `RUSTC`, when the caller knows it (Cargo
    /// does); otherwise a runner that needs it asks that compiler.
    pub rustc_sysroot: Option<&'a Path>,
    /// What the script may do.
    pub policy: &'a EffectivePolicy,
    /// Where the runner records what it refused the script, when the caller
    /// wants to know (to hint at the grant that would have helped).
    pub denials: Option<&'a Denials>,
}

/// The denials recorded during one run.
#[derive(Debug, Default)]
pub struct Denials(std::sync::Mutex<BTreeSet<Denial>>);

impl Denials {
    /// The most denials kept; a script that tries more gets no more.
    const MAX: usize = 256;

    pub fn record(&self, denial: Denial) {
        let mut denials = self.lock();
        if denials.len() < Denials::MAX {
            denials.insert(denial);
        }
    }

    /// What was recorded, in order.
    pub fn recorded(&self) -> Vec<Denial> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Denial>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Invocation<'_> {
    /// The environment of a sandboxed script: every variable Cargo sets, plus
    /// the variables of Cargo's own environment that the policy passes through.
    pub fn sandboxed_env(&self) -> BTreeMap<String, OsString> {
        let mut env: BTreeMap<String, OsString> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .filter(|(name, _)| {
                self.policy
                    .granted
                    .env
                    .iter()
                    .any(|pattern| pattern.matches(name))
            })
            .filter(|(name, _)| !self.env.contains_key(name))
            .collect();
        for (name, value) in self.env {
            if let Some(value) = value {
                env.insert(name.clone(), value.clone());
            }
        }
        env
    }
}

/// Why a run did not produce an [`Output`].
#[derive(Debug)]
pub enum RunError {
    /// The process could not be started, or its output could not be read.
    Process(io::Error),
    /// A line callback failed; the process ran to completion, its output is attached.
    Callback {
        /// The callback's error.
        error: anyhow::Error,
        /// Everything the process printed.
        output: Output,
    },
    /// The runner cannot enforce the policy, or setting up the sandbox failed.
    Sandbox(anyhow::Error),
    /// The build script exceeded a limit and was stopped.
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// The limit as a user would write it, e.g. `60s` or `16MiB`.
        value: String,
        /// What the process printed before it was stopped.
        output: Output,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Process(e) => write!(f, "failed to run the process: {e}"),
            RunError::Callback { error, .. } => write!(f, "failed to process its output: {error}"),
            RunError::Sandbox(e) => write!(f, "{e:#}"),
            RunError::LimitExceeded { limit, value, .. } => {
                write!(f, "exceeded its {} limit of {value}", limit.key())
            }
        }
    }
}

impl std::error::Error for RunError {}

/// A runner's refusal to run: what the system or the policy lacks, and what
/// the user can change for the run to go ahead.
///
/// Runners return it inside an [`anyhow::Error`] (from [`create`],
/// [`SandboxRunner::check`] and, as [`RunError::Sandbox`], from
/// [`SandboxRunner::run`]). It displays as its message; the remedies are
/// settings of the embedding program, which words each as a `help:` line of
/// its own and prints them after the message, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The reason, then its `note:` lines (and `help:` lines that need no
    /// setting), one per line, without a final newline.
    pub message: String,
    /// What the user can set instead, in the order to print them.
    pub remedies: Vec<Remedy>,
}

/// A setting that would let a refused run go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Allowing the weakening, which the runner was not allowed.
    AllowWeaker {
        /// The protection to go without.
        weakening: Weakening,
        /// What running with it does, as a clause to put before the setting,
        /// e.g. `to run build scripts without a process limit`.
        purpose: &'static str,
    },
    /// Choosing another runner for the build script.
    UseRunner {
        /// The runner.
        runner: RunnerKind,
        /// What running with it does, if worth saying, e.g. `to run build
        /// scripts unconfined`.
        purpose: Option<&'static str>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// Empties the script's private temporary directory, creating it if needed.
/// `path` without `.` and `..` components (taken lexically), if it is absolute.
pub(crate) fn normalize_path(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::RootDir => normal.push("/"),
            std::path::Component::Normal(name) => normal.push(name),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::Prefix(_) => return None,
        }
    }
    normal.is_absolute().then_some(normal)
}

pub(crate) fn reset_temp_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => std::fs::create_dir_all(dir),
    }
    .with_context(|| {
        format!(
            "failed to prepare the temporary directory `{}`",
            dir.display()
        )
    })
}

/// Executes build scripts, enforcing an [`EffectivePolicy`].
pub trait SandboxRunner: Send + Sync {
    /// Which runner this is.
    fn kind(&self) -> RunnerKind;

    /// Refuses a policy this runner cannot enforce or satisfy, saying why.
    ///
    /// Called before the build script is built or run.
    fn check(&self, policy: &EffectivePolicy) -> anyhow::Result<()>;

    /// Gets `program` ready to run, so that the work does not count against
    /// the script's `limits.time`, and returns a note on what it did for a
    /// verbose log, e.g. `component compiled`. Runners that need no
    /// preparation return `None`.
    fn prepare(&self, program: &Path) -> anyhow::Result<Option<&'static str>> {
        let _ = program;
        Ok(None)
    }

    /// Runs the build script to completion.
    ///
    /// Each line of stdout and stderr goes to the matching callback as it
    /// arrives; after a callback fails no more lines are delivered, but the
    /// process still runs to completion and the error is returned as
    /// [`RunError::Callback`]. A non-zero exit status is not an error here.
    fn run(
        &self,
        invocation: &Invocation<'_>,
        on_stdout_line: LineCallback<'_>,
        on_stderr_line: LineCallback<'_>,
    ) -> Result<Output, RunError>;
}

/// What runners need from the embedding program.
#[derive(Clone, Debug)]
pub struct RunnerContext {
    /// Protections the user agreed to go without where the system cannot
    /// provide them; empty unless configured.
    pub allow_weaker: BTreeSet<Weakening>,
    /// Where the `wasmtime` runner keeps build scripts it compiled to machine
    /// code, so that a rerun does not compile them again (Cargo passes a
    /// directory under its target directory); `None` keeps them in memory only.
    ///
    /// The runner runs the code it finds there: only the runner may write to
    /// it, and it refuses policies that let a build script write there.
    pub cache_dir: Option<PathBuf>,
}

/// Creates the runner of the given kind.
pub fn create(kind: RunnerKind, context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    match kind {
        RunnerKind::Noop => Ok(Box::new(NoopRunner)),
        RunnerKind::Native => create_native(context),
        RunnerKind::Wasmtime => create_wasmtime(context),
    }
}

#[cfg(unix)]
fn create_wasmtime(context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    Ok(Box::new(WasmtimeRunner::new(context.cache_dir.clone())))
}

#[cfg(not(unix))]
fn create_wasmtime(_context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    Err(Refusal {
        message: "the `wasmtime` sandbox runner is not supported on this platform yet".to_owned(),
        remedies: vec![Remedy::UseRunner {
            runner: RunnerKind::Noop,
            purpose: None,
        }],
    }
    .into())
}

#[cfg(target_os = "linux")]
fn create_native(context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    Ok(Box::new(NativeRunner::new(context.allow_weaker.clone())))
}

#[cfg(not(target_os = "linux"))]
fn create_native(_context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    Err(Refusal {
        message: "the `native` sandbox runner is not supported on this platform\n\
                  note: it confines build scripts with Linux namespaces, landlock and seccomp"
            .to_owned(),
        remedies: vec![Remedy::UseRunner {
            runner: RunnerKind::Noop,
            purpose: None,
        }],
    }
    .into())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn paths_are_normalized_lexically() {
        let normal = |path: &str| super::normalize_path(Path::new(path));
        assert_eq!(normal("/a/./b/../c"), Some(PathBuf::from("/a/c")));
        assert_eq!(normal("/../etc"), Some(PathBuf::from("/etc")));
        assert_eq!(normal("a/b"), None);
    }
}
