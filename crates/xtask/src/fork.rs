//! `cargo xtask fork` and `build-fork`: materializes the Cargo fork from its patch series,
//! exports it back, checks that the series is small and bisectable (`fork --check`), and builds
//! it.
//!
//! Three committed inputs describe the fork:
//!
//! * `fork/upstream.toml` pins the upstream crates by version and sha256, and says where each
//!   is unpacked in the working tree;
//! * `fork/patches/series` lists the patches in `fork/patches`, applied in order;
//! * `fork/Cargo.lock` is the lockfile of the patched tree, kept whole rather than in patches.
//!
//! Materializing fetches the pinned crates with `cargo fetch`, checks them against their pins,
//! unpacks them into a new git repository, commits them as the pristine upstream commit, and
//! applies the series with `git am`. Every commit has a fixed identity and date, so the same
//! inputs always give the same `HEAD`. The tree is built next to `fork/work/cargo` and moved
//! there when complete.
//!
//! `fork/work/stamp` records a hash of the inputs the tree was made from and the `HEAD` it had
//! then. A tree that is dirty or whose `HEAD` moved holds work that is not in `fork/patches`:
//! it is only ever removed with `--force`. `--export` turns that work into patches and updates
//! the stamp, so the next `cargo xtask fork` leaves the tree alone.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::Workspace;
use crate::util::{self, git, output, run, status, warn};

/// What to do with a working tree that holds work not in `fork/patches`.
pub enum Mode {
    /// Refuse, unless `force` says to discard it.
    Strict { force: bool },
    /// Leave it as it is, with a warning.
    Lenient,
}

/// An upstream crate from `fork/upstream.toml`.
struct Pin {
    name: String,
    version: String,
    sha256: String,
    /// Where the crate is unpacked, relative to the root of the working tree.
    path: String,
}

/// The state of `fork/work/cargo` compared to the inputs.
enum Tree {
    Missing,
    /// Made from the current inputs and not changed since.
    Current,
    /// Made from other inputs and not changed since.
    Stale,
    /// Changed since it was made or exported.
    Diverged,
}

pub fn materialize(ws: &Workspace, mode: Mode) -> Result<()> {
    let pins = read_pins(ws)?;
    let series = read_series(ws)?;
    let inputs = hash_inputs(ws, &series)?;
    let new = ws.fork().join("work/cargo.new");
    util::remove_dir_all(&new)?;
    match (tree_state(ws, &inputs), mode) {
        (Tree::Current, _) => {
            status("Fresh", "fork working tree is up to date");
            return Ok(());
        }
        (Tree::Diverged, Mode::Lenient) => {
            warn(
                "the fork working tree `fork/work/cargo` has changes that are not in \
                 `fork/patches`; using it as it is\n\
                 note: run `cargo xtask fork --export` to keep them",
            );
            return Ok(());
        }
        (Tree::Diverged, Mode::Strict { force: false }) => bail!(
            "the fork working tree `fork/work/cargo` has changes that are not in `fork/patches`\n\n\
             help: run `cargo xtask fork --export` to keep them, \
             or `cargo xtask fork --force` to discard them"
        ),
        (Tree::Diverged, Mode::Strict { force: true }) => {
            status("Discarding", "changes in `fork/work/cargo`");
        }
        (Tree::Missing | Tree::Stale, _) => {}
    }
    fs::create_dir_all(&new).with_context(|| format!("failed to create `{}`", new.display()))?;
    make_tree(ws, &new, &pins, &series)?;

    let tree = ws.tree();
    let stamp = stamp_path(ws);
    if let Err(err) = fs::remove_file(&stamp)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        return Err(err).with_context(|| format!("failed to remove `{}`", stamp.display()));
    }
    util::remove_dir_all(&tree)?;
    fs::rename(&new, &tree).with_context(|| format!("failed to move `{}`", new.display()))?;
    let head = rev_parse(&tree, "HEAD")?;
    write_stamp(ws, &inputs, &head)?;
    status(
        "Finished",
        format_args!("`fork/work/cargo` at {}", &head[..12]),
    );
    Ok(())
}

