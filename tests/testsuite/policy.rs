//! Cargo-side policy, the same for every runner: trust modes, the
//! `cargo build-sandbox` command, directive policing, output caps and
//! terminal control sequences, and the hints added to a failed script's error.

use std::fs;
use std::process::Command;

use cargo_test_support::compare::assert_e2e;
use cargo_test_support::prelude::*;
use cargo_test_support::registry::Package;
use cargo_test_support::{Project, paths, project, str};

use crate::utils::{ProjectExt, codegen_project, per_runner};

/// A registry package `name` whose build script needs nothing, with
/// `table` as its `[package.build-sandbox]`.
fn publish_requesting(name: &str, version: &str, table: &str) {
    Package::new(name, version)
        .file(
            "Cargo.toml",
            &format!(
                r#"
                [package]
                name = "{name}"
                version = "{version}"
                edition = "2021"
                [package.build-sandbox]
                {table}
                "#
            ),
        )
        .file("build.rs", "fn main() {}")
        .file("src/lib.rs", "")
        .publish();
}

/// A project depending on `deps` (`name = "req"` lines).
fn depending_on(deps: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!(
                r#"
                [package]
                name = "foo"
                version = "0.1.0"
                edition = "2021"
                [dependencies]
                {deps}
                "#
            ),
        )
        .file("src/lib.rs", "")
        .build()
}

