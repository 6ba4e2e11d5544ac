//! `cargo xtask wasi-std`: the standard library that build scripts compiled to `wasm32-wasip2`
//! link, patched so that `std::process::Command` asks the host (issue 12).
//!
//! The std is a patch series against the toolchain's own `rust-src` component, kept like the
//! Cargo fork (see `fork/README.md`):
//!
//! * `fork/std/upstream.toml` pins the toolchain (`rustc --version`) and the sha256 of its
//!   `library/` tree ([`tree_hash`]);
//! * `fork/std/patches/series` lists the patches in `fork/std/patches`, applied in order;
//! * `fork/std/wit` holds the WIT they implement, and `fork/std/gen-bindings.sh` regenerates
//!   the bindings the patches commit (a maintainer's step; the build needs no tool).
//!
//! Materializing copies `library/` into a new git repository (its root), commits it as the pristine
//! upstream commit and applies the series with `git am`, into `fork/work/std`, recorded in
//! `fork/work/std.stamp`. `--export` writes the commits made there back into the series.
//! Building runs stock Cargo on `library/sysroot` for `wasm32-wasip2`, as `-Zbuild-std` builds
//! std: `RUSTC_BOOTSTRAP=1` for that one command (the library uses unstable features), and
//! `-Zforce-unstable-if-unmarked` so that the crates behind std stay unstable. The rlibs Cargo
//! reports, with the stock target's `self-contained` C runtime next to them, are the sysroot
//! `target/wasi-sysroot`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::Workspace;
use crate::fork::{apply, read_series_in, rev_parse, write_patches};
use crate::util::{self, git, output, run, status, warn};

const TARGET: &str = "wasm32-wasip2";

/// What `fork/std/upstream.toml` pins.
#[derive(serde::Deserialize)]
struct Pin {
    /// `rustc --version` of the toolchain whose `rust-src` the series applies to.
    rustc: String,
    /// [`tree_hash`] of its `library/`.
    sha256: String,
}

/// Materializes `fork/work/std` unless it is up to date; a tree with work that is not exported
/// is used as it is, with a warning.
fn materialize(ws: &Workspace) -> Result<()> {
    let library = upstream_library(ws)?;
    let series = read_series(ws)?;
    let inputs = hash_inputs(ws, &series)?;
    let tree = tree(ws);
    let stamp = stamp_path(ws);
    if tree.join(".git").exists() {
        let head = rev_parse(&tree, "HEAD").unwrap_or_default();
        let recorded = fs::read_to_string(&stamp).unwrap_or_default();
        let clean = output(git(&tree).args(["status", "--porcelain"]))
            .is_ok_and(|changes| changes.trim().is_empty());
        match (recorded.split_once(' '), clean) {
            (Some((at, made_from)), true) if at == head && made_from.trim() == inputs => {
                status("Fresh", "`fork/work/std` is up to date");
                return Ok(());
            }
            (Some((at, _)), true) if at == head => {}
            _ => {
                warn(
                    "`fork/work/std` has changes that are not in `fork/std/patches`; using it \
                     as it is\nnote: run `cargo xtask wasi-std --export` to keep them",
                );
                return Ok(());
            }
        }
    }
    let new = ws.fork().join("work/std.new");
    util::remove_dir_all(&new)?;
    status("Copying", format_args!("`{}`", library.display()));
    copy_tree(&library, &new)?;
    run(git(&new).args(["init", "-q", "-b", "main"]))?;
    run(git(&new).args(["add", "--all", "--force", "."]))?;
    let pin = read_pin(ws)?;
    let message = format!("pristine upstream: `rust-src` of {}", pin.rustc);
    run(git(&new).args(["commit", "-q", "--no-verify", "-m", &message]))?;
    for name in &series {
        status("Applying", name);
        apply(&new, &patches(ws).join(name))
            .with_context(|| format!("failed to apply `fork/std/patches/{name}`"))?;
    }
    util::remove_dir_all(&tree)?;
    fs::rename(&new, &tree).with_context(|| format!("failed to move `{}`", new.display()))?;
    let head = rev_parse(&tree, "HEAD")?;
    fs::write(&stamp, format!("{head} {inputs}\n"))
        .with_context(|| format!("failed to write `{}`", stamp.display()))?;
    status(
        "Finished",
        format_args!("`fork/work/std` at {}", &head[..12]),
    );
    Ok(())
}

