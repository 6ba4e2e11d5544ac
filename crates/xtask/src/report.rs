//! `cargo xtask report`: measures the compatibility corpus (`benches/corpus/corpus.toml`) under
//! each runner and writes the results into `design/rfc.md`.
//!
//! The flow:
//!
//! 1. `target/report/` gets one workspace with a member `corpus-<name>` per corpus crate, each
//!    depending on `<name> = "=<version>"` with an empty `src/lib.rs`. Its `Cargo.lock` is made
//!    once by the fork's `cargo generate-lockfile` (flag off) and made again only when the
//!    manifests change. `CARGO_HOME` is `target/report/cargo-home`, so downloads are kept
//!    between runs and nothing of the user's Cargo home is read.
//! 2. For each runner (`noop` first, then those asked for) with its own target directory
//!    `target/report/target-<runner>`, each corpus crate is checked alone:
//!    `cargo check -p corpus-<name> -Zsandboxed-build-scripts=<runner>`. The crate's own build
//!    script run is removed first, so that it runs again on every report. A crate that fails
//!    under `noop` fails without a sandbox and is skipped for the other runners.
//! 3. A crate that fails with no grant, in itself rather than in a dependency, is tried again
//!    with `[build-sandbox.allow."<name>"] presets = ["cc", "pkg-config"]` in the workspace's
//!    `.cargo/config.toml`; if that builds, each preset is removed in turn and stays removed if
//!    the build still passes with the same build-script output (a script that falls back
//!    without a program, as `libz-sys` does without `pkg-config`, builds something else), which
//!    leaves the minimal presets.
//! 4. After each successful build, the crate's own build-script runs (the `out_dir`s of its
//!    `build-script-executed` messages) are read: the `cargo:` lines of `output` and every file
//!    under `out/`, with the run directory and the target directory replaced by placeholders.
//!    They are compared with the `noop` ones.
//! 5. The results go into `target/report/results.json` and, as a table, between the markers
//!    `<!-- report:compat:begin -->` and `<!-- report:compat:end -->` of `design/rfc.md`.
//!    Each build's output is kept in `target/report/logs/<runner>/<name>.{stdout,stderr}`.
//!
//! The fork's binary is `BUILD_SANDBOX_FORK_CARGO` if set, else built by `cargo xtask build-fork`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Workspace;
use crate::fork;
use crate::util::{self, output, status, warn};

/// The presets granted on a retry, each removed in turn to find the minimal set.
const PRESETS: [&str; 2] = ["cc", "pkg-config"];
/// A build that takes longer is killed and counted as failed.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A `[[crate]]` of `corpus.toml`.
struct Crate {
    name: String,
    version: String,
}

/// One `cargo check` of a corpus crate.
struct Build {
    ok: bool,
    /// The first line of stderr that starts with `error`.
    error: Option<String>,
    /// The first line under `Caused by:` after that error.
    cause: Option<String>,
    secs: f64,
    /// The `out_dir`s of the crate's own build-script runs.
    out_dirs: Vec<PathBuf>,
}

/// What a crate needs under a runner.
enum Grants {
    /// Not run: the crate fails under `noop`.
    Skipped,
    /// Builds with no grant.
    None,
    /// Builds with these presets, each of them needed.
    Presets(Vec<String>),
    /// Fails even with every preset; the first error then.
    More(String),
    /// Fails in a dependency (named), which has its own corpus row if it has a build script.
    Dependency(String),
}

/// A crate under one runner.
struct Measure {
    runner: String,
    grants: Grants,
    /// The build with no grant; `None` when skipped.
    first: Option<Build>,
    /// Compared with `noop`: `Some(None)` identical, `Some(Some(file))` the first difference.
    same: Option<Option<String>>,
    /// The time of the build with the minimal presets.
    granted_secs: Option<f64>,
}

impl Measure {
    fn ok(&self) -> bool {
        matches!(self.grants, Grants::None | Grants::Presets(_))
    }
}

