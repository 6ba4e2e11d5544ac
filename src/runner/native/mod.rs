//! The `native` runner: the unmodified build script, confined by the Linux kernel.
//!
//! For each build script the runner, in Cargo's process,
//!
//! 1. resolves the invocation and its policy into a [`spec::ConfinementSpec`]:
//!    the exact environment, filesystem rules, TCP ports, network mode, limits
//!    and the descriptors to keep (the jobserver's);
//! 2. creates the run's cgroups ([`cgroup`]): the process limit and the memory
//!    limit of the script's whole process tree;
//! 3. starts the *helper*: Cargo's own executable again, with [`HELPER_ARG`]
//!    (see [`crate::runner::RunnerContext`]), in a session of its own, and writes the
//!    spec as JSON to its stdin; the helper moves itself into the cgroups the
//!    spec names before it starts any process. It also gets a status pipe;
//! 4. streams the script's output like the `noop` runner, while a watchdog kills
//!    the session when the time or output limit is exceeded;
//! 5. reads the status pipe to tell a script that ran from a confinement that
//!    failed, and the cgroups to tell whether the kernel stopped the script at
//!    a limit; then removes the cgroups.
//!
//! The helper ([`helper`]) puts the script in new user, PID, IPC, UTS and (without
//! `net` grants) network namespaces, under landlock (filesystem, TCP, signal and
//! abstract unix socket scopes), seccomp and resource limits, with an init
//! process that takes every process of the script down with it.
//!
//! What the system cannot enforce is refused by [`NativeRunner`]'s `check`
//! (fail closed), unless the user allowed the [`Weakening`](crate::runner::Weakening):
//! the process limit when Cargo runs as root without a `pids` cgroup, a memory
//! limit without a `memory` cgroup (see the module `cgroup`), and the landlock
//! restrictions of ABI 6 on an older kernel (see the module `kernel`: with
//! `partial-landlock` the helper applies those of the kernel's ABI, from 1 on,
//! or from 4 on for a policy with `net` grants). Namespaces, seccomp and
//! landlock itself have no opt-out.
//!
//! Cargo must call [`run_helper_if_requested`] first thing in `main`. The runner
//! exists only on Linux; elsewhere the helper refuses to run.

use std::ffi::OsStr;

#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
mod helper;
#[cfg(target_os = "linux")]
mod kernel;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
mod spec;
#[cfg(target_os = "linux")]
mod sys;

#[cfg(target_os = "linux")]
pub use run::NativeRunner;

/// The argument that makes Cargo's `main` run the helper.
pub const HELPER_ARG: &str = "__build-sandbox-helper";

/// The environment variable the runner sets (to `1`) for the helper, and
/// only for it: with [`HELPER_ARG`] alone, the program goes on as it would
/// without the sandbox (Cargo says it has no such command).
pub(crate) const HELPER_ENV: &str = "__BUILD_SANDBOX_HELPER";

/// Called first thing in Cargo's `main`: if the first argument is
/// [`HELPER_ARG`] and the runner started this process (see `HELPER_ENV`),
/// runs the helper (reading its spec from stdin) and exits the process;
/// otherwise returns immediately.
///
/// The process must still be single-threaded: the helper creates a user
/// namespace, which a multi-threaded process cannot.
pub fn run_helper_if_requested() {
    let requested = std::env::args_os().nth(1).as_deref() == Some(OsStr::new(HELPER_ARG))
        && std::env::var_os(HELPER_ENV).as_deref() == Some(OsStr::new("1"));
    if !requested {
        return;
    }
    #[cfg(target_os = "linux")]
    helper::main();
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("error: the `native` sandbox runner is not supported on this platform");
        std::process::exit(101);
    }
}
