//! `cargo xtask learn-check`: `cargo build-sandbox learn` on the crates of the real-crates
//! tests, measured against one normal build, and each learned grant checked to be needed.
//!
//! The flow, in `target/learn-check/` (downloads kept in its own `cargo-home`):
//!
//! 1. A project depending on every crate of `tests/testsuite/real_crates.rs` is built with
//!    `-Zsandboxed-build-scripts=noop` into `target-noop`: the normal build, timed, and the
//!    build-script outputs every sandboxed build is compared with.
//! 2. `cargo build-sandbox learn --runner <runner>` writes `.cargo/config.toml`, timed.
//! 3. A sandboxed build with exactly those grants, into `target-<runner>`, must pass with every
//!    build script's directives and `OUT_DIR` files identical to `noop`'s.
//! 4. Each learned grant (one entry of one key of one package) is removed in turn, and the
//!    project built again from an empty target directory: the build must then either fail
//!    with a `help:` whose grant holds that entry, or pass with a warning naming it (a script
//!    that falls back, whose output then differs from `noop`'s); a build that passes with
//!    identical outputs means the grant was not needed, and fails the check.
//!
//! Prints a line per grant and the timings; `design/benchmarks.md` records a run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::Workspace;
use crate::fork;
use crate::util::{self, elapsed, status};

/// The dependencies of `tests/testsuite/real_crates.rs`, as its projects pin them.
const CRATES: &str = r#"
anyhow = "=1.0.102"
crossbeam-utils = "=0.8.21"
libc = "=0.2.186"
libz-sys = "=1.1.28"
num-traits = "=0.2.19"
openssl-sys = "=0.9.114"
proc-macro2 = "=1.0.106"
ring = "=0.17.14"
serde = { version = "=1.0.228", features = ["derive"] }
thiserror = "=2.0.18"
typenum = "=1.20.1"
"#;

