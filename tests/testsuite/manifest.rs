//! `[package.build-sandbox]`: validation, `cargo metadata`, `cargo package`.

use std::fs::File;

use cargo_test_support::prelude::*;
use cargo_test_support::publish::validate_crate_contents;
use cargo_test_support::str;

use crate::utils::{ProjectExt, codegen_project};

#[cargo_test]
fn unknown_key_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        read = ["data"]
        reed = ["data"]
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] unknown field `reed`, expected one of `runner`, `read`, `write`, `env`, `run`, `net`, `presets`, `clock`, `random`, `linker-plugins`, `limits`
 --> Cargo.toml:9:9
  |
9 |         reed = ["data"]
  |         ^^^^

"#]])
        .run();
}

#[cargo_test]
fn wrong_type_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        clock = 1
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid type: integer `1`, expected a boolean
 --> Cargo.toml:8:17
  |
8 |         clock = 1
  |                 ^

"#]])
        .run();
}

#[cargo_test]
fn bad_path_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        write = ["gen", "~/.cache/foo"]
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid path `~/.cache/foo`: `~` is not expanded, write the path out in full
 --> Cargo.toml:8:25
  |
8 |         write = ["gen", "~/.cache/foo"]
  |                         ^^^^^^^^^^^^^^

"#]])
        .run();
}

#[cargo_test]
fn bad_host_port_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        net = ["crates.io:443", "localhost"]
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid network address `localhost`: expected `host:port`
 --> Cargo.toml:8:33
  |
8 |         net = ["crates.io:443", "localhost"]
  |                                 ^^^^^^^^^^^

"#]])
        .run();
}

#[cargo_test]
fn bad_limit_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox.limits]
        time = "soon"
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid duration `soon`: expected a number followed by `ms`, `s`, `m` or `h`, e.g. `60s`
 --> Cargo.toml:8:16
  |
8 |         time = "soon"
  |                ^^^^^^

"#]])
        .run();
}

#[cargo_test]
fn bad_runner_is_an_error() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        runner = "docker"
        "#,
    )
    .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] unknown variant `docker`, expected `wasmtime` or `native`
 --> Cargo.toml:8:18
  |
8 |         runner = "docker"
  |                  ^^^^^^^^

"#]])
        .run();
}

#[cargo_test]
fn metadata_shows_the_table() {
    let p = codegen_project(
        r#"
        [package.build-sandbox]
        runner = "native"
        read = ["data"]
        net = ["localhost:8080"]
        presets = ["cc"]
        [package.build-sandbox.limits]
        memory = "1GiB"
        "#,
    )
    .build();

    p.cargo_sandboxed(None, "metadata --no-deps --format-version 1")
        .with_stdout_data(
            str![[r#"
{
  "build_directory": "[ROOT]/foo/target",
  "metadata": null,
  "packages": [
    {
      "authors": [],
      "build_sandbox": {
        "limits": {
          "memory": "1GiB"
        },
        "net": [
          "localhost:8080"
        ],
        "presets": [
          "cc"
        ],
        "read": [
          "data"
        ],
        "runner": "native"
      },
      "categories": [],
      "default_run": null,
      "dependencies": [],
      "description": null,
      "documentation": null,
      "edition": "2021",
      "features": {},
      "homepage": null,
      "id": "path+[ROOTURL]/foo#0.1.0",
      "keywords": [],
      "license": null,
      "license_file": null,
      "links": null,
      "manifest_path": "[ROOT]/foo/Cargo.toml",
      "metadata": null,
      "name": "foo",
      "publish": null,
      "readme": null,
      "repository": null,
      "rust_version": null,
      "source": null,
      "targets": [
        {
          "crate_types": [
            "bin"
          ],
          "doc": true,
          "doctest": false,
          "edition": "2021",
          "kind": [
            "bin"
          ],
          "name": "foo",
          "src_path": "[ROOT]/foo/src/main.rs",
          "test": true
        },
        {
          "crate_types": [
            "bin"
          ],
          "doc": false,
          "doctest": false,
          "edition": "2021",
          "kind": [
            "custom-build"
          ],
          "name": "build-script-build",
          "src_path": "[ROOT]/foo/build.rs",
          "test": false
        }
      ],
      "version": "0.1.0"
    }
  ],
  "resolve": null,
  "target_directory": "[ROOT]/foo/target",
  "version": 1,
  "workspace_default_members": [
    "path+[ROOTURL]/foo#0.1.0"
  ],
  "workspace_members": [
    "path+[ROOTURL]/foo#0.1.0"
  ],
  "workspace_root": "[ROOT]/foo"
}
"#]]
            .is_json(),
        )
        .run();
}

#[cargo_test]
fn package_keeps_the_table() {
    let p = codegen_project(
        r#"
        description = "foo"
        license = "MIT"

        [package.build-sandbox]
        read = ["data"]
        run = ["pkg-config"]
        "#,
    )
    .build();

    p.cargo("package --no-verify --allow-dirty").run();
    let crate_file = p.root().join("target/package/foo-0.1.0.crate");
    validate_crate_contents(
        File::open(crate_file).unwrap(),
        "foo-0.1.0.crate",
        &[
            "Cargo.lock",
            "Cargo.toml",
            "Cargo.toml.orig",
            "build.rs",
            "src/main.rs",
        ],
        [(
            "Cargo.toml",
            str![[r##"
# THIS FILE IS AUTOMATICALLY GENERATED BY CARGO
#
# When uploading crates to the registry Cargo will automatically
# "normalize" Cargo.toml files for maximal compatibility
# with all versions of Cargo and also rewrite `path` dependencies
# to registry (e.g., crates.io) dependencies.
#
# If you are reading this file be aware that the original Cargo.toml
# will likely look very different (and much more reasonable).
# See Cargo.toml.orig for the original contents.

[package]
edition = "2021"
name = "foo"
version = "0.1.0"
build = "build.rs"
autolib = false
autobins = false
autoexamples = false
autotests = false
autobenches = false
description = "foo"
readme = false
license = "MIT"

[package.build-sandbox]
read = ["data"]
run = ["pkg-config"]

[[bin]]
name = "foo"
path = "src/main.rs"

"##]],
        )],
    );
}
