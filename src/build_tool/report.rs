//! The report of what every build script declares, is approved, and lacks.
//!
//! The embedding program makes one [`ReportEntry`] per package with a build
//! script ([`ReportEntry::new`] computes what is approved and what is missing
//! from the consumer's [`Approval`]) and prints them with
//! [`render_report_human`] or, as JSON, [`render_report_json`].

use std::fmt::Write as _;
use std::path::Path;

use crate::policy::{display_duration, display_size, dotted};
use crate::{Approval, DenialRecord, Request, RunnerKind, Trust};

/// One package with a build script.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReportEntry {
    /// The package name.
    pub package: String,
    /// The package version.
    pub version: String,
    /// The runner its build script runs with.
    #[serde(serialize_with = "serialize_runner")]
    pub runner: RunnerKind,
    /// What the package declares in `[package.build-sandbox]`.
    pub declared: Request,
    /// What the build script gets beyond the baseline ([`Approval::granted`]).
    pub approved: Request,
    /// What the package declares that no grant of the consumer approves
    /// ([`Approval::unapproved`]); under [`Trust::Declared`] the script gets it
    /// all the same.
    pub missing: Request,
    /// What the sandbox refused the script in its last run, when that run
    /// failed: the embedding program sets it from the stored record.
    pub last_failed_run: Option<DenialRecord>,
}

fn serialize_runner<S: serde::Serializer>(runner: &RunnerKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(runner.name())
}

impl ReportEntry {
    /// The entry for a package at `package_root` whose manifest declares
    /// `declared` (paths resolved), under the consumer's `approval`.
    pub fn new(
        package: impl Into<String>,
        version: impl Into<String>,
        runner: RunnerKind,
        declared: &Request,
        approval: &Approval,
        package_root: &Path,
    ) -> ReportEntry {
        ReportEntry {
            package: package.into(),
            version: version.into(),
            runner,
            declared: declared.clone(),
            approved: approval.granted(declared),
            missing: approval.unapproved(declared, package_root),
            last_failed_run: None,
        }
    }
}

/// A line on the trust mode, then one block per package, a line for each
/// part, `-` for an empty part, and what its last run was refused if that
/// run failed, then the [`Summary`]; `table` is the path of
/// keys of the table that holds the consumer's grants, as for
/// [`add_grant`](crate::add_grant):
///
/// ```text
/// trust: approved (build scripts get what `[<table>]` grants)
/// openssl-sys v0.9.109 (runner `native`)
///   declared   run [cc, pkg-config]; clock
///   approved   run [cc]
///   missing    run [pkg-config]; clock
///   refused    program pkg-config (in its last run, which failed)
/// 1 package with a build script: 0 need no grant, 0 presets only, 1 other grants
/// ```
pub fn render_report_human(trust: Trust, table: &[&str], entries: &[ReportEntry]) -> String {
    let mut out = match trust {
        Trust::Approved => format!(
            "trust: approved (build scripts get what `[{}]` grants)\n",
            dotted(table)
        ),
        Trust::Declared => {
            String::from("trust: declared (build scripts also get what their packages declare)\n")
        }
    };
    for entry in entries {
        // Writing to a `String` cannot fail.
        let _ = writeln!(
            out,
            "{} v{} (runner `{}`)",
            entry.package, entry.version, entry.runner
        );
        for (label, request) in [
            ("declared", &entry.declared),
            ("approved", &entry.approved),
            ("missing", &entry.missing),
        ] {
            let _ = writeln!(out, "  {label:<9}  {}", summary(request));
        }
        if let Some(record) = &entry.last_failed_run {
            let denials: Vec<String> = record.denials.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(
                out,
                "  refused    {} (in its last run, which failed)",
                denials.join("; ")
            );
        }
    }
    let Summary {
        packages,
        no_grant,
        presets_only,
        other_grants,
    } = Summary::of(entries);
    let with = if packages == 1 {
        "package with a build script"
    } else {
        "packages with build scripts"
    };
    let _ = writeln!(
        out,
        "{packages} {with}: {no_grant} need no grant, {presets_only} presets only, \
         {other_grants} other grants"
    );
    out
}