#[cargo_test]
fn unapproved_declarations_stop_the_build_before_any_script_runs() {
    publish_requesting("sys-a", "1.0.0", "presets = [\"cc\"]\nenv = [\"CC\"]");
    publish_requesting("sys-b", "2.1.0", "clock = true");
    publish_requesting("plain", "1.0.0", "");
    let p = depending_on("sys-a = \"1\"\nsys-b = \"2\"\nplain = \"1\"");

    p.cargo_sandboxed(Some("native"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[UPDATING] `dummy-registry` index
[LOCKING] 3 packages to latest compatible versions
[DOWNLOADING] crates ...
[DOWNLOADED] plain v1.0.0 (registry `dummy-registry`)
[DOWNLOADED] sys-a v1.0.0 (registry `dummy-registry`)
[DOWNLOADED] sys-b v2.1.0 (registry `dummy-registry`)
[ERROR] build scripts declare capabilities that are not approved
[NOTE] `sys-a v1.0.0` declares `env = ["CC"]`, `presets = ["cc"]`
[NOTE] `sys-b v2.1.0` declares `clock = true`
[NOTE] a package's `[package.build-sandbox]` is a request; only the consumer grants
[HELP] to approve them, run `cargo build-sandbox approve sys-a sys-b -Zsandboxed-build-scripts`, or add to `.cargo/config.toml`:

[build-sandbox.allow."sys-a@1.0.0"]
env = ["CC"]
presets = ["cc"]

[build-sandbox.allow."sys-b@2.1.0"]
clock = true

"#]])
        .run();
    // No build script was built, let alone run.
    let built = fs::read_dir(p.root().join("target/debug/build")).map_or(0, |dir| dir.count());
    assert_eq!(built, 0);

    // The snippet, pasted, approves them.
    p.change_file(
        ".cargo/config.toml",
        r#"
        [build-sandbox.allow."sys-a@1.0.0"]
        env = ["CC"]
        presets = ["cc"]
        [build-sandbox.allow."sys-b@2"]
        clock = true
        "#,
    );
    p.cargo_sandboxed(Some("native"), "build").run();

    // A grant keyed by a version requirement stops applying outside it.
    publish_requesting("sys-b", "3.0.0", "clock = true");
    p.change_file(
        "Cargo.toml",
        &p.read_file("Cargo.toml")
            .replace("sys-b = \"2\"", "sys-b = \"3\""),
    );
    p.cargo_sandboxed(Some("native"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
...
[ERROR] build scripts declare capabilities that are not approved
[NOTE] `sys-b v3.0.0` declares `clock = true`
...
"#]])
        .run();
}

#[cargo_test]
fn invalid_trust_mode() {
    let p = codegen_project("").build();
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox]\ntrust = \"everyone\"\n",
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid `build-sandbox.trust` in [ROOT]/foo/.cargo/config.toml: unknown trust mode `everyone`, expected `approved` or `declared`

"#]])
        .run();
}

#[cargo_test]
fn report_lists_runner_declared_approved_missing() {
    publish_requesting("sys-a", "1.0.0", "presets = [\"cc\"]\nenv = [\"CC\"]");
    publish_requesting("plain", "1.0.0", "");
    let p = depending_on("sys-a = \"1\"\nplain = \"1\"");
    p.change_file(
        ".cargo/config.toml",
        r#"
        [build-sandbox]
        trust = "approved"
        [build-sandbox.allow.sys-a]
        presets = ["cc"]
        "#,
    );

    p.cargo_sandboxed(None, "build-sandbox report")
        .with_stdout_data(str![[r#"
trust: approved (build scripts get what `[build-sandbox.allow]` grants)
plain v1.0.0 (runner `native`)
  declared   -
  approved   -
  missing    -
sys-a v1.0.0 (runner `native`)
  declared   env [CC]; presets [cc]
  approved   presets [cc]
  missing    env [CC]
2 packages with build scripts: 1 need no grant, 0 presets only, 1 other grants

"#]])
        .run();
    let output = p
        .cargo_sandboxed(None, "build-sandbox report --format json")
        .run();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["trust"], "approved");
    let packages = report["packages"].as_array().unwrap();
    let names: Vec<_> = packages
        .iter()
        .map(|p| p["package"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plain", "sys-a"]);
    let sys_a = &packages[1];
    assert_eq!(sys_a["runner"], "native");
    assert_eq!(sys_a["declared"]["env"], serde_json::json!(["CC"]));
    assert_eq!(sys_a["approved"]["presets"], serde_json::json!(["cc"]));
    assert_eq!(sys_a["missing"]["env"], serde_json::json!(["CC"]));
    assert_eq!(sys_a["missing"]["presets"], serde_json::json!([]));
    let summary =
        serde_json::json!({"packages": 2, "no_grant": 1, "presets_only": 0, "other_grants": 1});
    assert_eq!(report["summary"], summary);
}

#[cargo_test]
fn report_needs_the_flag() {
    let p = codegen_project("").build();

    p.cargo("build-sandbox report")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] the `cargo build-sandbox` command is unstable, pass `-Zsandboxed-build-scripts` to enable it

"#]])
        .run();
}

#[cargo_test]
fn allow_edits_config_keeping_comments() {
    let p = codegen_project("").build();
    p.change_file(
        ".cargo/config.toml",
        r#"# Our build settings.
[build]
jobs = 2 # keep the laptop cool

[build-sandbox.allow.ring]
# ring compiles C.
presets = ["cc"]
"#,
    );

    p.cargo_sandboxed(None, "build-sandbox allow ring --run nasm --env CC")
        .with_stderr_data(str![[r#"
     Granted `env = ["CC"]`, `run = ["nasm"]` to `ring` in `[ROOT]/foo/.cargo/config.toml`

"#]])
        .run();
    p.cargo_sandboxed(
        None,
        "build-sandbox allow openssl-sys@0.9 --preset pkg-config --read data --clock",
    )
    .run();
    assert_e2e().eq(
        p.read_file(".cargo/config.toml"),
        str![[r#"
# Our build settings.
[build]
jobs = 2 # keep the laptop cool

[build-sandbox.allow.ring]
# ring compiles C.
presets = ["cc"]
env = ["CC"]
run = ["nasm"]

[build-sandbox.allow."openssl-sys@0.9"]
read = ["data"]
presets = ["pkg-config"]
clock = true

"#]],
    );
    let mut invalid_package = p.cargo_sandboxed(None, "build-sandbox allow");
    invalid_package
        .arg("a b")
        .arg("--clock")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid grant for `a b`: invalid package `a b`: expected `<name>`, `<name>@<version-requirement>` or `*`

"#]])
        .run();
    p.cargo_sandboxed(None, "build-sandbox allow ring --net not-a-target")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] invalid grant for `ring`: `net.0`: invalid network address `not-a-target`: expected `host:port`

"#]])
        .run();
}

/// A shared library that, loaded into a process, writes `canary`.
fn canary_library(dir: &std::path::Path, canary: &std::path::Path) -> std::path::PathBuf {
    let source = dir.join("canary.c");
    fs::write(
        &source,
        format!(
            r#"
            #include <stdio.h>
            __attribute__((constructor)) static void run(void) {{
                FILE *f = fopen("{}", "w");
                if (f) {{ fputs("CANARY-preload", f); fclose(f); }}
            }}
            "#,
            canary.display()
        ),
    )
    .unwrap();
    let library = dir.join("libcanary.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("failed to run `cc`");
    assert!(status.success());
    library
}

#[cargo_test]
fn rustc_env_of_loader_variables_is_refused() {
    let canary = paths::root().join("preloaded");
    let library = canary_library(&paths::root(), &canary);
    let p = project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            &format!(
                r#"fn main() {{ println!("cargo::rustc-env=LD_PRELOAD={}"); }}"#,
                library.display()
            ),
        )
        .build();

    // Without the fork's check, rustc loads the library.
    p.cargo("build").run();
    assert_eq!(fs::read_to_string(&canary).unwrap(), "CANARY-preload");
    fs::remove_file(&canary).unwrap();
    p.cargo("clean").run();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] the build script of `foo` may not set `LD_PRELOAD` with `cargo::rustc-env`
[NOTE] `LD_PRELOAD` makes the dynamic loader load code into rustc and the programs it runs
[NOTE] the build script ran in the `noop` sandbox

"#]])
        .run();
    assert!(!canary.exists());
}

#[cargo_test]
fn linker_args_that_load_code_need_a_grant() {
    let canary = paths::root().join("plugin-loaded");
    let plugin = canary_library(&paths::root(), &canary);
    let p = project()
        .file("src/main.rs", "fn main() {}")
        .file(
            "build.rs",
            &format!(
                r#"fn main() {{
                    println!("cargo::rustc-link-arg=-fuse-ld=bfd");
                    println!("cargo::rustc-link-arg=-Wl,-plugin,{}");
                }}"#,
                plugin.display()
            ),
        )
        .build();

    // Without the fork's check, GNU ld loads the plugin: its code runs, outside
    // any sandbox (ld then gives up on it, as it has no `onload`).
    p.cargo("build")
        .with_status(101)
        .with_stderr_contains("[ERROR] linking with `cc` failed[..]")
        .run();
    assert_eq!(fs::read_to_string(&canary).unwrap(), "CANARY-preload");
    fs::remove_file(&canary).unwrap();
    p.cargo("clean").run();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] the build script of `foo` may not pass `-Wl,-plugin,[ROOT]/libcanary.so` to the linker
[NOTE] it makes the linker load a plugin, which runs its code outside the sandbox
[NOTE] the build script ran in the `noop` sandbox
[HELP] if `foo` needs it, grant `linker-plugins = true` in `[build-sandbox.allow.foo]` of `.cargo/config.toml`

"#]])
        .run();
    assert!(!canary.exists());

    // Control: an ordinary linker argument passes; granted, so does the
    // plugin (the default `lld` accepts and ignores `-plugin`).
    p.change_file(
        "build.rs",
        r#"fn main() { println!("cargo::rustc-link-arg=-Wl,-z,relro"); }"#,
    );
    p.cargo_sandboxed(Some("noop"), "build").run();
    p.change_file(
        "build.rs",
        r#"fn main() { println!("cargo::rustc-link-arg=-Wl,-plugin,/tmp/evil.so"); }"#,
    );
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.allow.foo]\nlinker-plugins = true\n",
    );
    p.cargo_sandboxed(Some("noop"), "build").run();
}

/// `linker-plugins` lets a package load code into the linker, never make it
/// write a file where the script chooses: a second `-o` puts the linked
/// program anywhere the user can write.
#[cargo_test]
fn linker_output_args_are_refused_even_with_linker_plugins() {
    let planted = paths::root().join("planted");
    let p = project()
        .file("src/main.rs", "fn main() {}")
        .file(
            "build.rs",
            &format!(
                r#"fn main() {{ println!("cargo::rustc-link-arg=-Wl,-o,{}"); }}"#,
                planted.display()
            ),
        )
        .file(
            ".cargo/config.toml",
            "[build-sandbox.allow.foo]\nlinker-plugins = true\n",
        )
        .build();

    // Without the fork's check, the linker writes the program there.
    p.cargo("build").run();
    assert!(planted.exists());
    fs::remove_file(&planted).unwrap();
    p.cargo("clean").run();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] the build script of `foo` may not pass `-Wl,-o,[ROOT]/planted` to the linker
[NOTE] it makes the linker write a file at a path of the script's choosing, outside the sandbox (an executable there runs with the user's rights)
[NOTE] the build script ran in the `noop` sandbox

"#]])
        .run();
    assert!(!planted.exists());
}

#[cargo_test]
fn output_is_capped_by_default_and_by_config() {
    let p = project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                let line = "x".repeat(1023);
                for _ in 0..2048 { println!("{line}"); }
            }
            "#,
        )
        .build();

    // Two MiB is well within the default cap.
    p.cargo_sandboxed(Some("noop"), "build").run();
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.limits]\noutput = \"1MiB\"\n",
    );
    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.0.1 ([ROOT]/foo)`
[NOTE] the build script ran in the `noop` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp]; output limit 1MiB)
[HELP] the sandbox may have denied `limits = { output = "2MiB" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.foo]
limits = { output = "2MiB" }

