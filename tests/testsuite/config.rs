//! Choosing the runner, and the consumer's `[build-sandbox]` configuration.

use cargo_test_support::prelude::*;
use cargo_test_support::{paths, project, str};

use crate::utils::{ProjectExt, codegen_project, per_runner};

#[cargo_test]
fn unknown_runner_on_the_command_line() {
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("docker"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] -Zsandboxed-build-scripts: unknown sandbox runner `docker`, expected `noop`, `wasmtime` or `native`

"#]])
        .run();
}

#[cargo_test]
fn auto_picks_native_unless_the_package_asks_for_wasmtime() {
    let p = codegen_project("").build();
    p.cargo_sandboxed(None, "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `native`: [..]",
        )
        .run();

    let p = codegen_project(
        r#"
        [package.build-sandbox]
        runner = "wasmtime"
        "#,
    )
    .build();
    p.cargo_sandboxed(None, "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `wasmtime` (component compiled): [..]",
        )
        .run();
}

#[cargo_test]
fn runner_from_config() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox]
            runner = "noop"
            "#,
        )
        .build();

    p.cargo_sandboxed(None, "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `noop`: [..]",
        )
        .run();
    // The command line wins over the configuration.
    p.cargo_sandboxed(Some("native"), "build -v")
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `native`: [..]",
        )
        .run();
}

#[cargo_test]
fn flag_from_unstable_config_table() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [unstable]
            sandboxed-build-scripts = "noop"
            "#,
        )
        .build();

    p.cargo("build -v")
        .masquerade_as_nightly_cargo(&["sandboxed-build-scripts"])
        .with_stderr_contains(
            "[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `noop`: [..]",
        )
        .run();
}

#[cargo_test]
fn unknown_runner_in_config() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox]
            runner = "docker"
            "#,
        )
        .build();

    p.cargo_sandboxed(None, "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox.runner` in [ROOT]/foo/.cargo/config.toml: unknown runner `docker`, expected `auto`, `noop`, `wasmtime` or `native`

"#]])
        .run();
}

#[cargo_test]
fn invalid_grant_in_config() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.allow.foo]
            reed = ["data"]
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox.allow.foo.reed` in [ROOT]/foo/.cargo/config.toml: unknown field `reed`, expected one of `runner`, `read`, `write`, `env`, `run`, `net`, `presets`, `clock`, `random`, `linker-plugins`, `limits`

"#]])
        .run();
}

#[cargo_test]
fn invalid_package_in_grant_key() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.allow."foo@not-a-version"]
            clock = true
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox.allow."foo@not-a-version"` in [ROOT]/foo/.cargo/config.toml: invalid version requirement in `foo@not-a-version`: unexpected character 'n' while parsing major version number

"#]])
        .run();
}

#[cargo_test]
fn grants_show_in_the_verbose_policy() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        env = ["CC"]
        "#,
    )
    .file(
        ".cargo/config.toml",
        r#"
        [build-sandbox.allow."foo@0.1"]
        read = ["vendor/include"]
        env = ["CC"]
        clock = true
        [build-sandbox.allow."foo@2"]
        random = true
        [build-sandbox.allow."*"]
        env = ["LANG"]
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build -v")
        .with_stderr_contains("[..]Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `noop`: read [[ROOT]/foo, [ROOT]/foo/vendor/include]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp]; env [CC, LANG]; clock")
        .run();
}

#[cargo_test]
fn unknown_weakening_in_config() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.native]
            allow-weaker = ["no-landlock"]
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("native"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox.native.allow-weaker.0` in [ROOT]/foo/.cargo/config.toml: unknown weakening `no-landlock`, expected `process-limit`, `memory-limit` or `partial-landlock`

"#]])
        .run();
}

#[cargo_test]
fn allowing_a_weaker_sandbox_warns() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.native]
            allow-weaker = ["process-limit"]
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("native"), "build")
        .with_stderr_data(str![[r#"
[WARNING] build scripts may run without `process-limit` where this system cannot enforce them (`build-sandbox.native.allow-weaker`)
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// The `native` runner's helper is installed next to Cargo; without it the
/// runner refuses before any build script runs, and `noop` still works.
#[cargo_test]
fn native_without_its_helper_refuses() {
    let p = codegen_project("").build();
    let lonely = p.root().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    let cargo = lonely.join("cargo");
    std::fs::copy(crate::utils::fork_cargo(), &cargo).unwrap();

    let sandboxed = |runner: &str| {
        let mut execs = p.process(&cargo);
        execs
            .arg("build")
            .arg(format!("-Zsandboxed-build-scripts={runner}"))
            .masquerade_as_nightly_cargo(&["sandboxed-build-scripts"]);
        execs
    };
    sandboxed("native")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] failed to set up the `native` sandbox for the build script of `foo v0.1.0 ([ROOT]/foo)`

Caused by:
  the sandbox helper `[ROOT]/foo/lonely/build-sandbox-helper` is missing
  [NOTE] the `native` runner starts it to confine build scripts; it is installed next to `[ROOT]/foo/lonely/cargo`

"#]])
        .run();
    // Nothing was built: the refusal comes before any unit.
    let built = std::fs::read_dir(p.root().join("target/debug/build")).map_or(0, |dir| dir.count());
    assert_eq!(built, 0);
    sandboxed("noop").run();
}

#[cargo_test]
fn build_sandbox_must_be_a_table() {
    let p = codegen_project("")
        .file(".cargo/config.toml", "build-sandbox = \"native\"\n")
        .build();

    p.cargo_sandboxed(None, "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox` in [ROOT]/foo/.cargo/config.toml: invalid type: string "native", expected a table

"#]])
        .run();
}

/// A grant that two configuration files write to: each relative path is
/// relative to its own file's directory, in a build and in the report.
fn each_grant_path_is_relative_to_its_own_file(runner: &str) {
    let root = paths::root();
    for (dir, text) in [("shared", "shared "), ("other", "other")] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join("file.txt"), text).unwrap();
    }
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        "[build-sandbox.allow.foo]\nread = [\"shared\"]\n",
    )
    .unwrap();
    let p = project()
        .file(".cargo/config.toml", "[build-sandbox.allow.foo]\nread = [\"../other\"]\n")
        .file(
            "build.rs",
            r#"
            fn main() {
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
                let read = |dir: &str| std::fs::read_to_string(root.join(dir).join("file.txt"));
                let text = read("shared").unwrap() + &read("other").unwrap();
                let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
                std::fs::write(out.join("text.rs"), format!("pub const TEXT: &str = {text:?};")).unwrap();
            }
            "#,
        )
        .file("src/lib.rs", r#"include!(concat!(env!("OUT_DIR"), "/text.rs"));"#)
        .build();

    p.cargo_sandboxed(Some(runner), "build").run();
    p.cargo_sandboxed(Some(runner), "build-sandbox report")
        .with_stdout_data(str![[r#"
trust: approved (build scripts get what `[build-sandbox.allow]` grants)
foo v0.0.1 (runner `[..]`)
  declared   -
  approved   read [[ROOT]/other, [ROOT]/shared]
  missing    -
1 package with a build script: 1 need no grant, 0 presets only, 0 other grants

"#]])
        .run();
}

mod native {
    use super::*;

    per_runner!("native" => each_grant_path_is_relative_to_its_own_file);
}

mod wasmtime {
    use super::*;

    per_runner!("wasmtime" => each_grant_path_is_relative_to_its_own_file);
}
