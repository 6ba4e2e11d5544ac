//! Helpers shared by the tests: running the fork and stock Cargo.

use std::path::PathBuf;

use cargo_test_support::prelude::*;
use cargo_test_support::{Execs, Project};

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

impl ProjectExt for Project {
    fn cargo(&self, args: &str) -> Execs {
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