/// Builds the working tree in `dir`: the pristine upstream commit, then the series.
fn make_tree(ws: &Workspace, dir: &Path, pins: &[Pin], series: &[String]) -> Result<()> {
    make_pristine(dir, pins)?;
    for name in series {
        status("Applying", name);
        apply(dir, &ws.patches().join(name)).with_context(|| {
            format!(
                "failed to apply `fork/patches/{name}`\n\n\
                 note: `fork/work/cargo.new` has the patches before it, to rebase it on with \
                 `git am -3` (see `fork/README.md`); `cargo xtask fork` removes it"
            )
        })?;
    }
    copy_lock(ws, dir)
}

/// Unpacks the pinned crates into the empty directory `dir` and commits them there as the
/// pristine upstream commit of a new git repository.
fn make_pristine(dir: &Path, pins: &[Pin]) -> Result<()> {
    let cargo_home = cargo_home()?;
    if pins
        .iter()
        .any(|pin| find_crate(&cargo_home, pin).is_none())
    {
        fetch(pins)?;
    }
    for pin in pins {
        let file = find_crate(&cargo_home, pin).with_context(|| {
            format!(
                "`cargo fetch` did not put `{}-{}.crate` in `{}`",
                pin.name,
                pin.version,
                cargo_home.join("registry/cache").display()
            )
        })?;
        let bytes =
            fs::read(&file).with_context(|| format!("failed to read `{}`", file.display()))?;
        let actual = util::sha256_hex(&bytes);
        if actual != pin.sha256 {
            bail!(
                "`{}-{}.crate` does not match its pin in `fork/upstream.toml`\n  \
                 expected sha256: {}\n  actual sha256:   {actual} (`{}`)",
                pin.name,
                pin.version,
                pin.sha256,
                file.display()
            );
        }
        status(
            "Unpacking",
            format_args!("{} {} into `{}`", pin.name, pin.version, pin.path),
        );
        unpack(
            &bytes,
            &format!("{}-{}", pin.name, pin.version),
            &dir.join(&pin.path),
        )
        .with_context(|| format!("failed to unpack `{}`", file.display()))?;
    }

    run(git(dir).args(["init", "-q", "-b", "main"]))?;
    // Builds run by hand in the tree must not make it look changed.
    fs::write(dir.join(".git/info/exclude"), "/target\n")
        .context("failed to write `.git/info/exclude` of the fork working tree")?;
    run(git(dir).args(["add", "--all", "--force", "."]))?;
    let message = format!("pristine upstream: {}", describe(pins));
    run(git(dir).args(["commit", "-q", "--no-verify", "-m", &message]))?;
    // The lockfile of the patched tree is `fork/Cargo.lock`, not part of the patches.
    if dir.join("Cargo.lock").exists() {
        run(git(dir).args(["update-index", "--skip-worktree", "Cargo.lock"]))?;
    }
    Ok(())
}

/// Applies `patch` to the tree in `dir` with `git am`: no 3-way merge, no fuzz. When it does
/// not apply, the tree is left as it was.
pub fn apply(dir: &Path, patch: &Path) -> Result<()> {
    let mut am = git(dir);
    am.args([
        "am",
        "-q",
        "--no-3way",
        "--whitespace=nowarn",
        "--keep-non-patch",
    ])
    .arg(patch);
    if let Err(err) = output(&mut am) {
        let _ = output(git(dir).args(["am", "--abort"]));
        return Err(err);
    }
    Ok(())
}

/// Copies `fork/Cargo.lock`, if there is one, into the tree in `dir`.
fn copy_lock(ws: &Workspace, dir: &Path) -> Result<()> {
    if let Some(lock) = util::read_optional(&ws.fork().join("Cargo.lock"))? {
        fs::write(dir.join("Cargo.lock"), lock)
            .context("failed to copy `fork/Cargo.lock` into the fork working tree")?;
    }
    Ok(())
}

