//! `cargo build-sandbox learn`: the grants a workspace's build scripts need,
//! found by building it sandboxed.
//!
//! Every build script runs sandboxed throughout: it never gets more than the
//! grants learned from what its runner refused it before, so `learn` runs
//! nothing with more than the user's own rights, and a script cannot talk it
//! into a grant through its output (the grants come from the
//! [`DenialRecord`]s Cargo stores after each sandboxed run, see
//! `design/decisions.md`).
//!
//! 1. A package that declares what the consumer has not approved stops the
//!    build before any script runs, so `learn` stops first and points at
//!    `approve`: it learns what scripts use, it does not approve requests.
//! 2. Rounds. Each builds the workspace in its own target directory with
//!    `--keep-going` and the grants learned so far (a configuration file
//!    passed with `--config`), then reads the records of the scripts that
//!    ran and adds each record's grant. A script refused something, even one
//!    that fell back and succeeded, therefore runs again with the grant in
//!    the next round, from an empty `OUT_DIR` as in a fresh build. Learning
//!    ends when a round passes and adds nothing; it fails when a round fails
//!    and adds nothing, naming each failed script and what it was refused.
//! 3. Pruning: a script refused something may do as well without it (a probe
//!    that falls back to the same answer), so each learned item is removed in
//!    turn, for every package at once, in a fresh build; it stays removed where
//!    the package's build-script outputs equal the last round's (`prune`).
//! 4. Verification: a fresh build with exactly the learned grants must pass,
//!    and every build script's directives and the files in its `OUT_DIR`
//!    (target directories replaced) must equal the last round's.
//! 5. The grants go into the workspace's `.cargo/config.toml` under
//!    `name@version` keys, as `approve` writes them; `--dry-run` prints them.
//!
//! The builds' own output goes to files under
//! `<target-dir>/build-sandbox-learn/`, named in errors.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use build_sandbox::{Denial, DenialRecord, Request};

use crate::commands::{GRANTS_TABLE, add_to_config, config_path, status};
use crate::workspace::{Workspace, cargo};
use crate::{Common, LearnRunner};

/// Rounds after which learning gives up: each round adds a grant to at
/// least one script, and a script rarely needs more than two.
const MAX_ROUNDS: usize = 8;

