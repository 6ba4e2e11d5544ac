//! What the sandbox costs, as ratios measured in one run.
//!
//! Run with `cargo xtask bench` (it builds the fork and sets
//! `BUILD_SANDBOX_FORK_CARGO`). Three measurements:
//!
//! 1. **Cold builds**: a fresh target directory and a package depending on
//!    popular crates with build scripts, built in turn by stock Cargo, Cargo
//!    built from the fork's sources without the patches (`BENCH_UNPATCHED_CARGO`,
//!    when set), the fork without `-Zsandboxed-build-scripts`, and the fork
//!    with the `noop` and `native` runners; and a package depending on
//!    code-generating crates (`typenum`, `serde`, ...) under `noop`, `native`
//!    and `wasmtime` with a cold and a warm compiled-code cache.
//! 2. **No-op builds** of the same package, everything fresh: Cargo's own
//!    work (resolution, fingerprints) without `rustc`, where a cost of the patch
//!    with the flag off would show most.
//! 3. **Per build-script overhead** of each runner against `noop`: a workspace
//!    of path packages with trivial build scripts; every iteration changes an
//!    environment variable the scripts watch, so all of them rerun (and nothing
//!    else changes), and the difference to `noop` is divided by their number.
//!    `wasmtime` is measured with a warm compiled-code cache and with its cache
//!    emptied before every run.
//!
//! Each configuration is measured `BENCH_RUNS` times (default 5) and the median
//! is reported; the per-script runs go in rounds, every runner once a round,
//! and a runner's cost is the median of its differences to `noop` within a
//! round, so that the machine's drift falls on all runners alike.
//! 4. **Peak memory with an output flood**: a build script that prints
//!    300 MiB of lines, run by stock Cargo and by the fork under `noop` and
//!    `native` after a build that compiled it without flooding; the peak
//!    resident set of Cargo and everything it waited for (`wait4`).
//!
//! `BENCH_ONLY=scripts` runs the third measurement alone, `BENCH_ONLY=flood`
//! the fourth. Runners that are
//! not available on this machine are skipped with the reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Packages with build scripts in the per-script workspace.
const SCRIPTS: usize = 20;

fn main() {
    let fork = PathBuf::from(
        std::env::var_os("BUILD_SANDBOX_FORK_CARGO")
            .expect("`BUILD_SANDBOX_FORK_CARGO` is not set; run `cargo xtask bench`"),
    );
    let stock = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(5);
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    fs::create_dir_all(&work).unwrap();
    // `BENCH_ONLY=scripts` or `=flood` runs one measurement alone.
    let only = std::env::var("BENCH_ONLY").ok();
    if only.is_none() {
        builds(&fork, &stock, runs, &work);
    }
    if only.as_deref().is_none_or(|only| only == "scripts") {
        per_script_overhead(&fork, runs, &work);
    }
    if only.as_deref().is_none_or(|only| only == "flood") {
        flood_memory(&fork, &stock, &work);
    }
}