/// The `cargo:` lines and the `out/` files of one build-script run, normalized.
type Run = (Vec<String>, BTreeMap<String, Vec<u8>>);

struct Report {
    cargo: PathBuf,
    dir: PathBuf,
    /// Every package name of the lockfile, to tell a dependency's error from the crate's.
    packages: BTreeSet<String>,
}

pub fn report(ws: &Workspace, quick: bool, runners: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut order = vec!["noop".to_string()];
    for runner in runners {
        if !["noop", "native", "wasmtime"].contains(&runner.as_str()) {
            bail!("unknown runner `{runner}`, expected `noop`, `native` or `wasmtime`");
        }
        if !order.contains(runner) {
            order.push(runner.clone());
        }
    }
    let corpus = read_corpus(ws)?;
    let cargo = match std::env::var_os("BUILD_SANDBOX_FORK_CARGO") {
        Some(path) => PathBuf::from(path),
        None => fork::build(ws)?,
    };
    let dir = ws.root.join("target/report");
    let packages = write_workspace(&cargo, &dir, &corpus)?;
    let report = Report {
        cargo,
        dir,
        packages,
    };
    let selected: Vec<&Crate> = corpus
        .iter()
        .filter(|(_, quick_crate)| !quick || *quick_crate)
        .map(|(krate, _)| krate)
        .collect();

    let mut results: Vec<(&Crate, Vec<Measure>)> = Vec::new();
    for krate in &selected {
        let mut measures: Vec<Measure> = Vec::new();
        let mut noop_runs: Option<Vec<Run>> = None;
        for runner in &order {
            let noop_failed = measures.first().is_some_and(|m| !m.ok());
            if noop_failed {
                measures.push(Measure {
                    runner: runner.clone(),
                    grants: Grants::Skipped,
                    first: None,
                    same: None,
                    granted_secs: None,
                });
                continue;
            }
            let (measure, runs) = report.measure(krate, runner)?;
            let same = match (&noop_runs, &runs) {
                (Some(noop), Some(runs)) if runner != "noop" => Some(compare(noop, runs)),
                _ => None,
            };
            if runner == "noop" {
                noop_runs = runs;
            }
            measures.push(Measure { same, ..measure });
        }
        results.push((krate, measures));
    }
    let wall = started.elapsed();

    let info = Info {
        date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?
            .trim()
            .to_string(),
        machine: output(Command::new("uname").arg("-sr"))?.trim().to_string(),
        cores: output(&mut Command::new("nproc"))?.trim().to_string(),
        version: output(Command::new(&report.cargo).arg("-V"))?
            .trim()
            .to_string(),
        wall: util::elapsed(wall),
        quick,
    };
    let json = report.dir.join("results.json");
    fs::write(&json, to_json(&info, &order, &results))
        .with_context(|| format!("failed to write `{}`", json.display()))?;
    util::write_rfc_section(ws, "compat", &to_markdown(&info, &order, &results))?;
    status(
        "Finished",
        format_args!(
            "{} crates under {} in {}; wrote `design/rfc.md` and `target/report/results.json`",
            selected.len(),
            order.join(", "),
            info.wall
        ),
    );
    Ok(())
}

/// Reads `benches/corpus/corpus.toml`: each crate and whether it is in the quick subset.
fn read_corpus(ws: &Workspace) -> Result<Vec<(Crate, bool)>> {
    let path = ws.root.join("benches/corpus/corpus.toml");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("failed to parse `{}`", path.display()))?;
    let entries = table
        .get("crate")
        .and_then(|c| c.as_array())
        .with_context(|| format!("`{}` has no `[[crate]]`", path.display()))?;
    let mut corpus = Vec::new();
    for entry in entries {
        let field = |key: &str| {
            entry
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .with_context(|| format!("a `[[crate]]` of `{}` has no `{key}`", path.display()))
        };
        let krate = Crate {
            name: field("name")?,
            version: field("version")?,
        };
        let quick = entry
            .get("quick")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        corpus.push((krate, quick));
    }
    Ok(corpus)
}

