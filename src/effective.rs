//! The policy a build script actually runs under.
//!
//! [`EffectivePolicy::new`] combines three parts, in this order:
//!
//! 1. the [`Baseline`] every sandboxed build script gets: read its package root
//!    and the `OUT_DIR`s of the build scripts it gets `DEP_*` metadata from,
//!    read and write its `OUT_DIR` and a private temporary directory, and the
//!    environment variables Cargo sets for build scripts (those arrive through the
//!    invocation, so the policy lists only names passed through on top);
//! 2. what the package declares in `[package.build-sandbox]`;
//! 3. what the consumer grants in `[build-sandbox.allow.*]`.
//!
//! The result is a plain value: it is hashed into the build-script fingerprint
//! (a changed grant reruns the script) and printed with `-v`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use crate::runner::{display_duration, display_size};
use crate::{Limits, Request};

/// What every sandboxed build script may use, whatever it declares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Baseline {
    /// The package's root directory (`CARGO_MANIFEST_DIR`), readable.
    pub package_root: PathBuf,
    /// `OUT_DIR`, readable and writable.
    pub out_dir: PathBuf,
    /// A directory private to this build script, given to it as `TMPDIR`.
    pub temp_dir: PathBuf,
    /// The `OUT_DIR`s of the build scripts whose `DEP_*` metadata Cargo passes
    /// to this one, readable: `-sys` crates export their headers this way
    /// (`cargo::metadata=include=$OUT_DIR/include`).
    pub dependency_out_dirs: BTreeSet<PathBuf>,
}

/// Baseline + declared request + consumer grants, with absolute paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectivePolicy {
    /// The parts every sandboxed script gets.
    pub baseline: Baseline,
    /// What the script gets beyond the baseline: the declared request merged
    /// with the grants (grants override limits). `runner` is always `None`:
    /// the runner is chosen separately.
    pub granted: Request,
}

impl EffectivePolicy {
    /// Combines the baseline, the package's `declared` request (paths already
    /// resolved against the package root) and the consumer's `grants`.
    pub fn new<'a>(
        baseline: Baseline,
        declared: &Request,
        grants: impl IntoIterator<Item = &'a Request>,
    ) -> EffectivePolicy {
        let mut granted = Request {
            runner: None,
            ..declared.clone()
        };
        for grant in grants {
            granted.merge(grant);
        }
        EffectivePolicy { baseline, granted }
    }

    /// Whether the policy asks for anything beyond the baseline.
    pub fn is_baseline(&self) -> bool {
        self.granted.is_empty()
    }
}

/// One line for `-v`: `read [..]; write [..]; env [..]; ...`, omitting empty parts.
impl fmt::Display for EffectivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
            items
                .into_iter()
                .map(|item| item.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        let baseline = &self.baseline;
        let read = std::iter::once(&baseline.package_root)
            .chain(&baseline.dependency_out_dirs)
            .chain(&self.granted.read);
        let write = [&baseline.out_dir, &baseline.temp_dir]
            .into_iter()
            .chain(&self.granted.write);
        write!(f, "read [{}]", list(read.map(|p| p.display())))?;
        write!(f, "; write [{}]", list(write.map(|p| p.display())))?;
        if !self.granted.env.is_empty() {
            write!(f, "; env [{}]", list(&self.granted.env))?;
        }
        if !self.granted.run.is_empty() {
            write!(f, "; run [{}]", list(&self.granted.run))?;
        }
        if !self.granted.presets.is_empty() {
            write!(f, "; presets [{}]", list(&self.granted.presets))?;
        }
        if !self.granted.net.is_empty() {
            write!(f, "; net [{}]", list(&self.granted.net))?;
        }
        if self.granted.clock {
            f.write_str("; clock")?;
        }
        if self.granted.random {
            f.write_str("; random")?;
        }
        if self.granted.linker_plugins {
            f.write_str("; linker-plugins")?;
        }
        let Limits {
            time,
            memory,
            output,
        } = self.granted.limits;
        if let Some(time) = time {
            write!(f, "; time limit {}", display_duration(time))?;
        }
        if let Some(memory) = memory {
            write!(f, "; memory limit {}", display_size(memory))?;
        }
        if let Some(output) = output {
            write!(f, "; output limit {}", display_size(output))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn request(text: &str, base: &str) -> Request {
        let mut request = Request::from_toml(&toml::Value::Table(text.parse().unwrap())).unwrap();
        request.resolve_paths(Path::new(base));
        request
    }

    fn baseline() -> Baseline {
        Baseline {
            package_root: "/ws/pkg".into(),
            out_dir: "/ws/target/debug/build/pkg-1/out".into(),
            temp_dir: "/ws/target/debug/build/pkg-1/tmp".into(),
            dependency_out_dirs: BTreeSet::new(),
        }
    }

    #[test]
    fn baseline_alone() {
        let policy = EffectivePolicy::new(baseline(), &Request::default(), []);
        assert!(policy.is_baseline());
        assert_eq!(
            policy.to_string(),
            "read [/ws/pkg]; write [/ws/target/debug/build/pkg-1/out, /ws/target/debug/build/pkg-1/tmp]"
        );
    }

    #[test]
    fn declared_plus_grants() {
        let declared = request(
            "read = [\"data\"]\nenv = [\"CC\"]\nlimits = { time = \"10s\" }",
            "/ws/pkg",
        );
        let grant = request(
            "read = [\"/opt/sdk\"]\nnet = [\"localhost:80\"]\nlimits = { time = \"1m\" }",
            "/ws",
        );
        let policy = EffectivePolicy::new(baseline(), &declared, [&grant]);
        assert!(!policy.is_baseline());
        assert_eq!(policy.granted.read.len(), 2);
        assert!(policy.granted.read.contains(Path::new("/ws/pkg/data")));
        assert!(policy.granted.read.contains(Path::new("/opt/sdk")));
        assert_eq!(policy.granted.limits.time, Some(Duration::from_secs(60)));
        assert_eq!(
            policy.to_string(),
            "read [/ws/pkg, /opt/sdk, /ws/pkg/data]; \
             write [/ws/target/debug/build/pkg-1/out, /ws/target/debug/build/pkg-1/tmp]; \
             env [CC]; net [localhost:80]; time limit 60s"
        );
    }

    #[test]
    fn a_grant_changes_the_policy() {
        let declared = Request::default();
        let plain = EffectivePolicy::new(baseline(), &declared, []);
        let granted = EffectivePolicy::new(baseline(), &declared, [&request("clock = true", "/")]);
        assert_ne!(plain, granted);
        let plugins = request("linker-plugins = true", "/");
        let plugins = EffectivePolicy::new(baseline(), &declared, [&plugins]);
        assert_ne!(plain, plugins);
    }

    #[test]
    fn booleans_are_shown() {
        let granted = request("clock = true\nrandom = true\nlinker-plugins = true", "/");
        let policy = EffectivePolicy::new(baseline(), &Request::default(), [&granted]);
        assert!(
            policy
                .to_string()
                .ends_with("; clock; random; linker-plugins"),
            "{policy}"
        );
    }
}
