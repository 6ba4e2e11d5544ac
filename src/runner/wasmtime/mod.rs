//! The `wasmtime` runner: the build script compiled to a WASI 0.2 component,
//! run by wasmtime with exactly the capabilities of its policy.
//!
//! Cargo compiles the build script for `wasm32-wasip2` and hands the runner the
//! `.wasm` component. For each run the runner, in Cargo's process,
//!
//! 1. loads the compiled component (module `compile`): from memory, from the
//!    cache directory of the [`RunnerContext`](super::RunnerContext), or by compiling it with
//!    Cranelift and storing the result there. Cargo calls
//!    [`SandboxRunner::prepare`] earlier, so that compiling does not count
//!    against `limits.time`;
//! 2. builds the guest's WASI context (module `guest`) from the invocation: the
//!    arguments, exactly [`Invocation::sandboxed_env`] plus `TMPDIR`, the
//!    policy's directories preopened at their own absolute paths (the package
//!    root also as `.`, read-only unless granted `write`), TCP to the granted
//!    `host:port`s only, and, without `clock`/`random`, a wall clock fixed at
//!    `SOURCE_DATE_EPOCH`, a monotonic clock that advances one microsecond per
//!    read and randomness from ChaCha with fixed seeds;
//! 3. runs `wasi:cli/run` on a worker thread (module `run`), while the calling
//!    thread feeds the stdout and stderr lines the guest writes (module
//!    `output`) to the callbacks, in order, and captures them;
//! 4. maps how the guest ended to the result: its exit code; a trap (a panic:
//!    Rust aborts on WASI) as a process killed by `SIGABRT`, with the trap
//!    appended to stderr; a limit as [`RunError::LimitExceeded`].
//!
//! Limits: `time` by epoch interruption (at the deadline the calling thread
//! bumps the engine's epoch and the store's epoch callback stops the guest; a
//! guest blocked in a host call, such as a long sleep, is abandoned on its
//! thread after a grace period), `memory` by the store's resource limiter
//! (linear memories and tables; growing past the limit traps), `output` by the
//! guest's streams (the write that would exceed the limit traps), `disk` by the
//! filesystem calls that make files larger (module `disk`: a write past the
//! limit fails as on a full disk).
//!
//! What WASI cannot do is refused by [`WasmtimeRunner`]'s `check`: running
//! programs (`run`, `presets`) and paths that are not UTF-8; so is a policy
//! that lets the script write into the cache directory. With a `net` grant
//! that names a host, the guest can look up *any* name
//! (`wasi:sockets/ip-name-lookup` is all or nothing), so it can leak data to
//! the resolver in the names it looks up; it can still only connect to the
//! granted addresses. Rust's `std::env::temp_dir()` panics on WASI whatever
//! `TMPDIR` says. See `design/wasmtime-runner.md`.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{Invocation, LineCallback, Refusal, Remedy, RunError, SandboxRunner};
use crate::policy::effective::resolved;
use crate::{EffectivePolicy, RunnerKind};

mod compile;
mod disk;
mod guest;
mod output;
mod record;
mod run;
#[cfg(test)]
mod tests;

use compile::CacheOutcome;

/// Runs build scripts compiled to `wasm32-wasip2` components under wasmtime.
#[derive(Clone, Debug, Default)]
pub struct WasmtimeRunner {
    cache_dir: Option<PathBuf>,
}

impl WasmtimeRunner {
    /// A runner that keeps compiled components in `cache_dir`, if given (see
    /// [`RunnerContext::cache_dir`](super::RunnerContext::cache_dir)).
    pub fn new(cache_dir: Option<PathBuf>) -> WasmtimeRunner {
        WasmtimeRunner { cache_dir }
    }
}

impl SandboxRunner for WasmtimeRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Wasmtime
    }

    /// Compiles the component, or finds it compiled, and says which.
    fn prepare(&self, component: &Path) -> anyhow::Result<Option<&'static str>> {
        let (_, outcome) = compile::load(component, self.cache_dir.as_deref())?;
        Ok(Some(match outcome {
            CacheOutcome::Compiled => "component compiled",
            CacheOutcome::Hit | CacheOutcome::InMemory => "component from cache",
        }))
    }

    fn check(&self, policy: &EffectivePolicy) -> anyhow::Result<()> {
        let granted = &policy.granted;
        if !granted.run.is_empty() || !granted.presets.is_empty() {
            let mut message = "the `wasmtime` sandbox runner cannot run programs".to_owned();
            if !granted.run.is_empty() {
                message += &format!(
                    "\nnote: the policy grants `run = [{}]`",
                    quoted(&granted.run)
                );
            }
            if !granted.presets.is_empty() {
                message += &format!(
                    "\nnote: the policy grants `presets = [{}]`",
                    quoted(&granted.presets)
                );
            }
            return Err(Refusal {
                message,
                remedies: vec![Remedy::UseRunner {
                    runner: RunnerKind::Native,
                    purpose: None,
                }],
            }
            .into());
        }
        for path in policy.readable() {
            if path.to_str().is_none() {
                anyhow::bail!(
                    "the `wasmtime` sandbox runner cannot grant `{}`\n\
                     note: WASI paths are UTF-8, and this one is not",
                    path.display()
                );
            }
        }
        if let Some(cache_dir) = &self.cache_dir {
            check_cache_dir(policy, cache_dir)?;
        }
        Ok(())
    }

    fn run(
        &self,
        invocation: &Invocation<'_>,
        on_stdout_line: LineCallback<'_>,
        on_stderr_line: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        self.check(invocation.policy).map_err(RunError::Sandbox)?;
        run::run(
            invocation,
            self.cache_dir.as_deref(),
            on_stdout_line,
            on_stderr_line,
        )
    }
}

/// Refuses a policy that lets the script write into the compiled-component
/// cache: the runner runs the machine code it finds there, outside the sandbox.
fn check_cache_dir(policy: &EffectivePolicy, cache_dir: &Path) -> anyhow::Result<()> {
    let cache_dir = resolved(cache_dir);
    for path in policy.writable() {
        let path = resolved(path);
        if cache_dir.starts_with(&path) || path.starts_with(&cache_dir) {
            anyhow::bail!(
                "the `wasmtime` sandbox runner cannot let a build script write to `{}`\n\
                 note: it holds compiled build scripts, which run outside the sandbox (`{}`)",
                path.display(),
                cache_dir.display()
            );
        }
    }
    Ok(())
}

fn quoted<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| format!("\"{item}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