/// Writes `path` unless it already holds `contents`; says whether it wrote.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    if util::read_optional(path)?.as_deref() == Some(contents.as_bytes()) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(true)
}

/// The manifest of the member `corpus-<name>`; a yanked version is required as `^version` while
/// the lockfile is made, since only a lockfile may select it.
fn member_manifest(krate: &Crate, yanked: bool) -> String {
    let op = if yanked { "^" } else { "=" };
    format!(
        "[package]\nname = \"corpus-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\n{name} = \"{op}{version}\"\n",
        name = krate.name,
        // Build metadata is ignored in requirements, with a warning.
        version = krate.version.split('+').next().unwrap_or(&krate.version),
    )
}

/// Writes the corpus workspace into `dir`, makes its lockfile if needed, and returns the
/// package names of the lockfile.
fn write_workspace(cargo: &Path, dir: &Path, corpus: &[(Crate, bool)]) -> Result<BTreeSet<String>> {
    let mut changed = false;
    let mut members = String::new();
    for (krate, _) in corpus {
        let name = &krate.name;
        writeln!(members, "    \"crates/{name}\",").unwrap();
        let member = dir.join("crates").join(name);
        changed |= write_if_changed(&member.join("Cargo.toml"), &member_manifest(krate, false))?;
        changed |= write_if_changed(&member.join("src/lib.rs"), "")?;
    }
    let root = format!(
        "# Generated by `cargo xtask report` from `benches/corpus/corpus.toml`.\n\
         [workspace]\nresolver = \"2\"\nmembers = [\n{members}]\n"
    );
    changed |= write_if_changed(&dir.join("Cargo.toml"), &root)?;
    let lockfile = dir.join("Cargo.lock");
    if changed || !lockfile.exists() {
        status("Locking", "the corpus workspace `target/report`");
        generate_lockfile(cargo, dir, corpus)?;
    }
    let text = fs::read_to_string(&lockfile)
        .with_context(|| format!("failed to read `{}`", lockfile.display()))?;
    let lock: toml::Table = toml::from_str(&text)
        .with_context(|| format!("failed to parse `{}`", lockfile.display()))?;
    Ok(lock
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("name").and_then(|n| n.as_str()))
        .map(str::to_string)
        .collect())
}

/// Runs `cargo generate-lockfile` in the corpus workspace. A pinned version that is yanked is
/// required as `^version` for it, then selected with `cargo update --precise`, and the member
/// requires `=version` again: a lockfile may keep a yanked version.
fn generate_lockfile(cargo: &Path, dir: &Path, corpus: &[(Crate, bool)]) -> Result<()> {
    let mut yanked: Vec<&Crate> = Vec::new();
    loop {
        let result = output(fork_cargo(cargo, dir).arg("generate-lockfile"));
        let Err(err) = result else { break };
        let message = format!("{err:#}");
        let found = corpus.iter().map(|(k, _)| k).find(|k| {
            message.contains(&format!("`{} = \"={}\"`", k.name, k.version))
                && message.contains(&format!("version {} is yanked", k.version))
        });
        match found {
            Some(krate) if !yanked.iter().any(|k| k.name == krate.name) => {
                warn(format_args!(
                    "`{} {}` is yanked; locking it with `cargo update --precise`",
                    krate.name, krate.version
                ));
                let manifest = dir.join("crates").join(&krate.name).join("Cargo.toml");
                write_if_changed(&manifest, &member_manifest(krate, true))?;
                yanked.push(krate);
            }
            _ => {
                return Err(err).context("failed to generate the lockfile of the corpus workspace");
            }
        }
    }
    for krate in yanked {
        output(fork_cargo(cargo, dir).args([
            "update",
            "--precise",
            &krate.version,
            "-p",
            &krate.name,
        ]))
        .with_context(|| {
            format!(
                "failed to lock the yanked `{} {}` in the corpus workspace",
                krate.name, krate.version
            )
        })?;
        let manifest = dir.join("crates").join(&krate.name).join("Cargo.toml");
        write_if_changed(&manifest, &member_manifest(krate, false))?;
    }
    Ok(())
}