/// Writes the commits of the working tree after the pristine one into `fork/patches`.
pub fn export(ws: &Workspace) -> Result<()> {
    let tree = ws.tree();
    if !tree.join(".git").exists() {
        bail!(
            "there is no fork working tree at `fork/work/cargo`\n\n\
             help: run `cargo xtask fork` to make it"
        );
    }
    let changes = output(git(&tree).args(["status", "--porcelain"]))?;
    if !changes.trim().is_empty() {
        bail!(
            "the fork working tree `fork/work/cargo` has uncommitted changes:\n{}\n\n\
             help: commit them in `fork/work/cargo` first, one commit per patch",
            changes.trim_end()
        );
    }
    let roots = output(git(&tree).args(["rev-list", "--max-parents=0", "HEAD"]))?;
    let [pristine] = roots.lines().collect::<Vec<_>>()[..] else {
        bail!("the history of `fork/work/cargo` does not start at one pristine upstream commit");
    };
    let range = format!("{pristine}..HEAD");
    let commits =
        output(git(&tree).args(["log", "--reverse", "--format=%h %s%x00%b%x00", &range]))?;
    let mut parts = commits.split('\0');
    while let (Some(subject), Some(body)) = (parts.next(), parts.next()) {
        if body.trim().is_empty() {
            warn(format_args!(
                "commit `{}` has no message body; its patch header should say what it \
                 changes, why, and whether it can go upstream",
                subject.trim()
            ));
        }
    }

    let names = write_patches(
        &tree,
        &range,
        &[":(exclude)Cargo.lock"],
        &ws.patches(),
        SERIES_HEADER,
    )?;
    fs::copy(tree.join("Cargo.lock"), ws.fork().join("Cargo.lock"))
        .context("failed to copy the lockfile of the fork working tree to `fork/Cargo.lock`")?;

    let inputs = hash_inputs(ws, &read_series(ws)?)?;
    write_stamp(ws, &inputs, &rev_parse(&tree, "HEAD")?)?;
    let plural = if names.len() == 1 { "" } else { "es" };
    let message = format!("{} patch{plural} to `fork/patches`", names.len());
    status("Exported", message);
    Ok(())
}

const SERIES_HEADER: &str =
    "# Applied in this order by `cargo xtask fork`; see `fork/README.md`.\n";

/// Replaces the patches in `dir` with the commits `range` of `tree` (`git format-patch`,
/// leaving out the paths `exclude` names) and writes their `series` under `header`; returns
/// their file names.
pub fn write_patches(
    tree: &Path,
    range: &str,
    exclude: &[&str],
    dir: &Path,
    header: &str,
) -> Result<Vec<String>> {
    let shown = dir.display();
    fs::create_dir_all(dir).with_context(|| format!("failed to create `{shown}`"))?;
    for entry in fs::read_dir(dir).with_context(|| format!("failed to read `{shown}`"))? {
        let path = entry
            .with_context(|| format!("failed to read `{shown}`"))?
            .path();
        if path.extension().is_some_and(|ext| ext == "patch") {
            fs::remove_file(&path)
                .with_context(|| format!("failed to remove `{}`", path.display()))?;
        }
    }
    let written = output(
        git(tree)
            .args([
                "format-patch",
                "--zero-commit",
                "--no-signature",
                "--keep-subject",
                "-o",
            ])
            .arg(dir)
            .args([range, "--", "."])
            .args(exclude),
    )?;
    let names: Vec<String> = written
        .lines()
        .filter_map(|line| Some(Path::new(line).file_name()?.to_str()?.to_owned()))
        .collect();
    let mut series = String::from(header);
    for name in &names {
        series.push_str(name);
        series.push('\n');
    }
    let path = dir.join("series");
    fs::write(&path, series).with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(names)
}

/// Materializes the fork, keeping work that is not exported yet, and builds its `cargo` binary,
/// the `native` runner's helper and `cargo build-sandbox` into `target/fork/release`. Returns the
/// path of `cargo`; [`HELPER`] and [`SUBCOMMAND`] are next to it.
pub fn build(ws: &Workspace) -> Result<PathBuf> {
    materialize(ws, Mode::Lenient)?;
    let pins = read_pins(ws)?;
    let version = pins
        .iter()
        .find(|p| p.name == "cargo")
        .map_or("", |p| &p.version);
    let tree = ws.tree();
    status("Building", "`fork/work/cargo` into `target/fork`");
    let start = Instant::now();
    // The helper is a dependency's binary, not a member's: `-p` selects it all the same, and
    // Cargo puts it next to `cargo` with the same profile.
    run(util::cargo()
        .current_dir(&tree)
        .args(["build", "--release", "--manifest-path"])
        .arg(tree.join("Cargo.toml"))
        .args(["-p", "cargo", "--bin", "cargo"])
        .args(["-p", "build-sandbox", "--bin", HELPER])
        .env("CARGO_TARGET_DIR", ws.fork_target())
        .env(
            "CFG_VER_DESCRIPTION",
            format!("build-sandbox fork of cargo {version}"),
        )
        // Cargo's build script would show the commit of whichever tree first ran it in
        // `target/fork`: its output does not depend on the tree's `HEAD`.
        .env("CFG_OMIT_GIT_HASH", "1"))
    .context("failed to build the fork")?;
    // The subcommand uses the crate without its runners: built in this workspace, where that
    // takes seconds, and put next to the fork's `cargo`.
    run(util::cargo()
        .current_dir(&ws.root)
        .args(["build", "--release", "-p", SUBCOMMAND]))
    .with_context(|| format!("failed to build `{SUBCOMMAND}`"))?;
    let binary = ws.fork_target().join("release/cargo");
    let subcommand = ws.root.join("target/release").join(SUBCOMMAND);
    util::copy_binary(
        &subcommand,
        ws.fork_target().join("release").as_path(),
        SUBCOMMAND,
    )?;
    let elapsed = util::elapsed(start.elapsed());
    status(
        "Built",
        format_args!("`target/fork/release/cargo`, `{HELPER}` and `{SUBCOMMAND}` in {elapsed}"),
    );
    Ok(binary)
}

