//! `cargo xtask self-host`: the fork checks its own source tree with every build
//! script sandboxed by the `native` runner.
//!
//! The fork tree has some 300 dependencies, among them C libraries built by
//! their build scripts (`curl-sys`, `libgit2-sys`, `libssh2-sys`, ...). The
//! grants they need are checked in as `fork/sandbox-grants.toml`; a build script
//! that needs more fails the run. `cargo check` runs every build script as a
//! build does, in a fraction of the time.

use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::Workspace;
use crate::fork;

pub fn self_host(ws: &Workspace) -> Result<()> {
    let binary = fork::build(ws)?;
    let target_dir = ws.root.join("target/self-host");
    let _ = std::fs::remove_dir_all(&target_dir);
    let started = Instant::now();
    let status = std::process::Command::new(&binary)
        .current_dir(ws.tree())
        .args(["check", "--config"])
        .arg(ws.fork().join("sandbox-grants.toml"))
        .arg("-Zsandboxed-build-scripts=native")
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .with_context(|| format!("failed to run `{}`", binary.display()))?;
    if !status.success() {
        bail!("the fork failed to check itself with sandboxed build scripts");
    }
    eprintln!(
        "{:>12} the fork with every build script under `native` in {:.0?}",
        "Checked",
        started.elapsed()
    );
    Ok(())
}
