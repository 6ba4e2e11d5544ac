//! The policy a build script actually runs under.
//!
//! [`EffectivePolicy::new`] combines two parts:
//!
//! 1. the [`Baseline`] every sandboxed build script gets: read its package root
//!    and the `OUT_DIR`s of the build scripts it gets `DEP_*` metadata from,
//!    read and write its `OUT_DIR` and a private temporary directory, and the
//!    environment variables Cargo sets for build scripts (those arrive through the
//!    invocation, so the policy lists only names passed through on top);
//! 2. what the consumer approved for the package ([`Approval::granted`]). The
//!    package's own declaration enters only through it: it lowers limits, and
//!    adds capabilities only under [`crate::Trust::Declared`].
//!
//! The result is a plain value: it is hashed into the build-script fingerprint
//! (a changed grant reruns the script) and printed with `-v`. Before a script
//! runs, the caller checks that it opens none of the directories the build
//! tool must protect ([`EffectivePolicy::opened_protected`]).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::policy::{display_duration, display_size};
use crate::{Approval, Limits, Request};

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

/// The baseline plus what the consumer approved, with absolute paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectivePolicy {
    /// The parts every sandboxed script gets.
    pub baseline: Baseline,
    /// What the script gets beyond the baseline ([`Approval::granted`]).
    /// `runner` is always `None`: the runner is chosen separately.
    pub granted: Request,
}

impl EffectivePolicy {
    /// The policy of a package that declares `declared` (paths resolved
    /// against its root) and for which the consumer approved `approval`.
    pub fn new(baseline: Baseline, declared: &Request, approval: &Approval) -> EffectivePolicy {
        EffectivePolicy {
            baseline,
            granted: approval.granted(declared),
        }
    }

    /// Every path the script may read: its package root, the `OUT_DIR`s of
    /// the scripts it gets `DEP_*` metadata from, the `read` grants, and every
    /// path it may write.
    pub fn readable(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(&self.baseline.package_root)
            .chain(&self.baseline.dependency_out_dirs)
            .chain(&self.granted.read)
            .map(PathBuf::as_path)
            .chain(self.writable())
    }

    /// Every path the script may write: its `OUT_DIR`, its temporary
    /// directory and the `write` grants.
    pub fn writable(&self) -> impl Iterator<Item = &Path> {
        [&self.baseline.out_dir, &self.baseline.temp_dir]
            .into_iter()
            .chain(&self.granted.write)
            .map(PathBuf::as_path)
    }

    /// The first `write` grant that would let the script write into one of
    /// `protected` (directories whose contents the build tool trusts, such as
    /// its build directory or compiled-code cache), with that directory: a
    /// grant of the directory or an ancestor of it, or of a path inside it
    /// other than the script's own `OUT_DIR` and temporary directory. Paths
    /// are compared with symbolic links resolved as far as they exist.
    pub fn opened_protected<'a>(
        &'a self,
        protected: &'a [PathBuf],
    ) -> Option<(&'a Path, &'a Path)> {
        let own = [&self.baseline.out_dir, &self.baseline.temp_dir].map(|dir| resolved(dir));
        for granted in &self.granted.write {
            let grant = resolved(granted);
            for dir in protected {
                let dir_resolved = resolved(dir);
                let inside_own = own.iter().any(|own| grant.starts_with(own));
                if dir_resolved.starts_with(&grant)
                    || (grant.starts_with(&dir_resolved) && !inside_own)
                {
                    return Some((granted, dir));
                }
            }
        }
        None
    }
}

#[cfg(test)]
impl EffectivePolicy {
    /// The policy of a script whose consumer grants `granted` (tests of the runners).
    pub(crate) fn granting(baseline: Baseline, granted: Request) -> EffectivePolicy {
        let approval = Approval {
            grants: vec![granted],
            ..Approval::default()
        };
        EffectivePolicy::new(baseline, &Request::default(), &approval)
    }
}