/// `cargo build-sandbox`, an external subcommand that Cargo finds on `PATH` or in
/// `$CARGO_HOME/bin`.
pub const SUBCOMMAND: &str = "cargo-build-sandbox";

/// The `native` runner's helper, a binary of the `build-sandbox` crate that the fork's `cargo`
/// starts from next to itself (`build_sandbox::runner::native::HELPER_NAME`).
pub const HELPER: &str = "build-sandbox-helper";

/// The pristine commit of the tree (upstream Cargo 0.98.0, unpatched), unpacked into
/// `target/pristine/cargo` once per commit.
pub fn pristine_tree(ws: &Workspace) -> Result<PathBuf> {
    materialize(ws, Mode::Lenient)?;
    let tree = ws.tree();
    let pristine = output(util::git(&tree).args(["rev-list", "--max-parents=0", "HEAD"]))?;
    let pristine = pristine.trim();
    let dir = ws.root.join("target/pristine");
    let source = dir.join("cargo");
    let stamp = dir.join("stamp");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(pristine) {
        let _ = fs::remove_dir_all(&source);
        fs::create_dir_all(&source)
            .with_context(|| format!("failed to create `{}`", source.display()))?;
        let mut archive = util::git(&tree)
            .args(["archive", "--format=tar", pristine])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("failed to run `git archive`")?;
        let tar = archive
            .stdout
            .take()
            .context("failed to read `git archive`")?;
        run(std::process::Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(&source)
            .stdin(tar))
        .context("failed to unpack the pristine tree")?;
        if !archive
            .wait()
            .context("failed to run `git archive`")?
            .success()
        {
            bail!("failed to export the pristine commit `{pristine}`");
        }
        fs::write(&stamp, pristine)
            .with_context(|| format!("failed to write `{}`", stamp.display()))?;
    }
    Ok(source)
}

