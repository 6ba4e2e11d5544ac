//! The `native` runner: the unmodified build script, confined by the Linux kernel.
//!
//! For each build script the runner, in Cargo's process,
//!
//! 1. resolves the invocation and its policy into a [`spec::ConfinementSpec`]:
//!    the exact environment, filesystem rules, TCP ports, network mode, limits
//!    and the descriptors to keep (the jobserver's);
//! 2. creates the run's cgroups ([`cgroup`]): the process limit and the memory
//!    limit of the script's whole process tree;
//! 3. has the *helper server* (the small executable [`HELPER_NAME`] next to
//!    the embedding program's, started by the first run of the process) fork a
//!    *run* for the script, in a process group of its own, which reads the
//!    spec as JSON from the run's socket; the run moves itself into the
//!    cgroups the spec names before it starts any process. It also gets a
//!    status pipe;
//! 4. streams the script's output like the `noop` runner, while a watchdog has
//!    the server kill the run's process group when the time or output limit
//!    is exceeded;
//! 5. reads the status pipe to tell a script that ran from a confinement that
//!    failed, and the cgroups to tell whether the kernel stopped the script at
//!    a limit; then removes the cgroups.
//!
//! The run ([`helper`]) puts the script in new user, PID, IPC, UTS namespaces
//! and (without `net` grants) the server's network namespace, which has no
//! interface up, under landlock (filesystem, TCP, signal and
//! abstract unix socket scopes), seccomp and resource limits, with an init
//! process that takes every process of the script down with it. The script
//! sees only the spec's paths (the module `view`); its `OUT_DIR` and temporary
//! directory are on a `tmpfs` of the size of `limits.disk` (the module `disk`).
//!
//! What the system cannot enforce is refused by [`NativeRunner`]'s `check`
//! (fail closed), unless the user allowed the [`Weakening`](crate::Weakening):
//! the process limit when Cargo runs as root without a `pids` cgroup, a memory
//! limit without a `memory` cgroup (see the module `cgroup`), and the landlock
//! restrictions of ABI 6 on an older kernel (see the module `kernel`: with
//! `partial-landlock` the helper applies those of the kernel's ABI, from 1 on,
//! or from 4 on for a policy with `net` grants). Namespaces, seccomp and
//! landlock itself have no opt-out.
//!
//! The helper executable only calls [`helper_main`]. The runner exists only on
//! Linux; elsewhere the helper refuses to run.

#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
mod disk;
#[cfg(target_os = "linux")]
mod helper;
#[cfg(target_os = "linux")]
mod kernel;
#[cfg(target_os = "linux")]
mod record;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
mod spec;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod tokens;
#[cfg(target_os = "linux")]
mod view;

#[cfg(target_os = "linux")]
pub use run::NativeRunner;

/// The file name of the helper executable, installed next to the program
/// that embeds the runner (`src/bin/build-sandbox-helper.rs`).
pub const HELPER_NAME: &str = "build-sandbox-helper";

/// The helper executable's `main`: serves the runner's requests on the control
/// socket it gets as stdin, forking a run per build script that confines
/// itself and becomes the script. Never returns.
///
/// It runs in a fresh, single-threaded process: each run creates a user
/// namespace, which a fork of a multi-threaded process cannot.
pub fn helper_main() -> ! {
    #[cfg(target_os = "linux")]
    helper::main();
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("error: the `native` sandbox runner is not supported on this platform");
        std::process::exit(101);
    }
}
