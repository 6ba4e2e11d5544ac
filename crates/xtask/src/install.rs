//! `cargo xtask install`: builds the fork and installs it as the rustup toolchain `nightly-fork`.
//!
//! The toolchain directory `fork/toolchain/nightly-fork` holds copies of the fork's `cargo` and
//! of the `native` runner's helper `build-sandbox-helper`, which that `cargo` starts from next
//! to itself, and symlinks to everything else of the active toolchain: its other binaries, and
//! its `lib` with the standard library of every installed target. `rustup toolchain link`
//! registers it, so `cargo +nightly-fork` runs the fork with the active toolchain's `rustc`. The
//! targets the sandbox needs are added to the active toolchain, which shares them through `lib`.
//!
//! It also builds the patched `wasm32-wasip2` std of build scripts (`cargo xtask wasi-std`) and
//! copies that sysroot into the toolchain directory, at `build-sandbox/wasi-sysroot`.
//!
//! `cargo build-sandbox` is an external subcommand: Cargo looks for `cargo-build-sandbox` on
//! `PATH` and in `$CARGO_HOME/bin`, not in the toolchain, so it is copied to `$CARGO_HOME/bin`
//! as `cargo install` would.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::Workspace;
use crate::util::{self, output, run, status};
use crate::{fork, wasi_std};

const TOOLCHAIN: &str = "nightly-fork";

/// Targets the sandbox compiles for.
const TARGETS: &[&str] = &["wasm32-wasip2"];

/// Where the toolchain directory has the patched `wasm32-wasip2` sysroot of build scripts.
const WASI_SYSROOT: &str = "build-sandbox/wasi-sysroot";

pub fn install(ws: &Workspace) -> Result<()> {
    add_targets()?;
    let binary = fork::build(ws)?;
    let wasi_sysroot = wasi_std::build(ws)?;
    let sysroot = sysroot()?;
    let dir = ws.fork().join("toolchain").join(TOOLCHAIN);
    fs::create_dir_all(dir.join("bin"))
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let dir = dir
        .canonicalize()
        .context("failed to find the toolchain directory")?;
    if sysroot.starts_with(&dir) {
        bail!(
            "the active toolchain is `{TOOLCHAIN}` itself; run `cargo xtask install` with another"
        );
    }
    populate(&dir, &sysroot, &binary, &wasi_sysroot)
        .with_context(|| format!("failed to populate `{}`", dir.display()))?;
    link(&dir)?;
    let cargo_bin = cargo_home()?.join("bin");
    fs::create_dir_all(&cargo_bin)
        .with_context(|| format!("failed to create `{}`", cargo_bin.display()))?;
    util::copy_binary(
        &binary.with_file_name(fork::SUBCOMMAND),
        &cargo_bin,
        fork::SUBCOMMAND,
    )?;

    let version = output(Command::new("rustup").args(["run", TOOLCHAIN, "cargo", "-V"]))?;
    let version = version.trim();
    if !version.contains("build-sandbox fork") {
        bail!("`cargo +{TOOLCHAIN} -V` printed `{version}`, which is not the fork");
    }
    status("Installed", format_args!("`cargo +{TOOLCHAIN}`: {version}"));
    let subcommand = cargo_bin.join(fork::SUBCOMMAND);
    status(
        "Installed",
        format_args!("`cargo build-sandbox`: `{}`", subcommand.display()),
    );
    Ok(())
}

