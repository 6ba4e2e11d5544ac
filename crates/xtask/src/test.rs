//! `cargo xtask test`: builds the fork and runs the workspace's tests against it.
//!
//! The tests find the fork's `cargo` through `BUILD_SANDBOX_FORK_CARGO`; everything else is
//! stock `cargo test --workspace`, with the extra arguments passed through.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::Workspace;
use crate::fork;
use crate::util;

pub fn test(ws: &Workspace, args: &[String]) -> Result<ExitCode> {
    let binary = fork::build(ws)?;
    let status = util::cargo()
        .current_dir(&ws.root)
        .args(["test", "--workspace"])
        .args(args)
        .env("BUILD_SANDBOX_FORK_CARGO", &binary)
        .status()
        .context("failed to run `cargo test`")?;
    // `cargo test` has said what failed.
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
