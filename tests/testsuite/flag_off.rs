//! Without `-Zsandboxed-build-scripts` the fork behaves as upstream Cargo.

use cargo_test_support::prelude::*;
use cargo_test_support::str;

use crate::utils::{ProjectExt, codegen_project};

#[cargo_test]
fn stock_cargo_builds_a_package_with_the_table() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        read = ["data"]
        env = ["CC"]
        [package.build-sandbox.limits]
        time = "60s"
        "#,
    )
    .build();

    p.stock_cargo("build")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.process(p.bin("foo"))
        .with_stdout_data(str![[r#"
answer: 42

"#]])
        .run();
}

#[cargo_test]
fn fork_without_the_flag_prints_what_stock_cargo_prints() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        read = ["data"]
        "#,
    )
    .build();

    p.stock_cargo("build -v")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[RUNNING] `rustc --crate-name build_script_build --edition=2021 build.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/build/foo-[HASH] -L dependency=[ROOT]/foo/target/debug/deps`
[RUNNING] `[ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build`
[RUNNING] `rustc --crate-name foo --edition=2021 src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps --cfg generated --check-cfg 'cfg(generated)'`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo("build -v")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[RUNNING] `rustc --crate-name build_script_build --edition=2021 build.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/build/foo-[HASH] -L dependency=[ROOT]/foo/target/debug/deps`
[RUNNING] `[ROOT]/foo/target/debug/build/foo-[HASH]/build-script-build`
[RUNNING] `rustc --crate-name foo --edition=2021 src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type bin --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps --cfg generated --check-cfg 'cfg(generated)'`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn an_invalid_table_never_breaks_a_build_without_the_flag() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        reed = 5
        net = ["nowhere"]
        "#,
    )
    .build();

    p.cargo("build")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn build_sandbox_config_is_ignored_without_the_flag() {
    let p = codegen_project("")
        .file(
            ".cargo/config.toml",
            r#"
            [build-sandbox]
            runner = "no-such-runner"
            [build-sandbox.allow.foo]
            reed = ["x"]
            "#,
        )
        .build();

    p.cargo("build")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

#[cargo_test]
fn metadata_has_no_table_without_the_flag() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        read = ["data"]
        "#,
    )
    .build();

    p.cargo("metadata --no-deps --format-version 1")
        .with_stdout_does_not_contain("build_sandbox")
        .run();
}