/// How many packages declare nothing, presets only, or other capabilities
/// (runners and limits aside): what adopting the sandbox asks of a consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub packages: usize,
    pub no_grant: usize,
    pub presets_only: usize,
    pub other_grants: usize,
}

impl Summary {
    pub fn of(entries: &[ReportEntry]) -> Summary {
        let mut summary = Summary::default();
        for entry in entries {
            let capabilities = Request {
                runner: None,
                limits: Default::default(),
                ..entry.declared.clone()
            };
            summary.packages += 1;
            if capabilities.is_empty() {
                summary.no_grant += 1;
            } else if (Request {
                presets: Default::default(),
                ..capabilities
            })
            .is_empty()
            {
                summary.presets_only += 1;
            } else {
                summary.other_grants += 1;
            }
        }
        summary
    }
}

/// `{"trust": "approved", "packages": [...], "summary": {...}}`, each package
/// an object with the fields of [`ReportEntry`], requests as in their
/// `Serialize` implementation, and the [`Summary`]. The format is documented
/// in `design/unstable.md`.
pub fn render_report_json(trust: Trust, entries: &[ReportEntry]) -> String {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        trust: String,
        packages: &'a [ReportEntry],
        summary: Summary,
    }
    let report = Report {
        trust: trust.to_string(),
        packages: entries,
        summary: Summary::of(entries),
    };
    // Strings, booleans and sequences of them always serialize.
    serde_json::to_string(&report).expect("a report serializes to JSON")
}