/// The fork's `cargo` in the corpus workspace, with its own Cargo home.
fn fork_cargo(cargo: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .env("CARGO_HOME", dir.join("cargo-home"))
        .env_remove("__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR");
    cmd
}

impl Report {
    fn target(&self, runner: &str) -> PathBuf {
        self.dir.join(format!("target-{runner}"))
    }

    /// Measures `krate` under `runner`, finding the minimal presets if it needs some, and
    /// returns the build-script runs of its last successful build.
    fn measure(&self, krate: &Crate, runner: &str) -> Result<(Measure, Option<Vec<Run>>)> {
        let name = &krate.name;
        status(
            "Measuring",
            format_args!("{name} {} under {runner}", krate.version),
        );
        let first = self.check(krate, runner, None)?;
        let mut last_ok = first.ok.then(|| first.out_dirs.clone());
        let mut granted_secs = None;
        let grants = if first.ok {
            Grants::None
        } else if runner == "noop" {
            Grants::More(describe_error(&first))
        } else if let Some(dependency) = self.failing_dependency(krate, first.error.as_deref()) {
            Grants::Dependency(dependency)
        } else {
            let mut presets: Vec<&str> = PRESETS.to_vec();
            let all = self.check(krate, runner, Some(&presets))?;
            if all.ok {
                let all_runs = self.read_runs(runner, &all.out_dirs)?;
                last_ok = Some(all.out_dirs);
                granted_secs = Some(all.secs);
                let mut last_passed = true;
                for preset in PRESETS {
                    let fewer: Vec<&str> =
                        presets.iter().copied().filter(|p| *p != preset).collect();
                    let build = self.check(krate, runner, Some(&fewer))?;
                    last_passed = build.ok && self.read_runs(runner, &build.out_dirs)? == all_runs;
                    if last_passed {
                        presets = fewer;
                        last_ok = Some(build.out_dirs);
                        granted_secs = Some(build.secs);
                    }
                }
                // A failed check replaced the runs: build with the minimal presets again, so
                // that the runs compared are theirs.
                if !last_passed {
                    let build = self.check(krate, runner, Some(&presets))?;
                    granted_secs = Some(build.secs);
                    last_ok = build.ok.then_some(build.out_dirs);
                }
                Grants::Presets(presets.iter().map(|p| p.to_string()).collect())
            } else {
                Grants::More(describe_error(&all))
            }
        };
        let runs = match last_ok {
            Some(dirs) => Some(self.read_runs(runner, &dirs)?),
            None => None,
        };
        let measure = Measure {
            runner: runner.to_string(),
            grants,
            first: Some(first),
            same: None,
            granted_secs,
        };
        Ok((measure, runs))
    }

    /// The package that the error names, if it is a package of the lockfile other than the
    /// crate itself.
    fn failing_dependency(&self, krate: &Crate, error: Option<&str>) -> Option<String> {
        let quoted = error?.split('`').nth(1)?;
        let package = quoted.split_whitespace().next()?;
        (package != krate.name
            && package != format!("corpus-{}", krate.name)
            && self.packages.contains(package))
        .then(|| package.to_string())
    }

