//! The commands: `report`, `approve`, `allow` and `learn` (in [`crate::learn`]).
//!
//! Each loads the [`Workspace`] from Cargo and returns what goes to standard
//! output; progress (`Approved`, `Granted`) goes to standard error, as
//! Cargo's status lines do.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail, format_err};
use build_sandbox::{DenialRecord, PackageMatcher, Program, ReportEntry, Request};

use crate::learn;
use crate::workspace::{ScriptPackage, Workspace};
use crate::{Command, Format, GrantArgs};

/// The path of the configuration table that holds the consumer's grants.
pub const GRANTS_TABLE: [&str; 2] = ["build-sandbox", "allow"];

pub fn run(command: Command) -> anyhow::Result<String> {
    match command {
        Command::Report { format, common } => report(&Workspace::load(&common)?, format),
        Command::Approve {
            packages,
            all,
            dry_run,
            common,
        } => approve(&Workspace::load(&common)?, &packages, all, dry_run),
        Command::Allow {
            package,
            grant,
            common,
        } => allow(&Workspace::load(&common)?, &package, grant),
        Command::Learn {
            runner,
            dry_run,
            common,
        } => learn::learn(&Workspace::load(&common)?, &common, runner, dry_run),
    }
}

/// `report`: every package of the resolve with a build script, with its
/// runner and what it declares, is approved and lacks.
fn report(ws: &Workspace, format: Format) -> anyhow::Result<String> {
    let failed_runs = last_failed_runs(&ws.target_dir)?;
    let entries: Vec<ReportEntry> = (ws.packages.iter())
        .map(|pkg| {
            let approval = ws.consumer.approval(&pkg.name, &pkg.version);
            let version = pkg.version.to_string();
            let key = (pkg.name.clone(), version.clone());
            ReportEntry {
                last_failed_run: failed_runs.get(&key).cloned(),
                ..ReportEntry::new(
                    &pkg.name,
                    version,
                    pkg.runner,
                    &pkg.declared,
                    &approval,
                    &pkg.root,
                )
            }
        })
        .collect();
    let trust = ws.consumer.trust;
    Ok(match format {
        Format::Human => build_sandbox::render_report_human(trust, &GRANTS_TABLE, &entries),
        Format::Json => build_sandbox::render_report_json(trust, &entries) + "\n",
    })
}

/// The records of the build scripts whose last run in `target_dir` failed, by
/// package name and version; the newest when a package's script ran in more
/// than one configuration.
fn last_failed_runs(target_dir: &Path) -> anyhow::Result<BTreeMap<(String, String), DenialRecord>> {
    let mut newest: BTreeMap<(String, String), (SystemTime, DenialRecord)> = BTreeMap::new();
    for path in learn::records(target_dir) {
        let Some(record) = DenialRecord::load(&path)?.filter(|record| record.failed) else {
            continue;
        };
        let modified = (fs::metadata(&path).and_then(|meta| meta.modified()))
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        let key = (record.package.clone(), record.version.clone());
        if newest.get(&key).is_none_or(|(time, _)| *time < modified) {
            newest.insert(key, (modified, record));
        }
    }
    Ok(newest
        .into_iter()
        .map(|(key, (_, record))| (key, record))
        .collect())
}

/// `approve`: writes `[build-sandbox.allow."name@version"]` entries approving
/// what the packages named in `specs` (names, or `name@version`), or every
/// package with `all`, declare and the consumer has not approved yet; with
/// `dry_run` it returns them instead.
fn approve(ws: &Workspace, specs: &[String], all: bool, dry_run: bool) -> anyhow::Result<String> {
    let selected = |pkg: &ScriptPackage| {
        let id = format!("{}@{}", pkg.name, pkg.version);
        all || specs.iter().any(|spec| *spec == pkg.name || *spec == id)
    };
    for spec in specs {
        let name = spec.split_once('@').map_or(spec.as_str(), |(name, _)| name);
        if !(ws.packages.iter()).any(|pkg| pkg.name == name && selected(pkg)) {
            bail!(
                "package `{spec}` has no build script among the packages of this workspace\n\
                 help: `cargo build-sandbox report -Zsandboxed-build-scripts` lists them"
            );
        }
    }
    let mut unapproved = Vec::new();
    for pkg in ws.packages.iter().filter(|pkg| selected(pkg)) {
        let approval = ws.consumer.approval(&pkg.name, &pkg.version);
        let missing = approval.unapproved(&pkg.declared, &pkg.root);
        if !missing.is_empty() {
            unapproved.push((pkg, format!("{}@{}", pkg.name, pkg.version), missing));
        }
    }
    if unapproved.is_empty() {
        status("Approved", "nothing: every declared capability is approved");
        return Ok(String::new());
    }
    if dry_run {
        let entries: Vec<(String, Request)> = (unapproved.into_iter())
            .map(|(_, key, missing)| (key, missing))
            .collect();
        return Ok(build_sandbox::grant_snippet(&GRANTS_TABLE, &entries));
    }
    let config_path = config_path(ws);
    for (pkg, key, missing) in &unapproved {
        add_to_config(&config_path, key, missing)?;
        let missing = build_sandbox::describe_grant(missing);
        let (pkg, path) = (&pkg.display, config_path.display());
        status("Approved", &format!("{missing} for `{pkg}` in `{path}`"));
    }
    Ok(String::new())
}

