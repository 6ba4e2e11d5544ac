//! Trust: the consumer grants, the package only asks.
//!
//! A package *declares* in `[package.build-sandbox]` what its build script
//! needs. A declaration is a request, written by whoever wrote the package,
//! and an attacker can write one as easily as an honest author. What a build
//! script gets beyond the baseline comes only from the consumer:
//!
//! * the consumer's grants that match the package (`[build-sandbox.allow.*]`
//!   in Cargo's configuration), and
//! * the package's own declaration, only when the consumer opted into
//!   [`Trust::Declared`].
//!
//! [`Approval`] is that consumer's side for one package. The effective policy is
//! computed from it alone ([`crate::EffectivePolicy::new`]); a declaration can
//! only *lower* limits. Before any build script runs, the caller compares every
//! declaration with its approval ([`Approval::unapproved`]) and stops the
//! build if something is missing, printing [`grant_snippet`].
//!
//! Limits: a declared limit at or below the consumer's (its grant, else its
//! default, else [`Limits::BUILT_IN`]) restricts the script and needs no
//! approval; a declared limit above it is a capability like any other.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::{EnvPattern, Limits, Request};

/// Whose word grants a build script its capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Only the consumer's grants: a declaration is a request that must be
    /// approved.
    #[default]
    Approved,
    /// The consumer also grants whatever each package declares (an explicit
    /// opt-in: a package then raises its own rights).
    Declared,
}

impl FromStr for Trust {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approved" => Ok(Trust::Approved),
            "declared" => Ok(Trust::Declared),
            _ => Err(format!(
                "unknown trust mode `{s}`, expected `approved` or `declared`"
            )),
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trust::Approved => "approved",
            Trust::Declared => "declared",
        })
    }
}

/// What the consumer approved for one package's build script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Approval {
    /// The trust mode.
    pub trust: Trust,
    /// The consumer's grants that match the package, in configuration order
    /// (for limits, a later grant overrides an earlier one).
    pub grants: Vec<Request>,
    /// The consumer's default limits for every build script.
    pub default_limits: Limits,
}

impl Approval {
    /// Everything approved: the grants merged, preceded by the declaration
    /// under [`Trust::Declared`] (so that a grant's limits still win).
    /// Limits are the consumer's ceilings, not yet lowered by the declaration.
    fn approved(&self, declared: &Request) -> Request {
        let mut approved = Request::default();
        if self.trust == Trust::Declared {
            approved.merge(declared);
        }
        for grant in &self.grants {
            approved.merge(grant);
        }
        approved.runner = None;
        approved
    }

    /// What the build script gets beyond the baseline: the approved
    /// capabilities, and the limits of the consumer lowered by the
    /// declaration's (see [`Limits::lowered_by`]).
    pub fn granted(&self, declared: &Request) -> Request {
        let mut granted = self.approved(declared);
        let ceiling = granted.limits.or(&self.default_limits);
        granted.limits = ceiling.lowered_by(&declared.limits);
        granted
    }

    /// The part of `declared` that the consumer's grants do not approve
    /// (whatever the trust mode), with paths resolved; `package_root` is what
    /// the baseline already lets the script read.
    ///
    /// * A `read` path is covered by the package root or an equal or ancestor
    ///   path granted in `read` or `write` (writing includes reading); a
    ///   `write` path by one in `write`.
    /// * An `env` name or pattern is covered by a granted pattern matching all
    ///   of it: `FOO_*` covers `FOO_BAR` and `FOO_BAR_*` as well as `FOO_*`.
    /// * `run`, `net` and `presets` entries are covered by equal entries.
    /// * `clock`, `random` and `linker-plugins` are covered by a grant setting
    ///   them.
    /// * A declared limit is covered when it is at most the consumer's.
    pub fn unapproved(&self, declared: &Request, package_root: &Path) -> Request {
        let consumer = Approval {
            trust: Trust::Approved,
            ..self.clone()
        };
        let granted = consumer.approved(declared);
        let under = |path: &Path, write: bool| {
            let covers = |ancestor: &std::path::PathBuf| path.starts_with(ancestor);
            granted.write.iter().any(covers)
                || (!write && (path.starts_with(package_root) || granted.read.iter().any(covers)))
        };
        Request {
            runner: None,
            read: (declared.read.iter())
                .filter(|path| !under(path, false))
                .cloned()
                .collect(),
            write: (declared.write.iter())
                .filter(|path| !under(path, true))
                .cloned()
                .collect(),
            env: (declared.env.iter())
                .filter(|pattern| !granted.env.iter().any(|g| env_covers(g, pattern)))
                .cloned()
                .collect(),
            run: declared.run.difference(&granted.run).cloned().collect(),
            net: declared.net.difference(&granted.net).cloned().collect(),
            presets: declared
                .presets
                .difference(&granted.presets)
                .copied()
                .collect(),
            clock: declared.clock && !granted.clock,
            random: declared.random && !granted.random,
            linker_plugins: declared.linker_plugins && !granted.linker_plugins,
            limits: declared
                .limits
                .above(&granted.limits.or(&self.default_limits)),
        }
    }
}

