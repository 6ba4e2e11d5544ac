//! [`NativeRunner`]: starts the helper and turns what it reports into a result.
//!
//! The status pipe is how the runner tells the two kinds of failure apart: the
//! helper writes `error: <message>` when a confinement step fails and
//! `exec: <errno>` when `execve` fails, and the script's process writes
//! `confined` just before `execve`. The pipe is read once the helper has exited,
//! when every write end is closed. A helper that wrote nothing never got as far
//! as reading its spec (it is not the helper this runner was built with, say).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;

use anyhow::Context;
use landlock::ABI;

use super::cgroup::{Plan, RunCgroups};
use super::kernel;
use super::spec::{ConfinementSpec, DEFAULT_PROCESSES, PathAccess};
use super::sys::{check, pipe};
use super::tokens::TokenRelay;
use crate::policy::display_size;
use crate::runner::stream::{Watchdog, stream_output};
use crate::runner::{
    Denials, Invocation, LimitKind, LineCallback, RunError, SandboxRunner, reset_temp_dir,
};
use crate::{EffectivePolicy, RunnerKind, Weakening};

/// Runs build scripts confined by namespaces, landlock and seccomp.
#[derive(Clone, Debug)]
pub struct NativeRunner {
    allow_weaker: BTreeSet<Weakening>,
}

impl NativeRunner {
    /// A runner that may go without the protections in `allow_weaker` where
    /// the system cannot provide them.
    pub fn new(allow_weaker: BTreeSet<Weakening>) -> NativeRunner {
        NativeRunner { allow_weaker }
    }

    /// Checks the kernel, decides which landlock ABI the helper applies and
    /// which limits go through cgroups.
    fn plan(&self, policy: &EffectivePolicy) -> anyhow::Result<(ABI, Plan)> {
        let abi = kernel::check_support(!policy.granted.net.is_empty(), &self.allow_weaker)?;
        let plan = Plan::new(
            DEFAULT_PROCESSES,
            policy.granted.limits.memory,
            &self.allow_weaker,
        )?;
        Ok((abi, plan))
    }
}

impl SandboxRunner for NativeRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Native
    }

    fn check(&self, policy: &EffectivePolicy) -> anyhow::Result<()> {
        helper_path()?;
        self.plan(policy).map(drop)
    }

    fn run(
        &self,
        invocation: &Invocation<'_>,
        on_stdout_line: LineCallback<'_>,
        on_stderr_line: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        let policy = invocation.policy;
        let (abi, plan) = self.plan(policy).map_err(RunError::Sandbox)?;
        reset_temp_dir(&policy.baseline.temp_dir).map_err(RunError::Sandbox)?;
        let mut spec = ConfinementSpec::resolve(invocation).map_err(RunError::Sandbox)?;
        spec.landlock_abi = abi as u8;
        if plan.limits_memory() {
            // The cgroup limits the whole tree; an `RLIMIT_AS` failure would hide
            // that the limit was exceeded.
            spec.limits.memory = None;
        }
        let cgroups = plan.create().map_err(RunError::Sandbox)?;

        let (status_read, status_write) = pipe()
            .context("failed to create a pipe")
            .map_err(RunError::Sandbox)?;
        let helper = helper_path().map_err(RunError::Sandbox)?;
        let mut command = Command::new(&helper);
        command
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Held until the script is gone, then every token it had is returned.
        let _relay = match invocation.jobserver {
            Some(jobserver) => {
                let relay =
                    TokenRelay::start(jobserver, &mut command).map_err(RunError::Sandbox)?;
                share_jobserver(&command, &mut spec);
                Some(relay)
            }
            None => None,
        };
        let status_fd = status_write.as_raw_fd();
        spec.status_fd = status_fd;
        spec.cgroups = cgroups.join_files();
        // SAFETY: only async-signal-safe system calls between `fork` and `exec`.
        unsafe {
            command.pre_exec(move || {
                // A session of its own: the watchdog kills it as a group, and the
                // script has no controlling terminal.
                check(libc::setsid())?;
                check(libc::fcntl(status_fd, libc::F_SETFD, 0))?;
                // Cargo's thread waits for the helper; if it dies, so does the sandbox.
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))
            });
        }
        let json = serde_json::to_vec(&spec)
            .context("failed to serialize the confinement of the build script")
            .map_err(RunError::Sandbox)?;

        let mut child = command
            .spawn()
            .with_context(|| format!("failed to start the sandbox helper `{}`", helper.display()))
            .map_err(RunError::Sandbox)?;
        drop(status_write);
        let Ok(session) = libc::pid_t::try_from(child.id()) else {
            return Err(RunError::Sandbox(anyhow::anyhow!(
                "the sandbox helper has an invalid process id {}",
                child.id()
            )));
        };
        if let Some(mut stdin) = child.stdin.take() {
            // On a thread of its own: a helper that does not read its stdin must
            // still be streamed and stopped by the watchdog. A helper that exits
            // early closes the pipe, and its report says why.
            thread::spawn(move || stdin.write_all(&json));
        }
        let stop = move || {
            // SAFETY: a plain system call. The helper is not reaped before
            // `stream_output` returns, so the session id cannot be reused.
            unsafe { libc::kill(-session, libc::SIGKILL) };
        };
        let watchdog = Watchdog {
            time: policy.granted.limits.time,
            output: policy.granted.limits.output,
            stop: &stop,
        };
        // Read meanwhile, so that a long report never blocks init.
        let report = thread::spawn(move || {
            let mut report = String::new();
            File::from(status_read)
                .read_to_string(&mut report)
                .map(|_| report)
        });
        let result = stream_output(child, on_stdout_line, on_stderr_line, Some(&watchdog));
        let report = (report.join())
            .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")))
            .context("failed to read the report of the sandbox helper")
            .map_err(RunError::Sandbox)?;
        if let Some(denials) = invocation.denials {
            record_denials(&report, denials);
        }
        let result = interpret(&report, result, &helper, spec.disk.bytes);
        blame(result, &cgroups)
    }
}