Caused by:
  the build script exceeded its output limit of [FILE_SIZE]B
...
"#]])
        .run();
    // A grant raises it for one package.
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.limits]\noutput = \"1MiB\"\n[build-sandbox.allow.foo.limits]\noutput = \"4MiB\"\n",
    );
    p.cargo_sandboxed(Some("noop"), "build").run();
}

#[cargo_test]
fn terminal_control_sequences_are_neutralised() {
    let p = project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                println!("cargo::warning=\x1b]0;owned\x07title \x1b[2Jcleared");
                eprintln!("\x1b[31mred\x1b[0m");
            }
            "#,
        )
        .build();

    // Without a sandbox, the escape sequences reach a terminal (Cargo strips
    // them only when it does not colour its output).
    let raw = ["\x1b]0;owned\x07", "\x1b[2J", "\x1b[31mred"];
    let output = p.cargo("build -vv --color always").run();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(raw.iter().all(|sequence| stderr.contains(sequence)));
    p.cargo("clean").run();

    let output = p
        .cargo_sandboxed(Some("noop"), "build -vv --color always")
        .run();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(raw.iter().all(|sequence| !stderr.contains(sequence)));
    assert!(stderr.contains(r"\u{1b}]0;owned\u{7}title \u{1b}[2Jcleared"));
    assert!(stderr.contains(r"[foo 0.0.1] \u{1b}[31mred\u{1b}[0m"));
}

