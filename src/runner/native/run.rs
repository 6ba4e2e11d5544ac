//! [`NativeRunner`]: has the helper server start each run and turns what the
//! run reports into a result.
//!
//! The first run of the process starts the helper server ([`HelperServer`],
//! see the module `helper`), which lives as long as this process. Each run
//! creates the script's stdout, stderr and status pipes and the run's socket,
//! writes the spec into the socket, sends them to the server with the
//! script's jobserver, learns the run's process group in the answer, streams
//! the output and reads the script's wait status from the socket. The
//! watchdog stops a run by asking the server to kill its process group.
//!
//! The status pipe is how the runner tells the two kinds of failure apart: the
//! run writes `error: <message>` when a confinement step fails and
//! `exec: <errno>` when `execve` fails, and the script's process writes
//! `confined` just before `execve`. The pipe is read until every write end is
//! closed. A run that wrote nothing never got as far as reading its spec.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;

use anyhow::Context;
use landlock::ABI;

use super::cgroup::{Plan, RunCgroups};
use super::helper::{self, JOBSERVER_FDS};
use super::kernel;
use super::spec::{ConfinementSpec, DEFAULT_PROCESSES, PathAccess};
use super::sys::{pipe, send_fds};
use super::tokens::TokenRelay;
use crate::policy::display_size;
use crate::runner::stream::{Watchdog, stream_pipes};
use crate::runner::{Denials, Invocation, LimitKind, LineCallback, RunError, SandboxRunner};
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
        // The script's temporary directory is on its disk (the module
        // `disk`); the host's stays empty, a mount point.
        let temp_dir = &policy.baseline.temp_dir;
        (std::fs::create_dir_all(temp_dir))
            .with_context(|| {
                format!(
                    "failed to prepare the temporary directory `{}`",
                    temp_dir.display()
                )
            })
            .map_err(RunError::Sandbox)?;
        let mut spec = ConfinementSpec::resolve(invocation).map_err(RunError::Sandbox)?;
        spec.landlock_abi = abi as u8;
        if plan.limits_memory() {
            // The cgroup limits the whole tree; an `RLIMIT_AS` failure would hide
            // that the limit was exceeded.
            spec.limits.memory = None;
        }
        let cgroups = plan.create().map_err(RunError::Sandbox)?;
        spec.cgroups = cgroups.join_files();

        let pipe = || (pipe().context("failed to create a pipe")).map_err(RunError::Sandbox);
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let (run, run_end) = UnixStream::pair()
            .context("failed to create a socket pair")
            .map_err(RunError::Sandbox)?;
        let mut fds = vec![
            run_end.as_raw_fd(),
            stdout_write.as_raw_fd(),
            stderr_write.as_raw_fd(),
            status_write.as_raw_fd(),
        ];
        // Held until the script is gone, then every token it had is returned.
        let _relay = match invocation.jobserver {
            Some(jobserver) => {
                // Collects what the jobserver passes a process it starts.
                let mut script = Command::new("build-script");
                let relay = TokenRelay::start(jobserver, &mut script).map_err(RunError::Sandbox)?;
                fds.extend(share_jobserver(&script, &mut spec));
                Some(relay)
            }
            None => None,
        };
        let json = serde_json::to_vec(&spec)
            .context("failed to serialize the confinement of the build script")
            .map_err(RunError::Sandbox)?;
        write_spec(&run, json).map_err(RunError::Sandbox)?;
        let helper = helper_path().map_err(RunError::Sandbox)?;
        let group = start_run(&helper, &fds).map_err(RunError::Sandbox)?;
        drop((run_end, stdout_write, stderr_write, status_write));
        let stop = move || kill_run(group);
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
        // The run reports the script's wait status; a run that was killed
        // reports nothing, and has the status of a process killed so.
        let wait = || {
            let mut status = [0; 4];
            Ok(match (&run).read_exact(&mut status) {
                Ok(()) => ExitStatus::from_raw(i32::from_ne_bytes(status)),
                Err(_) => ExitStatus::from_raw(libc::SIGKILL),
            })
        };
        let pipes = (File::from(stdout_read), File::from(stderr_read));
        let result = stream_pipes(pipes, wait, on_stdout_line, on_stderr_line, Some(&watchdog));
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
             note: the `native` runner starts it to confine build scripts; it is installed \
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
/// `command`, and its named pipe, or its descriptors, which the run puts at
/// [`JOBSERVER_FDS`] and the variables name there. Returns the descriptors
/// to pass.
fn share_jobserver(command: &Command, spec: &mut ConfinementSpec) -> Vec<RawFd> {
    let mut fds = Vec::new();
    for (name, value) in command.get_envs() {
        let (Some(name), Some(value)) = (name.to_str(), value.and_then(|v| v.to_str())) else {
            continue;
        };
        let mut words = Vec::new();
        for word in value.split(' ') {
            let Some((option @ ("--jobserver-auth" | "--jobserver-fds"), auth)) =
                word.split_once('=')
            else {
                words.push(word.to_owned());
                continue;
            };
            if let Some(fifo) = auth.strip_prefix("fifo:") {
                spec.grant(Path::new(fifo), PathAccess::READ_WRITE);
                words.push(word.to_owned());
                continue;
            }
            let passed: Vec<RawFd> = auth.split(',').filter_map(|fd| fd.parse().ok()).collect();
            if fds.is_empty() {
                fds = passed;
            }
            let [read, write] = JOBSERVER_FDS;
            words.push(format!("{option}={read},{write}"));
        }
        spec.env.insert(name.to_owned(), words.join(" ").into());
    }
    fds.truncate(JOBSERVER_FDS.len());
    spec.keep_fds = JOBSERVER_FDS[..fds.len()].to_vec();
    fds
}

