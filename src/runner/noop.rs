//! The `noop` runner: exactly what Cargo does without a sandbox.
//!
//! The script inherits Cargo's whole environment (plus the variables Cargo sets
//! or removes), its working directory and the jobserver; stdin is closed and
//! stdout/stderr are piped, streamed line by line to the callbacks and captured,
//! as `ProcessBuilder::exec_with_streaming` does. The policy is not enforced;
//! the runner exists so that the sandbox plumbing can be used, and compared
//! against, with today's behaviour.
//!
//! The one difference from Cargo without the feature: the `time` and `output`
//! limits are applied (the output limit being [`DEFAULT_OUTPUT_LIMIT`] unless
//! the policy sets one), so that Cargo's memory stays bounded whatever the
//! runner. A script over a limit is killed; its own children are not (the
//! runner starts no process group of its own, as Cargo does not), but they
//! lose their output pipes once the limit is reached.
//!
//! [`DEFAULT_OUTPUT_LIMIT`]: crate::runner::DEFAULT_OUTPUT_LIMIT

use std::process::{Command, Output, Stdio};

use super::{Invocation, LineCallback, RunError, SandboxRunner};
use crate::runner::stream::{Watchdog, stream_output};
use crate::{EffectivePolicy, RunnerKind};

/// Runs build scripts unconfined.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopRunner;

impl SandboxRunner for NoopRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Noop
    }

    fn check(&self, _policy: &EffectivePolicy) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(
        &self,
        invocation: &Invocation<'_>,
        on_stdout_line: LineCallback<'_>,
        on_stderr_line: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        let mut command = Command::new(invocation.program);
        command
            .args(invocation.args)
            .current_dir(invocation.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in invocation.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        if let Some(jobserver) = invocation.jobserver {
            jobserver.configure(&mut command);
        }
        let child = command.spawn().map_err(RunError::Process)?;
        let pid = child.id();
        let stop = move || kill(pid);
        let limits = invocation.policy.granted.limits;
        let watchdog = Watchdog {
            time: limits.time,
            output: limits.output,
            stop: &stop,
        };
        stream_output(child, on_stdout_line, on_stderr_line, Some(&watchdog))
    }
}

/// Kills the process `pid`, which `stream_output` has not reaped yet.
#[cfg(unix)]
fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: a plain system call. The child is reaped only when
        // `stream_output` no longer calls this, so `pid` is still the child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Elsewhere the limits are not enforced by killing: the output limit still
