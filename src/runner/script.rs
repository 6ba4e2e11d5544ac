//! One package's build script in its sandbox, as the build tool runs it.
//!
//! The build tool makes a [`SandboxedScript`] for each script it will run:
//! [`SandboxedScript::new`] creates the runner and lets it refuse the policy
//! before anything is built. Then it [prepares](SandboxedScript::prepare) the
//! compiled script and [runs](SandboxedScript::run) it: the lines the script
//! prints reach the build tool's callbacks made printable, and what the runner
//! refused the script is stored as a [`DenialRecord`] in a directory the script
//! cannot write. The grant those denials suggest words the `help:` of a failed
//! run ([`SandboxedScript::failure_notes`]) and the warning for a run that
//! succeeded without it ([`SandboxedScript::refused_warning`]). After a run
//! [`SandboxedScript::police`] checks the directives the script printed.
//!
//! The messages name where the build tool keeps requests and grants
//! ([`ConfigNames`]), and nothing else of the build tool.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, PoisonError};

use super::{Denials, Invocation, LineCallback, RunError, RunnerContext, SandboxRunner};
use crate::{
    ConfigNames, Denial, DenialRecord, EffectivePolicy, Request, RunnerKind, describe_grant,
    grant_snippet, neutralize_control, police_directives,
};

/// The runner and effective policy of one package's build script, and what
/// its last run was refused.
pub struct SandboxedScript {
    runner: Box<dyn SandboxRunner>,
    policy: EffectivePolicy,
    package: String,
    version: String,
    names: ConfigNames,
    /// The file that keeps what the last run was refused.
    record_path: PathBuf,
    /// The grant for what the last run was refused.
    suggested_grant: Mutex<Option<Request>>,
}

impl SandboxedScript {
    /// The build script of `package` at `version`, run by a runner of `kind`
    /// under `policy`, its denials recorded in `run_dir`. Fails when the
    /// runner cannot be created or refuses the policy.
    pub fn new(
        kind: RunnerKind,
        context: &RunnerContext,
        policy: EffectivePolicy,
        (package, version): (String, String),
        run_dir: &Path,
        names: ConfigNames,
    ) -> anyhow::Result<SandboxedScript> {
        let runner = super::create(kind, context)?;
        runner.check(&policy)?;
        Ok(SandboxedScript {
            runner,
            policy,
            package,
            version,
            names,
            record_path: run_dir.join(DenialRecord::FILE_NAME),
            suggested_grant: Mutex::new(None),
        })
    }

    /// The effective policy the script runs with.
    pub fn policy(&self) -> &EffectivePolicy {
        &self.policy
    }

    /// Lets the runner prepare `program` (`wasmtime` compiles it, or finds
    /// it compiled) and returns what the script runs with, for a verbose log:
    /// `` `native`: <policy> `` or `` `wasmtime` (component compiled): <policy> ``.
    pub fn prepare(&self, program: &Path) -> anyhow::Result<String> {
        let note = self.runner.prepare(program).map_err(|e| {
            e.context(format!(
                "failed to prepare `{}` for its run",
                program.display()
            ))
        })?;
        let note = note.map(|note| format!(" ({note})")).unwrap_or_default();
        Ok(format!("`{}`{note}: {}", self.runner.kind(), self.policy))
    }

    /// Runs `invocation` (whose policy and denials are replaced by the
    /// script's) through the runner, its lines passed to the callbacks with
    /// their control sequences made visible, and records what the runner
    /// refused. Fails with [`RunError::Sandbox`] when the record cannot be
    /// stored.
    pub fn run(
        &self,
        invocation: Invocation<'_>,
        on_stdout_line: LineCallback<'_>,
        on_stderr_line: LineCallback<'_>,
    ) -> Result<Output, RunError> {
        let denials = Denials::default();
        let invocation = Invocation {
            policy: &self.policy,
            denials: Some(&denials),
            ..invocation
        };
        let result = self.runner.run(
            &invocation,
            &mut |line| on_stdout_line(&neutralize_control(line)),
            &mut |line| on_stderr_line(&neutralize_control(line)),
        );
        if let Err(RunError::LimitExceeded { limit, .. }) = &result {
            denials.record(Denial::Limit(*limit));
        }
        let failed = !result.as_ref().is_ok_and(|output| output.status.success());
        let (package, version) = (&self.package, &self.version);
        let record = DenialRecord::new(package, version, failed, &self.policy, denials.recorded());
        record.store(&self.record_path).map_err(RunError::Sandbox)?;
        *self.suggestion() = record.grant;
        result
    }

    /// The `note:` and `help:` lines for the error of a failed run, each
    /// after a newline: the runner and the effective policy, and the grant
    /// for what the runner refused the script, if anything.
    pub fn failure_notes(&self) -> String {
        let kind = self.runner.kind();
        let mut notes = format!(
            "\nnote: the build script ran in the `{kind}` sandbox ({})",
            self.policy
        );
        if let Some(grant) = &*self.suggestion() {
            let entry = [(self.package.clone(), grant.clone())];
            notes.push_str(&format!(
                "\nhelp: the sandbox may have denied {}; if the build script needs it, \
                 grant it in `{}`:\n\n{}",
                describe_grant(grant),
                self.names.grants_file,
                grant_snippet(self.names.grants_table, &entry).trim_end()
            ));
        }
        notes
    }

