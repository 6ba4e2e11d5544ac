//! The consumer's grants: the `allow` entries of its configuration (see
//! [`crate::ConsumerConfig`]), and how the runner is chosen.
//!
//! ```toml
//! [allow.openssl-sys]
//! run = ["pkg-config"]
//! [allow."ring@0.17"]
//! presets = ["cc"]
//! [allow."*"]
//! env = ["CC"]
//! ```
//!
//! Each entry is a [`Grant`]: a [`PackageMatcher`] built from the key and a
//! [`Request`] built from the value with the same keys as the manifest table.
//! [`grants_for`] says which grants apply to a package.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{PolicyError, Request, RunnerKind};

/// How the runner for a build script is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RunnerSelection {
    /// `wasmtime` for packages whose manifest says `runner = "wasmtime"`, `native` otherwise.
    #[default]
    Auto,
    /// The same runner for every build script.
    Fixed(RunnerKind),
}

impl RunnerSelection {
    /// The runner for a package whose manifest table asked for `requested`.
    pub fn choose(self, requested: Option<RunnerKind>) -> RunnerKind {
        match self {
            RunnerSelection::Fixed(kind) => kind,
            RunnerSelection::Auto => match requested {
                Some(RunnerKind::Wasmtime) => RunnerKind::Wasmtime,
                _ => RunnerKind::Native,
            },
        }
    }
}

impl FromStr for RunnerSelection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(RunnerSelection::Auto);
        }
        s.parse::<RunnerKind>()
            .map(RunnerSelection::Fixed)
            .map_err(|_| {
                format!("unknown runner `{s}`, expected `auto`, `noop`, `wasmtime` or `native`")
            })
    }
}

impl fmt::Display for RunnerSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerSelection::Auto => f.write_str("auto"),
            RunnerSelection::Fixed(kind) => kind.fmt(f),
        }
    }
}

/// Which packages an `[build-sandbox.allow.<key>]` entry applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageMatcher {
    /// `"*"`: every package.
    Any,
    /// `name`: every version of the package.
    Name(String),
    /// `"name@<version-req>"`: the versions matching the requirement.
    NameVersion(String, semver::VersionReq),
}

impl PackageMatcher {
    /// Whether a package with this name and version is covered.
    pub fn matches(&self, name: &str, version: &semver::Version) -> bool {
        match self {
            PackageMatcher::Any => true,
            PackageMatcher::Name(n) => n == name,
            PackageMatcher::NameVersion(n, req) => n == name && req.matches(version),
        }
    }
}

impl FromStr for PackageMatcher {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(PackageMatcher::Any);
        }
        let (name, req) = match s.split_once('@') {
            Some((name, req)) => (name, Some(req)),
            None => (s, None),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "invalid package `{s}`: expected `<name>`, `<name>@<version-requirement>` or `*`"
            ));
        }
        match req {
            None => Ok(PackageMatcher::Name(name.to_owned())),
            Some(req) => req
                .parse()
                .map(|req| PackageMatcher::NameVersion(name.to_owned(), req))
                .map_err(|e| format!("invalid version requirement in `{s}`: {e}")),
        }
    }
}

impl fmt::Display for PackageMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageMatcher::Any => f.write_str("*"),
            PackageMatcher::Name(name) => f.write_str(name),
            PackageMatcher::NameVersion(name, req) => write!(f, "{name}@{req}"),
        }
    }
}

/// One `[build-sandbox.allow.<key>]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The packages it applies to.
    pub matcher: PackageMatcher,
    /// What it grants, with paths made absolute.
    pub request: Request,
}

impl Grant {
    /// Parses the entry `key = value`. A relative path at `<field>.<index>` of
    /// `value` is resolved against `base(&[field, index])`, the directory that
    /// its definition is relative to: the entry may merge the values of
    /// several configuration files.
    ///
    /// Errors carry the key path below `build-sandbox.allow`.
    pub fn from_toml(
        key: &str,
        value: &toml::Value,
        base: impl Fn(&[String]) -> PathBuf,
    ) -> Result<Grant, PolicyError> {
        let matcher = key.parse().map_err(|message: String| PolicyError {
            at_key: true,
            ..PolicyError::new(&[key], message)
        })?;
        let mut request = Request::from_toml(value).map_err(|mut e| {
            e.path.insert(0, key.to_owned());
            e
        })?;
        if request.runner.is_some() {
            return Err(PolicyError::new(
                &[key, "runner"],
                "a grant cannot choose the runner; the configuration's `runner` key does",
            ));
        }
        request.resolve_paths_at(value, base);
        Ok(Grant { matcher, request })
    }
}

/// The grants that apply to a package, in configuration order.
pub(crate) fn grants_for<'a>(
    grants: &'a [Grant],
    name: &'a str,
    version: &'a semver::Version,
) -> impl Iterator<Item = &'a Grant> + 'a {
    grants
        .iter()
        .filter(move |grant| grant.matcher.matches(name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(key: &str, value: &str) -> Result<Grant, PolicyError> {
        Grant::from_toml(key, &toml::Value::Table(value.parse().unwrap()), |_| {
            PathBuf::from("/ws")
        })
    }

    #[test]
    fn selection_auto_prefers_the_manifest_runner() {
        assert_eq!(RunnerSelection::Auto.choose(None), RunnerKind::Native);
        assert_eq!(
            RunnerSelection::Auto.choose(Some(RunnerKind::Wasmtime)),
            RunnerKind::Wasmtime
        );
        let noop = RunnerSelection::Fixed(RunnerKind::Noop);
        assert_eq!(noop.choose(Some(RunnerKind::Wasmtime)), RunnerKind::Noop);
        assert_eq!(
            "native".parse(),
            Ok(RunnerSelection::Fixed(RunnerKind::Native))
        );
        assert!("docker".parse::<RunnerSelection>().is_err());
    }

    #[test]
    fn matchers() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        let ring: PackageMatcher = "ring@0.17".parse().unwrap();
        assert!(ring.matches("ring", &v("0.17.14")));
        assert!(!ring.matches("ring", &v("0.18.0")));
        assert!(!ring.matches("rings", &v("0.17.0")));
        assert!(
            "*".parse::<PackageMatcher>()
                .unwrap()
                .matches("x", &v("1.0.0"))
        );
        assert!(
            "openssl-sys"
                .parse::<PackageMatcher>()
                .unwrap()
                .matches("openssl-sys", &v("0.9.0"))
        );
        assert!("ring@".parse::<PackageMatcher>().is_err());
        assert!("a b".parse::<PackageMatcher>().is_err());
    }

    #[test]
    fn grant_errors_are_prefixed_with_the_package_key() {
        let err = grant("ring", "reed = []").unwrap_err();
        assert_eq!(err.path, ["ring", "reed"]);
        let err = grant("ring", "runner = \"native\"").unwrap_err();
        assert_eq!(err.path, ["ring", "runner"]);
        let ok = grant("ring@0.17", "read = [\"include\"]").unwrap();
        assert!(
            ok.request
                .read
                .contains(std::path::Path::new("/ws/include"))
        );
    }

    #[test]
    fn grants_for_filters_by_package() {
        let grants = vec![
            grant("a", "clock = true").unwrap(),
            grant("*", "random = true").unwrap(),
            grant("b@1", "clock = true").unwrap(),
        ];
        let v = semver::Version::parse("1.2.3").unwrap();
        assert_eq!(grants_for(&grants, "a", &v).count(), 2);
        assert_eq!(grants_for(&grants, "b", &v).count(), 2);
        assert_eq!(grants_for(&grants, "c", &v).count(), 1);
    }
}