/// Cargo's own messages about a script's directives keep their line breaks
/// (found by Cargo's `build_script_env::rustc_bootstrap` with a runner forced
/// on): only the script's text is one line.
#[cargo_test]
fn cargos_own_messages_keep_their_line_breaks() {
    let p = project()
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"fn main() { println!("cargo::rustc-env=RUSTC_BOOTSTRAP=1"); }"#,
        )
        .build();
    p.cargo_sandboxed(Some("noop"), "check")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[WARNING] foo@0.0.1: cannot set `RUSTC_BOOTSTRAP=1` from build script of `foo v0.0.1 ([ROOT]/foo)`.
[NOTE] crates cannot set `RUSTC_BOOTSTRAP` themselves, as doing so would subvert the stability guarantees of Rust for your project.
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// A package whose build script runs `body` and fails with what it returns.
fn failing_script(body: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            "#,
        )
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            &format!(
                "fn main() {{ let result: std::io::Result<()> = {{ {body} }}; result.unwrap(); }}"
            ),
        )
        .build()
}

/// What the hint grants for a denied `path` below `[ROOT]`: the path, or
/// under `wasmtime`, which can only grant directories, its directory.
fn granted(runner: &str, path: &str) -> String {
    match runner {
        "wasmtime" => path.rsplit_once('/').unwrap().0.to_owned(),
        _ => path.to_owned(),
    }
}