/// Turns the failure of a script the kernel stopped at a cgroup limit into
/// [`RunError::LimitExceeded`]; a script that succeeded anyway (say, it retried
/// after a failed `fork`) stays a success.
fn blame(result: Result<Output, RunError>, cgroups: &RunCgroups) -> Result<Output, RunError> {
    match result {
        Ok(output) if !output.status.success() => match cgroups.exceeded() {
            Some((limit, value)) => Err(RunError::LimitExceeded {
                limit,
                value,
                output,
            }),
            None => Ok(output),
        },
        result => result,
    }
}

/// The helper executable, [`HELPER_NAME`](super::HELPER_NAME) next to the
/// running program.
fn helper_path() -> anyhow::Result<std::path::PathBuf> {
    let program =
        std::env::current_exe().context("failed to find the path of the running executable")?;
    let helper = program.with_file_name(super::HELPER_NAME);
    if !helper.is_file() {
        anyhow::bail!(
            "the sandbox helper `{}` is missing\n\
             note: the `native` runner starts it for every build script; it is installed \
             next to `{}`",
            helper.display(),
            program.display()
        );
    }
    Ok(helper)
}

/// Records the denials init reported, `denied: <denial>` as [`Denial`]
/// displays it, checked again as it is parsed.
fn record_denials(report: &str, denials: &Denials) {
    let reported = report
        .lines()
        .filter_map(|line| line.strip_prefix("denied: "));
    for denial in reported.filter_map(|denial| denial.parse().ok()) {
        denials.record(denial);
    }
}

