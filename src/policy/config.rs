//! The consumer's configuration: one table with every key this crate reads,
//! which the embedding program takes from its own configuration (Cargo's
//! `[build-sandbox]`).
//!
//! ```toml
//! runner = "auto"                       # or "noop", "wasmtime", "native"
//! trust = "approved"                    # or "declared"
//! limits = { time = "120s" }            # for every build script
//! native.allow-weaker = ["process-limit"]
//!
//! [allow.openssl-sys]                   # one `Grant` per entry
//! presets = ["pkg-config"]
//! [allow."ring@0.17"]
//! presets = ["cc"]
//! ```
//!
//! [`ConsumerConfig::from_toml`] checks every key it knows and leaves others
//! alone (the embedding program may have its own); errors carry the key path
//! below the table. [`ConsumerConfig::approval`] is what the consumer approves
//! for one package.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{Approval, Grant, Limits, PolicyError, RunnerSelection, Trust};

/// The consumer's configuration of the sandbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `runner`: how each build script's runner is chosen.
    pub runner: RunnerSelection,
    /// `trust`: whether declarations are approved by themselves.
    pub trust: Trust,
    /// `limits`: the limits of every build script that no grant sets.
    pub limits: Limits,
    /// `allow.<package>`: the grants, in key order.
    pub grants: Vec<Grant>,
    /// `native.allow-weaker`: protections the consumer agreed to go without
    /// where the system cannot provide them.
    pub allow_weaker: BTreeSet<Weakening>,
}

impl ConsumerConfig {
    /// Parses the table. A relative path is resolved against `base(key_path)`,
    /// the directory that the definition of the value at `key_path` (below
    /// the table, e.g. `["allow", "ring", "read", "0"]`) is relative to.
    pub fn from_toml(
        value: &toml::Value,
        base: impl Fn(&[String]) -> PathBuf,
    ) -> Result<ConsumerConfig, PolicyError> {
        let table = super::expect_table(value, &[])?;
        let mut config = ConsumerConfig::default();
        if let Some(value) = table.get("runner") {
            config.runner = parse_str(value, &["runner"])?;
        }
        if let Some(value) = table.get("trust") {
            config.trust = parse_str(value, &["trust"])?;
        }
        if let Some(value) = table.get("limits") {
            config.limits = Limits::from_toml(value)?;
        }
        if let Some(allow) = table.get("allow") {
            for (key, value) in super::expect_table(allow, &["allow"])? {
                let base_below =
                    |path: &[String]| base(&[&["allow".to_owned(), key.clone()], path].concat());
                let grant = Grant::from_toml(key, value, base_below).map_err(|mut e| {
                    e.path.insert(0, "allow".to_owned());
                    e
                })?;
                config.grants.push(grant);
            }
        }
        if let Some(native) = table.get("native") {
            let native = super::expect_table(native, &["native"])?;
            if let Some(names) = native.get("allow-weaker") {
                let at = ["native", "allow-weaker"];
                config.allow_weaker = super::parse_list(names, &at, str::parse)?;
            }
        }
        Ok(config)
    }

    /// What the consumer approves for the package `name` at `version`: the
    /// matching grants in key order, the default limits and the trust mode.
    pub fn approval(&self, name: &str, version: &semver::Version) -> Approval {
        Approval {
            trust: self.trust,
            grants: super::grants::grants_for(&self.grants, name, version)
                .map(|grant| grant.request.clone())
                .collect(),
            default_limits: self.limits,
        }
    }
}

/// A string value parsed with `FromStr`, its error placed at `at`.
fn parse_str<T: FromStr<Err = String>>(value: &toml::Value, at: &[&str]) -> Result<T, PolicyError> {
    super::expect_str(value, at)?
        .parse()
        .map_err(|message| PolicyError::new(at, message))
}

/// A protection a runner may go without, when the consumer explicitly allows
/// it (`native.allow-weaker`, e.g. `["process-limit"]`), instead of refusing
/// to run.
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::RunnerKind;

    fn config(text: &str) -> Result<ConsumerConfig, PolicyError> {
        ConsumerConfig::from_toml(&toml::Value::Table(text.parse().unwrap()), |path| {
            Path::new("/ws").join(path.join("/"))
        })
    }

    #[test]
    fn every_key_is_read() {
        let config = config(
            "runner = \"wasmtime\"\ntrust = \"declared\"\nlimits = { time = \"2s\" }\n\
             native.allow-weaker = [\"process-limit\"]\nunknown = 1\n\
             [allow.a]\nread = [\"inc\"]\n[allow.\"b@1\"]\nclock = true\n",
        )
        .unwrap();
        assert_eq!(config.runner, RunnerSelection::Fixed(RunnerKind::Wasmtime));
        assert_eq!(config.trust, Trust::Declared);
        assert_eq!(config.limits.time, Some(std::time::Duration::from_secs(2)));
        assert_eq!(
            config.allow_weaker,
            BTreeSet::from([Weakening::ProcessLimit])
        );
        // Relative paths are resolved against the entry's own base.
        let v1 = semver::Version::new(1, 0, 0);
        let a = config.approval("a", &v1);
        assert_eq!(a.grants.len(), 1);
        assert_eq!(
            a.grants[0].read,
            BTreeSet::from([PathBuf::from("/ws/allow/a/read/0/inc")])
        );
        assert!(config.approval("b", &v1).grants[0].clock);
        assert!(
            config
                .approval("b", &semver::Version::new(2, 0, 0))
                .grants
                .is_empty()
        );
        assert_eq!(a.trust, Trust::Declared);
    }

    #[test]
    fn each_path_is_relative_to_its_own_definition() {
        // `read` merges two files; `run` has a name and a path.
        let text = "[allow.a]\nread = [\"x\", \"/abs\", \"../y\"]\nrun = [\"cc\", \"bin/tool\"]\n";
        let config =
            ConsumerConfig::from_toml(&toml::Value::Table(text.parse().unwrap()), |path| {
                if path.len() == 4 && path[..3] == ["allow", "a", "read"] {
                    PathBuf::from(format!("/file{}", path[3]))
                } else {
                    PathBuf::from(format!("/{}", path.join(".")))
                }
            })
            .unwrap();
        let request = &config.grants[0].request;
        let read = ["/file0/x", "/abs", "/y"].map(PathBuf::from);
        assert_eq!(request.read, BTreeSet::from(read));
        let run = [
            crate::Program::Name("cc".to_owned()),
            crate::Program::Path(PathBuf::from("/allow.a.run.1/bin/tool")),
        ];
        assert_eq!(request.run, BTreeSet::from(run));
    }

    #[test]
    fn errors_name_the_key_below_the_table() {
        let err = |text| config(text).unwrap_err();
        let e = err("runner = \"podman\"");
        assert_eq!(e.path, ["runner"]);
        assert!(e.message.starts_with("unknown runner `podman`"), "{e}");
        assert_eq!(err("trust = 1").path, ["trust"]);
        assert_eq!(err("[allow.a]\nrun = \"cc\"").path, ["allow", "a", "run"]);
        assert_eq!(
            err("[allow.a]\nrunner = \"native\"").path,
            ["allow", "a", "runner"]
        );
        assert_eq!(err("[allow.\"a@one\"]").path, ["allow", "a@one"]);
        assert_eq!(err("limits = { cpu = \"1s\" }").path, ["limits", "cpu"]);
        let e = err("native.allow-weaker = [\"all\"]");
        assert_eq!(e.path, ["native", "allow-weaker", "0"]);
        assert!(e.message.starts_with("unknown weakening `all`"), "{e}");
    }

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
