//! What `cargo build-sandbox` knows of a workspace, all of it from Cargo.
//!
//! [`Workspace::load`] runs the Cargo that started this subcommand (`CARGO`)
//! twice: `cargo metadata` lists the packages of the resolve with their build
//! scripts and `[package.build-sandbox]` tables, and `cargo config get
//! --show-origin` prints the merged configuration with the file that defines
//! each value. A relative path in a grant is resolved, as in a build, against
//! the directory holding the `.cargo` directory of its own file (the current
//! directory for `--config` values).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail, format_err};
use build_sandbox::{ConsumerConfig, Request, RunnerKind, RunnerSelection};

use crate::Common;

/// The flag that enables the sandbox, and this command.
const FLAG: &str = "sandboxed-build-scripts";

/// A package of the resolve with a build script.
pub struct ScriptPackage {
    pub name: String,
    pub version: semver::Version,
    /// How Cargo shows the package, e.g. `foo v1.0.0 (/path/to/foo)`.
    pub display: String,
    /// The directory of its manifest.
    pub root: PathBuf,
    /// What it declares in `[package.build-sandbox]`, paths resolved.
    pub declared: Request,
    /// The runner its build script runs with.
    pub runner: RunnerKind,
}

pub struct Workspace {
    /// The workspace root, whose `.cargo/config.toml` the commands edit.
    pub root: PathBuf,
    /// The packages with a build script, by name and version.
    pub packages: Vec<ScriptPackage>,
    /// The consumer's `[build-sandbox]` table.
    pub consumer: ConsumerConfig,
    /// The directory the command runs in.
    pub cwd: PathBuf,
    /// Cargo's target directory for this workspace.
    pub target_dir: PathBuf,
    /// The `-Zsandboxed-build-scripts[=RUNNER]` flag as given.
    pub flag: String,
}

#[derive(serde::Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

#[derive(serde::Deserialize)]
struct MetadataPackage {
    name: String,
    version: semver::Version,
    source: Option<String>,
    manifest_path: PathBuf,
    targets: Vec<MetadataTarget>,
    /// `[package.build-sandbox]`, which Cargo shows with the flag.
    build_sandbox: Option<toml::Value>,
}

#[derive(serde::Deserialize)]
struct MetadataTarget {
    kind: Vec<String>,
}

impl Workspace {
    pub fn load(common: &Common) -> anyhow::Result<Workspace> {
        let flag = sandbox_flag(&common.unstable)?;
        let cwd = std::env::current_dir().context("failed to get the current directory")?;
        let mut metadata = cargo(["metadata", "--format-version", "1"]);
        metadata.arg(format!("-Z{flag}"));
        if let Some(path) = &common.manifest_path {
            metadata.arg("--manifest-path").arg(path);
        }
        let metadata = output(metadata, "cargo metadata")?;
        let metadata: Metadata = serde_json::from_str(&metadata)
            .context("failed to parse the output of `cargo metadata`")?;
        let consumer = consumer_config(&cwd)?;
        let selection = match flag.split_once('=') {
            None => consumer.runner,
            Some((_, runner)) => runner
                .parse::<RunnerSelection>()
                .map_err(|e| format_err!("invalid `-Z{flag}`: {e}"))?,
        };
        let mut packages = Vec::new();
        for pkg in metadata.packages {
            if !(pkg.targets.iter()).any(|t| t.kind.iter().any(|k| k == "custom-build")) {
                continue;
            }
            let root = pkg
                .manifest_path
                .parent()
                .unwrap_or(Path::new("/"))
                .to_owned();
            let mut declared = match &pkg.build_sandbox {
                None => Request::default(),
                Some(table) => Request::from_toml(table).map_err(|e| {
                    format_err!(
                        "invalid `package.build-sandbox.{}` in `{}`: {}",
                        e.dotted_path(),
                        pkg.manifest_path.display(),
                        e.message
                    )
                })?,
            };
            declared.resolve_paths(&root);
            let display = match pkg.source.as_deref() {
                None => format!("{} v{} ({})", pkg.name, pkg.version, root.display()),
                Some(source) if source.ends_with("crates.io-index") => {
                    format!("{} v{}", pkg.name, pkg.version)
                }
                Some(source) => format!("{} v{} ({source})", pkg.name, pkg.version),
            };
            packages.push(ScriptPackage {
                runner: selection.choose(declared.runner),
                name: pkg.name,
                version: pkg.version,
                display,
                root,
                declared,
            });
        }
        packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(Workspace {
            root: metadata.workspace_root,
            packages,
            consumer,
            cwd,
            target_dir: metadata.target_directory,
            flag: flag.to_owned(),
        })
    }
}