/// Whether the granted pattern `grant` matches every name `declared` matches.
fn env_covers(grant: &EnvPattern, declared: &EnvPattern) -> bool {
    match (grant, declared) {
        (EnvPattern::Name(granted), EnvPattern::Name(name)) => granted == name,
        (EnvPattern::Name(_), EnvPattern::Prefix(_)) => false,
        (EnvPattern::Prefix(granted), EnvPattern::Name(name) | EnvPattern::Prefix(name)) => {
            name.starts_with(granted.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::{Grant, grants_for};

    fn request(text: &str) -> Request {
        Request::parse_at(text, "/ws/pkg")
    }

    fn approval(trust: Trust, grants: &[&str]) -> Approval {
        Approval {
            trust,
            grants: grants.iter().map(|text| request(text)).collect(),
            default_limits: Limits::default(),
        }
    }

    fn unapproved(declared: &Request, grants: &[&str]) -> Request {
        approval(Trust::Approved, grants).unapproved(declared, Path::new("/ws/pkg"))
    }

    #[test]
    fn trust_modes_parse() {
        assert_eq!(Trust::default(), Trust::Approved);
        assert_eq!("declared".parse(), Ok(Trust::Declared));
        assert_eq!("approved".parse(), Ok(Trust::Approved));
        assert_eq!(
            "trusted".parse::<Trust>(),
            Err("unknown trust mode `trusted`, expected `approved` or `declared`".to_owned())
        );
        assert_eq!(Trust::Declared.to_string(), "declared");
    }

    #[test]
    fn a_declaration_alone_grants_nothing() {
        let declared = request(
            "read = [\"/home/u/.ssh\"]\nwrite = [\"/home/u\"]\nenv = [\"GITHUB_TOKEN\"]\n\
             run = [\"sh\"]\nnet = [\"127.0.0.1:9\"]\npresets = [\"cc\"]\nclock = true\n\
             random = true\nlinker-plugins = true\nlimits = { output = \"1000GB\" }",
        );
        let granted = approval(Trust::Approved, &[]).granted(&declared);
        assert_eq!(
            granted,
            Request {
                limits: Limits {
                    output: Some(Limits::BUILT_IN.output.unwrap()),
                    ..Limits::default()
                },
                ..Request::default()
            }
        );
    }

    #[test]
    fn everything_declared_is_unapproved_without_grants() {
        let declared = request(
            "runner = \"native\"\nread = [\"/data\"]\nclock = true\nlinker-plugins = true\n\
             limits = { time = \"1s\", output = \"1000GB\" }",
        );
        assert_eq!(
            unapproved(&declared, &[]),
            request(
                "read = [\"/data\"]\nclock = true\nlinker-plugins = true\n\
                 limits = { output = \"1000GB\" }"
            )
        );
    }

    #[test]
    fn declared_trust_is_an_explicit_opt_in() {
        let declared = request("read = [\"/data\"]\nclock = true\nlimits = { output = \"1GiB\" }");
        let trusting = approval(Trust::Declared, &["env = [\"CC\"]"]);
        let granted = trusting.granted(&declared);
        assert_eq!(
            granted,
            request(
                "read = [\"/data\"]\nenv = [\"CC\"]\nclock = true\nlimits = { output = \"1GiB\" }"
            )
        );
        // What nobody approved is still reported, for the warning.
        assert_eq!(
            trusting.unapproved(&declared, Path::new("/ws/pkg")),
            request("read = [\"/data\"]\nclock = true\nlimits = { output = \"1GiB\" }")
        );
        // A grant's limit still wins over the declaration.
        let capped = approval(Trust::Declared, &["limits = { output = \"1MiB\" }"]);
        assert_eq!(capped.granted(&declared).limits.output, Some(1 << 20));
    }

    #[test]
    fn declared_limits_only_lower_the_consumers() {
        let declared = request("limits = { time = \"10s\", memory = \"1GiB\", output = \"1MiB\" }");
        let consumer = Approval {
            default_limits: Limits {
                time: Some(Duration::from_secs(60)),
                ..Limits::default()
            },
            ..approval(Trust::Approved, &["limits = { memory = \"512MiB\" }"])
        };
        let limits = consumer.granted(&declared).limits;
        assert_eq!(limits.time, Some(Duration::from_secs(10)));
        assert_eq!(limits.memory, Some(512 << 20));
        assert_eq!(limits.output, Some(1 << 20));
        // Raising the memory limit above the grant needs approval; lowering does not.
        assert_eq!(
            consumer.unapproved(&declared, Path::new("/ws/pkg")),
            request("limits = { memory = \"1GiB\" }")
        );
        // Nothing set anywhere: the runner's built-in limits apply.
        let none = approval(Trust::Approved, &[]).granted(&Request::default());
        assert_eq!(none.limits, Limits::default());
    }

    #[test]
    fn the_package_root_is_baseline() {
        let declared = request("read = [\"data\", \"/opt/sdk\"]\nwrite = [\"gen\"]");
        assert_eq!(
            unapproved(&declared, &[]),
            request("read = [\"/opt/sdk\"]\nwrite = [\"gen\"]")
        );
    }

    #[test]
    fn paths_are_covered_by_ancestors_of_the_same_or_a_stronger_kind() {
        let declared = request(
            "read = [\"/usr/include/ssl\", \"/opt/sdk\", \"/etc\", \"/srv/data\"]\n\
             write = [\"/srv/out\", \"/tmp/x/y\"]",
        );
        let missing = unapproved(
            &declared,
            &["read = [\"/usr/include\", \"/opt/sdk\", \"/tmp/x\"]\nwrite = [\"/srv\"]"],
        );
        let paths = |set: &std::collections::BTreeSet<std::path::PathBuf>| {
            set.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(paths(&missing.read), ["/etc"]);
        // A read grant does not cover writing.
        assert_eq!(paths(&missing.write), ["/tmp/x/y"]);
        // `/srv/database` is not under `/srv/data`.
        let declared = request("read = [\"/srv/database\"]");
        assert_eq!(
            unapproved(&declared, &["read = [\"/srv/data\"]"])
                .read
                .len(),
            1
        );
    }

    #[test]
    fn env_patterns_cover_names_and_narrower_patterns() {
        let declared = request("env = [\"FOO_BAR\", \"FOO_*\", \"FOO_X_*\", \"BAR\", \"BAZ_*\"]");
        let missing = unapproved(&declared, &["env = [\"FOO_*\", \"BAZ_1\"]"]);
        let env: Vec<_> = missing.env.iter().map(ToString::to_string).collect();
        assert_eq!(env, ["BAR", "BAZ_*"]);
        // A name does not cover a pattern.
        let declared = request("env = [\"CC*\"]");
        assert_eq!(unapproved(&declared, &["env = [\"CC\"]"]).env.len(), 1);
    }

    #[test]
    fn other_capabilities_are_covered_by_equal_entries_across_grants() {
        let everything = "run = [\"cc\", \"/usr/bin/protoc\"]\n\
             net = [\"a.example:443\", \"b.example:443\"]\n\
             presets = [\"cc\", \"pkg-config\"]\nclock = true\nrandom = true\nlinker-plugins = true";
        let declared = request(everything);
        let missing = unapproved(
            &declared,
            &[
                "run = [\"cc\"]\nnet = [\"a.example:443\"]\nclock = true",
                "presets = [\"cc\"]\nlinker-plugins = true\nrun = [\"protoc\"]",
            ],
        );
        assert_eq!(
            missing,
            request(
                "run = [\"/usr/bin/protoc\"]\nnet = [\"b.example:443\"]\n\
                 presets = [\"pkg-config\"]\nrandom = true"
            )
        );
        assert!(unapproved(&declared, &[everything]).is_empty());
    }

    #[test]
    fn exact_version_grants() {
        let grants = [Grant::from_toml(
            "openssl-sys@=0.9.109",
            &toml::Value::Table("clock = true".parse().unwrap()),
            |_| std::path::PathBuf::from("/"),
        )
        .unwrap()];
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert_eq!(grants_for(&grants, "openssl-sys", &v("0.9.109")).count(), 1);
        assert_eq!(grants_for(&grants, "openssl-sys", &v("0.9.110")).count(), 0);
        assert_eq!(grants_for(&grants, "openssl", &v("0.9.109")).count(), 0);
    }
}