pub fn learn(
    ws: &Workspace,
    common: &Common,
    runner: Option<LearnRunner>,
    dry_run: bool,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let unapproved: Vec<String> = (ws.packages.iter())
        .filter(|pkg| {
            let approval = ws.consumer.approval(&pkg.name, &pkg.version);
            !approval.unapproved(&pkg.declared, &pkg.root).is_empty()
        })
        .map(|pkg| format!("`{}`", pkg.display))
        .collect();
    if !unapproved.is_empty() {
        let (packages, declare) = match unapproved.len() {
            1 => ("package", "declares"),
            _ => ("packages", "declare"),
        };
        bail!(
            "{packages} {} {declare} capabilities that are not approved\n\
             help: review them with `cargo build-sandbox report -Zsandboxed-build-scripts`, \
             approve them with `cargo build-sandbox approve`, then learn again",
            unapproved.join(", ")
        );
    }
    let flag = match runner {
        Some(runner) => format!("-Zsandboxed-build-scripts={}", runner.name()),
        None if ws.flag.ends_with("=noop") => bail!(
            "the `noop` runner refuses nothing, so there is nothing to learn from it\n\
             help: pass `--runner native` or `--runner wasmtime`"
        ),
        None => format!("-Z{}", ws.flag),
    };
    let dir = ws.target_dir.join("build-sandbox-learn");
    fs::create_dir_all(&dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    let build = Build {
        common,
        flag,
        grants_file: dir.join("grants.toml"),
    };

    let target = dir.join("rounds");
    let mut learned: BTreeMap<String, Request> = BTreeMap::new();
    let mut round = 0;
    loop {
        round += 1;
        if round > MAX_ROUNDS {
            bail!("failed to learn the grants of this workspace in {MAX_ROUNDS} rounds");
        }
        status(
            "Learning",
            &format!("round {round}: building with {}", grants(learned.len())),
        );
        for path in records(&target) {
            fs::remove_file(&path)
                .with_context(|| format!("failed to remove `{}`", path.display()))?;
        }
        let log = dir.join(format!("round-{round}.log"));
        let passed = build.run(&learned, &target, &log)?;
        let mut added = false;
        let mut failures = Vec::new();
        for path in records(&target) {
            let Some(record) = DenialRecord::load(&path)? else {
                continue;
            };
            let key = format!("{}@{}", record.package, record.version);
            let mut grows = false;
            if let Some(grant) = &record.grant {
                let entry = learned.entry(key.clone()).or_default();
                let before = entry.clone();
                entry.merge(grant);
                grows = *entry != before;
            }
            added |= grows;
            if grows {
                // The script runs again with the grant: from an empty
                // `OUT_DIR`, as in a fresh build, not over what it left there
                // when it was refused.
                let out_dir = path.with_file_name("out");
                if let Err(e) = fs::remove_dir_all(&out_dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(e)
                        .with_context(|| format!("failed to remove `{}`", out_dir.display()));
                }
            }
            if record.failed && !grows {
                failures.push((key, record.denials));
            }
        }
        match (passed, added) {
            (true, false) => break,
            (false, false) => {
                let mut message = format!(
                    "failed to learn the grants of this workspace: round {round} of the build \
                     failed and showed nothing more to grant"
                );
                for (key, denials) in &failures {
                    message.push_str(&failure_note(
                        key,
                        denials,
                        " although everything its sandbox recorded it refused is granted",
                    ));
                }
                bail!(
                    "{message}\nnote: the build's output is in `{}`\n\
                     help: a script can also fail for what the sandbox cannot record, such as \
                     an environment variable it did not get (`env`) or a limit",
                    log.display()
                );
            }
            _ => {}
        }
    }

    for (key, item) in prune(&build, &dir, &target, &mut learned)? {
        status(
            "Pruned",
            &format!(
                "{} from `{key}`: its build script was refused it and did as well without it",
                build_sandbox::describe_grant(&item)
            ),
        );
    }

    status("Verifying", "a fresh build with exactly the learned grants");
    let verify = dir.join("verify");
    if verify.exists() {
        fs::remove_dir_all(&verify)
            .with_context(|| format!("failed to remove `{}`", verify.display()))?;
    }
    let log = dir.join("verify.log");
    if !build.run(&learned, &verify, &log)? {
        // What the failed scripts were refused this time: a script that does
        // something else on a second run (it found what its first run left
        // behind) needs more than the rounds showed.
        let mut message = String::from("the build failed with exactly the learned grants");
        for path in records(&verify) {
            let Some(record) = DenialRecord::load(&path)? else {
                continue;
            };
            if record.failed {
                let key = format!("{}@{}", record.package, record.version);
                message.push_str(&failure_note(
                    &key,
                    &record.denials,
                    ", and its sandbox refused",
                ));
            }
        }
        bail!(
            "{message}\nnote: the build's output is in `{}`",
            log.display()
        );
    }
    if let Some(difference) = compare_outputs(&target, &verify)? {
        bail!(
            "a build script's output changed between the learning build and the verification \
             build: {difference}\n\
             note: a script whose output differs from run to run cannot be checked this way"
        );
    }

    let entries: Vec<(String, Request)> = learned.into_iter().collect();
    let scripts = ws.packages.len();
    let summary = format!(
        "grants for {} of {scripts} {} in {round} rounds and {:.1}s",
        entries.len(),
        if scripts == 1 {
            "package with a build script"
        } else {
            "packages with build scripts"
        },
        started.elapsed().as_secs_f64()
    );
    if dry_run {
        status("Learned", &summary);
        return Ok(build_sandbox::grant_snippet(&GRANTS_TABLE, &entries));
    }
    let config_path = config_path(ws);
    for (key, grant) in &entries {
        add_to_config(&config_path, key, grant)?;
        let (grant, path) = (build_sandbox::describe_grant(grant), config_path.display());
        status("Granted", &format!("{grant} to `{key}` in `{path}`"));
    }
    status("Learned", &summary);
    Ok(String::new())
}

/// Removes from `learned` what no script needs: a script refused a probe may
/// do as well without it (`pkg-config` finding nothing a directory search
/// would not). Trial `i` removes the `i`-th item of every package's grant at
/// once and builds from an empty target directory; an item stays removed
/// where the build passes and the package's build-script outputs equal the
/// last round's. A dependency's changed output can keep an item of a
/// dependent that it does not need: pruning errs towards granting. Returns
/// what it removed.
fn prune(
    build: &Build<'_>,
    dir: &Path,
    rounds: &Path,
    learned: &mut BTreeMap<String, Request>,
) -> anyhow::Result<Vec<(String, Request)>> {
    let items: BTreeMap<String, Vec<Request>> = (learned.iter())
        .map(|(key, grant)| (key.clone(), grant.items()))
        .collect();
    let trials = items.values().map(Vec::len).max().unwrap_or(0);
    let mut pruned = Vec::new();
    for trial in 0..trials {
        status(
            "Pruning",
            &format!(
                "trial {} of {trials}: building without one item of each grant",
                trial + 1
            ),
        );
        let mut without = learned.clone();
        let mut tried = Vec::new();
        for (key, items) in &items {
            let Some(item) = items.get(trial) else {
                continue;
            };
            // The items earlier trials kept, without this one.
            let grant = (learned[key].items().iter())
                .filter(|other| *other != item)
                .fold(Request::default(), |mut grant, other| {
                    grant.merge(other);
                    grant
                });
            without.insert(key.clone(), grant);
            tried.push((key.clone(), item.clone()));
        }
        let target = dir.join("prune");
        if target.exists() {
            fs::remove_dir_all(&target)
                .with_context(|| format!("failed to remove `{}`", target.display()))?;
        }
        let log = dir.join(format!("prune-{}.log", trial + 1));
        build.run(&without, &target, &log)?;
        let differing = differing_packages(rounds, &target)?;
        for (key, item) in tried {
            let name = key.rsplit_once('@').map_or(key.as_str(), |(name, _)| name);
            if differing.contains(name) {
                continue;
            }
            learned.insert(key.clone(), without[&key].clone());
            pruned.push((key, item));
        }
    }
    learned.retain(|_, grant| !grant.is_empty());
    Ok(pruned)
}

/// The names of the packages whose build-script outputs differ between the
/// target directories, or whose scripts did not run in `fresh` (a failed
/// build). By run directory name, `<package>-<hash>`: two versions of one
/// package count as one.
fn differing_packages(learned: &Path, fresh: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut differing = BTreeSet::new();
    for run in run_dirs(learned) {
        let relative = run.strip_prefix(learned).unwrap_or(&run);
        let after = fresh.join(relative);
        let same =
            after.join("output").is_file() && read_run(&run, learned)? == read_run(&after, fresh)?;
        if !same {
            let dir = relative.file_name().unwrap_or_default().to_string_lossy();
            let name = dir.rsplit_once('-').map_or(&*dir, |(name, _)| name);
            differing.insert(name.to_owned());
        }
    }
    Ok(differing)
}

/// The `note:` line for the failed build script of `key`: `failed{why}: ` and
/// what its sandbox recorded it refused, or that it recorded nothing.
fn failure_note(key: &str, denials: &[Denial], why: &str) -> String {
    if denials.is_empty() {
        return format!(
            "\nnote: the build script of `{key}` failed, and its sandbox recorded nothing it \
             refused"
        );
    }
    let denials: Vec<String> = denials.iter().map(|d| d.to_string()).collect();
    format!(
        "\nnote: the build script of `{key}` failed{why}: {}",
        denials.join(", ")
    )
}

/// `no grants`, `grants for 1 package`, `grants for 3 packages`.
fn grants(packages: usize) -> String {
    match packages {
        0 => "no grants".to_owned(),
        1 => "grants for 1 package".to_owned(),
        n => format!("grants for {n} packages"),
    }
}

/// How every round builds the workspace.
struct Build<'a> {
    common: &'a Common,
    /// `-Zsandboxed-build-scripts[=RUNNER]`.
    flag: String,
    /// The configuration file holding the learned grants.
    grants_file: PathBuf,
}

