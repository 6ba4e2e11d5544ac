//! Messages the build tool prints about grants, worded with the names it
//! gives its configuration ([`ConfigNames`]).
//!
//! [`unapproved_error`] stops a build whose packages request what the
//! consumer has not approved; the messages of a run are in
//! `runner::SandboxedScript`.

use crate::{Request, describe_grant, grant_snippet};

/// What the build tool calls the places where packages request and
/// consumers grant, for `note:` and `help:` lines.
#[derive(Clone, Copy, Debug)]
pub struct ConfigNames {
    /// The manifest table in which a package requests, as a dotted key.
    pub request_table: &'static str,
    /// The path of keys of the table that holds the grants, one table per
    /// package below it.
    pub grants_table: &'static [&'static str],
    /// The file the consumer writes grants in.
    pub grants_file: &'static str,
}

impl ConfigNames {
    /// The table of `package`'s grants, as `[a.b.package]`.
    pub fn package_grants(&self, package: &str) -> String {
        format!("[{}.{package}]", self.grants_table.join("."))
    }
}

/// A package whose request the consumer has not approved entirely.
#[derive(Clone, Debug)]
pub struct Unapproved {
    /// The package as the build tool names it, e.g. `foo v1.0.0`.
    pub package: String,
    /// The key of the grant that approves it, e.g. `foo@1.0.0`.
    pub grant_key: String,
    /// What it requests and is not approved.
    pub missing: Request,
}

/// The error that stops a build in which `unapproved` packages request what
/// the consumer has not approved: a `note:` naming each and what it requests,
/// then a `help:` with `approve_command` and the grants that would approve
/// them all.
pub fn unapproved_error(
    unapproved: &[Unapproved],
    names: ConfigNames,
    approve_command: &str,
) -> String {
    let mut message = String::from("build scripts declare capabilities that are not approved");
    for Unapproved {
        package, missing, ..
    } in unapproved
    {
        let described = describe_grant(missing);
        message.push_str(&format!("\nnote: `{package}` declares {described}"));
    }
    let entries: Vec<_> = (unapproved.iter())
        .map(|entry| (entry.grant_key.clone(), entry.missing.clone()))
        .collect();
    message.push_str(&format!(
        "\nnote: a package's `[{}]` is a request; only the consumer grants\n\
         help: to approve them, run `{approve_command}`, or add to `{}`:\n\n{}",
        names.request_table,
        names.grants_file,
        grant_snippet(names.grants_table, &entries)
    ));
    message.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: ConfigNames = ConfigNames {
        request_table: "package.sandbox",
        grants_table: &["sandbox", "allow"],
        grants_file: "config.toml",
    };

    #[test]
    fn unapproved_packages_are_named_with_the_grants_that_approve_them() {
        let request = |text: &str| Request::parse_at(text, "/");
        let unapproved = [
            Unapproved {
                package: "a v1.0.0".to_owned(),
                grant_key: "a@1.0.0".to_owned(),
                missing: request("clock = true"),
            },
            Unapproved {
                package: "b v0.2.0".to_owned(),
                grant_key: "b@0.2.0".to_owned(),
                missing: request("run = [\"cc\"]"),
            },
        ];
        let message = unapproved_error(&unapproved, NAMES, "tool approve a b");
        assert_eq!(
            message,
            "build scripts declare capabilities that are not approved\n\
             note: `a v1.0.0` declares `clock = true`\n\
             note: `b v0.2.0` declares `run = [\"cc\"]`\n\
             note: a package's `[package.sandbox]` is a request; only the consumer grants\n\
             help: to approve them, run `tool approve a b`, or add to `config.toml`:\n\
             \n\
             [sandbox.allow.\"a@1.0.0\"]\n\
             clock = true\n\
             \n\
             [sandbox.allow.\"b@0.2.0\"]\n\
             run = [\"cc\"]"
        );
        assert_eq!(NAMES.package_grants("a"), "[sandbox.allow.a]");
    }
}