/// The runner records the path a script could not read, and the hint grants
/// exactly that path (its directory under `wasmtime`).
fn a_denied_read_is_hinted_with_its_grant(runner: &str) {
    let data = paths::root().join("shared/data.txt");
    fs::create_dir_all(data.parent().unwrap()).unwrap();
    fs::write(&data, "data").unwrap();
    let p = failing_script(&format!("std::fs::read({data:?}).map(drop)"));
    let grant = granted(runner, "[ROOT]/shared/data.txt");

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(format!(
            "\
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `{runner}` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])
[HELP] the sandbox may have denied `read = [\"{grant}\"]`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.foo]
read = [\"{grant}\"]

Caused by:
...
"
        ))
        .run();
    // The suggested grant, applied, lets the script read it.
    let grant = grant.replace("[ROOT]", paths::root().to_str().unwrap());
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.foo]\nread = [{grant:?}]\n"),
    );
    p.cargo_sandboxed(Some(runner), "build").run();
}

/// A script refused something that falls back and succeeds may build
/// something else than without a sandbox: Cargo warns with the grant, from
/// the record alone, also for a registry dependency, whose scripts' own
/// warnings Cargo hides. With the grant, the same script takes the other way.
fn a_refused_script_that_succeeds_is_warned(runner: &str) {
    let cache = paths::root().join("cache");
    fs::create_dir_all(&cache).unwrap();
    let probe = cache.join("probe");
    Package::new("fallback", "1.0.0")
        .file(
            "build.rs",
            &format!(
                "fn main() {{ let cached = std::fs::write({probe:?}, \"probe\").is_ok(); \
                 println!(\"cargo::rustc-env=CACHED={{cached}}\"); }}"
            ),
        )
        .file("src/lib.rs", "")
        .publish();
    let p = depending_on("fallback = \"1\"");

    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[UPDATING] `dummy-registry` index
[LOCKING] 1 package to latest compatible version
[DOWNLOADING] crates ...
[DOWNLOADED] fallback v1.0.0 (registry `dummy-registry`)
[COMPILING] fallback v1.0.0
[WARNING] fallback@1.0.0: the sandbox refused what `write = ["[ROOT]/cache"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.fallback]` of `.cargo/config.toml`
[WARNING] `fallback` (build script) generated 1 warning
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert!(!probe.exists());
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.fallback]\nwrite = [{cache:?}]\n"),
    );
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] fallback v1.0.0
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert!(probe.exists());
}

/// The runner records where a script could not create a file, and the hint
/// grants writing that directory.
fn a_denied_write_is_hinted_with_its_grant(runner: &str) {
    let generated = paths::root().join("generated");
    fs::create_dir_all(&generated).unwrap();
    let target = generated.join("out.rs");
    let p = failing_script(&format!("std::fs::write({target:?}, \"// generated\")"));

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `[..]` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])
[HELP] the sandbox may have denied `write = ["[ROOT]/generated"]`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.foo]
write = ["[ROOT]/generated"]

Caused by:
...
"#]])
        .run();
    assert!(!target.exists());
    // The suggested grant, applied, lets the script write it.
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.foo]\nwrite = [{generated:?}]\n"),
    );
    p.cargo_sandboxed(Some(runner), "build").run();
    assert!(target.exists());
}

/// A script that prints a denial it never met gets no hint from it: hints
/// come from what the runner recorded, never from the script's words.
fn a_denial_the_script_prints_is_not_hinted(runner: &str) {
    let p = failing_script(
        r#"eprintln!("error: `/etc/shadow`: Permission denied (os error 13)");
        Err(std::io::Error::other("/etc/shadow: No such file or directory"))"#,
    );

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `[..]` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])

Caused by:
  process didn't exit successfully: [..]
  --- stderr
  [ERROR] `/etc/shadow`: Permission denied (os error 13)
...
"#]])
        .run();
}

/// The runner records the addresses a script connects to, and the hint
/// grants the one the policy does not.
fn a_denied_connection_is_hinted_with_its_address(runner: &str) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = failing_script(&format!(
        r#"std::net::TcpStream::connect("127.0.0.1:{port}").map(drop)"#
    ));

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(format!(
            "\
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `[..]` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])
[HELP] the sandbox may have denied `net = [\"127.0.0.1:{port}\"]`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.foo]
net = [\"127.0.0.1:{port}\"]
...
"
        ))
        .run();
    // The suggested grant, applied, lets the script connect.
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.foo]\nnet = [\"127.0.0.1:{port}\"]\n"),
    );
    p.cargo_sandboxed(Some(runner), "build").run();
}