/// Writes the commits of `fork/work/std` after the pristine one into `fork/std/patches`.
pub fn export(ws: &Workspace) -> Result<()> {
    let tree = tree(ws);
    let changes = output(git(&tree).args(["status", "--porcelain"]))
        .context("there is no `fork/work/std`; run `cargo xtask wasi-std` to make it")?;
    if !changes.trim().is_empty() {
        bail!(
            "`fork/work/std` has uncommitted changes:\n{}\n\n\
             help: commit them first, one commit per patch",
            changes.trim_end()
        );
    }
    let roots = output(git(&tree).args(["rev-list", "--max-parents=0", "HEAD"]))?;
    let range = format!("{}..HEAD", roots.trim());
    let header = "# Applied in this order by `cargo xtask wasi-std`; see `fork/README.md`.\n";
    let names = write_patches(&tree, &range, &[], &patches(ws), header)?;
    let inputs = hash_inputs(ws, &read_series(ws)?)?;
    let head = rev_parse(&tree, "HEAD")?;
    fs::write(stamp_path(ws), format!("{head} {inputs}\n")).context("failed to write the stamp")?;
    status(
        "Exported",
        format_args!("{} patches to `fork/std/patches`", names.len()),
    );
    Ok(())
}

/// Materializes the tree (keeping work not exported yet) and builds the sysroot; returns it.
pub fn build(ws: &Workspace) -> Result<PathBuf> {
    materialize(ws)?;
    let stock = stock_sysroot()?;
    let self_contained = stock.join(format!("lib/rustlib/{TARGET}/lib/self-contained"));
    if !self_contained.is_dir() {
        bail!(
            "the toolchain has no `{TARGET}` standard library\n\n\
             help: run `rustup target add {TARGET}`"
        );
    }
    status(
        "Building",
        format_args!("the `{TARGET}` std of `fork/work/std`"),
    );
    let started = Instant::now();
    let mut cargo = util::cargo();
    cargo
        .current_dir(tree(ws))
        .args([
            "build",
            "--locked",
            "--release",
            "--target",
            TARGET,
            "-p",
            "sysroot",
        ])
        .args(["--features", "panic-unwind backtrace"])
        .args(["--message-format", "json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", ws.root.join("target/wasi-std"))
        // The one command that may use unstable features: the library needs them.
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "RUSTFLAGS",
            "-Zforce-unstable-if-unmarked -Cembed-bitcode=yes",
        )
        .env_remove("RUSTC_WRAPPER")
        .stdout(Stdio::piped());
    // Diagnostics go to stderr, rendered; stdout has the messages that name the rlibs.
    let built = cargo
        .output()
        .context("failed to run `cargo build` for the patched std")?;
    if !built.status.success() {
        bail!("failed to build the patched std ({})", built.status);
    }
    let messages = String::from_utf8_lossy(&built.stdout);
    let sysroot = ws.root.join("target/wasi-sysroot");
    let lib = sysroot.join(format!("lib/rustlib/{TARGET}/lib"));
    util::remove_dir_all(&sysroot)?;
    fs::create_dir_all(&lib).with_context(|| format!("failed to create `{}`", lib.display()))?;
    // Exactly the rlibs of this build: the target directory may hold older ones.
    for rlib in built_rlibs(&messages)? {
        let name = rlib.file_name().context("an rlib without a file name")?;
        fs::copy(&rlib, lib.join(name))
            .with_context(|| format!("failed to copy `{}`", rlib.display()))?;
    }
    copy_tree(&self_contained, &lib.join("self-contained"))?;
    status(
        "Finished",
        format_args!(
            "`target/wasi-sysroot` in {}",
            util::elapsed(started.elapsed())
        ),
    );
    Ok(sysroot)
}

/// The rlibs of the `compiler-artifact` messages of `cargo build --message-format json`.
fn built_rlibs(messages: &str) -> Result<Vec<PathBuf>> {
    let mut rlibs = Vec::new();
    for line in messages.lines().filter(|line| line.starts_with('{')) {
        let message: serde_json::Value =
            serde_json::from_str(line).context("failed to parse a message of Cargo's")?;
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let files = message["filenames"].as_array().into_iter().flatten();
        rlibs.extend(
            files
                .filter_map(|file| file.as_str())
                .filter(|file| file.ends_with(".rlib"))
                .map(PathBuf::from),
        );
    }
    if rlibs.is_empty() {
        bail!("building the patched std produced no rlib");
    }
    Ok(rlibs)
}

