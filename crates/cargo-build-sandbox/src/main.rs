//! `cargo build-sandbox`: the consumer's side of `-Zsandboxed-build-scripts`.
//!
//! Cargo runs this binary for `cargo build-sandbox <command>` (an external
//! subcommand, found on `PATH` or in `$CARGO_HOME/bin`) with `CARGO` set to
//! itself. It learns everything from that Cargo, never by reading Cargo's
//! files its own way:
//!
//! 1. [`workspace::Workspace::load`] runs `cargo metadata` for the packages of
//!    the resolve, their build scripts and their `[package.build-sandbox]`
//!    requests, and `cargo config get --show-origin` for the consumer's
//!    `[build-sandbox]` table with the file each value comes from, so that
//!    relative paths resolve as they do in a build.
//! 2. [`commands`] answers with the `build-sandbox` crate's rules:
//!    `report` shows what each script declares, is approved and lacks;
//!    `approve` and `allow` write grants into the workspace's
//!    `.cargo/config.toml`, keeping the rest of the file.
//! 3. [`learn`] builds the workspace sandboxed, as many times as it takes,
//!    and writes the grants its build scripts were refused.

mod commands;
mod learn;
mod workspace;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cargo's `cargo-<name>` convention: the first argument is the subcommand's name.
#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::plain())]
enum Cli {
    #[command(subcommand, name = "build-sandbox")]
    /// Inspect and grant what sandboxed build scripts may do (unstable)
    BuildSandbox(Command),
}

#[derive(Subcommand)]
pub enum Command {
    /// List every package with a build script: runner, requested, granted, missing
    Report {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        common: Common,
    },
    /// Approve what packages declare in `[package.build-sandbox]`, in `.cargo/config.toml`
    Approve {
        /// A package with a build script: `name` or `name@version`
        #[arg(value_name = "PACKAGE", required_unless_present = "all")]
        packages: Vec<String>,
        /// Approve every package whose declaration is not approved
        #[arg(long)]
        all: bool,
        /// Print the grants instead of writing them
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Grant capabilities to a package's build script in `.cargo/config.toml`
    Allow {
        /// The package: `name`, `name@version-req` or `*`
        #[arg(value_name = "PACKAGE")]
        package: String,
        #[command(flatten)]
        grant: GrantArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Build the workspace sandboxed and grant each build script what it was refused
    Learn {
        /// The sandbox to learn with (default: the one `-Zsandboxed-build-scripts` chooses)
        #[arg(long, value_enum)]
        runner: Option<LearnRunner>,
        /// Print the grants instead of writing them
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// The runners that record what they refuse.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LearnRunner {
    Native,
    Wasmtime,
}

impl LearnRunner {
    pub fn name(self) -> &'static str {
        match self {
            LearnRunner::Native => "native",
            LearnRunner::Wasmtime => "wasmtime",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Options every command takes.
#[derive(Args)]
pub struct Common {
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Unstable (nightly-only) flags: `sandboxed-build-scripts[=RUNNER]` is required
    #[arg(short = 'Z', value_name = "FLAG")]
    pub unstable: Vec<String>,
}

/// What `allow` grants: the keys of a `[build-sandbox.allow.<package>]` table.
#[derive(Args)]
pub struct GrantArgs {
    /// Allow reading PATH
    #[arg(long, value_name = "PATH")]
    pub read: Vec<String>,
    /// Allow reading and writing PATH
    #[arg(long, value_name = "PATH")]
    pub write: Vec<String>,
    /// Pass the environment variable NAME (`PREFIX_*` for a prefix)
    #[arg(long, value_name = "NAME")]
    pub env: Vec<String>,
    /// Allow running PROGRAM
    #[arg(long, value_name = "PROGRAM")]
    pub run: Vec<String>,
    /// Allow connecting to HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    pub net: Vec<String>,
    /// Allow what PRESET needs (`cc`, `pkg-config`, `rustc-probe`)
    #[arg(long = "preset", value_name = "PRESET")]
    pub presets: Vec<String>,
    /// Allow reading the real clocks
    #[arg(long)]
    pub clock: bool,
    /// Allow real randomness
    #[arg(long)]
    pub random: bool,
    /// Allow linker arguments that load code into the linker
    #[arg(long)]
    pub linker_plugins: bool,
}

fn main() -> ExitCode {
    let Cli::BuildSandbox(command) = Cli::parse();
    match commands::run(command) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error}");
            let mut causes = error.chain().skip(1).peekable();
            if causes.peek().is_some() {
                let _ = writeln!(stderr, "\nCaused by:");
            }
            for cause in causes {
                let _ = writeln!(stderr, "  {cause}");
            }
            // Cargo's own status for a failed command.
            ExitCode::from(101)
        }
    }
}
