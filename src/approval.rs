//! Trust modes: whether what a package declares is granted as declared, or
//! must be approved by the consumer.
//!
//! `build-sandbox.trust` in Cargo's configuration is a [`Trust`]:
//!
//! * `declared` (the default): a build script gets what its package declares
//!   in `[package.build-sandbox]`, plus what the consumer grants.
//! * `approved`: a build script gets only what the consumer grants. Before any
//!   build script runs, Cargo computes [`unapproved`] for every package with a
//!   build script and, if anything is left, stops the build with one error
//!   listing every package and capability, followed by [`grant_snippet`]: the
//!   `[build-sandbox.allow."name@version"]` tables that would approve them.
//!
//! Limits are not capabilities: a limit restricts the script, so a declared
//! limit needs no approval and is never part of [`unapproved`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::{EnvPattern, Limits, Request};

/// How much of a package's own declaration is trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Grant what each package declares.
    #[default]
    Declared,
    /// Grant only what the consumer's `[build-sandbox.allow.*]` tables grant.
    Approved,
}

impl FromStr for Trust {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "declared" => Ok(Trust::Declared),
            "approved" => Ok(Trust::Approved),
            _ => Err(format!(
                "unknown trust mode `{s}`, expected `declared` or `approved`"
            )),
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trust::Declared => "declared",
            Trust::Approved => "approved",
        })
    }
}