/// The helper server of this process, started by the first run.
struct HelperServer {
    control: UnixStream,
    _process: Child,
}

static SERVER: Mutex<Option<HelperServer>> = Mutex::new(None);

/// Writes the spec into the run's socket, where the run reads it until end
/// of file: what the socket's buffer takes now (a spec usually fits), the
/// rest on a thread of its own, as a run that does not read its spec must
/// still be streamed and stopped by the watchdog. A run that exits early
/// closes the socket, and its report says why.
fn write_spec(run: &UnixStream, json: Vec<u8>) -> anyhow::Result<()> {
    let failed = "failed to pass the spec to the sandbox helper";
    run.set_nonblocking(true).context(failed)?;
    let mut written = 0;
    while written < json.len() {
        match (&*run).write(&json[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context(failed),
        }
    }
    run.set_nonblocking(false).context(failed)?;
    if written == json.len() {
        return run.shutdown(std::net::Shutdown::Write).context(failed);
    }
    let spec_writer = run.try_clone().context(failed)?;
    thread::spawn(move || {
        let _ = (&spec_writer).write_all(&json[written..]);
        let _ = spec_writer.shutdown(std::net::Shutdown::Write);
    });
    Ok(())
}

/// Asks the helper server to start a run with the descriptors `fds`
/// ([`helper::START`]), starting the server first if it is not running;
/// returns the run's process group, which the server answers.
fn start_run(helper: &Path, fds: &[RawFd]) -> anyhow::Result<libc::pid_t> {
    let mut server = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = &*server
        && let Ok(group) = running.start_run(fds)
    {
        return Ok(group);
    }
    // Not started yet, or gone: the runs it had are gone with it.
    let started = HelperServer::start(helper)?;
    let group = started
        .start_run(fds)
        .context("failed to ask the sandbox helper to start a run")?;
    *server = Some(started);
    Ok(group)
}

/// Asks the helper server to kill the process group of a run ([`helper::KILL`]).
fn kill_run(group: libc::pid_t) {
    let server = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = &*server {
        let _ = send_fds(&server.control, helper::KILL, &[])
            .and_then(|()| (&server.control).write_all(&group.to_ne_bytes()));
    }
}

impl HelperServer {
    /// Starts the helper executable `helper` and waits until it is ready.
    fn start(helper: &Path) -> anyhow::Result<HelperServer> {
        let (control, server_end) = UnixStream::pair().context("failed to create a socket pair")?;
        let process = Command::new(helper)
            .env_clear()
            .stdin(OwnedFd::from(server_end))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("failed to start the sandbox helper `{}`", helper.display())
            })?;
        let mut ready = vec![0; helper::READY.len()];
        let greeted = (&control).read_exact(&mut ready);
        if greeted.is_err() || ready != helper::READY.as_bytes() {
            anyhow::bail!(
                "the sandbox helper `{}` did not start (expected `{}`)",
                helper.display(),
                helper::READY.trim_end()
            );
        }
        Ok(HelperServer {
            control,
            _process: process,
        })
    }

    /// Sends [`helper::START`] with `fds` and reads the run's process group.
    fn start_run(&self, fds: &[RawFd]) -> io::Result<libc::pid_t> {
        send_fds(&self.control, helper::START, fds)?;
        let mut group = [0; 4];
        (&self.control).read_exact(&mut group)?;
        Ok(libc::pid_t::from_ne_bytes(group))
    }
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
                "disk":{"bytes":1,"out_dir":"/","temp_dir":"/"},"keep_fds":[],
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