    /// Checks `corpus-<name>` alone under `runner`, granting `presets` if given.
    fn check(&self, krate: &Crate, runner: &str, presets: Option<&[&str]>) -> Result<Build> {
        let name = &krate.name;
        let config = self.dir.join(".cargo/config.toml");
        match presets {
            None => util::remove_dir_all(&self.dir.join(".cargo"))?,
            Some(presets) => {
                status(
                    "Retrying",
                    format_args!("{name} under {runner} with presets {presets:?}"),
                );
                let list: Vec<String> = presets.iter().map(|p| format!("\"{p}\"")).collect();
                let text = format!(
                    "[build-sandbox.allow.\"{name}\"]\npresets = [{}]\n",
                    list.join(", ")
                );
                write_if_changed(&config, &text)?;
            }
        }
        let target = self.target(runner);
        forget_runs(&target, name)?;
        let logs = self.dir.join("logs").join(runner);
        fs::create_dir_all(&logs)
            .with_context(|| format!("failed to create `{}`", logs.display()))?;
        let attempt = match presets {
            None => name.clone(),
            Some(presets) => format!("{name}+{}", presets.join("+")),
        };
        let stdout_path = logs.join(format!("{attempt}.stdout"));
        let stderr_path = logs.join(format!("{attempt}.stderr"));
        let create = |path: &Path| {
            fs::File::create(path).with_context(|| format!("failed to create `{}`", path.display()))
        };
        let started = Instant::now();
        let mut child = fork_cargo(&self.cargo, &self.dir)
            .args(["check", "--locked", "--message-format=json", "-p"])
            .arg(format!("corpus-{name}"))
            .arg(format!("-Zsandboxed-build-scripts={runner}"))
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .stdout(create(&stdout_path)?)
            .stderr(create(&stderr_path)?)
            .spawn()
            .with_context(|| format!("failed to run `{}`", self.cargo.display()))?;
        let exit = loop {
            if let Some(exit) = child.try_wait().context("failed to wait for cargo")? {
                break Some(exit);
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let secs = started.elapsed().as_secs_f64();
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        let ok = exit.is_some_and(|e| e.success());
        let error = match exit {
            None => Some(format!("timed out after {}", util::elapsed(TIMEOUT))),
            Some(_) if ok => None,
            Some(exit) => Some(
                stderr
                    .lines()
                    .find(|l| l.starts_with("error"))
                    .map_or_else(|| format!("cargo failed ({exit})"), str::to_string),
            ),
        };
        let cause = error.as_ref().and_then(|e| first_cause(&stderr, e));
        let verb = if ok { "Passed" } else { "Failed" };
        let detail = error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        status(
            verb,
            format_args!("{name} under {runner} in {secs:.1}s{detail}"),
        );
        Ok(Build {
            ok,
            error,
            cause,
            secs,
            out_dirs: own_out_dirs(&stdout, name),
        })
    }

    /// Reads the build-script runs whose `out_dir`s are `dirs`, with the run directory and
    /// the target directory replaced by placeholders.
    fn read_runs(&self, runner: &str, dirs: &[PathBuf]) -> Result<Vec<Run>> {
        let target = self.target(runner);
        let target = target.to_string_lossy().into_owned();
        let mut runs = Vec::new();
        for out_dir in dirs {
            let run_dir = out_dir.parent().unwrap_or(out_dir);
            let run_dir_text = run_dir.to_string_lossy().into_owned();
            let normalize = |bytes: &[u8]| -> Vec<u8> {
                let bytes = replace(bytes, run_dir_text.as_bytes(), b"$RUN_DIR");
                replace(&bytes, target.as_bytes(), b"$TARGET_DIR")
            };
            let output = util::read_optional(&run_dir.join("output"))?.unwrap_or_default();
            let output = normalize(&output);
            let lines = String::from_utf8_lossy(&output)
                .lines()
                .filter(|l| l.starts_with("cargo:"))
                .map(str::to_string)
                .collect();
            let mut files = BTreeMap::new();
            read_tree(out_dir, out_dir, &mut files)?;
            for bytes in files.values_mut() {
                *bytes = normalize(bytes);
            }
            runs.push((lines, files));
        }
        Ok(runs)
    }
}

/// The first line under `Caused by:` after `error` in `stderr`; for a build script that failed,
/// what its own stderr says instead: the message of a panic, else its first line that mentions
/// an error, else its last line.
fn first_cause(stderr: &str, error: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| *l != error);
    lines.find(|l| l.trim() == "Caused by:")?;
    let cause = lines.by_ref().map(str::trim).find(|l| !l.is_empty())?;
    if !cause.starts_with("process didn't exit successfully") {
        return Some(cause.to_string());
    }
    let script: Vec<&str> = lines
        .skip_while(|l| l.trim() != "--- stderr")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("  "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let panic = script
        .iter()
        .position(|l| l.contains("panicked at"))
        .and_then(|i| script.get(i + 1));
    panic
        .or_else(|| script.iter().find(|l| l.to_lowercase().contains("error")))
        .or(script.last())
        .map_or(Some(cause.to_string()), |l| Some(l.to_string()))
}

/// The error of a failed build and its first cause.
fn describe_error(build: &Build) -> String {
    let error = build.error.as_deref().unwrap_or("no error message");
    match &build.cause {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// Removes the crate's build-script runs and their fingerprints from `target`, so that the
/// next build runs its build script again.
fn forget_runs(target: &Path, name: &str) -> Result<()> {
    let build = target.join("debug/build");
    let Ok(entries) = fs::read_dir(&build) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(hash) = file_name
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            continue;
        };
        if !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let dir = entry.path();
        if dir.join("out").is_dir() || dir.join("output").exists() {
            util::remove_dir_all(&dir)?;
            util::remove_dir_all(&target.join("debug/.fingerprint").join(&file_name))?;
        }
    }
    Ok(())
}

/// The `out_dir`s of the `build-script-executed` messages of package `name` in Cargo's JSON
/// messages.
fn own_out_dirs(stdout: &str, name: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"build-script-executed\""))
        .filter(|l| {
            json_string(l, "package_id").is_some_and(|id| {
                // `registry+https://...#name@version`, or `name version (source)` before 1.77.
                let tail = id.rsplit('#').next().unwrap_or(&id);
                tail.split(['@', ' ']).next() == Some(name)
            })
        })
        .filter_map(|l| json_string(l, "out_dir"))
        .map(PathBuf::from)
        .collect()
}