/// The part of `declared` that none of `grants` covers (paths of both resolved
/// to absolute paths first).
///
/// * A `read` path is covered by an equal or ancestor path granted in `read`
///   or `write` (writing includes reading); a `write` path by one in `write`.
/// * An `env` name or pattern is covered by a granted pattern matching all of
///   it: `FOO_*` covers `FOO_BAR` and `FOO_BAR_*` as well as `FOO_*`.
/// * `run`, `net` and `presets` entries are covered by equal entries.
/// * `clock`, `random` and `linker-plugins` are covered by a grant setting them.
///
/// `runner` and `limits` are never part of the result: the runner is chosen
/// by the consumer anyway, and a limit restricts rather than grants.
pub fn unapproved(declared: &Request, grants: &[&Request]) -> Request {
    let granted = |any: &dyn Fn(&Request) -> bool| grants.iter().any(|grant| any(grant));
    let under = |path: &Path, granted: &Request, write: bool| {
        let covers = |ancestor: &std::path::PathBuf| path.starts_with(ancestor);
        granted.write.iter().any(covers) || (!write && granted.read.iter().any(covers))
    };
    Request {
        runner: None,
        read: (declared.read.iter())
            .filter(|path| !granted(&|grant| under(path, grant, false)))
            .cloned()
            .collect(),
        write: (declared.write.iter())
            .filter(|path| !granted(&|grant| under(path, grant, true)))
            .cloned()
            .collect(),
        env: (declared.env.iter())
            .filter(|pattern| !granted(&|grant| grant.env.iter().any(|g| env_covers(g, pattern))))
            .cloned()
            .collect(),
        run: (declared.run.iter())
            .filter(|program| !granted(&|grant| grant.run.contains(program)))
            .cloned()
            .collect(),
        net: (declared.net.iter())
            .filter(|target| !granted(&|grant| grant.net.contains(target)))
            .cloned()
            .collect(),
        presets: (declared.presets.iter())
            .filter(|preset| !granted(&|grant| grant.presets.contains(preset)))
            .copied()
            .collect(),
        clock: declared.clock && !granted(&|grant| grant.clock),
        random: declared.random && !granted(&|grant| grant.random),
        linker_plugins: declared.linker_plugins && !granted(&|grant| grant.linker_plugins),
        limits: Limits::default(),
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

/// What a package's build script gets under `trust`: its declaration (less
/// what is still unapproved, under [`Trust::Approved`]) merged with the grants
/// that match it. The runner is left out; declared limits are kept.
pub fn granted(trust: Trust, declared: &Request, grants: &[&Request]) -> Request {
    let mut granted = Request {
        runner: None,
        ..declared.clone()
    };
    if trust == Trust::Approved {
        let missing = unapproved(declared, grants);
        granted.read.retain(|path| !missing.read.contains(path));
        granted.write.retain(|path| !missing.write.contains(path));
        granted.env.retain(|pattern| !missing.env.contains(pattern));
        granted.run.retain(|program| !missing.run.contains(program));
        granted.net.retain(|target| !missing.net.contains(target));
        granted
            .presets
            .retain(|preset| !missing.presets.contains(preset));
        granted.clock &= !missing.clock;
        granted.random &= !missing.random;
        granted.linker_plugins &= !missing.linker_plugins;
    }
    for grant in grants {
        granted.merge(grant);
    }
    granted
}

/// Ready-to-paste configuration granting each `(package key, request)`:
/// one `[build-sandbox.allow."<key>"]` table per entry, in the given order,
/// with the keys of [`Request::to_toml_table`]. The key is what a consumer
/// would write, e.g. `openssl-sys@0.9.109` (a caret requirement: it keeps
/// applying to `0.9.110`, whose new requests are checked again, but not to
/// `0.10.0`).
pub fn grant_snippet(entries: &[(String, Request)]) -> String {
    let mut allow = toml_edit::Table::new();
    allow.set_implicit(true);
    for (key, request) in entries {
        allow.insert(key, toml_edit::Item::Table(request.to_toml_table()));
    }
    let mut sandbox = toml_edit::Table::new();
    sandbox.set_implicit(true);
    sandbox.insert("allow", toml_edit::Item::Table(allow));
    let mut document = toml_edit::DocumentMut::new();
    document.insert("build-sandbox", toml_edit::Item::Table(sandbox));
    document.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{Grant, grants_for};

    fn request(text: &str) -> Request {
        let mut request = Request::from_toml(&toml::Value::Table(text.parse().unwrap())).unwrap();
        request.resolve_paths(Path::new("/ws/pkg"));
        request
    }

    #[test]
    fn trust_modes_parse() {
        assert_eq!(Trust::default(), Trust::Declared);
        assert_eq!("declared".parse(), Ok(Trust::Declared));
        assert_eq!("approved".parse(), Ok(Trust::Approved));
        assert_eq!(
            "trusted".parse::<Trust>(),
            Err("unknown trust mode `trusted`, expected `declared` or `approved`".to_owned())
        );
        assert_eq!(Trust::Approved.to_string(), "approved");
    }

    #[test]
    fn nothing_granted_leaves_everything_but_limits() {
        let declared = request(
            "runner = \"native\"\nread = [\"data\"]\nclock = true\nlinker-plugins = true\n\
             limits = { time = \"1s\" }",
        );
        let missing = unapproved(&declared, &[]);
        assert_eq!(
            missing,
            Request {
                runner: None,
                limits: Limits::default(),
                ..declared
            }
        );
    }

    #[test]
    fn paths_are_covered_by_ancestors_of_the_same_or_a_stronger_kind() {
        let declared = request(
            "read = [\"/usr/include/ssl\", \"/opt/sdk\", \"/etc\", \"/srv/data\"]\n\
             write = [\"/srv/out\", \"/tmp/x/y\"]",
        );
        let grant =
            request("read = [\"/usr/include\", \"/opt/sdk\", \"/tmp/x\"]\nwrite = [\"/srv\"]");
        let missing = unapproved(&declared, &[&grant]);
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
        let grant = request("read = [\"/srv/data\"]");
        assert_eq!(unapproved(&declared, &[&grant]).read.len(), 1);
    }

    #[test]
    fn env_patterns_cover_names_and_narrower_patterns() {
        let declared = request("env = [\"FOO_BAR\", \"FOO_*\", \"FOO_X_*\", \"BAR\", \"BAZ_*\"]");
        let grant = request("env = [\"FOO_*\", \"BAZ_1\"]");
        let missing = unapproved(&declared, &[&grant]);
        let env: Vec<_> = missing.env.iter().map(ToString::to_string).collect();
        assert_eq!(env, ["BAR", "BAZ_*"]);
        // A name does not cover a pattern.
        let declared = request("env = [\"CC*\"]");
        assert_eq!(
            unapproved(&declared, &[&request("env = [\"CC\"]")])
                .env
                .len(),
            1
        );
    }

    #[test]
    fn other_capabilities_are_covered_by_equal_entries_across_grants() {
        let declared = request(
            "run = [\"cc\", \"/usr/bin/protoc\"]\nnet = [\"a.example:443\", \"b.example:443\"]\n\
             presets = [\"cc\", \"pkg-config\"]\nclock = true\nrandom = true\nlinker-plugins = true",
        );
        let first = request("run = [\"cc\"]\nnet = [\"a.example:443\"]\nclock = true");
        let second = request("presets = [\"cc\"]\nlinker-plugins = true\nrun = [\"protoc\"]");
        let missing = unapproved(&declared, &[&first, &second]);
        assert_eq!(
            missing,
            request(
                "run = [\"/usr/bin/protoc\"]\nnet = [\"b.example:443\"]\n\
                 presets = [\"pkg-config\"]\nrandom = true"
            )
        );
        let everything = request(
            "run = [\"cc\", \"/usr/bin/protoc\"]\nnet = [\"a.example:443\", \"b.example:443\"]\n\
             presets = [\"cc\", \"pkg-config\"]\nclock = true\nrandom = true\nlinker-plugins = true",
        );
        assert!(unapproved(&declared, &[&everything]).is_empty());
    }

    #[test]
    fn granted_under_each_trust_mode() {
        let declared = request("read = [\"/a\", \"/b\"]\nclock = true\nlimits = { time = \"5s\" }");
        let grant = request("read = [\"/a\"]\nenv = [\"CC\"]");
        let declared_mode = granted(Trust::Declared, &declared, &[&grant]);
        assert_eq!(declared_mode.read.len(), 2);
        assert!(declared_mode.clock);
        let approved = granted(Trust::Approved, &declared, &[&grant]);
        assert_eq!(
            approved,
            request("read = [\"/a\"]\nenv = [\"CC\"]\nlimits = { time = \"5s\" }")
        );
    }

    #[test]
    fn snippet_has_fixed_key_order() {
        let missing = request(
            "linker-plugins = true\nrun = [\"cc\"]\nread = [\"/usr/include\"]\nclock = true",
        );
        let snippet = grant_snippet(&[
            ("openssl-sys@0.9.109".to_owned(), missing),
            ("ring".to_owned(), request("env = [\"CC\"]")),
        ]);
        assert_eq!(
            snippet,
            "[build-sandbox.allow.\"openssl-sys@0.9.109\"]\n\
             read = [\"/usr/include\"]\n\
             run = [\"cc\"]\n\
             clock = true\n\
             linker-plugins = true\n\
             \n\
             [build-sandbox.allow.ring]\n\
             env = [\"CC\"]\n"
        );
        assert_eq!(grant_snippet(&[]), "");
    }

    #[test]
    fn snippet_round_trips_through_grants() {
        let missing = request(
            "read = [\"/usr/include\", \"/opt/sdk \\\"quoted\\\"\"]\nwrite = [\"/ws/gen\"]\n\
             env = [\"CC\", \"PROTOC_*\"]\nrun = [\"cc\", \"/usr/bin/protoc\"]\n\
             net = [\"[::1]:80\", \"example.com:443\"]\npresets = [\"cc\", \"rustc-probe\"]\n\
             clock = true\nrandom = true\nlinker-plugins = true",
        );
        let key = "openssl-sys@0.9.109".to_owned();
        let snippet = grant_snippet(&[(key.clone(), missing.clone())]);
        let config: toml::Table = snippet.parse().unwrap();
        let allow = config["build-sandbox"]["allow"].as_table().unwrap();
        let grants: Vec<Grant> = allow
            .iter()
            .map(|(key, value)| Grant::from_toml(key, value, Path::new("/elsewhere")).unwrap())
            .collect();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].request, missing);
        let version = |v: &str| semver::Version::parse(v).unwrap();
        let declared = missing.clone();
        let unapproved_at = |v: &str| {
            let v = version(v);
            let applying: Vec<&Request> = grants_for(&grants, "openssl-sys", &v)
                .map(|grant| &grant.request)
                .collect();
            unapproved(&declared, &applying)
        };
        assert!(unapproved_at("0.9.109").is_empty());
        assert!(unapproved_at("0.9.110").is_empty());
        // The grant stops applying when the version leaves the requirement.
        assert_eq!(unapproved_at("0.10.0"), missing);
        assert_eq!(unapproved_at("0.9.108"), missing);
    }

    #[test]
    fn exact_version_grants() {
        let grants = [Grant::from_toml(
            "openssl-sys@=0.9.109",
            &toml::Value::Table("clock = true".parse().unwrap()),
            Path::new("/"),
        )
        .unwrap()];
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert_eq!(grants_for(&grants, "openssl-sys", &v("0.9.109")).count(), 1);
        assert_eq!(grants_for(&grants, "openssl-sys", &v("0.9.110")).count(), 0);
        assert_eq!(grants_for(&grants, "openssl", &v("0.9.109")).count(), 0);
    }
}
