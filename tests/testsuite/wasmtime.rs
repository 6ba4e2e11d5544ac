//! The `wasmtime` runner: build scripts compiled to `wasm32-wasip2`.
//!
//! Canary tests in the style of `attacks.rs`: a baseline run under `noop`
//! proves the attack works without a sandbox, the run under `wasmtime`
//! proves it fails and that the canary is nowhere in Cargo's output or the
//! target directory, and the script's legitimate work (code generation into
//! `OUT_DIR`) still succeeds. The scripts differ from `attacks.rs`'s because
//! WASI has no `fork`, unix sockets or `std::os::unix`.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use cargo_test_support::prelude::*;
use cargo_test_support::{Project, paths, project, str};

use crate::utils::{ProjectExt, assert_canary_absent, codegen_project, write_canary};

/// A package whose build script runs `body` with `extra` appended to its
/// manifest; see [`crate::utils::canary_project`].
fn script_project(body: &str, extra: &str) -> Project {
    crate::utils::canary_project("", body, extra)
}

/// The files a build script left in its `OUT_DIR`s, by name.
fn out_dir_files(p: &Project) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for kind in ["target/debug/build"] {
        let Ok(entries) = fs::read_dir(p.root().join(kind)) else {
            continue;
        };
        for entry in entries.flatten() {
            let out = entry.path().join("out");
            let Ok(outs) = fs::read_dir(&out) else {
                continue;
            };
            for file in outs.flatten() {
                files.push((
                    file.file_name().to_string_lossy().into_owned(),
                    fs::read(file.path()).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[cargo_test]
fn build_script_compiles_for_wasm_and_matches_noop() {
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("noop"), "run")
        .with_stdout_data(str![[r#"
answer: 42

"#]])
        .run();
    let noop = out_dir_files(&p);
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("wasmtime"), "run")
        .with_stdout_data(str![[r#"
answer: 42

"#]])
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s
[RUNNING] `target/debug/foo`

"#]])
        .run();
    assert_eq!(out_dir_files(&p), noop);
    assert!(
        p.root()
            .join("target/debug/build")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|dir| dir.path().join("build-script-build.wasm").exists())
    );
}

#[cargo_test]
fn verbose_shows_the_wasm_unit_and_the_cache() {
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("wasmtime"), "build -v")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[RUNNING] `rustc --crate-name build_script_build [..]--target wasm32-wasip2 [..]`
  Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `wasmtime` (component compiled): read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp]
[RUNNING] `[ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build.wasm`
[RUNNING] `rustc --crate-name foo [..]`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn unit_graph_shows_the_script_kind_per_package() {
    // `auto` (the default) runs `a`'s script under wasmtime because its
    // manifest asks for it; `b`'s stays a host build script.
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [workspace]
            members = ["a", "b"]
            resolver = "2"
            "#,
        )
        .file(
            "a/Cargo.toml",
            r#"
            [package]
            name = "a"
            version = "0.1.0"
            edition = "2021"
            [package.build-sandbox]
            runner = "wasmtime"
            "#,
        )
        .file("a/build.rs", "fn main() {}")
        .file("a/src/lib.rs", "")
        .file(
            "b/Cargo.toml",
            r#"
            [package]
            name = "b"
            version = "0.1.0"
            edition = "2021"
            "#,
        )
        .file("b/build.rs", "fn main() {}")
        .file("b/src/lib.rs", "")
        .build();

    let output = p
        .cargo_sandboxed(None, "build --unit-graph -Zunstable-options")
        .masquerade_as_nightly_cargo(&["sandboxed-build-scripts", "unit-graph"])
        .run();
    let graph: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut kinds: Vec<String> = graph["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|unit| {
            format!(
                "{} {} {} {}",
                package_dir(unit["pkg_id"].as_str().unwrap()),
                unit["target"]["name"].as_str().unwrap(),
                unit["mode"].as_str().unwrap(),
                unit["platform"].as_str().unwrap_or("host"),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "a a build host",
            "a build-script-build build wasm32-wasip2",
            "a build-script-build run-custom-build host",
            "b b build host",
            "b build-script-build build host",
            "b build-script-build run-custom-build host",
        ]
    );
}

/// The directory of a path package, from its id (`path+file:///…/a#0.1.0`).
fn package_dir(pkg_id: &str) -> &str {
    let path = pkg_id.split('#').next().unwrap();
    path.rsplit('/').next().unwrap()
}

#[cargo_test]
fn build_dependencies_compile_for_wasm_with_their_platform_deps() {
    // A build dependency with a dependency only WASI activates; proc-macros
    // (none here) would stay on the host.
    cargo_test_support::registry::Package::new("wasi-only", "1.0.0")
        .file("src/lib.rs", "pub fn which() -> &'static str { \"wasi\" }")
        .publish();
    cargo_test_support::registry::Package::new("host-only", "1.0.0")
        .file("src/lib.rs", "pub fn which() -> &'static str { \"host\" }")
        .publish();
    cargo_test_support::registry::Package::new("helper", "1.0.0")
        .target_dep("wasi-only", "1.0", "cfg(target_os = \"wasi\")")
        .target_dep("host-only", "1.0", "cfg(not(target_os = \"wasi\"))")
        .file(
            "src/lib.rs",
            r#"
            #[cfg(target_os = "wasi")]
            pub fn which() -> &'static str { wasi_only::which() }
            #[cfg(not(target_os = "wasi"))]
            pub fn which() -> &'static str { host_only::which() }
            "#,
        )
        .publish();
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            [build-dependencies]
            helper = "1.0"
            "#,
        )
        .file(
            "build.rs",
            r#"fn main() { println!("cargo::warning=built by {}", helper::which()); }"#,
        )
        .file("src/lib.rs", "")
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[UPDATING] `dummy-registry` index
[LOCKING] 3 packages to latest compatible versions
[DOWNLOADING] crates ...
[DOWNLOADED] helper v1.0.0 (registry `dummy-registry`)
[DOWNLOADED] host-only v1.0.0 (registry `dummy-registry`)
[COMPILING] host-only v1.0.0
[COMPILING] helper v1.0.0
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[WARNING] foo@0.1.0: built by host
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("wasmtime"), "build")
        .with_stderr_data(str![[r#"
[DOWNLOADING] crates ...
[DOWNLOADED] wasi-only v1.0.0 (registry `dummy-registry`)
[COMPILING] wasi-only v1.0.0
[COMPILING] helper v1.0.0
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[WARNING] foo@0.1.0: built by wasi
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn missing_wasm_target_names_the_rustup_command() {
    // A sysroot without the target, as on a machine that never added it.
    let sysroot = paths::root().join("empty-sysroot");
    fs::create_dir_all(&sysroot).unwrap();
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("wasmtime"), "build")
        .env(
            "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
            format!("--sysroot={}", sysroot.display()),
        )
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] the `wasm32-wasip2` target is not installed
[NOTE] build scripts that run under the `wasmtime` sandbox are compiled for it, and `[ROOT]/empty-sysroot/lib/rustlib/wasm32-wasip2/lib` does not exist
[HELP] install it with `rustup target add wasm32-wasip2`

"#]])
        .run();
}

#[cargo_test]
fn run_grants_fail_closed_before_compiling() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            "[build-sandbox.allow.foo]\nrun = [\"cc\"]\n",
        )
        .build();

    p.cargo_sandboxed(Some("wasmtime"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] failed to set up the `wasmtime` sandbox for the build script of `foo v0.1.0 ([ROOT]/foo)`

Caused by:
  the `wasmtime` sandbox runner cannot run programs
  [NOTE] the policy grants `run = ["cc"]`
  [HELP] run this package's build script under the `native` runner: `runner = "native"` in its `[package.build-sandbox]`, or in `[build-sandbox]` of `.cargo/config.toml` for every package

"#]])
        .run();
    // Nothing was compiled for the sandbox.
    let built = fs::read_dir(p.root().join("target/debug/build")).map_or(0, |dir| dir.count());
    assert_eq!(built, 0);
}

/// Reading outside every grant: a secret in the (fake) home directory; a
/// granted directory stays readable, and relative paths work.
#[cargo_test]
fn reads_outside_grants() {
    let secret = paths::home().join(".ssh/id_ed25519");
    write_canary(&secret, "CANARY-ssh-key");
    let shared = paths::root().join("shared/data.txt");
    write_canary(&shared, "shared data");
    let body = format!(
        r#"
        report("read ssh key", std::fs::read_to_string({secret:?}));
        report("read granted", std::fs::read_to_string({shared:?}));
        report("read relative", std::fs::read_to_string("Cargo.toml").map(|s| s.lines().nth(2).unwrap_or("").into()));
        "#
    );
    let p = script_project(&body, "");
    p.change_file(
        ".cargo/config.toml",
        &format!(
            "[build-sandbox.allow.victim]\nread = [{:?}]",
            shared.parent().unwrap()
        ),
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read ssh key: succeeded: CANARY-ssh-key
[WARNING] victim@0.1.0: read granted: succeeded: shared data
[WARNING] victim@0.1.0: read relative: succeeded: name = "victim"
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some("wasmtime"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `read = ["[ROOT]/home/.ssh"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: read ssh key: blocked: NotFound
[WARNING] victim@0.1.0: read granted: succeeded: shared data
[WARNING] victim@0.1.0: read relative: succeeded: name = "victim"
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
}

/// Writes outside `OUT_DIR`: the package's sources (appending, truncating),
/// another directory through `..`, and a file outside through a symlink in
/// `OUT_DIR` (planted by the test: WASI's `symlink_path` is unstable).
#[cargo_test]
fn writes_outside_out_dir() {
    let outside = paths::root().join("outside.txt");
    let p = script_project(
        r#"
        println!("cargo::rerun-if-env-changed=ATTACK_ROUND");
        let root = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
        report("append own src", std::fs::OpenOptions::new().append(true).open(root.join("src/lib.rs"))
            .and_then(|mut f| f.write_all(b"// CANARY-append\n")).map(|_| "appended".into()));
        report("truncate own file", std::fs::File::create(root.join("data.txt")).map(|_| "truncated".into()));
        report("create via ..", std::fs::write(out_dir().join("../../../CANARY-dotdot"), "x").map(|_| "created".into()));
        if out_dir().join("link").symlink_metadata().is_ok() {
            report("write via symlink", std::fs::write(out_dir().join("link"), "CANARY-symlink").map(|_| "written".into()));
        }
        "#,
        "",
    );
    let reset = |p: &Project| {
        fs::write(&outside, "untouched").unwrap();
        p.change_file("data.txt", "data");
        p.change_file(
            "src/lib.rs",
            r#"include!(concat!(env!("OUT_DIR"), "/generated.rs"));"#,
        );
        let _ = fs::remove_file(p.root().join("target/CANARY-dotdot"));
    };
    // A symlink to `outside` in the script's `OUT_DIR`, for its second round.
    let plant_link = |p: &Project| {
        let build = p.root().join("target/debug/build");
        for entry in fs::read_dir(build).unwrap().flatten() {
            let out = entry.path().join("out");
            if out.is_dir() {
                std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
            }
        }
    };

    reset(&p);
    p.cargo_sandboxed(Some("noop"), "build").run();
    reset(&p);
    plant_link(&p);
    p.cargo_sandboxed(Some("noop"), "build")
        .env("ATTACK_ROUND", "2")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: append own src: succeeded: appended
[WARNING] victim@0.1.0: truncate own file: succeeded: truncated
[WARNING] victim@0.1.0: create via ..: succeeded: created
[WARNING] victim@0.1.0: write via symlink: succeeded: written
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(fs::read_to_string(&outside).unwrap(), "CANARY-symlink");

    p.cargo("clean").run();
    reset(&p);
    p.cargo_sandboxed(Some("wasmtime"), "build").run();
    plant_link(&p);
    let output = p
        .cargo_sandboxed(Some("wasmtime"), "build")
        .env("ATTACK_ROUND", "2")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `write = ["[ROOT]/foo", "[ROOT]/foo/src", "[ROOT]/foo/target/debug"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: append own src: blocked: PermissionDenied
[WARNING] victim@0.1.0: truncate own file: blocked: PermissionDenied
[WARNING] victim@0.1.0: create via ..: blocked: PermissionDenied
[WARNING] victim@0.1.0: write via symlink: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
    assert!(!p.read_file("src/lib.rs").contains("CANARY"));
    assert_eq!(p.read_file("data.txt"), "data");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched");
}

/// Secrets in Cargo's environment are invisible; granted names are not.
#[cargo_test]
fn reads_secret_env() {
    let p = script_project(
        r#"
        report("read secret", std::env::var("GITHUB_TOKEN").map_err(|_| std::io::ErrorKind::NotFound.into()));
        report("read granted", std::env::var("FOO_LEVEL").map_err(|_| std::io::ErrorKind::NotFound.into()));
        report("read cargo's", std::env::var("CARGO_PKG_NAME").map_err(|_| std::io::ErrorKind::NotFound.into()));
        "#,
        "",
    );
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.allow.victim]\nenv = [\"FOO_*\"]",
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .env("GITHUB_TOKEN", "CANARY-env-token")
        .env("FOO_LEVEL", "3")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read secret: succeeded: CANARY-env-token
[WARNING] victim@0.1.0: read granted: succeeded: 3
[WARNING] victim@0.1.0: read cargo's: succeeded: victim
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some("wasmtime"), "build")
        .env("GITHUB_TOKEN", "CANARY-env-token")
        .env("FOO_LEVEL", "3")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read secret: blocked: NotFound
[WARNING] victim@0.1.0: read granted: succeeded: 3
[WARNING] victim@0.1.0: read cargo's: succeeded: victim
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
}

/// A TCP connection to a listener on this machine: refused without a grant,
/// allowed for exactly the granted `host:port`, refused for another port.
#[cargo_test]
fn connects_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let other_addr = other.local_addr().unwrap().to_string();
    let body = format!(
        r#"
        report("tcp", std::net::TcpStream::connect({addr:?})
            .and_then(|mut s| s.write_all(b"CANARY-tcp").map(|_| "sent".into())));
        report("tcp other port", std::net::TcpStream::connect({other_addr:?})
            .and_then(|mut s| s.write_all(b"CANARY-other").map(|_| "sent".into())));
        "#
    );
    let received = |listener: &TcpListener| {
        let mut data = String::new();
        if let Ok((mut stream, _)) = listener.accept() {
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let _ = stream.read_to_string(&mut data);
        }
        data
    };
    let p = script_project(&body, "");

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: tcp: succeeded: sent
[WARNING] victim@0.1.0: tcp other port: succeeded: sent
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(received(&listener), "CANARY-tcp");
    assert_eq!(received(&other), "CANARY-other");
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some("wasmtime"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `net = ["127.0.0.1:[..]", "127.0.0.1:[..]"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: tcp: blocked: PermissionDenied
[WARNING] victim@0.1.0: tcp other port: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
    assert_eq!(received(&listener), "");

    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.victim]\nnet = [{addr:?}]\n"),
    );
    p.cargo_sandboxed(Some("wasmtime"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `net = ["127.0.0.1:[..]"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: tcp: succeeded: sent
[WARNING] victim@0.1.0: tcp other port: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(received(&listener), "CANARY-tcp");
    assert_eq!(received(&other), "");
}

/// An endless loop and a memory bomb are stopped at their limits, with errors
/// that name the limit and how to raise it; a quick script is not.
#[cargo_test]
fn loops_and_memory_bombs_are_stopped() {
    let p = script_project(
        r#"
        if std::env::var_os("CARGO_FEATURE_SPIN").is_some() { loop { std::hint::black_box(()); } }
        if std::env::var_os("CARGO_FEATURE_MEMORY").is_some() {
            let mut hog = Vec::new();
            loop { hog.push(vec![1u8; 1 << 20]); }
        }
        "#,
        r#"
        [features]
        spin = []
        memory = []
        [package.build-sandbox.limits]
        time = "2s"
        memory = "64MiB"
        "#,
    );

    p.cargo_sandboxed(Some("wasmtime"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo_sandboxed(Some("wasmtime"), "build --features spin")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `wasmtime` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; time limit 2s; memory limit 64MiB)
[HELP] the sandbox may have denied `limits = { time = "4s" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { time = "4s" }

Caused by:
  the build script exceeded its time limit of 2s
...
"#]])
        .run();
    p.cargo_sandboxed(Some("wasmtime"), "build --features memory")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `wasmtime` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; time limit 2s; memory limit 64MiB)
[HELP] the sandbox may have denied `limits = { memory = "128MiB" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { memory = "128MiB" }

Caused by:
  the build script exceeded its memory limit of [FILE_SIZE]B
...
"#]])
        .run();
}

/// Without `clock` and `random`, a script that writes the time and random
/// numbers into `OUT_DIR` produces the same bytes in two clean builds.
#[cargo_test]
fn time_and_randomness_are_deterministic() {
    let p = script_project(
        r#"
        use std::hash::{BuildHasher, Hash, Hasher};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        42u32.hash(&mut hasher);
        std::fs::write(out_dir().join("stamp"), format!("{now} {}", hasher.finish())).unwrap();
        "#,
        "",
    );
    let stamp = |p: &Project| {
        out_dir_files(p)
            .into_iter()
            .find(|(name, _)| name == "stamp")
            .unwrap()
            .1
    };

    p.cargo_sandboxed(Some("wasmtime"), "build").run();
    let first = stamp(&p);
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("wasmtime"), "build").run();
    assert_eq!(stamp(&p), first);
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("wasmtime"), "build")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run();
    assert!(String::from_utf8_lossy(&stamp(&p)).starts_with("1700000000000000000 "));

    // Granted the real clock and randomness, the bytes differ.
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.allow.victim]\nclock = true\nrandom = true\n",
    );
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("wasmtime"), "build").run();
    assert_ne!(stamp(&p), first);
}

/// A script's component is compiled to machine code once: a rerun, and a
/// rebuild that produces the same component, take it from the cache in the
/// build directory.
#[cargo_test]
fn compiled_components_are_reused() {
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("wasmtime"), "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `wasmtime` (component compiled): [..]",
        )
        .run();
    // A changed grant reruns the script, not its compilation.
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.allow.foo]\nclock = true\n",
    );
    p.cargo_sandboxed(Some("wasmtime"), "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `wasmtime` (component from cache): [..]",
        )
        .run();
    // A rebuilt script with the same bytes is found in the cache.
    p.cargo("clean -p foo").run();
    p.cargo_sandboxed(Some("wasmtime"), "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `wasmtime` (component from cache): [..]",
        )
        .run();
    let cached = fs::read_dir(p.root().join("target/build-sandbox/wasmtime"))
        .unwrap()
        .flatten()
        .flat_map(|engine| fs::read_dir(engine.path()).unwrap().flatten())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"))
        .count();
    assert_eq!(cached, 1);
}