/// Builds Cargo without the patch series, as the reference for benchmarks: the
/// tree's pristine commit is exported to `target/pristine/cargo` and built into
/// `target/fork` (sharing the fork's dependencies), and the binary is copied to
/// `target/pristine/cargo-unpatched`. Returns its path; the fork's own binary
/// must be built again afterwards.
pub fn build_pristine(ws: &Workspace) -> Result<PathBuf> {
    let source = pristine_tree(ws)?;
    let dir = ws.root.join("target/pristine");
    status("Building", "unpatched Cargo into `target/fork`");
    run(util::cargo()
        .current_dir(&source)
        .args(["build", "--release", "--bin", "cargo", "--manifest-path"])
        .arg(source.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", ws.fork_target())
        .env("CFG_OMIT_GIT_HASH", "1"))
    .context("failed to build unpatched Cargo")?;
    let binary = dir.join("cargo-unpatched");
    fs::copy(ws.fork_target().join("release/cargo"), &binary)
        .with_context(|| format!("failed to copy unpatched Cargo to `{}`", binary.display()))?;
    Ok(binary)
}

/// The size targets of an upstream-reviewable series: changed lines of the whole series, files
/// it touches, and changed lines of any one patch.
const MAX_TOTAL_LINES: usize = 800;
const MAX_FILES: usize = 15;
const MAX_PATCH_LINES: usize = 250;

/// `cargo xtask fork --check`: checks that the series is a stack upstream can review, small
/// enough and bisectable. Prints the size of every patch, then applies the series one patch at a
/// time to a tree of its own, `fork/work/check`, and runs `cargo check --bin cargo` after each
/// into `target/fork-check`. Fails at the end, naming every target the series misses, every
/// patch after which the tree does not check, and the first patch that does not apply.
pub fn check(ws: &Workspace) -> Result<()> {
    let pins = read_pins(ws)?;
    let series = read_series(ws)?;
    if series.is_empty() {
        bail!("`fork/patches/series` lists no patches");
    }
    let mut problems = sizes(ws, &series)?;
    problems.extend(bisect(ws, &pins, &series)?);
    if !problems.is_empty() {
        let mut message = String::from("the patch series is not an upstream-reviewable stack:");
        for problem in &problems {
            message.push_str("\n  ");
            message.push_str(&problem.replace('\n', "\n    "));
        }
        bail!(message);
    }
    status(
        "Finished",
        format_args!("{} patches, each applies and checks", series.len()),
    );
    Ok(())
}

/// Prints the changed lines and files of every patch and of the series, and returns the size
/// targets they miss.
fn sizes(ws: &Workspace, series: &[String]) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    let mut all_files = std::collections::BTreeSet::new();
    let mut total = 0;
    for name in series {
        let path = ws.patches().join(name);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        let (lines, files) = measure(&text).with_context(|| format!("failed to parse `{name}`"))?;
        total += lines;
        rows.push((name.as_str(), lines, files.len()));
        all_files.extend(files);
    }

    let mut problems = Vec::new();
    let width = series.iter().map(String::len).max().unwrap_or(0).max(5);
    println!("{:<width$}  {:>5}  {:>5}", "patch", "lines", "files");
    for &(name, lines, files) in &rows {
        let over = lines > MAX_PATCH_LINES;
        let mark = if over { "  > 250" } else { "" };
        println!("{name:<width$}  {lines:>5}  {files:>5}{mark}");
        if over {
            problems.push(format!(
                "`{name}` changes {lines} lines, more than the {MAX_PATCH_LINES} of one patch"
            ));
        }
    }
    let label = format!("total ({} patches)", rows.len());
    let (files, width) = (all_files.len(), width.max(label.len()));
    println!("{label:<width$}  {total:>5}  {files:>5}");
    println!(
        "{:<width$}  {MAX_TOTAL_LINES:>5}  {MAX_FILES:>5}  (per patch: {MAX_PATCH_LINES} lines)",
        "target"
    );
    if total > MAX_TOTAL_LINES {
        problems.push(format!(
            "the series changes {total} lines, more than the {MAX_TOTAL_LINES} of the target"
        ));
    }
    if files > MAX_FILES {
        problems.push(format!(
            "the series touches {files} files, more than the {MAX_FILES} of the target"
        ));
    }
    Ok(problems)
}

/// The changed lines of a patch as `git format-patch` writes it (the `+` and `-` lines of its
/// hunks) and the files it touches, without `Cargo.lock`.
fn measure(patch: &str) -> Result<(usize, std::collections::BTreeSet<String>)> {
    let mut files = std::collections::BTreeSet::new();
    let mut changed = 0;
    let mut counting = false;
    let mut lines = patch.lines();
    while let Some(line) = lines.next() {
        if let Some(paths) = line.strip_prefix("diff --git a/") {
            let (_, file) = paths
                .rsplit_once(" b/")
                .with_context(|| format!("no file in `{line}`"))?;
            counting = file != "Cargo.lock" && !file.ends_with("/Cargo.lock");
            if counting {
                files.insert(file.to_owned());
            }
        } else if let Some(header) = line.strip_prefix("@@ -") {
            // `@@ -OLD[,COUNT] +NEW[,COUNT] @@`: the hunk is exactly that many lines of each side,
            // so a removed line that starts with `--` is not taken for a header.
            let count = |range: &str| -> Result<usize> {
                Ok(match range.split_once(',') {
                    Some((_, count)) => count.parse()?,
                    None => 1,
                })
            };
            let mut ranges = header.split(' ');
            let (Some(old), Some(new)) = (ranges.next(), ranges.next()) else {
                bail!("malformed hunk header `{line}`");
            };
            let new = new
                .strip_prefix('+')
                .with_context(|| format!("malformed hunk header `{line}`"))?;
            let (mut old, mut new) = (
                count(old).with_context(|| format!("malformed hunk header `{line}`"))?,
                count(new).with_context(|| format!("malformed hunk header `{line}`"))?,
            );
            while old > 0 || new > 0 {
                let line = lines.next().context("a hunk ends early")?;
                match line.as_bytes().first() {
                    Some(b'-') => old = old.checked_sub(1).context("a hunk is too long")?,
                    Some(b'+') => new = new.checked_sub(1).context("a hunk is too long")?,
                    Some(b'\\') => continue,
                    _ => {
                        old = old.checked_sub(1).context("a hunk is too long")?;
                        new = new.checked_sub(1).context("a hunk is too long")?;
                        continue;
                    }
                }
                if counting {
                    changed += 1;
                }
            }
        }
    }
    Ok((changed, files))
}