/// The string value of `"key":"..."` in a line of JSON (no escapes other than `\\` and `\"`).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// Every file under `dir`, by path relative to `root`.
fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        if kind.is_dir() {
            read_tree(root, &path, files)?;
        } else {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let bytes = if kind.is_symlink() {
                fs::read_link(&path)
                    .map(|l| l.to_string_lossy().into_owned().into_bytes())
                    .unwrap_or_default()
            } else {
                fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?
            };
            files.insert(format!("out/{}", relative.to_string_lossy()), bytes);
        }
    }
    Ok(())
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut result = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            result.extend_from_slice(to);
            i += from.len();
        } else {
            result.push(haystack[i]);
            i += 1;
        }
    }
    result
}

/// `None` if the runs are the same, else the first file that differs.
fn compare(noop: &[Run], other: &[Run]) -> Option<String> {
    if noop.len() != other.len() {
        return Some(format!(
            "{} build-script runs instead of {}",
            other.len(),
            noop.len()
        ));
    }
    for ((noop_lines, noop_files), (lines, files)) in noop.iter().zip(other) {
        if noop_lines != lines {
            let differs = noop_lines
                .iter()
                .zip(lines)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("`{b}` instead of `{a}`"))
                .or_else(|| noop_lines.get(lines.len()).map(|a| format!("no `{a}`")))
                .or_else(|| lines.get(noop_lines.len()).map(|b| format!("`{b}` added")))
                .unwrap_or_default();
            return Some(format!("output: {differs}"));
        }
        let names: BTreeSet<&String> = noop_files.keys().chain(files.keys()).collect();
        for name in names {
            if noop_files.get(name) != files.get(name) {
                return Some(name.clone());
            }
        }
    }
    None
}

struct Info {
    date: String,
    machine: String,
    cores: String,
    version: String,
    wall: String,
    quick: bool,
}

