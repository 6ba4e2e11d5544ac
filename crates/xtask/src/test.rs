//! `cargo xtask test` and `cargo xtask bench`: build the fork, then run the
//! workspace's tests or benchmarks against it.
//!
//! Both find the fork's `cargo` through `BUILD_SANDBOX_FORK_CARGO`; everything
//! else is stock `cargo test --workspace` or `cargo bench --bench overhead`,
//! with the extra arguments passed through. The benchmarks also get Cargo built
//! from the same sources without the patches (`BENCH_UNPATCHED_CARGO`).

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::Workspace;
use crate::fork;
use crate::util;

pub fn test(ws: &Workspace, args: &[String]) -> Result<ExitCode> {
    run_against_fork(ws, &["test", "--workspace"], args, Vec::new())
}

pub fn bench(ws: &Workspace, args: &[String]) -> Result<ExitCode> {
    // Built first: it shares `target/fork`, and the fork's binary is built last.
    let unpatched = fork::build_pristine(ws)?;
    run_against_fork(
        ws,
        &["bench", "--package", "build-sandbox", "--bench", "overhead"],
        args,
        vec![("BENCH_UNPATCHED_CARGO", unpatched.into_os_string())],
    )
}

fn run_against_fork(
    ws: &Workspace,
    command: &[&str],
    args: &[String],
    env: Vec<(&str, OsString)>,
) -> Result<ExitCode> {
    let binary = fork::build(ws)?;
    let status = util::cargo()
        .current_dir(&ws.root)
        .args(command)
        .args(args)
        .env("BUILD_SANDBOX_FORK_CARGO", &binary)
        .envs(env)
        .status()
        .with_context(|| format!("failed to run `cargo {}`", command[0]))?;
    // Cargo has said what failed.
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