/// Applies the series one patch at a time to the pristine upstream in `fork/work/check`, and
/// runs `cargo check --bin cargo` after each into `target/fork-check`, which stays for the next
/// run. Returns the patches that do not check, and stops at the first that does not apply.
fn bisect(ws: &Workspace, pins: &[Pin], series: &[String]) -> Result<Vec<String>> {
    // At the same depth as `fork/work/cargo`: the series names the `build-sandbox` crate by a
    // relative path.
    let dir = ws.fork().join("work/check");
    let target = ws.root.join("target/fork-check");
    util::remove_dir_all(&dir)?;
    fs::create_dir_all(&dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    make_pristine(&dir, pins)?;
    let mut problems = Vec::new();
    for (i, name) in series.iter().enumerate() {
        let step = format!("[{}/{}] {name}", i + 1, series.len());
        status("Applying", &step);
        if let Err(err) = apply(&dir, &ws.patches().join(name)) {
            problems.push(format!(
                "`{name}` does not apply on the patches before it (in `fork/work/check`): {err:#}"
            ));
            return Ok(problems);
        }
        // Every prefix resolves against the lockfile of the whole series: no network, and no
        // versions newer than the fork's.
        copy_lock(ws, &dir)?;
        status("Checking", &step);
        let start = Instant::now();
        let checked = run(util::cargo()
            .current_dir(&dir)
            .args(["check", "--bin", "cargo", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .env("CFG_OMIT_GIT_HASH", "1"));
        let elapsed = util::elapsed(start.elapsed());
        match checked {
            Ok(()) => status("Checked", format_args!("{step} in {elapsed}")),
            Err(err) => {
                // The next patches may well fix it: go on, to name every prefix that fails.
                warn(format_args!("`{name}` does not check"));
                problems.push(format!(
                    "`{name}` does not check on the patches before it: {err:#}"
                ));
            }
        }
    }
    Ok(problems)
}

fn read_pins(ws: &Workspace) -> Result<Vec<Pin>> {
    let path = ws.fork().join("upstream.toml");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("failed to parse `{}`", path.display()))?;
    let mut pins = Vec::new();
    for (name, value) in &table {
        let field = |key: &str| {
            value
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("`{name}` in `fork/upstream.toml` has no string `{key}`"))
        };
        let pin = Pin {
            name: name.clone(),
            version: field("version")?,
            sha256: field("sha256")?,
            path: field("path")?,
        };
        if Path::new(&pin.path)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("`{name}` in `fork/upstream.toml` has a `path` outside the working tree");
        }
        pins.push(pin);
    }
    if pins.is_empty() {
        bail!("`fork/upstream.toml` pins no crates");
    }
    Ok(pins)
}

/// The patch file names listed in `fork/patches/series`.
fn read_series(ws: &Workspace) -> Result<Vec<String>> {
    read_series_in(&ws.patches(), "fork/patches")
}

/// The patch file names listed in `dir/series` (`shown` names `dir` in errors); none if
/// there is no `series`.
pub fn read_series_in(dir: &Path, shown: &str) -> Result<Vec<String>> {
    let Some(bytes) = util::read_optional(&dir.join("series"))? else {
        return Ok(Vec::new());
    };
    let text =
        String::from_utf8(bytes).with_context(|| format!("`{shown}/series` is not UTF-8"))?;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('/') || line.starts_with('.') {
            bail!("`{line}` in `{shown}/series` is not a file name in `{shown}`");
        }
        names.push(line.to_owned());
    }
    Ok(names)
}