impl Build<'_> {
    /// Builds the workspace into `target` with `learned`, Cargo's output
    /// going to `log`; whether the build passed.
    fn run(
        &self,
        learned: &BTreeMap<String, Request>,
        target: &Path,
        log: &Path,
    ) -> anyhow::Result<bool> {
        let entries: Vec<(String, Request)> = learned
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let grants = build_sandbox::grant_snippet(&GRANTS_TABLE, &entries);
        fs::write(&self.grants_file, grants)
            .with_context(|| format!("failed to write `{}`", self.grants_file.display()))?;
        let output = fs::File::create(log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let mut command = cargo(["build", "--keep-going"]);
        command
            .arg(&self.flag)
            .args(self.common.unstable.iter().filter(|f| !is_sandbox_flag(f)))
            .arg("--config")
            .arg(&self.grants_file)
            .arg("--target-dir")
            .arg(target)
            .stdout(Stdio::null())
            .stderr(output);
        if let Some(path) = &self.common.manifest_path {
            command.arg("--manifest-path").arg(path);
        }
        let status = (command.status()).context("failed to run `cargo build`")?;
        Ok(status.success())
    }
}

fn is_sandbox_flag(flag: &str) -> bool {
    flag.split_once('=').map_or(flag, |(name, _)| name) == "sandboxed-build-scripts"
}