    /// The warning for a run that succeeded although the runner refused it
    /// something: a script that falls back may build something else.
    pub fn refused_warning(&self) -> Option<String> {
        let grant = describe_grant(self.suggestion().as_ref()?);
        let (package, version) = (&self.package, &self.version);
        Some(format!(
            "{package}@{version}: the sandbox refused what {grant} grants, and the build script \
             succeeded without it; if it needs it, grant it in `{}` of `{}`",
            self.names.package_grants(package),
            self.names.grants_file
        ))
    }

    /// Refuses directives that would run code, write files or read them into
    /// the output outside the sandbox ([`police_directives`]), as an error
    /// message with its `note:` and `help:` lines.
    pub fn police<'a>(
        &self,
        rustc_env: impl IntoIterator<Item = &'a str>,
        link_args: &[String],
        link_search: impl IntoIterator<Item = &'a Path>,
    ) -> Result<(), String> {
        let Err(forbidden) = police_directives(&self.policy, rustc_env, link_args, link_search)
        else {
            return Ok(());
        };
        let (package, kind) = (&self.package, self.runner.kind());
        let mut message = format!(
            "the build script of `{package}` {forbidden}\n\
             note: the build script ran in the `{kind}` sandbox"
        );
        if let Some(grant) = forbidden.grant {
            message.push_str(&format!(
                "\nhelp: if `{package}` needs it, grant `{grant}` in `{}` of `{}`",
                self.names.package_grants(package),
                self.names.grants_file
            ));
        }
        Err(message)
    }

    fn suggestion(&self) -> std::sync::MutexGuard<'_, Option<Request>> {
        (self.suggested_grant.lock()).unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    use super::*;
    use crate::{Baseline, Request};

    const NAMES: ConfigNames = ConfigNames {
        request_table: "package.sandbox",
        grants_table: &["sandbox", "allow"],
        grants_file: "config.toml",
    };

    /// The `noop` script of package `p`, limited to `limits`, its denials
    /// recorded in `run_dir`.
    fn script(limits: &str, run_dir: &Path) -> SandboxedScript {
        let baseline = Baseline {
            package_root: "/".into(),
            out_dir: "/tmp".into(),
            temp_dir: "/tmp".into(),
            dependency_out_dirs: Default::default(),
        };
        let granted = Request::parse_at(&format!("limits = {{ {limits} }}"), "/");
        let policy = EffectivePolicy::granting(baseline, granted);
        let context = RunnerContext {
            allow_weaker: Default::default(),
            cache_dir: None,
        };
        let package = ("p".to_owned(), "1.0.0".to_owned());
        SandboxedScript::new(RunnerKind::Noop, &context, policy, package, run_dir, NAMES).unwrap()
    }

    /// Runs `sh -c <shell>` as `script`, collecting its stdout lines.
    fn run(script: &SandboxedScript, shell: &str) -> (Result<Output, RunError>, Vec<String>) {
        let args = [OsString::from("-c"), OsString::from(shell)];
        let (env, mut lines) = (BTreeMap::new(), Vec::new());
        let invocation = Invocation {
            program: Path::new("/bin/sh"),
            args: &args,
            env: &env,
            cwd: Path::new("/"),
            jobserver: None,
            rustc_sysroot: None,
            policy: script.policy(),
            denials: None,
        };
        let mut on_stdout = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        let result = script.run(invocation, &mut on_stdout, &mut |_| Ok(()));
        (result, lines)
    }

    #[test]
    fn a_refused_run_is_recorded_and_its_grant_suggested() {
        let run_dir = tempfile::tempdir().unwrap();
        let record = run_dir.path().join(DenialRecord::FILE_NAME);
        let script = script("output = \"1KiB\"", run_dir.path());

        let (result, _) = run(&script, "exec head -c 4096 /dev/zero");
        assert!(matches!(result, Err(RunError::LimitExceeded { .. })));
        let stored = DenialRecord::load(&record).unwrap().unwrap();
        assert_eq!(stored.denials, [Denial::Limit(crate::LimitKind::Output)]);
        assert_eq!(
            script.failure_notes(),
            "\nnote: the build script ran in the `noop` sandbox (read [/]; write [/tmp, /tmp]; output limit 1KiB)\n\
             help: the sandbox may have denied `limits = { output = \"2KiB\" }`; if the build \
             script needs it, grant it in `config.toml`:\n\n\
             [sandbox.allow.p]\n\
             limits = { output = \"2KiB\" }"
        );
        assert_eq!(
            script.refused_warning().unwrap(),
            "p@1.0.0: the sandbox refused what `limits = { output = \"2KiB\" }` grants, and the \
             build script succeeded without it; if it needs it, grant it in \
             `[sandbox.allow.p]` of `config.toml`"
        );

        // A clean run removes the record and the suggestion.
        let (result, lines) = run(&script, "printf 'red: \\033[31m\\n'");
        assert!(result.unwrap().status.success());
        assert_eq!(lines, ["red: \\u{1b}[31m"]);
        assert!(!record.exists());
        assert_eq!(script.refused_warning(), None);
    }

    #[test]
    fn a_forbidden_directive_names_the_grant_that_allows_it() {
        let run_dir = tempfile::tempdir().unwrap();
        let script = script("", run_dir.path());
        assert_eq!(script.police(["CARGO_PKG_NAME"], &[], []), Ok(()));
        let args = ["-fuse-ld=/tmp/ld".to_owned()];
        let message = script.police([], &args, []).unwrap_err();
        assert!(
            message.ends_with(
                "help: if `p` needs it, grant `linker-plugins = true` in \
                 `[sandbox.allow.p]` of `config.toml`"
            ),
            "{message}"
        );
    }
}
