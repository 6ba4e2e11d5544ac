//! The `noop` runner: exactly what Cargo does without a sandbox.
//!
//! The script inherits Cargo's whole environment (plus the variables Cargo sets
//! or removes), its working directory and the jobserver; stdin is closed and
//! stdout/stderr are piped, streamed line by line to the callbacks and captured,
//! as `ProcessBuilder::exec_with_streaming` does. The policy is not enforced;
//! the runner exists so that the sandbox plumbing can be used, and compared
//! against, with today's behaviour.

use std::process::{Command, Output, Stdio};

use super::{Enforcement, Invocation, LineCallback, RunError, RunnerKind, SandboxRunner};
use crate::EffectivePolicy;
use crate::stream::stream_output;

/// Runs build scripts unconfined.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopRunner;

impl SandboxRunner for NoopRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Noop
    }

    fn enforcement(&self) -> Enforcement {
        Enforcement::default()
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
        stream_output(child, on_stdout_line, on_stderr_line, None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;
    use crate::{Baseline, Request};

    fn policy() -> EffectivePolicy {
        let baseline = Baseline {
            package_root: "/".into(),
            out_dir: "/tmp".into(),
            temp_dir: "/tmp".into(),
            dependency_out_dirs: Default::default(),
        };
        EffectivePolicy::new(baseline, &Request::default(), [])
    }

    fn run_sh(
        script: &str,
        env: &BTreeMap<String, Option<OsString>>,
        on_stdout: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        let args = [OsString::from("-c"), OsString::from(script)];
        let policy = policy();
        let invocation = Invocation {
            program: Path::new("/bin/sh"),
            args: &args,
            env,
            cwd: Path::new("/"),
            jobserver: None,
            policy: &policy,
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
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("BUILD_SANDBOX_NOOP_TEST", "inherited") };
        let mut lines = Vec::new();
        let mut collect = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        run_sh(
            "echo ${BUILD_SANDBOX_NOOP_TEST:-unset}",
            &BTreeMap::new(),
            &mut collect,
        )
        .unwrap();
        let removed = BTreeMap::from([("BUILD_SANDBOX_NOOP_TEST".to_owned(), None)]);
        run_sh(
            "echo ${BUILD_SANDBOX_NOOP_TEST:-unset}",
            &removed,
            &mut collect,
        )
        .unwrap();
        assert_eq!(lines, ["inherited", "unset"]);
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
            policy: &policy,
        };
        let err = NoopRunner
            .run(&invocation, &mut |_| Ok(()), &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, RunError::Process(_)), "{err:?}");
    }
}