/// A table cell: one line, no `|`, at most 160 characters.
fn cell(text: &str) -> String {
    let text = text.replace('|', "\\|");
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(159).collect::<String>())
    } else {
        text
    }
}

fn code(text: &str) -> String {
    format!("`{}`", cell(text).replace('`', "'"))
}

fn percent(count: usize, total: usize) -> String {
    if total == 0 {
        return "0 of 0".to_string();
    }
    format!(
        "{count} of {total} ({:.0}%)",
        count as f64 * 100.0 / total as f64
    )
}

fn to_markdown(info: &Info, order: &[String], results: &[(&Crate, Vec<Measure>)]) -> String {
    let mut md = String::new();
    let subset = if info.quick {
        "the quick subset of "
    } else {
        ""
    };
    writeln!(
        md,
        "Measured by `cargo xtask report` on {subset}`benches/corpus/corpus.toml` ({} crates): \
         each crate checked alone (`cargo check -p`) under each runner, with no grant, then \
         with the minimal presets found by removing them one at a time from \
         `[\"cc\", \"pkg-config\"]`. \"Same as noop\" compares the `cargo:` lines of the \
         crate's build-script `output` and every file of its `out/`, with the run and target \
         directories replaced by placeholders.\n",
        results.len()
    )
    .unwrap();
    md.push_str("| crate | version | noop |");
    for runner in &order[1..] {
        write!(md, " {runner} | grants | same as noop |").unwrap();
    }
    md.push_str("\n| --- | --- | --- |");
    for _ in &order[1..] {
        md.push_str(" --- | --- | --- |");
    }
    md.push('\n');
    for (krate, measures) in results {
        write!(md, "| `{}` | {} |", krate.name, krate.version).unwrap();
        for (i, measure) in measures.iter().enumerate() {
            let build = measure.first.as_ref();
            let status = match (&measure.grants, build) {
                (Grants::Skipped, _) | (_, None) => "—".to_string(),
                (_, Some(b)) if b.ok => format!("ok {:.1}s", b.secs),
                (Grants::Presets(_), Some(b)) => format!(
                    "fails with no grant, ok {:.1}s with grants: {}",
                    measure.granted_secs.unwrap_or(0.0),
                    code(&describe_error(b))
                ),
                (_, Some(b)) if i == 0 => {
                    format!("fails without a sandbox: {}", code(&describe_error(b)))
                }
                (_, Some(b)) => format!("fails: {}", code(&describe_error(b))),
            };
            write!(md, " {status} |").unwrap();
            if i == 0 {
                continue;
            }
            let grants = match &measure.grants {
                Grants::Skipped => "—".to_string(),
                Grants::None => "none".to_string(),
                Grants::Presets(presets) => {
                    let list: Vec<String> = presets.iter().map(|p| format!("`{p}`")).collect();
                    if list.is_empty() {
                        "an empty grant table".to_string()
                    } else {
                        format!("presets {}", list.join(", "))
                    }
                }
                Grants::More(error) => format!("needs more: {}", code(error)),
                Grants::Dependency(package) => format!("a dependency failed (`{package}`)"),
            };
            let same = match &measure.same {
                None => "—".to_string(),
                Some(None) => "yes".to_string(),
                Some(Some(file)) => format!("no: {}", cell(file)),
            };
            write!(md, " {grants} | {same} |").unwrap();
        }
        md.push('\n');
    }
    md.push('\n');
    let baseline: Vec<&Vec<Measure>> = results
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m[0].ok())
        .collect();
    writeln!(
        md,
        "- `noop`: {} build without a sandbox.",
        percent(baseline.len(), results.len())
    )
    .unwrap();
    for (i, runner) in order.iter().enumerate().skip(1) {
        let count = |f: &dyn Fn(&Measure) -> bool| baseline.iter().filter(|m| f(&m[i])).count();
        let total = baseline.len();
        let none = count(&|m| matches!(m.grants, Grants::None));
        let presets = count(&|m| matches!(m.grants, Grants::Presets(_)));
        let built = none + presets;
        let dependency = count(&|m| matches!(m.grants, Grants::Dependency(_)));
        let same = count(&|m| matches!(m.same, Some(None)));
        writeln!(
            md,
            "- `{runner}`, of the {total} that build without a sandbox: {} with no grant, {} \
             with presets only, {} need more, {} fail in a dependency; of the {built} that \
             build, {} give the same output as `noop`.",
            percent(none, total),
            percent(presets, total),
            percent(total - built - dependency, total),
            percent(dependency, total),
            percent(same, built)
        )
        .unwrap();
    }
    writeln!(
        md,
        "\nRun on {} on {} ({} cores) with `{}`; the whole run took {}.",
        info.date, info.machine, info.cores, info.version, info.wall
    )
    .unwrap();
    md
}