/// `path` with symbolic links resolved as far as it exists.
pub(crate) fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
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
        let writable = self.writable().count();
        let read_only = self.readable().count() - writable;
        let read = self.readable().take(read_only);
        write!(f, "read [{}]", list(read.map(|p| p.display())))?;
        write!(
            f,
            "; write [{}]",
            list(self.writable().map(|p| p.display()))
        )?;
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
            disk,
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
        if let Some(disk) = disk {
            write!(f, "; disk limit {}", display_size(disk))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Trust;

    fn request(text: &str, base: &str) -> Request {
        Request::parse_at(text, base)
    }

    fn baseline() -> Baseline {
        Baseline {
            package_root: "/ws/pkg".into(),
            out_dir: "/ws/target/debug/build/pkg-1/out".into(),
            temp_dir: "/ws/target/debug/build/pkg-1/tmp".into(),
            dependency_out_dirs: BTreeSet::new(),
        }
    }

    fn approving(trust: Trust, grants: &[&Request]) -> Approval {
        Approval {
            trust,
            grants: grants.iter().map(|&grant| grant.clone()).collect(),
            default_limits: Limits::default(),
        }
    }

    #[test]
    fn baseline_alone() {
        let policy = EffectivePolicy::new(baseline(), &Request::default(), &Approval::default());
        assert_eq!(
            policy.to_string(),
            "read [/ws/pkg]; write [/ws/target/debug/build/pkg-1/out, /ws/target/debug/build/pkg-1/tmp]"
        );
    }

    #[test]
    fn grants_and_nothing_else() {
        let declared = request(
            "read = [\"/home\"]\nenv = [\"CC\"]\nlimits = { time = \"10s\" }",
            "/ws/pkg",
        );
        let grant = request(
            "read = [\"/opt/sdk\"]\nnet = [\"localhost:80\"]\nlimits = { time = \"1m\" }",
            "/ws",
        );
        let policy = EffectivePolicy::new(
            baseline(),
            &declared,
            &approving(Trust::Approved, &[&grant]),
        );
        assert_eq!(policy.granted.read.len(), 1);
        // The declared time limit is lower than the grant's: it applies.
        assert_eq!(policy.granted.limits.time, Some(Duration::from_secs(10)));
        assert_eq!(
            policy.to_string(),
            "read [/ws/pkg, /opt/sdk]; \
             write [/ws/target/debug/build/pkg-1/out, /ws/target/debug/build/pkg-1/tmp]; \
             net [localhost:80]; time limit 10s"
        );
        let trusting = EffectivePolicy::new(
            baseline(),
            &declared,
            &approving(Trust::Declared, &[&grant]),
        );
        assert_eq!(
            trusting.to_string(),
            "read [/ws/pkg, /home, /opt/sdk]; \
             write [/ws/target/debug/build/pkg-1/out, /ws/target/debug/build/pkg-1/tmp]; \
             env [CC]; net [localhost:80]; time limit 10s"
        );
    }

    #[test]
    fn a_grant_changes_the_policy() {
        let declared = Request::default();
        let plain = EffectivePolicy::new(baseline(), &declared, &Approval::default());
        let clock = request("clock = true", "/");
        let granted = EffectivePolicy::new(
            baseline(),
            &declared,
            &approving(Trust::Approved, &[&clock]),
        );
        assert_ne!(plain, granted);
        let plugins = request("linker-plugins = true", "/");
        let plugins = EffectivePolicy::new(
            baseline(),
            &declared,
            &approving(Trust::Approved, &[&plugins]),
        );
        assert_ne!(plain, plugins);
    }

    #[test]
    fn booleans_are_shown() {
        let granted = request("clock = true\nrandom = true\nlinker-plugins = true", "/");
        let policy = EffectivePolicy::new(
            baseline(),
            &Request::default(),
            &approving(Trust::Approved, &[&granted]),
        );
        assert!(
            policy
                .to_string()
                .ends_with("; clock; random; linker-plugins"),
            "{policy}"
        );
    }

    #[test]
    fn protected_directories_cannot_be_opened() {
        let protected = [PathBuf::from("/ws/target"), PathBuf::from("/home/u/.cargo")];
        let opened = |write: &str| {
            let grant = request(&format!("write = [{write:?}]"), "/");
            let policy = EffectivePolicy::new(
                baseline(),
                &Request::default(),
                &approving(Trust::Approved, &[&grant]),
            );
            policy
                .opened_protected(&protected)
                .map(|(grant, dir)| (grant.display().to_string(), dir.display().to_string()))
        };
        let pair = |grant: &str, dir: &str| Some((grant.to_owned(), dir.to_owned()));
        assert_eq!(opened("/"), pair("/", "/ws/target"));
        assert_eq!(opened("/home/u"), pair("/home/u", "/home/u/.cargo"));
        assert_eq!(
            opened("/ws/target/debug"),
            pair("/ws/target/debug", "/ws/target")
        );
        assert_eq!(
            opened("/ws/target/debug/build/other-2/out"),
            pair("/ws/target/debug/build/other-2/out", "/ws/target")
        );
        assert_eq!(
            opened("/home/u/.cargo/registry/src"),
            pair("/home/u/.cargo/registry/src", "/home/u/.cargo")
        );
        // The script's own directories, and paths beside the protected ones.
        assert_eq!(opened("/ws/target/debug/build/pkg-1/out/gen"), None);
        assert_eq!(opened("/ws/pkg/gen"), None);
        assert_eq!(opened("/home/u/.cargo-other"), None);
        let none = EffectivePolicy::new(baseline(), &Request::default(), &Approval::default());
        assert_eq!(none.opened_protected(&protected), None);
    }
}