/// The denial records under a target directory: Cargo keeps them in the run
/// directory of each build script, `<profile>/build/<pkg>-<hash>/` (below
/// `<triple>/` when cross-compiling).
pub fn records(target: &Path) -> Vec<PathBuf> {
    run_dirs(target)
        .into_iter()
        .map(|dir| dir.join(DenialRecord::FILE_NAME))
        .filter(|path| path.is_file())
        .collect()
}

/// The build-script run directories under a target directory: those with an
/// `output` file, by path relative to `target`.
fn run_dirs(target: &Path) -> Vec<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        paths
    };
    let mut dirs = Vec::new();
    for profile in children(target) {
        for parent in [profile.clone()].into_iter().chain(children(&profile)) {
            for run in children(&parent.join("build")) {
                if run.join("output").is_file() || run.join(DenialRecord::FILE_NAME).is_file() {
                    dirs.push(run);
                }
            }
        }
    }
    dirs
}

/// The first difference between the build-script outputs of the two target
/// directories, comparing every run of `fresh` with the same run of `learned`.
fn compare_outputs(learned: &Path, fresh: &Path) -> anyhow::Result<Option<String>> {
    for run in run_dirs(fresh) {
        let relative = run.strip_prefix(fresh).unwrap_or(&run);
        let before = read_run(&learned.join(relative), learned)?;
        let after = read_run(&run, fresh)?;
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            if before.get(name) != after.get(name) {
                return Ok(Some(format!("`{}`", relative.join(name).display())));
            }
        }
    }
    Ok(None)
}

/// A run directory's directives (the `cargo:` lines of `output`) and the
/// files under `out/`, by relative path, with `target` replaced by a
/// placeholder.
fn read_run(run: &Path, target: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![run.join("out")];
    let read = |path: &Path| {
        fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
    };
    let placeholder = |bytes: Vec<u8>| {
        let from = target.as_os_str().as_encoded_bytes();
        let mut replaced = Vec::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            if rest.starts_with(from) {
                replaced.extend_from_slice(b"[TARGET]");
                rest = &rest[from.len()..];
            } else {
                replaced.push(rest[0]);
                rest = &rest[1..];
            }
        }
        replaced
    };
    if run.join("output").is_file() {
        // The directives: other lines are the script's log, which may show
        // what differs from run to run (say the jobserver's descriptors).
        let output = read(&run.join("output"))?;
        let directives: Vec<u8> = (output.split_inclusive(|&b| b == b'\n'))
            .filter(|line| line.starts_with(b"cargo:"))
            .flatten()
            .copied()
            .collect();
        files.insert("output".to_owned(), placeholder(directives));
    }
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(run)
                .unwrap_or(&path)
                .display()
                .to_string();
            let bytes = match entry.file_type().is_ok_and(|t| t.is_symlink()) {
                true => fs::read_link(&path)
                    .map(|l| l.as_os_str().as_encoded_bytes().to_vec())
                    .unwrap_or_default(),
                false => read(&path)?,
            };
            files.insert(name, placeholder(bytes));
        }
    }
    Ok(files)
}
