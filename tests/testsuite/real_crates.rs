//! Popular crates from crates.io build in the sandbox exactly as without it.
//!
//! The project depends on real crates whose build scripts probe `rustc`, compile
//! C with `cc`, or ask `pkg-config`. It is built once with the `noop` runner and
//! once with the runner under test (granting presets only); every build script's
//! directives (`output`) and `OUT_DIR` contents must be identical.
//!
//! The crates come from crates.io through a Cargo home shared by these tests,
//! so that they are downloaded once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cargo_test_support::{Project, project};

use crate::utils::ProjectExt;

/// A Cargo home that outlives a single test, for the crates.io downloads.
fn shared_cargo_home() -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real-crates-cargo-home");
    fs::create_dir_all(&home).unwrap();
    home
}

/// Everything the build scripts of a build produced: per package directory
/// under `target/debug/build`, the `cargo:` directives and each `OUT_DIR`
/// file's bytes.
fn script_results(p: &Project) -> BTreeMap<String, Vec<u8>> {
    let mut results = BTreeMap::new();
    let build_dir = p.root().join("target/debug/build");
    for entry in fs::read_dir(&build_dir).unwrap().flatten() {
        let run_dir = entry.path();
        let output = run_dir.join("output");
        if !output.exists() {
            continue; // a build-script compilation directory, not a run
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // The directives; other lines may differ by design (a script that logs
        // its environment sees less of it in a sandbox).
        let directives: Vec<u8> = fs::read_to_string(&output)
            .unwrap()
            .lines()
            .filter(|line| line.starts_with("cargo:"))
            .flat_map(|line| [line.as_bytes(), b"\n"].concat())
            .collect();
        results.insert(format!("{name}/directives"), directives);
        collect_files(&run_dir.join("out"), &format!("{name}/out"), &mut results);
    }
    results
}

fn collect_files(dir: &Path, prefix: &str, into: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let key = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if path.is_dir() {
            collect_files(&path, &key, into);
        } else {
            into.insert(key, fs::read(&path).unwrap());
        }
    }
}

fn assert_same_results(noop: &BTreeMap<String, Vec<u8>>, sandboxed: &BTreeMap<String, Vec<u8>>) {
    let names = |r: &BTreeMap<String, Vec<u8>>| r.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(noop),
        names(sandboxed),
        "the build scripts produced different files"
    );
    for (name, bytes) in noop {
        assert!(
            &sandboxed[name] == bytes,
            "`{name}` differs:\n--- noop\n{}\n--- sandboxed\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&sandboxed[name])
        );
    }
}

/// What build scripts produced, by file: see [`script_results`].
type ScriptResults = BTreeMap<String, Vec<u8>>;

/// Builds `p` with `noop`, then from clean with `runner`; both must succeed.
/// Returns the [`results_by_package`] of each.
fn build_with_noop_and(p: &Project, runner: &str) -> (ScriptResults, ScriptResults) {
    let home = shared_cargo_home();
    p.cargo_sandboxed(Some("noop"), "build")
        .env("CARGO_HOME", &home)
        .run();
    let noop = results_by_package(p);
    p.cargo("clean").env("CARGO_HOME", &home).run();
    p.cargo_sandboxed(Some(runner), "build")
        .env("CARGO_HOME", &home)
        .run();
    (noop, results_by_package(p))
}

/// Builds `p` with `noop` and with `runner`; both must succeed with equal results.
fn build_like_noop(p: &Project, runner: &str) {
    let (noop, sandboxed) = build_with_noop_and(p, runner);
    assert!(!noop.is_empty());
    assert_same_results(&noop, &sandboxed);
}

fn popular_crates(runner: &str) {
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "consumer"
            version = "0.1.0"
            edition = "2021"

            [dependencies]
            anyhow = "=1.0.102"
            libc = "=0.2.186"
            num-traits = "=0.2.19"
            proc-macro2 = "=1.0.106"
            serde = { version = "=1.0.228", features = ["derive"] }
            "#,
        )
        .file("src/lib.rs", "")
        .build();

    build_like_noop(&p, runner);
}

fn c_and_system_libraries(runner: &str) {
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "consumer"
            version = "0.1.0"
            edition = "2021"

            [dependencies]
            libz-sys = "=1.1.28"
            openssl-sys = "=0.9.114"
            ring = "=0.17.14"
            "#,
        )
        .file("src/lib.rs", "")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.allow.ring]
            presets = ["cc"]
            [build-sandbox.allow.libz-sys]
            presets = ["pkg-config", "cc"]
            [build-sandbox.allow.openssl-sys]
            presets = ["pkg-config", "cc"]
            "#,
        )
        .build();

    build_like_noop(&p, runner);
}

mod native {
    use cargo_test_support::prelude::*;

    #[cargo_test]
    fn popular_crates() {
        super::popular_crates("native");
    }

    #[cargo_test]
    fn c_and_system_libraries() {
        super::c_and_system_libraries("native");
    }
}

/// [`script_results`] keyed by package name instead of build directory.
fn results_by_package(p: &Project) -> BTreeMap<String, Vec<u8>> {
    script_results(p)
        .into_iter()
        .map(|(key, bytes)| {
            let (dir, rest) = key.split_once('/').unwrap();
            let package = dir.rsplit_once('-').map_or(dir, |(package, _hash)| package);
            (format!("{package}/{rest}"), bytes)
        })
        .collect()
}

/// Code-generating and cfg-only build scripts build under `wasmtime`. The
/// pure ones (`typenum`'s code generation, `crossbeam-utils`'s target cfgs)
/// produce exactly what they produce natively; those that probe `rustc`
/// (`serde`, `thiserror`) cannot spawn it under WASI and fall back to their
/// defaults, which these versions build with (`design/wasmtime-runner.md`).
fn codegen_crates(runner: &str) {
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "consumer"
            version = "0.1.0"
            edition = "2021"

            [dependencies]
            crossbeam-utils = "=0.8.21"
            serde = { version = "=1.0.228", features = ["derive"] }
            thiserror = "=2.0.18"
            typenum = "=1.20.1"
            "#,
        )
        .file("src/lib.rs", "")
        .build();
    let (noop, sandboxed) = build_with_noop_and(&p, runner);
    let pure = |results: &ScriptResults| -> ScriptResults {
        results
            .iter()
            .filter(|(key, _)| key.starts_with("typenum/") || key.starts_with("crossbeam-utils/"))
            .map(|(key, bytes)| (key.clone(), bytes.clone()))
            .collect()
    };
    assert!(!pure(&noop).is_empty());
    assert_same_results(&pure(&noop), &pure(&sandboxed));
}

mod wasmtime {
    use cargo_test_support::prelude::*;

    #[cargo_test]
    fn codegen_crates() {
        super::codegen_crates("wasmtime");
    }
}