/// The `native` runner records the programs a script could not run (not its
/// output, which the script writes), and the hint names the preset that runs
/// them: `cc` for `cc`.
#[cargo_test]
fn a_missing_cc_is_hinted_with_its_preset() {
    a_missing_program_is_hinted_with_its_preset("cc", "cc");
}

/// ... and `pkg-config` for `pkg-config`.
#[cargo_test]
fn a_missing_pkg_config_is_hinted_with_its_preset() {
    a_missing_program_is_hinted_with_its_preset("pkg-config", "pkg-config");
}

/// The `cc` preset runs the C toolchain, not every program beside it: a
/// script granted `cc` that starts `env` (any program in `/usr/bin`) works
/// without a sandbox and is refused under `native`; the compiler still runs.
#[cargo_test]
fn the_cc_preset_runs_the_toolchain_and_nothing_else() {
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            "#,
        )
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            r#"
            fn main() {
                for program in ["env", "cc"] {
                    let outcome = match std::process::Command::new(program).arg("--version").output() {
                        Ok(output) if output.status.success() => "runs".to_owned(),
                        Ok(output) => format!("fails: {}", output.status),
                        Err(e) => format!("refused: {:?}", e.kind()),
                    };
                    println!("cargo::warning={program}: {outcome}");
                }
            }
            "#,
        )
        .file(".cargo/config.toml", "[build-sandbox.allow.foo]\npresets = [\"cc\"]\n")
        .build();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[WARNING] foo@0.1.0: env: runs
[WARNING] foo@0.1.0: cc: runs
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some("native"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[WARNING] foo@0.1.0: the sandbox refused what `run = ["env"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.foo]` of `.cargo/config.toml`
[WARNING] `foo` (build script) generated 1 warning
[WARNING] foo@0.1.0: env: refused: NotFound
[WARNING] foo@0.1.0: cc: runs
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

fn a_missing_program_is_hinted_with_its_preset(program: &str, preset: &str) {
    let p = project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            "#,
        )
        .file("src/lib.rs", "")
        .file(
            "build.rs",
            &format!(
                r#"
                fn main() {{
                    // A script's own words about a denial do not make the hint.
                    eprintln!("error: `/etc/shadow`: Permission denied (os error 13)");
                    match std::process::Command::new("{program}").arg("--version").output() {{
                        Ok(output) => assert!(output.status.success()),
                        Err(e) => panic!("failed to find tool `{program}`: {{e}}"),
                    }}
                }}
                "#
            ),
        )
        .build();

    p.cargo_sandboxed(Some("native"), "build")
        .with_status(101)
        .with_stderr_data(format!(
            "\
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `foo v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `native` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/foo-[HASH]/out, [ROOT]/foo/target/debug/build/foo-[HASH]/tmp])
[HELP] the sandbox may have denied `presets = [\"{preset}\"]`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.foo]
presets = [\"{preset}\"]
...
"
        ))
        .run();
    // The suggested grant, applied, lets the script run the program.
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.foo]\npresets = [\"{preset}\"]\n"),
    );
    p.cargo_sandboxed(Some("native"), "build").run();
}