fn json_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(text: Option<&str>) -> String {
    text.map_or_else(|| "null".to_string(), json_str)
}

fn to_json(info: &Info, order: &[String], results: &[(&Crate, Vec<Measure>)]) -> String {
    let runners: Vec<String> = order.iter().map(|r| json_str(r)).collect();
    let mut json = format!(
        "{{\n  \"date\": {},\n  \"machine\": {},\n  \"cores\": {},\n  \"cargo\": {},\n  \
         \"wall\": {},\n  \"quick\": {},\n  \"runners\": [{}],\n  \"crates\": [",
        json_str(&info.date),
        json_str(&info.machine),
        json_str(&info.cores),
        json_str(&info.version),
        json_str(&info.wall),
        info.quick,
        runners.join(", ")
    );
    for (n, (krate, measures)) in results.iter().enumerate() {
        let sep = if n == 0 { "" } else { "," };
        write!(
            json,
            "{sep}\n    {{\"name\": {}, \"version\": {}, \"runs\": [",
            json_str(&krate.name),
            json_str(&krate.version)
        )
        .unwrap();
        for (i, m) in measures.iter().enumerate() {
            let (kind, presets, detail) = match &m.grants {
                Grants::Skipped => ("skipped", Vec::new(), None),
                Grants::None => ("none", Vec::new(), None),
                Grants::Presets(p) => ("presets", p.clone(), None),
                Grants::More(e) => ("more", Vec::new(), Some(e.as_str())),
                Grants::Dependency(d) => ("dependency", Vec::new(), Some(d.as_str())),
            };
            let presets: Vec<String> = presets.iter().map(|p| json_str(p)).collect();
            let (same, first_difference) = match &m.same {
                None => ("null", None),
                Some(None) => ("true", None),
                Some(Some(file)) => ("false", Some(file.as_str())),
            };
            let sep = if i == 0 { "" } else { "," };
            write!(
                json,
                "{sep}\n      {{\"runner\": {}, \"ok\": {}, \"ok_without_grant\": {}, \
                 \"secs\": {}, \"granted_secs\": {}, \"error\": {}, \"cause\": {}, \"grants\": {}, \"presets\": [{}], \
                 \"grants_detail\": {}, \"same_as_noop\": {same}, \"first_difference\": {}}}",
                json_str(&m.runner),
                m.ok(),
                m.first.as_ref().is_some_and(|b| b.ok),
                m.first
                    .as_ref()
                    .map_or_else(|| "null".to_string(), |b| format!("{:.2}", b.secs)),
                m.granted_secs
                    .map_or_else(|| "null".to_string(), |s| format!("{s:.2}")),
                json_opt(m.first.as_ref().and_then(|b| b.error.as_deref())),
                json_opt(m.first.as_ref().and_then(|b| b.cause.as_deref())),
                json_str(kind),
                presets.join(", "),
                json_opt(detail),
                json_opt(first_difference),
            )
            .unwrap();
        }
        json.push_str("\n    ]}");
    }
    json.push_str("\n  ]\n}\n");
    json
}