/// closes the pipes, which ends a script that keeps printing.
#[cfg(not(unix))]
fn kill(_pid: u32) {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;
    use crate::DEFAULT_OUTPUT_LIMIT;
    use crate::runner::LimitKind;
    use crate::{Baseline, Request};

    fn policy() -> EffectivePolicy {
        policy_with(Request::default())
    }

    fn policy_with(granted: Request) -> EffectivePolicy {
        let baseline = Baseline {
            package_root: "/".into(),
            out_dir: "/tmp".into(),
            temp_dir: "/tmp".into(),
            dependency_out_dirs: Default::default(),
        };
        EffectivePolicy::granting(baseline, granted)
    }

    fn run_sh(
        script: &str,
        env: &BTreeMap<String, Option<OsString>>,
        on_stdout: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        run_sh_with(script, env, on_stdout, policy())
    }

    fn run_sh_with(
        script: &str,
        env: &BTreeMap<String, Option<OsString>>,
        on_stdout: LineCallback<'_>,
        policy: EffectivePolicy,
    ) -> Result<Output, RunError> {
        let args = [OsString::from("-c"), OsString::from(script)];
        let invocation = Invocation {
            program: Path::new("/bin/sh"),
            args: &args,
            env,
            cwd: Path::new("/"),
            jobserver: None,
            rustc_sysroot: None,
            policy: &policy,
            denials: None,
        };
        NoopRunner.run(&invocation, on_stdout, &mut |_| Ok(()))
    }

    #[test]
    fn streams_lines_and_captures_output() {
        let mut lines = Vec::new();
        let env = BTreeMap::from([("GREETING".to_owned(), Some(OsString::from("hi")))]);
        let output = run_sh(
            "echo $GREETING; echo err >&2; printf 'no newline'; exit 3",
            &env,
            &mut |line| {
                lines.push(line.to_owned());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(lines, ["hi", "no newline"]);
        assert_eq!(output.stdout, b"hi\nno newline");
        assert_eq!(output.stderr, b"err\n");
        assert_eq!(output.status.code(), Some(3));
    }

    #[test]
    fn a_failing_callback_still_drains_the_process() {
        let mut seen = 0;
        let err = run_sh(
            "echo one; echo two; echo three",
            &BTreeMap::new(),
            &mut |_| {
                seen += 1;
                anyhow::bail!("bad directive")
            },
        )
        .unwrap_err();
        assert_eq!(seen, 1);
        let RunError::Callback { error, output } = err else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(error.to_string(), "bad directive");
        assert_eq!(output.stdout, b"one\ntwo\nthree\n");
        assert!(output.status.success());
    }

    #[test]
    fn removed_variables_are_not_inherited() {
        // `cargo test` sets `CARGO_PKG_NAME` for the test process: the
        // environment is never changed here (`set_var` races other threads).
        let mut lines = Vec::new();
        let mut collect = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        run_sh(
            "echo ${CARGO_PKG_NAME:-unset}",
            &BTreeMap::new(),
            &mut collect,
        )
        .unwrap();
        let removed = BTreeMap::from([("CARGO_PKG_NAME".to_owned(), None)]);
        run_sh("echo ${CARGO_PKG_NAME:-unset}", &removed, &mut collect).unwrap();
        assert_eq!(lines, ["build-sandbox", "unset"]);
    }

    fn limited(limits: &str) -> EffectivePolicy {
        let text = format!("limits = {{ {limits} }}");
        policy_with(Request::parse_at(&text, "/"))
    }

    #[test]
    fn a_flood_is_stopped_at_the_output_limit() {
        for script in [
            "exec head -c 314572800 /dev/zero",
            "exec yes 'a line of output'",
        ] {
            let mut lines = 0;
            let err = run_sh_with(
                script,
                &BTreeMap::new(),
                &mut |_| {
                    lines += 1;
                    Ok(())
                },
                limited("output = \"1MiB\""),
            )
            .unwrap_err();
            let RunError::LimitExceeded {
                limit: LimitKind::Output,
                value,
                output,
            } = err
            else {
                panic!("unexpected {err:?}")
            };
            assert_eq!(value, "1MiB");
            assert!(output.stdout.len() + output.stderr.len() <= 1 << 20);
            assert!(lines <= (1 << 20) / 17 + 1, "{lines} lines");
        }
    }

    #[test]
    fn the_default_output_limit_applies() {
        let err = run_sh(
            "exec head -c 314572800 /dev/zero",
            &BTreeMap::new(),
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(
            matches!(&err, RunError::LimitExceeded { limit: LimitKind::Output, value, .. } if value == "64MiB"),
            "{err:?}"
        );
        assert_eq!(DEFAULT_OUTPUT_LIMIT, 64 << 20);
    }

    #[test]
    fn a_script_is_stopped_at_the_time_limit() {
        let started = std::time::Instant::now();
        let err = run_sh_with(
            "echo started; exec sleep 30",
            &BTreeMap::new(),
            &mut |_| Ok(()),
            limited("time = \"300ms\""),
        )
        .unwrap_err();
        let RunError::LimitExceeded {
            limit: LimitKind::Time,
            value,
            output,
        } = err
        else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(value, "300ms");
        assert_eq!(output.stdout, b"started\n");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_a_process_error() {
        let policy = policy();
        let invocation = Invocation {
            program: Path::new("/nonexistent/build-script-build"),
            args: &[],
            env: &BTreeMap::new(),
            cwd: Path::new("/"),
            jobserver: None,
            rustc_sysroot: None,
            policy: &policy,
            denials: None,
        };
        let err = NoopRunner
            .run(&invocation, &mut |_| Ok(()), &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, RunError::Process(_)), "{err:?}");
    }
}
