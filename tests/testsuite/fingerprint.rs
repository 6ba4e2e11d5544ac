//! Runner and policy are part of a build script's fingerprint.

use cargo_test_support::prelude::*;
use cargo_test_support::{basic_manifest, project, str};

use crate::utils::ProjectExt;

fn two_scripts() -> cargo_test_support::Project {
    let script = r#"fn main() { println!("cargo::rerun-if-changed=build.rs"); }"#;
    project()
        .file(
            "Cargo.toml",
            r#"
            [workspace]
            members = ["a", "b"]
            resolver = "2"
            "#,
        )
        .file("a/Cargo.toml", &basic_manifest("a", "0.1.0"))
        .file("a/build.rs", script)
        .file("a/src/lib.rs", "")
        .file("b/Cargo.toml", &basic_manifest("b", "0.1.0"))
        .file("b/build.rs", script)
        .file("b/src/lib.rs", "")
        .build()
}

#[cargo_test]
fn a_grant_change_reruns_only_that_script() {
    let p = two_scripts();
    p.cargo_sandboxed(Some("noop"), "build").run();

    p.change_file(
        ".cargo/config.toml",
        r#"
        [build-sandbox.allow.a]
        env = ["A_SETTING"]
        "#,
    );
    p.cargo_sandboxed(Some("noop"), "build -v")
        .with_stderr_data(
            str![[r#"
[DIRTY] a v0.1.0 ([ROOT]/foo/a): the config settings changed
[COMPILING] a v0.1.0 ([ROOT]/foo/a)
  Sandboxing build script of `a v0.1.0 ([ROOT]/foo/a)` with `noop`: read [[ROOT]/foo/a]; write [[ROOT]/foo/target/debug/build/a-[HASH]/out, [ROOT]/foo/target/debug/build/a-[HASH]/tmp]; env [A_SETTING]
[RUNNING] `[ROOT]/foo/target/debug/build/a-[HASH]/build-script-build`
[FRESH] b v0.1.0 ([ROOT]/foo/b)
[RUNNING] `rustc --crate-name a --edition=2015 a/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]]
            .unordered(),
        )
        .run();

    // Nothing changed: nothing reruns.
    p.cargo_sandboxed(Some("noop"), "build -v")
        .with_stderr_data(
            str![[r#"
[FRESH] b v0.1.0 ([ROOT]/foo/b)
[FRESH] a v0.1.0 ([ROOT]/foo/a)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]]
            .unordered(),
        )
        .run();
}

#[cargo_test]
fn turning_the_sandbox_on_reruns_the_scripts() {
    let p = two_scripts();
    p.cargo("build").run();

    p.cargo_sandboxed(Some("noop"), "build -v")
        .with_stderr_data(
            str![[r#"
[DIRTY] a v0.1.0 ([ROOT]/foo/a): the config settings changed
[COMPILING] a v0.1.0 ([ROOT]/foo/a)
[DIRTY] b v0.1.0 ([ROOT]/foo/b): the config settings changed
[COMPILING] b v0.1.0 ([ROOT]/foo/b)
  Sandboxing build script of `a v0.1.0 ([ROOT]/foo/a)` with `noop`: read [[ROOT]/foo/a]; write [[ROOT]/foo/target/debug/build/a-[HASH]/out, [ROOT]/foo/target/debug/build/a-[HASH]/tmp]
[RUNNING] `[ROOT]/foo/target/debug/build/a-[HASH]/build-script-build`
  Sandboxing build script of `b v0.1.0 ([ROOT]/foo/b)` with `noop`: read [[ROOT]/foo/b]; write [[ROOT]/foo/target/debug/build/b-[HASH]/out, [ROOT]/foo/target/debug/build/b-[HASH]/tmp]
[RUNNING] `[ROOT]/foo/target/debug/build/b-[HASH]/build-script-build`
[RUNNING] `rustc --crate-name a --edition=2015 a/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps`
[RUNNING] `rustc --crate-name b --edition=2015 b/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]]
            .unordered(),
        )
        .run();

    // And off again: back to upstream's fingerprint.
    p.cargo("build -v")
        .with_stderr_data(
            str![[r#"
[DIRTY] a v0.1.0 ([ROOT]/foo/a): the config settings changed
[COMPILING] a v0.1.0 ([ROOT]/foo/a)
[DIRTY] b v0.1.0 ([ROOT]/foo/b): the config settings changed
[COMPILING] b v0.1.0 ([ROOT]/foo/b)
[RUNNING] `[ROOT]/foo/target/debug/build/a-[HASH]/build-script-build`
[RUNNING] `[ROOT]/foo/target/debug/build/b-[HASH]/build-script-build`
[RUNNING] `rustc --crate-name b --edition=2015 b/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps`
[RUNNING] `rustc --crate-name a --edition=2015 a/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=400 --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=[..] -C extra-filename=[..] --out-dir [ROOT]/foo/target/debug/deps -L dependency=[ROOT]/foo/target/debug/deps`
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]]
            .unordered(),
        )
        .run();
}
