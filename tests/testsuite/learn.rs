//! `cargo build-sandbox learn`: grants found by building sandboxed, written
//! as `approve` writes them, and the sandboxed build that then passes.

use std::fs;

use cargo_test_support::prelude::*;
use cargo_test_support::{Project, paths, project, str};

use crate::utils::{ProjectExt, per_runner};

/// A workspace of four packages with build scripts: `reads` fails unless it
/// may read `[ROOT]/shared/data.txt`, `probes` falls back when it may not
/// write `[ROOT]/cache` (and prints which way it went), `ignores` tries to
/// read the same file and does the same either way, `plain` needs nothing.
fn workspace() -> Project {
    let shared = paths::root().join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("data.txt"), "42").unwrap();
    fs::create_dir_all(paths::root().join("cache")).unwrap();
    let data = shared.join("data.txt");
    let cache = paths::root().join("cache/probe");
    let member = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
    };
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"reads\", \"probes\", \"ignores\", \"plain\"]\n",
        )
        .file("reads/Cargo.toml", &member("reads"))
        .file(
            "reads/build.rs",
            &format!(
                r#"
                fn main() {{
                    let data = std::fs::read_to_string({data:?}).unwrap();
                    let out = std::env::var("OUT_DIR").unwrap();
                    std::fs::write(format!("{{out}}/data.rs"), format!("const DATA: u32 = {{data}};")).unwrap();
                }}
                "#
            ),
        )
        .file("reads/src/lib.rs", "include!(concat!(env!(\"OUT_DIR\"), \"/data.rs\"));")
        .file("probes/Cargo.toml", &member("probes"))
        .file(
            "probes/build.rs",
            &format!(
                r#"
                fn main() {{
                    let cached = std::fs::write({cache:?}, "probe").is_ok();
                    println!("cargo::rustc-env=PROBE_CACHED={{cached}}");
                }}
                "#
            ),
        )
        .file("probes/src/lib.rs", "pub const CACHED: &str = env!(\"PROBE_CACHED\");")
        .file("ignores/Cargo.toml", &member("ignores"))
        .file(
            "ignores/build.rs",
            &format!(
                r#"
                fn main() {{
                    let _ = std::fs::read({data:?});
                    println!("cargo::rustc-env=IGNORES=1");
                }}
                "#
            ),
        )
        .file("ignores/src/lib.rs", "")
        .file("plain/Cargo.toml", &member("plain"))
        .file("plain/build.rs", "fn main() { println!(\"cargo::rustc-env=PLAIN=1\"); }")
        .file("plain/src/lib.rs", "")
        .build()
}

/// The directory a runner grants for a path: `wasmtime` opens directories only.
fn granted_dir(runner: &str, path: &str) -> String {
    match runner {
        "wasmtime" => path.rsplit_once('/').unwrap().0.to_owned(),
        _ => path.to_owned(),
    }
}

/// `learn` grants `reads` its file and `probes` its cache (learned from a
/// run that fell back and passed), nothing to `plain`, and prunes the file
/// `ignores` tried to read (its output is the same without it); the sandboxed
/// build then passes with the script that probed taking the same path as
/// without a sandbox.
fn learns_the_grants_a_workspace_needs(runner: &str) {
    let p = workspace();
    let read = granted_dir(runner, "[ROOT]/shared/data.txt");

    p.cargo_sandboxed(None, &format!("build-sandbox learn --runner {runner}"))
        .with_stderr_data(format!(
            "    Learning round 1: building with no grants
    Learning round 2: building with grants for 3 packages
     Pruning trial 1 of 1: building without one item of each grant
      Pruned `read = [\"{read}\"]` from `ignores@0.1.0`: its build script was refused it and did as well without it
[VERIFYING] a fresh build with exactly the learned grants
     Granted `write = [\"[ROOT]/cache\"]` to `probes@0.1.0` in `[ROOT]/foo/.cargo/config.toml`
     Granted `read = [\"{read}\"]` to `reads@0.1.0` in `[ROOT]/foo/.cargo/config.toml`
     Learned grants for 2 of 4 packages with build scripts in 2 rounds and [..]s
"
        ))
        .run();
    let config = fs::read_to_string(p.root().join(".cargo/config.toml")).unwrap();
    let root = paths::root().display().to_string();
    assert_eq!(
        config.replace(&root, "[ROOT]"),
        format!(
            "[build-sandbox.allow.\"probes@0.1.0\"]\nwrite = [\"[ROOT]/cache\"]\n\n\
             [build-sandbox.allow.\"reads@0.1.0\"]\nread = [\"{read}\"]\n"
        )
    );

    p.cargo_sandboxed(Some(runner), "build").run();
    let output = p.glob("target/debug/build/probes-*/output").next().unwrap();
    let output = fs::read_to_string(output.unwrap()).unwrap();
    assert_eq!(output, "cargo::rustc-env=PROBE_CACHED=true\n");
}