/// Combines the helper's report with the result of streaming; a script that
/// failed with its disk full failed at `limits.disk` (`disk_limit` bytes).
fn interpret(
    report: &str,
    result: Result<Output, RunError>,
    helper: &Path,
    disk_limit: u64,
) -> Result<Output, RunError> {
    let result = match result {
        Ok(output) if !output.status.success() && report.lines().any(|l| l == "limit: disk") => {
            return Err(RunError::LimitExceeded {
                limit: LimitKind::Disk,
                value: display_size(disk_limit),
                output,
            });
        }
        result => result,
    };
    let mut confined = false;
    for line in report.lines() {
        if let Some(message) = line.strip_prefix("error: ") {
            return Err(RunError::Sandbox(
                anyhow::anyhow!("{message}").context("failed to confine the build script"),
            ));
        } else if let Some(errno) = line.strip_prefix("exec: ") {
            let errno = errno.parse().unwrap_or(0);
            return Err(RunError::Process(io::Error::from_raw_os_error(errno)));
        } else if line == "confined" {
            confined = true;
        }
    }
    match result {
        Ok(output) if !confined => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(RunError::Sandbox(anyhow::anyhow!(
                "the sandbox helper `{}` exited before confining the build script ({})\n{}",
                helper.display(),
                output.status,
                stderr.trim_end(),
            )))
        }
        result => result,
    }
}

/// Passes the jobserver to the script: the variables `configure` set on
/// `command`, and its descriptors or named pipe.
fn share_jobserver(command: &Command, spec: &mut ConfinementSpec) {
    for (name, value) in command.get_envs() {
        let (Some(name), Some(value)) = (name.to_str(), value) else {
            continue;
        };
        let auth = value
            .to_str()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .rev()
            .find_map(|arg| arg.strip_prefix("--jobserver-auth="));
        match auth.map(|auth| auth.strip_prefix("fifo:").ok_or(auth)) {
            Some(Ok(fifo)) => spec.grant(Path::new(fifo), PathAccess::READ_WRITE),
            Some(Err(fds)) => spec
                .keep_fds
                .extend(fds.split(',').filter_map(|fd| fd.parse::<i32>().ok())),
            None => {}
        }
        spec.env.insert(name.to_owned(), value.to_owned());
    }
    spec.keep_fds.sort_unstable();
    spec.keep_fds.dedup();
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn output(stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(0),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn reports_are_interpreted() {
        let helper = Path::new("/usr/bin/build-sandbox-helper");
        let ok = interpret("confined\n", Ok(output("")), helper, 1).unwrap();
        assert!(ok.status.success());

        let err = interpret(
            "error: failed to create the namespaces of the build script: Operation not permitted (os error 1)\n",
            Ok(output("")),
            helper,
            1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to confine the build script: failed to create the namespaces of the build \
             script: Operation not permitted (os error 1)"
        );

        let err = interpret("confined\nexec: 2\n", Ok(output("")), helper, 1).unwrap_err();
        let RunError::Process(e) = err else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        let failed = Output {
            status: ExitStatus::from_raw(1 << 8),
            ..output("")
        };
        let err = interpret("confined\nlimit: disk\n", Ok(failed), helper, 16 << 20).unwrap_err();
        assert_eq!(err.to_string(), "exceeded its disk limit of 16MiB");
        // A script that copes with a full disk succeeds.
        assert!(interpret("confined\nlimit: disk\n", Ok(output("")), helper, 1).is_ok());

        let err = interpret("", Ok(output("error: bad spec")), helper, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the sandbox helper `/usr/bin/build-sandbox-helper` exited before confining the \
             build script (exit status: 0)\nerror: bad spec"
        );
    }

    #[test]
    fn the_jobserver_is_shared() {
        let client = jobserver::Client::new(2).unwrap();
        let mut command = Command::new("true");
        client.configure(&mut command);
        let mut spec: ConfinementSpec = serde_json::from_str(
            r#"{"program":"/bin/true","args":[],"env":{},"cwd":"/","paths":{},
                "tcp_connect":[],"network":"Isolated",
                "limits":{"processes":1,"memory":null},
                "disk":{"bytes":1,"out_dir":"/","temp_dir":"/"},"keep_fds":[],"status_fd":-1,
                "cgroups":[],"landlock_abi":6}"#,
        )
        .unwrap();
        share_jobserver(&command, &mut spec);
        assert_eq!(spec.keep_fds.len(), 2);
        assert!(
            spec.env["CARGO_MAKEFLAGS"]
                .to_str()
                .unwrap()
                .contains("--jobserver-auth=")
        );
    }
}