/// `read [..]; run [..]; clock; time limit 60s`, or `-` if `request` is empty.
fn summary(request: &Request) -> String {
    fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
        let items: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
        items.join(", ")
    }
    let mut parts = Vec::new();
    if let Some(runner) = request.runner {
        parts.push(format!("runner {runner}"));
    }
    for (key, items) in [
        ("read", list(request.read.iter().map(|p| p.display()))),
        ("write", list(request.write.iter().map(|p| p.display()))),
        ("env", list(&request.env)),
        ("run", list(&request.run)),
        ("net", list(&request.net)),
        ("presets", list(&request.presets)),
    ] {
        if !items.is_empty() {
            parts.push(format!("{key} [{items}]"));
        }
    }
    for (key, set) in [
        ("clock", request.clock),
        ("random", request.random),
        ("linker-plugins", request.linker_plugins),
    ] {
        if set {
            parts.push(key.to_owned());
        }
    }
    let limits = &request.limits;
    if let Some(time) = limits.time {
        parts.push(format!("time limit {}", display_duration(time)));
    }
    if let Some(memory) = limits.memory {
        parts.push(format!("memory limit {}", display_size(memory)));
    }
    if let Some(output) = limits.output {
        parts.push(format!("output limit {}", display_size(output)));
    }
    if let Some(disk) = limits.disk {
        parts.push(format!("disk limit {}", display_size(disk)));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        Request::parse_at(text, "/ws/pkg")
    }

    fn entries(trust: Trust) -> Vec<ReportEntry> {
        let declared = request(
            "runner = \"native\"\nrun = [\"cc\", \"pkg-config\"]\nclock = true\n\
             limits = { time = \"60s\" }",
        );
        let approval = Approval {
            trust,
            grants: vec![request("run = [\"cc\"]")],
            ..Approval::default()
        };
        let refused = ["program pkg-config".parse().unwrap()];
        let last_failed_run = DenialRecord {
            package: "openssl-sys".to_owned(),
            version: "0.9.109".to_owned(),
            failed: true,
            denials: refused.to_vec(),
            grant: Some(request("presets = [\"pkg-config\"]")),
        };
        vec![
            ReportEntry {
                last_failed_run: Some(last_failed_run),
                ..ReportEntry::new(
                    "openssl-sys",
                    "0.9.109",
                    RunnerKind::Native,
                    &declared,
                    &approval,
                    Path::new("/ws/pkg"),
                )
            },
            ReportEntry::new(
                "ring",
                "0.17.14",
                RunnerKind::Noop,
                &Request::default(),
                &Approval::default(),
                Path::new("/ws/ring"),
            ),
        ]
    }

    #[test]
    fn human_report() {
        assert_eq!(
            render_report_human(
                Trust::Approved,
                &["build-sandbox", "allow"],
                &entries(Trust::Approved)
            ),
            "trust: approved (build scripts get what `[build-sandbox.allow]` grants)\n\
             openssl-sys v0.9.109 (runner `native`)\n\
             \x20 declared   runner native; run [cc, pkg-config]; clock; time limit 60s\n\
             \x20 approved   run [cc]; time limit 60s\n\
             \x20 missing    run [pkg-config]; clock\n\
             \x20 refused    program pkg-config (in its last run, which failed)\n\
             ring v0.17.14 (runner `noop`)\n\
             \x20 declared   -\n\
             \x20 approved   -\n\
             \x20 missing    -\n\
             2 packages with build scripts: 1 need no grant, 0 presets only, 1 other grants\n"
        );
    }

    #[test]
    fn the_summary_counts_what_packages_declare_beyond_runner_and_limits() {
        let entry = |declared: &str| {
            let request =
                Request::from_toml(&toml::Value::Table(declared.parse().unwrap())).unwrap();
            ReportEntry::new(
                "p",
                "1.0.0",
                RunnerKind::Native,
                &request,
                &Approval::default(),
                Path::new("/p"),
            )
        };
        let entries = [
            entry("runner = \"wasmtime\"\nlimits = { time = \"9s\" }"),
            entry("presets = [\"cc\"]"),
            entry("presets = [\"cc\"]\nenv = [\"CC\"]"),
        ];
        let summary = Summary {
            packages: 3,
            no_grant: 1,
            presets_only: 1,
            other_grants: 1,
        };
        assert_eq!(Summary::of(&entries), summary);
    }

    #[test]
    fn declared_trust_approves_but_still_reports_what_is_missing() {
        let entries = entries(Trust::Declared);
        assert_eq!(
            summary(&entries[0].approved),
            "run [cc, pkg-config]; clock; time limit 60s"
        );
        assert_eq!(summary(&entries[0].missing), "run [pkg-config]; clock");
        assert_eq!(
            render_report_human(Trust::Declared, &["build-sandbox", "allow"], &[]),
            "trust: declared (build scripts also get what their packages declare)\n\
             0 packages with build scripts: 0 need no grant, 0 presets only, 0 other grants\n"
        );
    }

    #[test]
    fn json_report_has_stable_field_names() {
        let json: serde_json::Value = serde_json::from_str(&render_report_json(
            Trust::Approved,
            &entries(Trust::Approved),
        ))
        .unwrap();
        assert_eq!(json["trust"], "approved");
        let packages = json["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 2);
        let openssl = &packages[0];
        assert_eq!(openssl["package"], "openssl-sys");
        assert_eq!(openssl["version"], "0.9.109");
        assert_eq!(openssl["runner"], "native");
        assert_eq!(openssl["declared"]["runner"], "native");
        assert_eq!(openssl["approved"]["run"], serde_json::json!(["cc"]));
        assert_eq!(openssl["missing"]["run"], serde_json::json!(["pkg-config"]));
        assert_eq!(openssl["missing"]["clock"], true);
        assert_eq!(
            openssl["missing"]["limits"]["time"],
            serde_json::Value::Null
        );
        assert_eq!(
            openssl["last_failed_run"],
            serde_json::json!({
                "failed": true,
                "denials": ["program pkg-config"],
                "grant": serde_json::to_value(request("presets = [\"pkg-config\"]")).unwrap(),
            })
        );
        assert_eq!(packages[1]["runner"], "noop");
        assert_eq!(packages[1]["last_failed_run"], serde_json::Value::Null);
        assert_eq!(
            render_report_json(Trust::Declared, &[]),
            "{\"trust\":\"declared\",\"packages\":[],\"summary\":{\"packages\":0,\
             \"no_grant\":0,\"presets_only\":0,\"other_grants\":0}}"
        );
    }
}