/// `--dry-run` prints the grants and leaves the configuration alone.
fn a_dry_run_prints_the_grants(runner: &str) {
    let p = workspace();
    let read = granted_dir(runner, "[ROOT]/shared/data.txt");

    p.cargo_sandboxed(
        None,
        &format!("build-sandbox learn --runner {runner} --dry-run"),
    )
    .with_stdout_data(format!(
        "\
[build-sandbox.allow.\"probes@0.1.0\"]
write = [\"[ROOT]/cache\"]

[build-sandbox.allow.\"reads@0.1.0\"]
read = [\"{read}\"]
"
    ))
    .with_stderr_data(str![[r#"
...
     Learned grants for 2 of 4 packages with build scripts in 2 rounds and [..]s

"#]])
    .run();
    assert!(!p.root().join(".cargo/config.toml").exists());
}

/// A script that fails for what the sandbox cannot record (here an
/// environment variable it does not get) stops `learn`, which names it.
#[cargo_test]
fn a_failure_with_nothing_to_grant_names_the_script() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"foo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            r#"fn main() { std::env::var("LEARN_SECRET").expect("LEARN_SECRET"); }"#,
        )
        .file("src/lib.rs", "")
        .build();

    p.cargo_sandboxed(None, "build-sandbox learn --runner native")
        .env("LEARN_SECRET", "1")
        .with_status(101)
        .with_stderr_data(str![[r#"
    Learning round 1: building with no grants
[ERROR] failed to learn the grants of this workspace: round 1 of the build failed and showed nothing more to grant
[NOTE] the build script of `foo@0.1.0` failed, and its sandbox recorded nothing it refused
[NOTE] the build's output is in `[ROOT]/foo/target/build-sandbox-learn/round-1.log`
[HELP] a script can also fail for what the sandbox cannot record, such as an environment variable it did not get (`env`) or a limit

"#]])
        .run();
    let log = fs::read_to_string(p.root().join("target/build-sandbox-learn/round-1.log")).unwrap();
    assert!(log.contains("LEARN_SECRET: NotPresent"), "{log}");
}

/// A script that does something else once its first run left a mark (here
/// it then reads a file) passes the rounds and fails the verification build,
/// and `learn` says which script and what it was refused there. (Whether it
/// could write the mark is in its output, so pruning keeps that grant.)
fn a_failed_verification_names_the_script_and_what_it_was_refused(runner: &str) {
    let data = paths::root().join("shared/data.txt");
    fs::create_dir_all(data.parent().unwrap()).unwrap();
    fs::write(&data, "42").unwrap();
    let cache = paths::root().join("cache");
    fs::create_dir_all(&cache).unwrap();
    let marker = cache.join("ran");
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"foo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "build.rs",
            &format!(
                r#"
                fn main() {{
                    if std::path::Path::new({marker:?}).exists() {{
                        std::fs::read({data:?}).unwrap();
                    }}
                    let wrote = std::fs::write({marker:?}, "").is_ok();
                    println!("cargo::rustc-env=WROTE={{wrote}}");
                }}
                "#
            ),
        )
        .file("src/lib.rs", "")
        .build();
    // `wasmtime` records the directory it would open.
    let refused = granted_dir(runner, "[ROOT]/shared/data.txt");

    p.cargo_sandboxed(None, &format!("build-sandbox learn --runner {runner}"))
        .with_status(101)
        .with_stderr_data(format!(
            "    Learning round 1: building with no grants
    Learning round 2: building with grants for 1 package
     Pruning trial 1 of 1: building without one item of each grant
[VERIFYING] a fresh build with exactly the learned grants
[ERROR] the build failed with exactly the learned grants
[NOTE] the build script of `foo@0.1.0` failed, and its sandbox refused: read {refused}
[NOTE] the build's output is in `[ROOT]/foo/target/build-sandbox-learn/verify.log`
"
        ))
        .run();
}

/// `learn` learns what scripts use; approving what packages declare is
/// `approve`'s job, so an unapproved declaration stops it first.
#[cargo_test]
fn an_unapproved_declaration_stops_learning() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"foo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [package.build-sandbox]\nclock = true\n",
        )
        .file("build.rs", "fn main() {}")
        .file("src/lib.rs", "")
        .build();

    p.cargo_sandboxed(None, "build-sandbox learn")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] package `foo v0.1.0 ([ROOT]/foo)` declares capabilities that are not approved
[HELP] review them with `cargo build-sandbox report -Zsandboxed-build-scripts`, approve them with `cargo build-sandbox approve`, then learn again

"#]])
        .run();
}

/// After a failed sandboxed build, `report` shows what the script was refused.
#[cargo_test]
fn report_shows_what_a_failed_run_was_refused() {
    let p = workspace();
    p.cargo_sandboxed(Some("native"), "build -p reads")
        .with_status(101)
        .with_stderr_data(str![[r#"
...
[ERROR] failed to run custom build command for `reads v0.1.0 ([ROOT]/foo/reads)`
...
"#]])
        .run();

    p.cargo_sandboxed(None, "build-sandbox report")
        .with_stdout_data(str![[r#"
trust: approved (build scripts get what `[build-sandbox.allow]` grants)
ignores v0.1.0 (runner `native`)
  declared   -
  approved   -
  missing    -
plain v0.1.0 (runner `native`)
  declared   -
  approved   -
  missing    -
probes v0.1.0 (runner `native`)
  declared   -
  approved   -
  missing    -
reads v0.1.0 (runner `native`)
  declared   -
  approved   -
  missing    -
  refused    read [ROOT]/shared/data.txt (in its last run, which failed)
4 packages with build scripts: 4 need no grant, 0 presets only, 0 other grants

"#]])
        .run();
    let output = p
        .cargo_sandboxed(None, "build-sandbox report --format json")
        .run();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reads = &report["packages"][3];
    assert_eq!(reads["package"], "reads");
    let data = paths::root().join("shared/data.txt").display().to_string();
    assert_eq!(
        reads["last_failed_run"]["denials"],
        serde_json::json!([format!("read {data}")])
    );
    assert_eq!(
        reads["last_failed_run"]["grant"]["read"],
        serde_json::json!([data])
    );
    assert_eq!(
        report["packages"][0]["last_failed_run"],
        serde_json::Value::Null
    );
}

mod native {
    use super::*;

    per_runner!("native" =>
        learns_the_grants_a_workspace_needs,
        a_dry_run_prints_the_grants,
        a_failed_verification_names_the_script_and_what_it_was_refused,
    );
}

mod wasmtime {
    use super::*;

    per_runner!("wasmtime" =>
        learns_the_grants_a_workspace_needs,
        a_dry_run_prints_the_grants,
        a_failed_verification_names_the_script_and_what_it_was_refused,
    );
}