/// An object file with `CANARY-linker-script` in its `.comment` section, which
/// the linker keeps, made by `cc` at `root/secret.o`.
fn secret_object() -> std::path::PathBuf {
    let secret = paths::root().join("secret.o");
    let source = paths::root().join("secret.c");
    fs::write(
        &source,
        "__asm__(\".section .comment\\n.string \\\"CANARY-linker-script\\\"\\n\");\n",
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-c", "-o"])
        .arg(&secret)
        .arg(&source)
        .status();
    assert!(status.expect("failed to run `cc`").success());
    secret
}

/// Whether the program `p` built has the canary of [`secret_object`] in it.
fn has_linked_canary(p: &Project) -> bool {
    let program = fs::read(p.root().join("target/debug/foo")).unwrap_or_default();
    program.windows(20).any(|w| w == b"CANARY-linker-script")
}

/// A link argument naming a file the script may not read: the unconfined
/// linker reads it into the program. Only link arguments known to be safe
/// pass (an allow list), whatever the runner.
#[cargo_test]
fn link_args_outside_the_allow_list_are_refused() {
    let secret = secret_object();
    let p = project()
        .file("src/main.rs", "fn main() {}")
        .file(
            "build.rs",
            &format!(
                r#"fn main() {{ println!("cargo::rustc-link-arg={}"); }}"#,
                secret.display()
            ),
        )
        .build();

    // Without the fork's check, the secret object is in the program.
    p.cargo("build").run();
    assert!(has_linked_canary(&p));
    p.cargo("clean").run();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] the build script of `foo` may not pass `[ROOT]/secret.o` to the linker
[NOTE] it is not among the link arguments known to be safe for a sandboxed build script, or names a file the script may not read
[NOTE] the build script ran in the `noop` sandbox
[HELP] if `foo` needs it, grant `linker-plugins = true` in `[build-sandbox.allow.foo]` of `.cargo/config.toml`

"#]])
        .run();
    assert!(!has_linked_canary(&p));

    // Control: arguments on the list pass.
    p.change_file(
        "build.rs",
        r#"fn main() { println!("cargo::rustc-link-arg=-Wl,--as-needed,-z,relro"); }"#,
    );
    p.cargo_sandboxed(Some("noop"), "build").run();
}

/// A library in `OUT_DIR` that is a GNU linker script: the unconfined linker
/// follows its `INPUT(...)` and links a file the script could not read into
/// the program.
fn linker_scripts_posing_as_libraries_are_refused(runner: &str) {
    let secret = secret_object();
    let script = |library: &str, kind: &str| {
        format!(
            r#"fn main() {{
                let out = std::env::var("OUT_DIR").unwrap();
                std::fs::write(format!("{{out}}/{library}"), {contents:?}).unwrap();
                println!("cargo::rustc-link-search=native={{out}}");
                println!("cargo::rustc-link-lib={kind}=sneak");
            }}"#,
            contents = match library {
                "libsneak.so" => format!("INPUT({})", secret.display()),
                _ => "!<arch>\n".to_owned(),
            },
        )
    };
    let p = project()
        .file("src/main.rs", "fn main() {}")
        .file("build.rs", &script("libsneak.so", "dylib"))
        .build();
    // Without the fork's check, the secret object is in the program.
    p.cargo("build").run();
    assert!(has_linked_canary(&p));
    p.cargo("clean").run();

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] foo v0.0.1 ([ROOT]/foo)
[ERROR] the build script of `foo` may not hand `[ROOT]/foo/target/debug/build/foo-[HASH]/out/libsneak.so` to the linker
[NOTE] it is not an archive or a shared object; the linker would read it as a linker script, which can make it read any file into the output
[NOTE] the build script ran in the `[..]` sandbox
[HELP] if `foo` needs it, grant `linker-plugins = true` in `[build-sandbox.allow.foo]` of `.cargo/config.toml`

"#]])
        .run();
    assert!(!p.root().join("target/debug/foo").exists());

    // Control: a real (empty) archive links. (`OUT_DIR` keeps its files
    // between runs: the linker script would still be found there.)
    p.cargo("clean").run();
    p.change_file("build.rs", &script("libsneak.a", "static"));
    p.cargo_sandboxed(Some(runner), "build").run();
    assert!(!has_linked_canary(&p));
}

mod noop {
    use super::*;

    per_runner!("noop" => linker_scripts_posing_as_libraries_are_refused);
}

mod native {
    use super::*;

    per_runner!("native" =>
        linker_scripts_posing_as_libraries_are_refused,
        a_denied_read_is_hinted_with_its_grant,
        a_denied_write_is_hinted_with_its_grant,
        a_denial_the_script_prints_is_not_hinted,
        a_denied_connection_is_hinted_with_its_address,
        a_refused_script_that_succeeds_is_warned,
    );
}

mod wasmtime {
    use super::*;

    per_runner!("wasmtime" =>
        linker_scripts_posing_as_libraries_are_refused,
        a_denied_read_is_hinted_with_its_grant,
        a_denied_write_is_hinted_with_its_grant,
        a_denial_the_script_prints_is_not_hinted,
        a_denied_connection_is_hinted_with_its_address,
        a_refused_script_that_succeeds_is_warned,
    );
}