/// `allow`: adds `grant` to `[build-sandbox.allow."<package>"]` of the
/// workspace's `.cargo/config.toml`, keeping the rest of the file as it is.
///
/// Paths are relative to the current directory; they are written relative to
/// the workspace root (the base of relative paths in that file) when they are
/// inside it.
fn allow(ws: &Workspace, package: &str, grant: GrantArgs) -> anyhow::Result<String> {
    let mut table = toml::Table::new();
    let lists = [
        ("read", grant.read),
        ("write", grant.write),
        ("env", grant.env),
        ("run", grant.run),
        ("net", grant.net),
        ("presets", grant.presets),
    ];
    for (key, values) in lists.into_iter().filter(|(_, values)| !values.is_empty()) {
        table.insert(key.to_owned(), values.into());
    }
    let flags = [
        ("clock", grant.clock),
        ("random", grant.random),
        ("linker-plugins", grant.linker_plugins),
    ];
    for (key, _) in flags.into_iter().filter(|(_, set)| *set) {
        table.insert(key.to_owned(), true.into());
    }
    if table.is_empty() {
        bail!(
            "nothing to grant to `{package}`\n\
             help: pass what to allow, e.g. `--read PATH`, `--run PROGRAM` or `--clock`"
        );
    }
    let invalid = |message| format_err!("invalid grant for `{package}`: {message}");
    package.parse::<PackageMatcher>().map_err(invalid)?;
    let mut request = Request::from_toml(&toml::Value::Table(table))
        .map_err(|e| invalid(format!("`{}`: {}", e.dotted_path(), e.message)))?;
    request.resolve_paths(&ws.cwd);
    let relative_to_root = |path: &Path| -> PathBuf {
        match path.strip_prefix(&ws.root) {
            Ok(inside) if inside.as_os_str().is_empty() => PathBuf::from("."),
            Ok(inside) => inside.to_owned(),
            Err(_) => path.to_owned(),
        }
    };
    for set in [&mut request.read, &mut request.write] {
        *set = set.iter().map(|path| relative_to_root(path)).collect();
    }
    request.run = (request.run.into_iter())
        .map(|program| match program {
            Program::Path(path) => Program::Path(relative_to_root(&path)),
            named => named,
        })
        .collect();
    let config_path = config_path(ws);
    add_to_config(&config_path, package, &request)?;
    let granted = build_sandbox::describe_grant(&request);
    let path = config_path.display();
    status("Granted", &format!("{granted} to `{package}` in `{path}`"));
    Ok(String::new())
}

/// The workspace's `.cargo/config.toml`, which `approve` and `allow` edit.
pub fn config_path(ws: &Workspace) -> PathBuf {
    ws.root.join(".cargo").join("config.toml")
}

/// Adds `request` to `[build-sandbox.allow."<key>"]` of the configuration file
/// at `config_path`, keeping everything else in it as it is.
pub fn add_to_config(config_path: &Path, key: &str, request: &Request) -> anyhow::Result<()> {
    let config = match std::fs::read_to_string(config_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        read => read.with_context(|| format!("failed to read `{}`", config_path.display()))?,
    };
    let edited = build_sandbox::add_grant(&config, &GRANTS_TABLE, key, request)
        .with_context(|| format!("failed to edit `{}`", config_path.display()))?;
    if let Some(dir) = config_path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    std::fs::write(config_path, edited)
        .with_context(|| format!("failed to write `{}`", config_path.display()))
}

/// A status line on standard error, as Cargo prints them: the verb right-aligned.
pub fn status(verb: &str, message: &str) {
    eprintln!("{verb:>12} {message}");
}
