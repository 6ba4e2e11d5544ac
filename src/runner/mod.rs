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
use std::str::FromStr;

use anyhow::Context as _;

use crate::{EffectivePolicy, RunnerKind};

pub mod native;
mod noop;
pub(crate) mod stream;
#[cfg(unix)]
pub mod wasmtime;

#[cfg(unix)]
pub use self::wasmtime::WasmtimeRunner;
#[cfg(target_os = "linux")]
pub use native::NativeRunner;
pub use noop::NoopRunner;

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
    /// What the script may do.
    pub policy: &'a EffectivePolicy,
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

/// A resource limit a runner enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Wall-clock time (`limits.time`).
    Time,
    /// Memory (`limits.memory`).
    Memory,
    /// Combined stdout and stderr (`limits.output`).
    Output,
    /// Number of processes and threads (a runner default, not configurable yet).
    Processes,
}

impl LimitKind {
    /// The key under `limits` that sets this limit, e.g. `time`.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::Time => "time",
            LimitKind::Memory => "memory",
            LimitKind::Output => "output",
            LimitKind::Processes => "processes",
        }
    }
}

impl std::error::Error for RunError {}

/// Empties the script's private temporary directory, creating it if needed.
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

/// How a runner can re-enter this crate in a fresh process (the native runner's helper).
///
/// The program must call [`native::run_helper_if_requested`] first thing in
/// its `main`; `args` must make it do so (see [`native::HELPER_ARG`]).
#[derive(Clone, Debug)]
pub struct HelperCommand {
    /// The executable, usually [`std::env::current_exe`].
    pub program: PathBuf,
    /// The arguments that select the helper, usually `[HELPER_ARG]`.
    pub args: Vec<OsString>,
}

/// What runners need from the embedding program.
#[derive(Clone, Debug)]
pub struct RunnerContext {
    /// How to start the native runner's helper process.
    pub helper: HelperCommand,
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

/// A protection a runner may go without, when the user explicitly allows it,
/// instead of refusing to run (`build-sandbox.native.allow-weaker` in Cargo's
/// configuration, e.g. `["process-limit"]`).
///
/// A runner uses a weakening only where it cannot enforce the protection; the
/// embedding program warns about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weakening {
    /// Run without a process limit when none can be enforced: the `native`
    /// runner limits processes with a `pids` cgroup, or with `RLIMIT_NPROC`,
    /// which the kernel does not apply to root.
    ProcessLimit,
    /// Limit the address space of each process (`RLIMIT_AS`) when the memory of
    /// the script's whole process tree cannot be limited (no `memory` cgroup).
    MemoryLimit,
    /// Apply the landlock restrictions the kernel enforces when it lacks some
    /// that the `native` runner uses (landlock ABI 1 to 5, Linux 5.13 to 6.11):
    /// reads and writes stay confined, but below ABI 3 a script can truncate
    /// (empty) any file the user may write, below 5 it can use `ioctl` on the
    /// devices it may open, and below 6 it has no signal and abstract unix
    /// socket scopes (the namespaces and seccomp still stand in for them). It
    /// never runs a script without landlock, nor one with `net` grants without
    /// TCP port rules (below ABI 4).
    PartialLandlock,
}

impl Weakening {
    /// Every weakening, in the order error messages list them.
    pub const ALL: [Weakening; 3] = [
        Weakening::ProcessLimit,
        Weakening::MemoryLimit,
        Weakening::PartialLandlock,
    ];

    /// The name used in configuration, e.g. `process-limit`.
    pub fn name(self) -> &'static str {
        match self {
            Weakening::ProcessLimit => "process-limit",
            Weakening::MemoryLimit => "memory-limit",
            Weakening::PartialLandlock => "partial-landlock",
        }
    }
}

impl FromStr for Weakening {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Weakening::ALL
            .into_iter()
            .find(|weakening| weakening.name() == s)
            .ok_or_else(|| {
                let [rest @ .., last] = Weakening::ALL.map(|weakening| format!("`{weakening}`"));
                format!(
                    "unknown weakening `{s}`, expected {} or {last}",
                    rest.join(", ")
                )
            })
    }
}

impl fmt::Display for Weakening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
    anyhow::bail!(
        "the `wasmtime` sandbox runner is not supported on this platform yet\n\
         help: choose the `noop` runner with `-Zsandboxed-build-scripts=noop`"
    )
}

#[cfg(target_os = "linux")]
fn create_native(context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    Ok(Box::new(NativeRunner::new(
        context.helper.clone(),
        context.allow_weaker.clone(),
    )))
}

#[cfg(not(target_os = "linux"))]
fn create_native(_context: &RunnerContext) -> anyhow::Result<Box<dyn SandboxRunner>> {
    anyhow::bail!(
        "the `native` sandbox runner is not supported on this platform\n\
         note: it confines build scripts with Linux namespaces, landlock and seccomp\n\
         help: choose the `noop` runner with `-Zsandboxed-build-scripts=noop`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakenings_are_named_in_kebab_case() {
        for weakening in Weakening::ALL {
            assert_eq!(weakening.to_string().parse(), Ok(weakening));
        }
        assert_eq!("process-limit".parse(), Ok(Weakening::ProcessLimit));
        assert_eq!("partial-landlock".parse(), Ok(Weakening::PartialLandlock));
        assert_eq!(
            "processes".parse::<Weakening>(),
            Err(
                "unknown weakening `processes`, expected `process-limit`, `memory-limit` or \
                 `partial-landlock`"
                    .into()
            )
        );
    }
}