/// Adds the missing `TARGETS`, and `rust-src` (the sources of the patched `wasm32-wasip2` std),
/// to the active toolchain.
fn add_targets() -> Result<()> {
    // The rustup proxy that runs `cargo xtask` says which toolchain it chose.
    let toolchain = match std::env::var("RUSTUP_TOOLCHAIN") {
        Ok(toolchain) => toolchain,
        Err(_) => {
            let active = output(Command::new("rustup").args(["show", "active-toolchain"]))?;
            active
                .split_whitespace()
                .next()
                .context("rustup shows no active toolchain")?
                .to_owned()
        }
    };
    let installed = output(Command::new("rustup").args([
        "target",
        "list",
        "--installed",
        "--toolchain",
        &toolchain,
    ]))?;
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &toolchain,
    ]))?;
    if !components.lines().any(|line| line.trim() == "rust-src") {
        status(
            "Adding",
            format_args!("component `rust-src` to the toolchain `{toolchain}`"),
        );
        run(Command::new("rustup").args([
            "component",
            "add",
            "--toolchain",
            &toolchain,
            "rust-src",
        ]))
        .context("failed to add the component `rust-src`")?;
    }
    for target in TARGETS {
        if !installed.lines().any(|line| line.trim() == *target) {
            status(
                "Adding",
                format_args!("target `{target}` to the toolchain `{toolchain}`"),
            );
            run(Command::new("rustup").args(["target", "add", "--toolchain", &toolchain, target]))
                .with_context(|| format!("failed to add the target `{target}`"))?;
        }
    }
    Ok(())
}

/// `$CARGO_HOME`, by default `~/.cargo`.
fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither `CARGO_HOME` nor `HOME` is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

fn sysroot() -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = output(Command::new(rustc).args(["--print", "sysroot"]))?;
    PathBuf::from(sysroot.trim())
        .canonicalize()
        .context("failed to find the sysroot of the active toolchain")
}

/// Makes `dir` the active toolchain with `binary` as its `cargo`, and the helper built next to
/// `binary` next to it, where the fork's `native` runner looks for it, and a copy of
/// `wasi_sysroot` at [`WASI_SYSROOT`].
fn populate(dir: &Path, sysroot: &Path, binary: &Path, wasi_sysroot: &Path) -> Result<()> {
    let bin = dir.join("bin");
    util::copy_binary(binary, &bin, "cargo")?;
    util::copy_binary(&binary.with_file_name(fork::HELPER), &bin, fork::HELPER)?;
    link_entries(&sysroot.join("bin"), &bin, &["cargo", fork::HELPER])?;
    let installed = dir.join(WASI_SYSROOT);
    util::remove_dir_all(&installed)?;
    wasi_std::copy_tree(wasi_sysroot, &installed)?;
    let top = WASI_SYSROOT.split('/').next().unwrap_or(WASI_SYSROOT);
    link_entries(sysroot, dir, &["bin", top])
}

/// Links every entry of `from` into `to`, except `keep`, which `to` has of its own, and removes
/// the other entries of `to`.
fn link_entries(from: &Path, to: &Path, keep: &[&str]) -> Result<()> {
    let mut names: BTreeSet<OsString> = keep.iter().map(OsString::from).collect();
    for entry in
        fs::read_dir(from).with_context(|| format!("failed to read `{}`", from.display()))?
    {
        let name = entry?.file_name();
        if names.contains(&name) {
            continue;
        }
        let (original, link) = (from.join(&name), to.join(&name));
        if fs::read_link(&link).ok().as_ref() != Some(&original) {
            remove(&link)?;
            symlink(&original, &link)
                .with_context(|| format!("failed to link `{}`", link.display()))?;
        }
        names.insert(name);
    }
    for entry in fs::read_dir(to).with_context(|| format!("failed to read `{}`", to.display()))? {
        let entry = entry?;
        if !names.contains(&entry.file_name()) {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => util::remove_dir_all(path),
        Ok(_) => {
            fs::remove_file(path).with_context(|| format!("failed to remove `{}`", path.display()))
        }
        Err(_) => Ok(()),
    }
}

/// Registers `dir` as the toolchain `TOOLCHAIN`, unless it already is.
fn link(dir: &Path) -> Result<()> {
    let list = output(Command::new("rustup").args(["toolchain", "list", "--verbose"]))?;
    let linked = list.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == TOOLCHAIN).then(|| words.last().map(PathBuf::from))?
    });
    if linked.and_then(|path| path.canonicalize().ok()).as_deref() == Some(dir) {
        return Ok(());
    }
    status(
        "Linking",
        format_args!("toolchain `{TOOLCHAIN}` to `{}`", dir.display()),
    );
    run(Command::new("rustup")
        .args(["toolchain", "link", TOOLCHAIN])
        .arg(dir))
    .with_context(|| format!("failed to link the toolchain `{TOOLCHAIN}`"))
}
