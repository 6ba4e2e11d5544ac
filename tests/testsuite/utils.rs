//! Helpers shared by the tests: running the fork and stock Cargo.

use std::fs;
use std::path::{Path, PathBuf};

use cargo_test_support::prelude::*;
use cargo_test_support::{Execs, Project, RawOutput};

/// The forked Cargo under test.
pub fn fork_cargo() -> PathBuf {
    match std::env::var_os("BUILD_SANDBOX_FORK_CARGO") {
        Some(path) => PathBuf::from(path),
        None => {
            panic!("`BUILD_SANDBOX_FORK_CARGO` is not set; run the suite with `cargo xtask test`")
        }
    }
}

/// The stock Cargo that runs this test suite.
pub fn stock_cargo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO").expect("`cargo test` sets `CARGO`"))
}

/// Runs Cargo against a [`Project`], as Cargo's own test suite does with `p.cargo(..)`.
pub trait ProjectExt {
    /// The fork, with `args` split as a command line.
    fn cargo(&self, args: &str) -> Execs;
    /// The fork with `-Zsandboxed-build-scripts[=runner]` and nightly features on.
    fn cargo_sandboxed(&self, runner: Option<&str>, args: &str) -> Execs;
    /// The machine's stock Cargo, with `args` split as a command line.
    fn stock_cargo(&self, args: &str) -> Execs;
}

/// `cargo build-sandbox`, built next to the fork by `cargo xtask build-fork`.
const SUBCOMMAND: &str = "cargo-build-sandbox";

impl ProjectExt for Project {
    fn cargo(&self, args: &str) -> Execs {
        // Installed where `cargo xtask install` puts it: the test's `$CARGO_HOME/bin`.
        let bin = cargo_test_support::paths::cargo_home().join("bin");
        if !bin.join(SUBCOMMAND).exists() {
            fs::create_dir_all(&bin).unwrap();
            let built = fork_cargo().with_file_name(SUBCOMMAND);
            std::os::unix::fs::symlink(built, bin.join(SUBCOMMAND)).unwrap();
        }
        let mut execs = self.process(fork_cargo());
        execs.arg_line(args);
        execs
    }

    fn cargo_sandboxed(&self, runner: Option<&str>, args: &str) -> Execs {
        let mut execs = self.cargo(args);
        match runner {
            Some(runner) => execs.arg(format!("-Zsandboxed-build-scripts={runner}")),
            None => execs.arg("-Zsandboxed-build-scripts"),
        };
        execs.masquerade_as_nightly_cargo(&["sandboxed-build-scripts"]);
        execs
    }

    fn stock_cargo(&self, args: &str) -> Execs {
        let mut execs = self.process(stock_cargo());
        execs.arg_line(args);
        execs
    }
}

/// A package whose build script generates code, emits a cfg and a warning.
pub fn codegen_project(extra_manifest: &str) -> cargo_test_support::ProjectBuilder {
    cargo_test_support::project()
        .file(
            "Cargo.toml",
            &format!(
                r#"
                [package]
                name = "foo"
                version = "0.1.0"
                edition = "2021"
                {extra_manifest}
                "#
            ),
        )
        .file(
            "build.rs",
            r#"
            fn main() {
                let out_dir = std::env::var("OUT_DIR").unwrap();
                std::fs::write(
                    format!("{out_dir}/generated.rs"),
                    "pub fn answer() -> u32 { 42 }",
                )
                .unwrap();
                println!("cargo::rustc-check-cfg=cfg(generated)");
                println!("cargo::rustc-cfg=generated");
                println!("cargo::rerun-if-changed=build.rs");
            }
            "#,
        )
        .file(
            "src/main.rs",
            r#"
            include!(concat!(env!("OUT_DIR"), "/generated.rs"));
            fn main() {
                assert!(cfg!(generated));
                println!("answer: {}", answer());
            }
            "#,
        )
}

/// Writes `canary` to `path`, creating its directory.
pub fn write_canary(path: &Path, canary: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, canary).unwrap();
}

/// Fails the test if `canary` appears in Cargo's output or in a file under
/// `target/`, other than the compiled build scripts (which hold the attack's
/// own strings) and the `wasmtime` runner's compiled code of them.
pub fn assert_canary_absent(p: &Project, output: &RawOutput, canary: &str) {
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(canary),
            "the canary leaked into Cargo's output"
        );
    }
    let mut pending = vec![p.root().join("target")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_symlink() {
                continue;
            } else if path.is_dir() {
                pending.push(path);
            } else if name.starts_with("build_script_build")
                || name.starts_with("build-script-build")
                || name.ends_with(".cwasm")
            {
                continue;
            } else if let Ok(bytes) = fs::read(&path) {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(canary),
                    "the canary leaked into `{}`",
                    path.display()
                );
            }
        }
    }
}

/// Helpers compiled into every canary script: `report` prints an attempt's
/// outcome as a `cargo::warning` (`<attack>: succeeded: <data>` or
/// `<attack>: blocked: <error kind>`), `control` does the script's legitimate
/// work (code generation into `OUT_DIR`).
const SCRIPT_PRELUDE: &str = r#"
#![allow(dead_code, unused_imports)]
use std::io::{Read, Write};

fn report(attack: &str, result: std::io::Result<String>) {
    match result {
        Ok(data) => println!("cargo::warning={attack}: succeeded: {}", data.trim()),
        Err(e) => println!("cargo::warning={attack}: blocked: {:?}", e.kind()),
    }
}

fn out_dir() -> std::path::PathBuf {
    std::env::var_os("OUT_DIR").unwrap().into()
}

/// The legitimate part of every script: generate code into OUT_DIR.
fn control() {
    std::fs::write(out_dir().join("generated.rs"), "pub const OK: bool = true;").unwrap();
}
"#;

/// The package `victim`, whose build script runs `body` after the shared
/// helpers and `items`, then its control; `extra` is appended to its manifest.
pub fn canary_project(items: &str, body: &str, extra: &str) -> Project {
    cargo_test_support::project()
        .file(
            "Cargo.toml",
            &format!(
                r#"
                [package]
                name = "victim"
                version = "0.1.0"
                edition = "2021"
                {extra}
                "#
            ),
        )
        .file(
            "build.rs",
            &format!("{SCRIPT_PRELUDE}{items}\nfn main() {{\n{body}\ncontrol();\n}}"),
        )
        .file(
            "src/lib.rs",
            r#"include!(concat!(env!("OUT_DIR"), "/generated.rs"));"#,
        )
        .build()
}

/// In a module per runner: one test for each named function of the parent
/// module, which takes the runner's name.
///
/// Each is what `#[cargo_test]` makes of a function, with its own scratch
/// directory: `#[cargo_test]` names it after the file and the function, which
/// would be the same for every runner's copy, so that two runners' copies
/// running at once would delete each other's files.
macro_rules! per_runner {
    ($runner:literal => $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let _test_guard = cargo_test_support::paths::init_root(
                    env!("CARGO_TARGET_TMPDIR"),
                    cargo_test_support::paths::test_dir(
                        std::file!(),
                        concat!($runner, "/", stringify!($test)),
                    ),
                );
                super::$test($runner);
            }
        )*
    };
}
pub(crate) use per_runner;