pub fn learn_check(ws: &Workspace, runner: &str) -> Result<()> {
    let cargo = fork::build(ws)?;
    let dir = ws.root.join("target/learn-check");
    let project = dir.join("project");
    fs::create_dir_all(project.join("src")).context("failed to create the project")?;
    fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"learn-check\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]{CRATES}"
        ),
    )
    .context("failed to write the project's manifest")?;
    fs::write(project.join("src/lib.rs"), "").context("failed to write `src/lib.rs`")?;
    let config = project.join(".cargo/config.toml");
    let _ = fs::remove_file(&config);
    // `cargo build-sandbox` is found in the Cargo home's `bin`, as `install` puts it.
    let home = dir.join("cargo-home");
    fs::create_dir_all(home.join("bin")).context("failed to create the Cargo home")?;
    util::copy_binary(
        &cargo.with_file_name("cargo-build-sandbox"),
        &home.join("bin"),
        "cargo-build-sandbox",
    )?;
    let command = |args: &[&str]| {
        let mut command = Command::new(&cargo);
        command
            .current_dir(&project)
            .args(args)
            .env("CARGO_HOME", &home)
            .env_remove("CARGO_TARGET_DIR");
        command
    };

    util::output(&mut command(&["fetch"]))?;
    let noop_target = dir.join("target-noop");
    util::remove_dir_all(&noop_target)?;
    let started = Instant::now();
    util::output(
        command(&["build", "-Zsandboxed-build-scripts=noop"])
            .arg("--target-dir")
            .arg(&noop_target),
    )?;
    let normal = started.elapsed();
    status(
        "Built",
        format!("the project with `noop` in {}", elapsed(normal)),
    );

    let learn_target = project.join("target");
    util::remove_dir_all(&learn_target)?;
    let started = Instant::now();
    let learn = command(&[
        "build-sandbox",
        "learn",
        "--runner",
        runner,
        "-Zsandboxed-build-scripts",
    ])
    .output()
    .context("failed to run `cargo build-sandbox learn`")?;
    let learning = started.elapsed();
    if !learn.status.success() {
        bail!(
            "`cargo build-sandbox learn` failed:\n{}",
            String::from_utf8_lossy(&learn.stderr)
        );
    }
    status(
        "Learned",
        format!(
            "in {} ({:.1}× the normal build)",
            elapsed(learning),
            learning.as_secs_f64() / normal.as_secs_f64()
        ),
    );
    let learned = fs::read_to_string(&config).context("`learn` wrote no configuration")?;
    eprint!("{learned}");

    let target = dir.join(format!("target-{runner}"));
    util::remove_dir_all(&target)?;
    let sandboxed = |target: &Path| -> Result<std::process::Output> {
        command(&["build", &format!("-Zsandboxed-build-scripts={runner}")])
            .arg("--target-dir")
            .arg(target)
            .output()
            .context("failed to run `cargo build`")
    };
    let output = sandboxed(&target)?;
    if !output.status.success() {
        bail!(
            "the build with the learned grants failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let noop = script_outputs(&noop_target)?;
    if let Some(difference) = difference(&noop, &script_outputs(&target)?) {
        bail!("with the learned grants, {difference} differs from `noop`");
    }
    status(
        "Checked",
        format!(
            "{} build-script outputs are identical to `noop`'s",
            noop.len()
        ),
    );

    let document: toml_edit::DocumentMut = learned.parse().context("failed to parse the grants")?;
    let mut problems = Vec::new();
    for (package, entry) in grant_entries(&document) {
        let (key, item) = &entry;
        let mut without = document.clone();
        let grant = &mut without["build-sandbox"]["allow"][package.as_str()];
        match grant[key.as_str()].as_array_mut() {
            Some(array) => array.retain(|value| value.as_str() != Some(item.as_str())),
            None => {
                grant.as_table_like_mut().map(|t| t.remove(key));
            }
        }
        fs::write(&config, without.to_string()).context("failed to write the configuration")?;
        // From an empty target directory: a script that falls back must not find what an
        // earlier run with the grant left in its `OUT_DIR`.
        util::remove_dir_all(&target)?;
        let output = sandboxed(&target)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let wanted =
            match document["build-sandbox"]["allow"][package.as_str()][key.as_str()].as_array() {
                Some(_) => format!("`{key} = [{item:?}]`"),
                None => format!("`{key} = {item}`"),
            };
        let verdict = if output.status.success() {
            let warned = stderr.contains(&format!("the sandbox refused what {wanted} grants"));
            match (difference(&noop, &script_outputs(&target)?), warned) {
                (Some(difference), true) => {
                    format!("passes with a warning naming it, and {difference} differs from `noop`")
                }
                (Some(difference), false) => {
                    problems.push(format!(
                        "{package}: without {wanted} the build passes with no warning naming it"
                    ));
                    format!(
                        "passes with no warning naming it, and {difference} differs from `noop`"
                    )
                }
                (None, _) => {
                    problems.push(format!("{package}: {wanted} is not needed"));
                    "passes as with it: not needed".to_owned()
                }
            }
        } else if names_in_help(&stderr, key, item) {
            "fails with a `help:` naming it".to_owned()
        } else {
            problems.push(format!(
                "{package}: without {wanted} the build fails with no `help:` naming it"
            ));
            "fails without a `help:` naming it".to_owned()
        };
        status(
            "Removed",
            format!("{wanted} from `{package}`: the build {verdict}"),
        );
    }
    fs::write(&config, &learned).context("failed to write the configuration")?;
    if !problems.is_empty() {
        bail!(
            "the learned grants are not minimal and named:\n{}",
            problems.join("\n")
        );
    }
    Ok(())
}

/// Whether a `help:` line of `stderr` suggests a grant that holds `key`'s `item`: the help
/// names everything the run was refused, which can be more than the removed item (libz-sys
/// without `cc` was also refused `pkg-config`, which it did without).
fn names_in_help(stderr: &str, key: &str, item: &str) -> bool {
    let denied = stderr.lines().filter_map(|line| {
        let described = line.strip_prefix("help: the sandbox may have denied ")?;
        Some(described.split_once("; if").map_or(described, |(d, _)| d))
    });
    // Each backticked `key = value` of the described grant.
    denied
        .flat_map(|described| described.split('`').skip(1).step_by(2))
        .any(|grant| match grant.strip_prefix(&format!("{key} = [")) {
            Some(items) => items.contains(&format!("{item:?}")),
            None => grant == format!("{key} = {item}"),
        })
}

/// Every `(package, (key, entry))` of the learned grants: one per list entry, and one per other
/// key, with its value as written.
fn grant_entries(document: &toml_edit::DocumentMut) -> Vec<(String, (String, String))> {
    let mut entries = Vec::new();
    let Some(allow) = document.get("build-sandbox").and_then(|t| t.get("allow")) else {
        return entries;
    };
    let Some(allow) = allow.as_table_like() else {
        return entries;
    };
    for (package, grant) in allow.iter() {
        let Some(grant) = grant.as_table_like() else {
            continue;
        };
        for (key, value) in grant.iter() {
            match value.as_array() {
                Some(array) => {
                    for item in array.iter().filter_map(|v| v.as_str()) {
                        entries.push((package.to_owned(), (key.to_owned(), item.to_owned())));
                    }
                }
                None => {
                    let value = value.as_value().map(|v| v.to_string()).unwrap_or_default();
                    entries.push((
                        package.to_owned(),
                        (key.to_owned(), value.trim().to_owned()),
                    ));
                }
            }
        }
    }
    entries
}

/// Every build script run under `target`: `output`'s `cargo:` lines and the files under `out/`,
/// keyed by package and file, with `target` replaced by a placeholder.
fn script_outputs(target: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut outputs = BTreeMap::new();
    let build = target.join("debug/build");
    let entries =
        fs::read_dir(&build).with_context(|| format!("failed to read `{}`", build.display()))?;
    for run in entries.flatten().map(|e| e.path()) {
        let Ok(output) = fs::read_to_string(run.join("output")) else {
            continue;
        };
        // By package: a run directory's hash may differ between runners.
        let dir = run
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = dir
            .rsplit_once('-')
            .map_or(dir.as_str(), |(package, _)| package)
            .to_owned();
        let directives: String = (output.lines())
            .filter(|line| line.starts_with("cargo:"))
            .map(|line| format!("{line}\n"))
            .collect();
        let placeholder = |text: &[u8]| -> Vec<u8> {
            let from = target.to_string_lossy();
            String::from_utf8_lossy(text)
                .replace(from.as_ref(), "[TARGET]")
                .into_bytes()
        };
        outputs.insert(format!("{name}/output"), placeholder(directives.as_bytes()));
        let mut pending: Vec<PathBuf> = vec![run.join("out")];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&run).unwrap_or(&path);
                    let bytes = fs::read(&path).unwrap_or_default();
                    outputs.insert(
                        format!("{name}/{}", relative.display()),
                        placeholder(&bytes),
                    );
                }
            }
        }
    }
    Ok(outputs)
}

/// The first build-script file that differs, if any.
fn difference(
    noop: &BTreeMap<String, Vec<u8>>,
    other: &BTreeMap<String, Vec<u8>>,
) -> Option<String> {
    let names: std::collections::BTreeSet<&String> = noop.keys().chain(other.keys()).collect();
    names
        .into_iter()
        .find(|name| noop.get(*name) != other.get(*name))
        .map(|name| format!("`{name}`"))
}