/// The toolchain's `library/`, checked against `fork/std/upstream.toml`.
fn upstream_library(ws: &Workspace) -> Result<PathBuf> {
    let pin = read_pin(ws)?;
    let version = output(Command::new(rustc()).arg("--version"))?;
    if version.trim() != pin.rustc {
        bail!(
            "`fork/std/patches` applies to the `rust-src` of `{}`, not `{}`\n\n\
             note: the toolchain is pinned in `fork/std/upstream.toml`",
            pin.rustc,
            version.trim()
        );
    }
    let library = stock_sysroot()?.join("lib/rustlib/src/rust/library");
    if !library.is_dir() {
        bail!(
            "the toolchain has no `rust-src` component\n\n\
             help: run `rustup component add rust-src`"
        );
    }
    let actual = tree_hash(&library)?;
    if actual != pin.sha256 {
        bail!(
            "`{}` does not match its pin in `fork/std/upstream.toml`\n  \
             expected sha256: {}\n  actual sha256:   {actual}",
            library.display(),
            pin.sha256
        );
    }
    Ok(library)
}

/// The sha256 of a directory tree: of each file's path relative to `root`, length and bytes,
/// in the order of their paths (symbolic links: their targets).
pub fn tree_hash(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    list_files(root, Path::new(""), &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for relative in files {
        let path = root.join(&relative);
        let metadata = fs::symlink_metadata(&path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        let bytes = match metadata.is_symlink() {
            true => fs::read_link(&path)?.into_os_string().into_encoded_bytes(),
            false => {
                fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?
            }
        };
        hasher.update(relative.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(util::hex(&hasher.finalize()))
}

fn list_files(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(relative);
    for entry in
        fs::read_dir(&dir).with_context(|| format!("failed to read `{}`", dir.display()))?
    {
        let entry = entry.with_context(|| format!("failed to read `{}`", dir.display()))?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list_files(root, &path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Copies the tree `from` to `to`, which must not exist, keeping symbolic links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("failed to create `{}`", to.display()))?;
    for entry in
        fs::read_dir(from).with_context(|| format!("failed to read `{}`", from.display()))?
    {
        let entry = entry.with_context(|| format!("failed to read `{}`", from.display()))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            copy_tree(&source, &target)?;
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)
                .with_context(|| format!("failed to create `{}`", target.display()))?;
        } else {
            fs::copy(&source, &target)
                .with_context(|| format!("failed to copy `{}`", source.display()))?;
        }
    }
    Ok(())
}

fn read_pin(ws: &Workspace) -> Result<Pin> {
    let path = ws.fork().join("std/upstream.toml");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    #[derive(serde::Deserialize)]
    struct Upstream {
        #[serde(rename = "rust-src")]
        rust_src: Pin,
    }
    let upstream: Upstream =
        toml::from_str(&text).with_context(|| format!("failed to parse `{}`", path.display()))?;
    Ok(upstream.rust_src)
}

fn read_series(ws: &Workspace) -> Result<Vec<String>> {
    read_series_in(&patches(ws), "fork/std/patches")
}

/// A hash of the pin and the series, to tell whether the tree was made from them.
fn hash_inputs(ws: &Workspace, series: &[String]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(fs::read(ws.fork().join("std/upstream.toml"))?);
    for name in series {
        let patch = patches(ws).join(name);
        hasher.update(name.as_bytes());
        hasher.update(
            fs::read(&patch).with_context(|| format!("failed to read `{}`", patch.display()))?,
        );
    }
    Ok(util::hex(&hasher.finalize()))
}

fn rustc() -> std::ffi::OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

fn stock_sysroot() -> Result<PathBuf> {
    let sysroot = output(Command::new(rustc()).args(["--print", "sysroot"]))?;
    Ok(PathBuf::from(sysroot.trim()))
}

fn tree(ws: &Workspace) -> PathBuf {
    ws.fork().join("work/std")
}

fn patches(ws: &Workspace) -> PathBuf {
    ws.fork().join("std/patches")
}

fn stamp_path(ws: &Workspace) -> PathBuf {
    ws.fork().join("work/std.stamp")
}