/// The `-Zsandboxed-build-scripts[=RUNNER]` among the `-Z` flags: this
/// command is as unstable as the flag.
fn sandbox_flag(unstable: &[String]) -> anyhow::Result<&str> {
    let flag = unstable
        .iter()
        .find(|flag| flag.split_once('=').map_or(flag.as_str(), |(name, _)| name) == FLAG);
    match flag {
        Some(flag) => Ok(flag),
        None => {
            bail!("the `cargo build-sandbox` command is unstable, pass `-Z{FLAG}` to enable it")
        }
    }
}

/// The Cargo that runs this subcommand, with `args`.
pub fn cargo<const N: usize>(args: [&str; N]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.args(args);
    command
}

/// The standard output of `command`, which must succeed. Cargo's own errors
/// go to standard error as it prints them.
fn output(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = (command.stderr(Stdio::inherit()).output())
        .with_context(|| format!("failed to run `{what}`"))?;
    if !output.status.success() {
        bail!("failed to run `{what}` ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{what}` printed invalid UTF-8"))
}

/// The consumer's `[build-sandbox]` table, as `cargo config get` merges it.
fn consumer_config(cwd: &Path) -> anyhow::Result<ConsumerConfig> {
    let mut command = cargo(["config", "get", "--format", "toml", "--show-origin"]);
    command.arg("-Zunstable-options");
    let text = output(command, "cargo config get")?;
    let document: toml_edit::DocumentMut =
        (text.parse()).context("failed to parse the output of `cargo config get`")?;
    let Some(table) = document.get("build-sandbox") else {
        return Ok(ConsumerConfig::default());
    };
    let value: toml::Table =
        (text.parse()).context("failed to parse the output of `cargo config get`")?;
    let base = |path: &[String]| match origin_at(table, path) {
        Some(origin) if Path::new(origin).is_absolute() => {
            let file = Path::new(origin);
            let root = file.parent().and_then(Path::parent);
            root.unwrap_or(file).to_owned()
        }
        _ => cwd.to_owned(),
    };
    ConsumerConfig::from_toml(&value["build-sandbox"], base).map_err(|e| {
        let key = ["build-sandbox".to_owned(), e.dotted_path()].join(".");
        let key = key.trim_end_matches('.');
        match origin_at(table, &e.path) {
            Some(origin) => format_err!("invalid `{key}` in {origin}: {}", e.message),
            None => format_err!("invalid `{key}`: {}", e.message),
        }
    })
}

/// The origin that `--show-origin` printed for the value at `path` below
/// `item`: a comment after the value, or after the element's comma in a list.
fn origin_at<'a>(item: &'a toml_edit::Item, path: &[String]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut parent = item;
    for key in parents {
        parent = parent.get(key.as_str())?;
    }
    let decor = match parent.as_array() {
        Some(array) => {
            let index: usize = last.parse().ok()?;
            match array.get(index + 1) {
                Some(next) => next.decor().prefix()?,
                None => array.trailing(),
            }
        }
        None => parent.get(last.as_str())?.as_value()?.decor().suffix()?,
    };
    let comment = decor.as_str()?.split_once('#')?.1;
    Some(comment.lines().next()?.trim())
}
