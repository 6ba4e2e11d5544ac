//! Running build scripts through the `noop` runner.

use cargo_test_support::prelude::*;
use cargo_test_support::str;

use crate::utils::{ProjectExt, codegen_project};

#[cargo_test]
fn noop_runs_a_codegen_script_with_cfgs() {
    let p = codegen_project("").build();

    p.cargo_sandboxed(Some("noop"), "run")
        .with_stdout_data(str![[r#"
answer: 42

"#]])
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s
[RUNNING] `target/debug/foo`

"#]])
        .run();
}

#[cargo_test]
fn verbose_prints_runner_and_policy() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox.allow.foo]
            read = ["data"]
            env = ["CC", "FOO_*"]
            net = ["localhost:8080"]
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build -v")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[RUNNING] `rustc --crate-name build_script_build --edition=2021 build.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/build/foo-[HASH] -L dependency=[ROOT]/foo/target/debug/deps`
  Sandboxing build script of `foo v0.1.0 ([ROOT]/foo)` with `noop`: read [[ROOT]/foo, [ROOT]/foo/data]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp]; env [CC, FOO_*]; net [localhost:8080]
[RUNNING] `[ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build`
[RUNNING] `rustc --crate-name foo --edition=2021 src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps --cfg generated --check-cfg 'cfg(generated)'`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn extra_verbose_echoes_script_output() {
    let p = cargo_test_support::project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                println!("cargo::warning=from the script");
                eprintln!("on stderr");
            }
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build -vv")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[RUNNING] `[..] rustc --crate-name build_script_build [..]`
  Sandboxing build script of `foo v0.0.1 ([ROOT]/foo)` with `noop`: read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp]
[RUNNING] `[..] [ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build`
[foo 0.0.1] on stderr
[WARNING] foo@0.0.1: from the script
[RUNNING] `[..] rustc --crate-name foo [..]`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn failing_script_keeps_cargos_error_and_names_the_runner() {
    let p = cargo_test_support::project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                println!("cargo::warning=about to fail");
                eprintln!("something went wrong");
                std::process::exit(3);
            }
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[WARNING] foo@0.0.1: about to fail
[ERROR] failed to run custom build command for `foo v0.0.1 ([ROOT]/foo)`
[NOTE] the build script ran in the `noop` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])

Caused by:
  process didn't exit successfully: `[ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build` ([EXIT_STATUS]: 3)
  --- stdout
  cargo::warning=about to fail

  --- stderr
  something went wrong

"#]])
        .run();
}

#[cargo_test]
fn error_directive_fails_the_build_as_with_upstream() {
    let p = cargo_test_support::project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                println!("cargo::error=the script refuses");
            }
            "#,
        )
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] foo@0.0.1: the script refuses
[ERROR] build script logged errors

"#]])
        .run();
}
