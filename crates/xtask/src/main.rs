//! Maintenance tasks of `build-sandbox`, run as `cargo xtask <command>`.
//!
//! The Cargo fork is kept as a patch series against the published `cargo` crate (see
//! `fork/README.md`). The commands build on each other:
//!
//! * `fork` materializes the series into the git working tree `fork/work/cargo`,
//!   `fork --export` writes the commits made there back into `fork/patches`, and
//!   `fork --check` checks that the series is small and bisectable;
//! * `build-fork` materializes the tree and builds its `cargo` binary and the `native` runner's
//!   helper into `target/fork`;
//! * `install` builds the fork and links it as the rustup toolchain `nightly-fork`;
//! * `test` builds the fork and runs the workspace's tests against it;
//! * `bench` builds the fork and measures it (`benches/overhead.rs`);
//! * `self-host` checks the fork's own tree with every build script sandboxed;
//! * `report` measures the compatibility corpus under each runner into `design/rfc.md`;
//! * `security` runs the canary tests into the security table of `design/rfc.md`;
//! * `oracle` runs Cargo's own test suite on unpatched Cargo and on the fork into
//!   `design/rfc.md`, and with `--runner` the fork's build-script tests with a runner forced on;
//! * `wasi-std` materializes the patched `wasm32-wasip2` std of build scripts from the
//!   toolchain's `rust-src` and `fork/std/patches` into `fork/work/std` and builds it into
//!   `target/wasi-sysroot`; `wasi-std --export` writes the commits made there back;
//! * `learn-check` runs `cargo build-sandbox learn` on the real-crates tests' crates and checks
//!   that every grant it learns is needed.

mod fork;
mod install;
mod learn_check;
mod oracle;
mod report;
mod security;
mod self_host;
mod test;
mod util;
mod wasi_std;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "Maintenance tasks of build-sandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Materialize `fork/work/cargo` from the pinned upstream crates and `fork/patches`
    Fork {
        /// Write the commits of `fork/work/cargo` back into `fork/patches`
        #[arg(long, conflicts_with_all = ["force", "check"])]
        export: bool,
        /// Discard changes in `fork/work/cargo` that are not in `fork/patches`
        #[arg(long, conflicts_with = "check")]
        force: bool,
        /// Check that `fork/patches` is a reviewable stack: within its size targets, and every
        /// prefix of the series applies and passes `cargo check` (in `fork/work/check`)
        #[arg(long)]
        check: bool,
    },
    /// Materialize the fork and build its `cargo` and `build-sandbox-helper` into `target/fork`
    BuildFork,
    /// Materialize `fork/work/std` from the toolchain's `rust-src` and `fork/std/patches`, and
    /// build the `wasm32-wasip2` sysroot of sandboxed build scripts into `target/wasi-sysroot`
    WasiStd {
        /// Write the commits of `fork/work/std` back into `fork/std/patches`
        #[arg(long)]
        export: bool,
    },
    /// Build the fork and install it as the rustup toolchain `nightly-fork`
    Install,
    /// Build the fork and run `cargo test --workspace` against it
    Test {
        /// Extra arguments for `cargo test`
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Check the fork's own tree with `-Zsandboxed-build-scripts=native`
    SelfHost,
    /// Measure the compatibility corpus `benches/corpus` under each runner into `design/rfc.md`
    Report {
        /// Only the crates marked `quick = true`
        #[arg(long)]
        quick: bool,
        /// The runners to measure (`noop` is always measured first, as the baseline)
        #[arg(long = "runner", value_name = "RUNNER", default_values = ["noop", "native", "wasmtime"])]
        runners: Vec<String>,
    },
    /// Run the canary tests into the security table of `design/rfc.md`
    Security,
    /// Run Cargo's own test suite on unpatched Cargo and on the fork (flag off) into
    /// `design/rfc.md`
    Oracle {
        /// Run the fork's build-script tests with this runner forced on instead
        #[arg(long)]
        runner: Option<String>,
        /// Test-name filters for the suite
        #[arg(last = true)]
        filters: Vec<String>,
    },
    /// Time `cargo build-sandbox learn` on the real-crates tests' crates and check each grant
    LearnCheck {
        /// The runner to learn with
        #[arg(long, default_value = "native")]
        runner: String,
    },
    /// Build the fork and run the benchmarks in `benches/` against it
    Bench {
        /// Extra arguments for `cargo bench`
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ws = Workspace::new();
    let result = match cli.command {
        Command::Fork { export: true, .. } => fork::export(&ws),
        Command::Fork { check: true, .. } => fork::check(&ws),
        Command::Fork { force, .. } => fork::materialize(&ws, fork::Mode::Strict { force }),
        Command::BuildFork => fork::build(&ws).map(|_| ()),
        Command::WasiStd { export: true } => wasi_std::export(&ws),
        Command::WasiStd { export: false } => wasi_std::build(&ws).map(|_| ()),
        Command::Install => install::install(&ws),
        Command::SelfHost => self_host::self_host(&ws),
        Command::Security => security::security(&ws),
        Command::Oracle {
            runner: Some(runner),
            filters,
        } => oracle::with_runner(&ws, &runner, &filters),
        Command::Oracle {
            runner: None,
            filters,
        } => oracle::oracle(&ws, &filters),
        Command::LearnCheck { runner } => learn_check::learn_check(&ws, &runner),
        Command::Report { quick, runners } => report::report(&ws, quick, &runners),
        Command::Test { args } => return test::test(&ws, &args).unwrap_or_else(report),
        Command::Bench { args } => return test::bench(&ws, &args).unwrap_or_else(report),
    };
    result.map(|()| ExitCode::SUCCESS).unwrap_or_else(report)
}

/// Prints an error the way Cargo does: the error, then each cause under `Caused by:`.
fn report(err: anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("\nCaused by:");
        for line in cause.to_string().lines() {
            eprintln!("  {line}");
        }
    }
    ExitCode::FAILURE
}

/// The paths of the repository that the tasks work on.
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Workspace {
            root: manifest_dir
                .join("../..")
                .canonicalize()
                .unwrap_or(manifest_dir.join("../..")),
        }
    }

    /// `fork/`, the committed description of the fork.
    pub fn fork(&self) -> PathBuf {
        self.root.join("fork")
    }

    /// `fork/patches/`, the patch series.
    pub fn patches(&self) -> PathBuf {
        self.fork().join("patches")
    }

    /// `fork/work/cargo`, the materialized git working tree.
    pub fn tree(&self) -> PathBuf {
        self.fork().join("work/cargo")
    }

    /// `target/fork`, the target directory of the fork's build.
    pub fn fork_target(&self) -> PathBuf {
        self.root.join("target/fork")
    }
}