/// Cold and no-op builds: stock, unpatched and the fork, and the
/// code-generating crates under every runner.
fn builds(fork: &Path, stock: &Path, runs: usize, work: &Path) {
    println!("## Cold build of popular crates (median of {runs})\n");
    let popular = popular_workspace(work);
    // Download and lock once, outside the measurement.
    cargo(stock, &popular, &["fetch"]).status().unwrap();
    let unpatched = std::env::var_os("BENCH_UNPATCHED_CARGO").map(PathBuf::from);
    let mut configurations: Vec<(&str, &Path, Option<&str>)> = vec![
        ("stock Cargo", stock, None),
        ("fork, flag off", fork, None),
        ("fork, `noop`", fork, Some("noop")),
        ("fork, `native`", fork, Some("native")),
    ];
    if let Some(unpatched) = &unpatched {
        configurations.insert(1, ("unpatched `cargo` 0.98.0", unpatched, None));
    }
    let noop_index = configurations
        .iter()
        .position(|(_, _, runner)| *runner == Some("noop"))
        .unwrap();
    let mut times = vec![Vec::new(); configurations.len()];
    for _ in 0..runs {
        // Interleaved, so that drift in the machine's speed hits all alike.
        for ((_, cargo_exe, runner), times) in configurations.iter().zip(&mut times) {
            let _ = fs::remove_dir_all(popular.join("target"));
            let mut command = cargo(cargo_exe, &popular, &["build", "--offline"]);
            if let Some(runner) = runner {
                command.arg(format!("-Zsandboxed-build-scripts={runner}"));
            }
            times.push(time(command));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|times| median(times)).collect();
    // The patch's own cost is the fork against the same sources unpatched.
    let reference = if unpatched.is_some() { 1 } else { 0 };
    println!(
        "| cargo | cold build | against {} | against `noop` |\n| --- | --- | --- | --- |",
        configurations[reference].0
    );
    for ((name, _, _), median) in configurations.iter().zip(&medians) {
        let ratio = |base: Duration| {
            format!(
                "{:+.1} %",
                (median.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0
            )
        };
        println!(
            "| {name} | {:.2} s | {} | {} |",
            median.as_secs_f64(),
            ratio(medians[reference]),
            ratio(medians[noop_index])
        );
    }
    println!();

    // Cargo's own work, without rustc: the same package, everything fresh.
    let no_op_runs = runs * 10;
    println!("## No-op build of the same package (median of {no_op_runs})\n");
    // A target directory per configuration: Cargo versions do not share fingerprints.
    let no_op_build = |index: usize| {
        let (_, cargo_exe, runner) = configurations[index];
        let mut command = cargo(cargo_exe, &popular, &["build", "--offline"]);
        command.env(
            "CARGO_TARGET_DIR",
            work.join(format!("no-op-target-{index}")),
        );
        if let Some(runner) = runner {
            command.arg(format!("-Zsandboxed-build-scripts={runner}"));
        }
        command
    };
    for index in 0..configurations.len() {
        time(no_op_build(index));
    }
    let mut times = vec![Vec::new(); configurations.len()];
    for _ in 0..no_op_runs {
        for (index, times) in times.iter_mut().enumerate() {
            times.push(time(no_op_build(index)));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|times| median(times)).collect();
    println!(
        "| cargo | no-op build | against {} |\n| --- | --- | --- |",
        configurations[reference].0
    );
    for ((name, _, _), median) in configurations.iter().zip(&medians) {
        println!(
            "| {name} | {:.1} ms | {:+.1} % |",
            median.as_secs_f64() * 1000.0,
            (median.as_secs_f64() / medians[reference].as_secs_f64() - 1.0) * 100.0
        );
    }
    println!();

    // `libc`, `proc-macro2` and `anyhow` probe `rustc`, which a WASI script
    // cannot run: the `wasmtime` runner builds code-generating crates instead.
    println!("## Cold build of code-generating crates under `wasmtime` (median of {runs})\n");
    let codegen = codegen_workspace(work);
    cargo(stock, &codegen, &["fetch"]).status().unwrap();
    let codegen_configurations = [
        ("`noop`", "noop", false),
        ("`native`", "native", false),
        ("`wasmtime`, cold cache", "wasmtime", false),
        ("`wasmtime`, warm cache", "wasmtime", true),
    ];
    let mut times = vec![Vec::new(); codegen_configurations.len()];
    for _ in 0..runs {
        for ((_, runner, warm_cache), times) in codegen_configurations.iter().zip(&mut times) {
            // Everything but (for a warm cache) the compiled components goes.
            for entry in fs::read_dir(codegen.join("target"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if !(*warm_cache && entry.file_name() == "build-sandbox") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
            let command = cargo(
                fork,
                &codegen,
                &[
                    "build",
                    "--offline",
                    &format!("-Zsandboxed-build-scripts={runner}"),
                ],
            );
            times.push(time(command));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|times| median(times)).collect();
    println!("| runner | cold build | against `noop` |\n| --- | --- | --- |");
    for ((name, _, _), median) in codegen_configurations.iter().zip(&medians) {
        println!(
            "| {name} | {:.2} s | {:+.1} % |",
            median.as_secs_f64(),
            (median.as_secs_f64() / medians[0].as_secs_f64() - 1.0) * 100.0
        );
    }
    println!();
}

/// The per build-script overhead of each runner against `noop`.
fn per_script_overhead(fork: &Path, runs: usize, work: &Path) {
    println!(
        "## Per build-script overhead against `noop` ({SCRIPTS} scripts rerun, {runs} rounds)\n"
    );
    let scripts = scripts_workspace(work);
    // `wasmtime` twice: with the compiled components of the previous run in
    // its cache (warm), and with the cache emptied before every run (cold:
    // one compile per script).
    let variants = [
        ("noop", false),
        ("native", false),
        ("wasmtime", false),
        ("wasmtime", true),
    ];
    let build = |runner: &str, cold_cache: bool, nonce: usize| {
        if cold_cache {
            let _ = fs::remove_dir_all(scripts.join("target/build-sandbox"));
        }
        let mut command = cargo(
            fork,
            &scripts,
            &[
                "build",
                "--offline",
                &format!("-Zsandboxed-build-scripts={runner}"),
            ],
        );
        command.env("BENCH_NONCE", nonce.to_string());
        command
    };
    // Warm up: build everything once, and find out whether each runner works here.
    let mut skipped = Vec::new();
    for (nonce, &(runner, cold_cache)) in variants.iter().enumerate() {
        let warm = build(runner, cold_cache, nonce)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let reason = (!warm.status.success()).then(|| {
            let stderr = String::from_utf8_lossy(&warm.stderr);
            let line = stderr
                .lines()
                .find(|line| line.trim_start().starts_with("the `") || line.contains("error"))
                .unwrap_or("failed");
            line.trim().to_owned()
        });
        skipped.push(reason);
    }
    // Side by side: every round builds with each runner in turn, so that the
    // machine's drift over time falls on all of them alike; a runner's cost
    // is the median of its differences to `noop` in the same round.
    let mut times = vec![Vec::new(); variants.len()];
    for round in 1..=runs {
        // Round 0's nonces were the warm-up's.
        for (i, &(runner, cold_cache)) in variants.iter().enumerate() {
            if skipped[i].is_none() {
                // A nonce of its own, so that every build reruns every script;
                // a cold build leaves the cache warm for the next round's.
                let nonce = round * variants.len() + i;
                times[i].push(time(build(runner, cold_cache, nonce)));
            }
        }
    }
    println!(
        "| runner | all scripts rerun (median) | per script vs `noop` (median of rounds) | range of rounds |\n| --- | --- | --- | --- |"
    );
    for (i, &(runner, cold_cache)) in variants.iter().enumerate() {
        let label = match cold_cache {
            true => format!("`{runner}`, cold cache"),
            false => format!("`{runner}`"),
        };
        if let Some(reason) = &skipped[i] {
            println!("| {label} | skipped: {reason} | | |");
            continue;
        }
        let total = median(&mut times[i].clone());
        if i == 0 {
            println!("| {label} | {:.3} s | (baseline) | |", total.as_secs_f64());
            continue;
        }
        let mut per_script: Vec<f64> = times[i]
            .iter()
            .zip(&times[0])
            .map(|(run, noop)| (run.as_secs_f64() - noop.as_secs_f64()) * 1000.0 / SCRIPTS as f64)
            .collect();
        per_script.sort_by(f64::total_cmp);
        println!(
            "| {label} | {:.3} s | {:+.2} ms | {:+.2} to {:+.2} ms |",
            total.as_secs_f64(),
            per_script[per_script.len() / 2],
            per_script[0],
            per_script[per_script.len() - 1],
        );
    }
}

/// Cargo's peak memory while a build script prints 300 MiB.
fn flood_memory(fork: &Path, stock: &Path, work: &Path) {
    println!("## Peak memory with a 300 MiB output flood\n");
    println!("| cargo | peak RSS | result |\n| --- | --- | --- |");
    let dir = flood_workspace(work);
    let configurations: [(&str, &Path, Option<&str>); 3] = [
        ("stock", stock, None),
        ("fork, `noop`", fork, Some("noop")),
        ("fork, `native`", fork, Some("native")),
    ];
    for (label, cargo_exe, runner) in configurations {
        let mut args = vec!["build".to_owned(), "--offline".to_owned()];
        args.extend(runner.map(|runner| format!("-Zsandboxed-build-scripts={runner}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = fs::remove_dir_all(dir.join("target"));
        let mut compile = cargo(cargo_exe, &dir, &args);
        compile.env("BENCH_FLOOD", "0");
        time(compile);
        let mut flood = cargo(cargo_exe, &dir, &args);
        let (success, peak) = peak_memory(flood.env("BENCH_FLOOD", "1"));
        let result = match success {
            true => "passed, the whole output kept",
            false => "failed (stopped at its output limit)",
        };
        println!("| {label} | {} MB | {result} |", peak / 1_000_000);
    }
    println!();
}

/// Runs `command`; whether it succeeded, and the peak resident set in bytes
/// of it and of the processes it waited for.
#[expect(
    clippy::zombie_processes,
    reason = "`wait4` reaps it, for its resource usage"
)]
fn peak_memory(command: &mut Command) -> (bool, u64) {
    let child = command.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is valid, and `wait4` fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is ours and not yet waited for; `Child` is not used again.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "`wait4` failed");
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (success, usage.ru_maxrss as u64 * 1024)
}

fn cargo(cargo_exe: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(cargo_exe);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_INCREMENTAL", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn time(mut command: Command) -> Duration {
    let start = Instant::now();
    let status = command.status().unwrap();
    assert!(status.success(), "`{command:?}` failed");
    start.elapsed()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn write(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).unwrap();
    }
}

/// A package depending on popular crates whose build scripts probe `rustc`.
fn popular_workspace(work: &Path) -> PathBuf {
    let dir = work.join("popular");
    write(
        &dir.join("Cargo.toml"),
        r#"[package]
name = "popular"
version = "0.1.0"
edition = "2021"

[dependencies]
anyhow = "=1.0.102"
libc = "=0.2.186"
num-traits = "=0.2.19"
proc-macro2 = "=1.0.106"
serde = { version = "=1.0.228", features = ["derive"] }
serde_json = "1"

[workspace]
"#,
    );
    write(&dir.join("src/lib.rs"), "");
    dir
}

/// A package depending on crates whose build scripts generate code or emit
/// cfgs without running programs, as in `tests/testsuite/real_crates.rs`.
fn codegen_workspace(work: &Path) -> PathBuf {
    let dir = work.join("codegen");
    write(
        &dir.join("Cargo.toml"),
        r#"[package]
name = "codegen"
version = "0.1.0"
edition = "2021"

[dependencies]
crossbeam-utils = "=0.8.21"
serde = { version = "=1.0.228", features = ["derive"] }
thiserror = "=2.0.18"
typenum = "=1.20.1"

[workspace]
"#,
    );
    write(&dir.join("src/lib.rs"), "");
    dir
}

/// A package whose build script prints 300 MiB of lines when `BENCH_FLOOD=1`.
fn flood_workspace(work: &Path) -> PathBuf {
    let dir = work.join("flood");
    write(
        &dir.join("Cargo.toml"),
        "[package]\nname = \"flood\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(
        &dir.join("build.rs"),
        r#"use std::io::Write;
fn main() {
    println!("cargo::rerun-if-env-changed=BENCH_FLOOD");
    if std::env::var("BENCH_FLOOD").as_deref() == Ok("1") {
        let line = format!("{}\n", "x".repeat(1023));
        let mut out = std::io::stdout().lock();
        for _ in 0..300 * 1024 {
            out.write_all(line.as_bytes()).unwrap();
        }
    }
}
"#,
    );
    write(&dir.join("src/lib.rs"), "");
    // Sandboxed scripts see only the environment they are granted.
    write(
        &dir.join(".cargo/config.toml"),
        "[build-sandbox.allow.flood]\nenv = [\"BENCH_FLOOD\"]\n",
    );
    dir
}

/// `SCRIPTS` path packages whose build scripts do nearly nothing.
fn scripts_workspace(work: &Path) -> PathBuf {
    let dir = work.join("scripts");
    let members: Vec<String> = (0..SCRIPTS).map(|i| format!("\"s{i}\"")).collect();
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    );
    for i in 0..SCRIPTS {
        let member = dir.join(format!("s{i}"));
        write(
            &member.join("Cargo.toml"),
            &format!("[package]\nname = \"s{i}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        );
        write(
            &member.join("build.rs"),
            r#"fn main() {
    println!("cargo::rerun-if-env-changed=BENCH_NONCE");
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/generated.rs"), "pub const N: u32 = 1;").unwrap();
}
"#,
        );
        write(
            &member.join("src/lib.rs"),
            r#"include!(concat!(env!("OUT_DIR"), "/generated.rs"));"#,
        );
    }
    dir
}