/// A hash of everything the working tree is made from.
fn hash_inputs(ws: &Workspace, series: &[String]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update("xtask fork 1\n");
    let mut add = |name: &str, path: &Path, required: bool| -> Result<()> {
        let bytes = util::read_optional(path)?;
        if required && bytes.is_none() {
            bail!("`{name}` does not exist");
        }
        let bytes = bytes.unwrap_or_default();
        hasher.update(format!("{name} {}\n", bytes.len()));
        hasher.update(bytes);
        Ok(())
    };
    add("fork/upstream.toml", &ws.fork().join("upstream.toml"), true)?;
    add("fork/patches/series", &ws.patches().join("series"), false)?;
    for name in series {
        add(
            &format!("fork/patches/{name}"),
            &ws.patches().join(name),
            true,
        )
        .context("failed to read the patches listed in `fork/patches/series`")?;
    }
    add("fork/Cargo.lock", &ws.fork().join("Cargo.lock"), false)?;
    Ok(util::hex(&hasher.finalize()))
}

fn stamp_path(ws: &Workspace) -> PathBuf {
    ws.fork().join("work/stamp")
}

fn write_stamp(ws: &Workspace, inputs: &str, head: &str) -> Result<()> {
    let path = stamp_path(ws);
    fs::write(&path, format!("inputs {inputs}\nhead {head}\n"))
        .with_context(|| format!("failed to write `{}`", path.display()))
}

fn tree_state(ws: &Workspace, inputs: &str) -> Tree {
    let tree = ws.tree();
    if !tree.exists() {
        return Tree::Missing;
    }
    let stamp = fs::read_to_string(stamp_path(ws)).unwrap_or_default();
    let field = |key: &str| {
        let prefix = format!("{key} ");
        stamp
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
    };
    let clean = output(git(&tree).args(["status", "--porcelain"]))
        .is_ok_and(|changes| changes.trim().is_empty());
    let head = rev_parse(&tree, "HEAD").ok();
    if !clean || head.is_none() || field("head") != head {
        Tree::Diverged
    } else if field("inputs").as_deref() == Some(inputs) {
        Tree::Current
    } else {
        Tree::Stale
    }
}

pub fn rev_parse(tree: &Path, rev: &str) -> Result<String> {
    Ok(output(git(tree).args(["rev-parse", "--verify", rev]))?
        .trim()
        .to_owned())
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither `CARGO_HOME` nor `HOME` is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// The `.crate` file of `pin` in Cargo's registry cache, if it is there.
fn find_crate(cargo_home: &Path, pin: &Pin) -> Option<PathBuf> {
    let file = format!("{}-{}.crate", pin.name, pin.version);
    let mut registries: Vec<PathBuf> = fs::read_dir(cargo_home.join("registry/cache"))
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    registries.sort();
    registries
        .into_iter()
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
}

/// Has stock Cargo download the pinned crates into its registry cache, as dependencies of a
/// throwaway package.
fn fetch(pins: &[Pin]) -> Result<()> {
    status("Fetching", describe(pins));
    let dir = std::env::temp_dir().join(format!("xtask-fork-fetch-{}", std::process::id()));
    let mut manifest = String::from(
        "[package]\nname = \"fork-fetch\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[workspace]\n\n[dependencies]\n",
    );
    for pin in pins {
        manifest.push_str(&format!("{} = \"={}\"\n", pin.name, pin.version));
    }
    let result = (|| {
        fs::create_dir_all(dir.join("src"))?;
        fs::write(dir.join("src/lib.rs"), "")?;
        fs::write(dir.join("Cargo.toml"), manifest)?;
        run(util::cargo()
            .arg("fetch")
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml")))
    })();
    let _ = fs::remove_dir_all(&dir);
    result.context("failed to fetch the upstream crates of the fork")
}

/// `cargo 0.98.0, cargo-util-schemas 0.14.1`
fn describe(pins: &[Pin]) -> String {
    let pins: Vec<String> = pins
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    pins.join(", ")
}

/// Unpacks the `.crate` file `bytes` into `dest`, dropping the leading `prefix/` of its paths.
fn unpack(bytes: &[u8], prefix: &str, dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    // Cargo sees changes by mtime: an old one would hide a patch that was dropped.
    archive.set_preserve_mtime(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let relative = path
            .strip_prefix(prefix)
            .ok()
            .filter(|rel| rel.components().all(|c| matches!(c, Component::Normal(_))))
            .with_context(|| format!("entry `{}` is not inside `{prefix}/`", path.display()))?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("failed to unpack `{}`", path.display()))?;
    }
    Ok(())
}
