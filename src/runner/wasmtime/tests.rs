//! Runs a small guest program, compiled for `wasm32-wasip2` at test time, under
//! the runner. The guest does what its first argument says.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::*;
use crate::runner::{Denials, LimitKind};
use crate::{Baseline, Denial, Request};

const GUEST: &str = r#"
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args[i].as_str();
    let report = |result: std::io::Result<()>| match result {
        Ok(()) => println!("ok"),
        Err(e) => println!("err {:?}", e.kind()),
    };
    match arg(0) {
        "env" => {
            for (name, value) in std::env::vars() {
                println!("{name}={value}");
            }
        }
        "read" => match std::fs::read_to_string(arg(1)) {
            Ok(text) => println!("ok {}", text.trim()),
            Err(e) => println!("err {:?}", e.kind()),
        },
        "write" => report(std::fs::write(arg(1), "written")),
        "truncate" => report(
            std::fs::OpenOptions::new().write(true).truncate(true).open(arg(1)).map(drop),
        ),
        "connect" => report(std::net::TcpStream::connect(arg(1)).map(drop)),
        "temp" => {
            // `std::env::temp_dir()` panics on WASI (Rust 1.95), whatever `TMPDIR` says.
            let dir = std::path::PathBuf::from(std::env::var_os("TMPDIR").unwrap());
            let path = dir.join("scratch");
            report(std::fs::write(&path, "scratch"));
            println!("{}", path.display());
        }
        "det" => {
            let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let start = Instant::now();
            let elapsed = start.elapsed();
            let mut random = [0u8; 16];
            for (i, byte) in random.iter_mut().enumerate() {
                use std::hash::{BuildHasher, RandomState};
                *byte = RandomState::new().hash_one(i) as u8;
            }
            let text = format!("{wall:?} {elapsed:?} {random:?}\n");
            std::fs::write(arg(1), &text).unwrap();
            print!("{text}");
        }
        "lines" => {
            for i in 0..200 {
                println!("line {i}");
            }
            eprintln!("to stderr");
            print!("last, without newline");
        }
        "exit" => std::process::exit(arg(1).parse().unwrap()),
        "panic" => panic!("the guest panicked"),
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
        "spin" => loop {
            std::hint::black_box(());
        },
        "alloc" => {
            let mut blocks = Vec::new();
            loop {
                blocks.push(vec![1u8; 1 << 20]);
            }
        }
        "flood" => loop {
            let _ = std::io::stdout().write_all(b"flood flood flood flood\n");
        },
        other => panic!("unknown command {other}"),
    }
}
"#;

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "build-sandbox-wasmtime-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The guest component, compiled by `rustc` next to the test executable and
/// reused while its source stays the same.
fn guest() -> &'static Path {
    static GUEST_WASM: OnceLock<PathBuf> = OnceLock::new();
    GUEST_WASM.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().join("build-sandbox-wasmtime-guest");
        std::fs::create_dir_all(&dir).unwrap();
        let digest = sha2::Sha256::digest(GUEST.as_bytes());
        let wasm = dir.join(format!("guest-{}.wasm", compile::hex(&digest[..8])));
        if wasm.is_file() {
            return wasm;
        }
        let source = dir.join(format!("guest-{}.rs", std::process::id()));
        std::fs::write(&source, GUEST).unwrap();
        let built = source.with_extension("wasm");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let output = Command::new(rustc)
            .args(["--edition", "2024", "--target", "wasm32-wasip2", "-O"])
            .arg(&source)
            .arg("-o")
            .arg(&built)
            .output()
            .expect("failed to run rustc");
        assert!(
            output.status.success(),
            "failed to compile the guest for `wasm32-wasip2` (install it with \
             `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&built, &wasm).unwrap();
        let _ = std::fs::remove_file(&source);
        wasm
    })
}

/// A package root with a `data.txt`, an `OUT_DIR` and a temporary directory.
struct Package {
    dir: TempDir,
}

impl Package {
    fn new(name: &str) -> Package {
        let dir = TempDir::new(name);
        for sub in ["pkg", "out", "tmp", "outside"] {
            std::fs::create_dir(dir.0.join(sub)).unwrap();
        }
        std::fs::write(dir.0.join("pkg/data.txt"), "package data").unwrap();
        std::fs::write(dir.0.join("outside/secret.txt"), "secret").unwrap();
        Package { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.0.join(sub)
    }

    fn arg(&self, sub: &str) -> String {
        self.path(sub).to_str().unwrap().to_owned()
    }

    fn policy(&self, request: Request) -> EffectivePolicy {
        let baseline = Baseline {
            package_root: self.path("pkg"),
            out_dir: self.path("out"),
            temp_dir: self.path("tmp"),
            dependency_out_dirs: Default::default(),
        };
        EffectivePolicy::granting(baseline, request)
    }

    fn run(&self, request: Request, args: &[&str]) -> (Result<Output, RunError>, Vec<String>) {
        let env = BTreeMap::from([
            ("OUT_DIR".to_owned(), Some(self.path("out").into())),
            ("TARGET".to_owned(), Some("wasm32-wasip2".into())),
        ]);
        self.run_with_env(request, args, &env)
    }

    fn run_with_env(
        &self,
        request: Request,
        args: &[&str],
        env: &BTreeMap<String, Option<OsString>>,
    ) -> (Result<Output, RunError>, Vec<String>) {
        self.run_recording(request, args, env, None)
    }

    fn run_recording(
        &self,
        request: Request,
        args: &[&str],
        env: &BTreeMap<String, Option<OsString>>,
        denials: Option<&Denials>,
    ) -> (Result<Output, RunError>, Vec<String>) {
        let policy = self.policy(request);
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let invocation = Invocation {
            program: guest(),
            args: &args,
            env,
            cwd: &self.path("pkg"),
            jobserver: None,
            rustc_sysroot: None,
            policy: &policy,
            denials,
        };
        let mut lines = Vec::new();
        let result = WasmtimeRunner::default().run(
            &invocation,
            &mut |line| {
                lines.push(line.to_owned());
                Ok(())
            },
            &mut |_| Ok(()),
        );
        (result, lines)
    }

    /// Runs the guest and returns its stdout lines; it must exit successfully.
    /// Runs the guest with no grant and returns what the runner recorded.
    fn denials(&self, args: &[&str]) -> Vec<Denial> {
        let denials = Denials::default();
        let env = BTreeMap::new();
        let (result, _) = self.run_recording(Request::default(), args, &env, Some(&denials));
        result.unwrap();
        denials.recorded()
    }

    fn lines(&self, request: Request, args: &[&str]) -> Vec<String> {
        let (result, lines) = self.run(request, args);
        let output = result.unwrap();
        assert!(
            output.status.success(),
            "{:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        lines
    }

    fn line(&self, request: Request, args: &[&str]) -> String {
        let lines = self.lines(request, args);
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap()
    }
}

fn request(text: &str) -> Request {
    Request::parse_at(text, "/")
}

/// What Cargo would pass to `runner::create`, with this cache directory.
fn context(cache_dir: Option<PathBuf>) -> crate::runner::RunnerContext {
    crate::runner::RunnerContext {
        allow_weaker: Default::default(),
        cache_dir,
    }
}

fn limit_exceeded(result: Result<Output, RunError>) -> (LimitKind, String, Output) {
    match result {
        Err(RunError::LimitExceeded {
            limit,
            value,
            output,
        }) => (limit, value, output),
        other => panic!("expected an exceeded limit, got {other:?}"),
    }
}

#[test]
fn the_environment_is_exactly_the_invocations() {
    // `cargo test` sets `CARGO_PKG_*` for the test process; the environment is
    // never changed here (`set_var` races other threads).
    let package = Package::new("env");
    let mut lines = package.lines(Request::default(), &["env"]);
    lines.sort();
    let tmp = format!("TMPDIR={}", package.arg("tmp"));
    let out = format!("OUT_DIR={}", package.arg("out"));
    assert_eq!(lines, [out.as_str(), "TARGET=wasm32-wasip2", tmp.as_str()]);

    let granted = package.lines(request("env = [\"CARGO_PKG_*\"]"), &["env"]);
    assert!(granted.contains(&"CARGO_PKG_NAME=build-sandbox".to_owned()));
}

#[test]
fn the_package_root_is_readable_by_relative_and_absolute_paths() {
    let package = Package::new("read-root");
    let data = package.arg("pkg/data.txt");
    assert_eq!(
        package.line(Request::default(), &["read", &data]),
        "ok package data"
    );
    assert_eq!(
        package.line(Request::default(), &["read", "data.txt"]),
        "ok package data"
    );
}

#[test]
fn nothing_outside_the_grants_is_readable() {
    let package = Package::new("read-outside");
    let secret = package.arg("outside/secret.txt");
    let refused = package.line(Request::default(), &["read", &secret]);
    assert!(refused.starts_with("err"), "{refused}");
    let escape = format!("{}/../outside/secret.txt", package.arg("pkg"));
    let refused = package.line(Request::default(), &["read", &escape]);
    assert!(refused.starts_with("err"), "{refused}");
    let refused = package.line(Request::default(), &["read", "/etc/passwd"]);
    assert!(refused.starts_with("err"), "{refused}");

    let grant = request(&format!("read = [{:?}]", package.arg("outside")));
    assert_eq!(package.line(grant, &["read", &secret]), "ok secret");
}

#[test]
fn only_the_out_dir_and_temp_dir_are_writable() {
    let package = Package::new("write");
    let line = |args: &[&str]| package.line(Request::default(), args);
    assert_eq!(line(&["write", &package.arg("out/file")]), "ok");
    assert_eq!(
        std::fs::read_to_string(package.path("out/file")).unwrap(),
        "written"
    );

    let temp = package.lines(Request::default(), &["temp"]);
    assert_eq!(temp, ["ok".to_owned(), package.arg("tmp/scratch")]);

    let outside = package.arg("outside/file");
    assert!(line(&["write", &outside]).starts_with("err"));
    let dotdot = format!("{}/../outside/file", package.arg("out"));
    assert!(line(&["write", &dotdot]).starts_with("err"));
    std::os::unix::fs::symlink(package.path("outside"), package.path("out/link")).unwrap();
    assert!(line(&["write", &package.arg("out/link/file")]).starts_with("err"));
    assert!(!package.path("outside/file").exists());

    assert!(line(&["write", &package.arg("pkg/new")]).starts_with("err"));
    assert!(line(&["write", "new"]).starts_with("err"));
    assert!(line(&["truncate", &package.arg("pkg/data.txt")]).starts_with("err"));
    assert!(line(&["truncate", "data.txt"]).starts_with("err"));
    let data = std::fs::read_to_string(package.path("pkg/data.txt")).unwrap();
    assert_eq!(data, "package data");
}

#[test]
fn denied_paths_and_connections_are_recorded() {
    let package = Package::new("record");
    let secret = package.arg("outside/secret.txt");
    // The directory that holds a file: only directories can be preopened.
    let read = Denial::Read(package.path("outside"));
    let escape = format!("{}/../outside/secret.txt", package.arg("pkg"));
    for path in [&secret, &escape] {
        assert_eq!(
            package.denials(&["read", path]),
            std::slice::from_ref(&read)
        );
    }
    // Paths that exist nowhere are probes, not denials.
    assert_eq!(package.denials(&["read", "/nonexistent/x.h"]), []);

    let write = Denial::Write(package.path("pkg"));
    let new = package.arg("pkg/new");
    for path in [new.as_str(), "new"] {
        assert_eq!(
            package.denials(&["write", path]),
            std::slice::from_ref(&write)
        );
    }
    assert_eq!(package.denials(&["write", &package.arg("out/file")]), []);

    let address = "192.0.2.7:443";
    let connection = Denial::Connection(address.parse().unwrap());
    assert_eq!(package.denials(&["connect", address]), [connection]);
}

#[test]
fn connections_go_only_to_granted_endpoints() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let other_address = other.local_addr().unwrap().to_string();
    let package = Package::new("net");

    let refused = package.line(Request::default(), &["connect", &address]);
    assert!(refused.starts_with("err"), "{refused}");
    let grant = || request(&format!("net = [\"127.0.0.1:{port}\"]"));
    assert_eq!(package.line(grant(), &["connect", &address]), "ok");
    let refused = package.line(grant(), &["connect", &other_address]);
    assert!(refused.starts_with("err"), "{refused}");

    // A granted host name is looked up by the guest and checked by address.
    let by_name = request(&format!("net = [\"localhost:{port}\"]"));
    let localhost = format!("localhost:{port}");
    assert_eq!(package.line(by_name, &["connect", &localhost]), "ok");
    let refused = package.line(grant(), &["connect", &localhost]);
    assert!(refused.starts_with("err"), "{refused}");
}

#[test]
fn the_time_limit_stops_an_endless_loop() {
    let package = Package::new("time");
    let start = Instant::now();
    let (result, _) = package.run(request("limits = { time = \"300ms\" }"), &["spin"]);
    let (limit, value, _) = limit_exceeded(result);
    assert_eq!((limit, value.as_str()), (LimitKind::Time, "300ms"));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_time_limit_gives_up_on_a_guest_blocked_in_the_host() {
    let package = Package::new("sleep");
    let start = Instant::now();
    let (result, _) = package.run(request("limits = { time = \"300ms\" }"), &["sleep"]);
    let (limit, _, _) = limit_exceeded(result);
    assert_eq!(limit, LimitKind::Time);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_memory_limit_stops_a_memory_bomb() {
    let package = Package::new("memory");
    let (result, _) = package.run(request("limits = { memory = \"64MiB\" }"), &["alloc"]);
    let (limit, value, _) = limit_exceeded(result);
    assert_eq!((limit, value.as_str()), (LimitKind::Memory, "64MiB"));
}

#[test]
fn the_output_limit_stops_a_flood() {
    let package = Package::new("output");
    let (result, lines) = package.run(request("limits = { output = \"10KB\" }"), &["flood"]);
    let (limit, value, output) = limit_exceeded(result);
    assert_eq!((limit, value.as_str()), (LimitKind::Output, "10KB"));
    assert!(output.stdout.len() <= 10_000);
    assert!(!lines.is_empty());
}

#[test]
fn time_and_randomness_are_deterministic_unless_granted() {
    let package = Package::new("det");
    let run = |request: Request, name: &str| {
        let path = package.arg(&format!("out/{name}"));
        package.lines(request, &["det", &path]);
        std::fs::read(path).unwrap()
    };
    let first = run(Request::default(), "a");
    assert_eq!(first, run(Request::default(), "b"));
    let epoch = BTreeMap::from([("SOURCE_DATE_EPOCH".to_owned(), Some("1700000000".into()))]);
    let (result, lines) =
        package.run_with_env(Request::default(), &["det", &package.arg("out/c")], &epoch);
    result.unwrap();
    assert!(lines[0].starts_with("1700000000s "), "{lines:?}");

    let granted = || request("clock = true\nrandom = true");
    assert_ne!(run(granted(), "d"), run(granted(), "e"));
}

#[test]
fn exit_codes_and_traps_are_reported_like_a_process() {
    let package = Package::new("exit");
    // Rust's std (1.95) exits through `wasi:cli/exit.exit`, which has only
    // success and failure; a guest calling `exit-with-code` keeps its code.
    let (result, _) = package.run(Request::default(), &["exit", "3"]);
    assert_eq!(result.unwrap().status.code(), Some(1));
    let (result, _) = package.run(Request::default(), &["exit", "0"]);
    assert!(result.unwrap().status.success());
    assert_eq!(run::exit_status(3).code(), Some(3));
    assert_eq!(run::exit_status(256 + 42).code(), Some(42));

    let (result, _) = package.run(Request::default(), &["panic"]);
    let output = result.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(6));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the guest panicked"), "{stderr}");
    assert!(
        stderr.contains("error: the build script trapped"),
        "{stderr}"
    );
}

#[test]
fn lines_arrive_in_order() {
    let package = Package::new("lines");
    let (result, lines) = package.run(Request::default(), &["lines"]);
    let output = result.unwrap();
    let mut expected: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    expected.push("last, without newline".into());
    assert_eq!(lines, expected);
    assert_eq!(output.stderr, b"to stderr\n");
    assert!(output.stdout.ends_with(b"line 199\nlast, without newline"));
}

#[test]
fn a_failing_callback_still_drains_the_guest() {
    let package = Package::new("callback");
    let policy = package.policy(Request::default());
    let args = [OsString::from("lines")];
    let env = BTreeMap::new();
    let invocation = Invocation {
        program: guest(),
        args: &args,
        env: &env,
        cwd: &package.path("pkg"),
        jobserver: None,
        rustc_sysroot: None,
        policy: &policy,
        denials: None,
    };
    let mut seen = 0;
    let result = WasmtimeRunner::default().run(
        &invocation,
        &mut |_| {
            seen += 1;
            anyhow::bail!("bad directive")
        },
        &mut |_| Ok(()),
    );
    assert_eq!(seen, 1);
    let Err(RunError::Callback { error, output }) = result else {
        panic!("unexpected {result:?}")
    };
    assert_eq!(error.to_string(), "bad directive");
    assert!(output.stdout.ends_with(b"last, without newline"));
}

#[test]
fn compiled_components_are_cached() {
    let cache = TempDir::new("cache");
    // A component of its own, so that no other test has loaded it.
    let component = cache.0.join("copy.wasm");
    let mut bytes = std::fs::read(guest()).unwrap();
    // A custom section (id 0) with an empty name makes the component distinct.
    bytes.extend_from_slice(&[0, 1, 0]);
    std::fs::write(&component, bytes).unwrap();
    let dir = cache.0.join("compiled");
    let outcome = || compile::load(&component, Some(&dir)).unwrap().1;
    assert_eq!(outcome(), CacheOutcome::Compiled);
    assert_eq!(outcome(), CacheOutcome::InMemory);
    compile::forget_loaded();
    assert_eq!(outcome(), CacheOutcome::Hit);

    // `prepare` says which, for Cargo's verbose log.
    let copy = cache.0.join("copy2.wasm");
    let mut bytes = std::fs::read(&component).unwrap();
    bytes.extend_from_slice(&[0, 1, 0]);
    std::fs::write(&copy, bytes).unwrap();
    let runner = crate::runner::create(RunnerKind::Wasmtime, &context(Some(dir))).unwrap();
    assert_eq!(runner.prepare(&copy).unwrap(), Some("component compiled"));
    assert_eq!(runner.prepare(&copy).unwrap(), Some("component from cache"));
}

#[test]
fn a_native_program_is_refused_with_a_hint() {
    let runner = crate::runner::create(RunnerKind::Wasmtime, &context(None)).unwrap();
    let native = std::env::current_exe().unwrap();
    let err = runner.prepare(&native).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is not a WebAssembly component\n\
             help: the `wasmtime` runner runs build scripts compiled for `wasm32-wasip2`",
            native.display()
        )
    );
}

#[test]
fn check_refuses_programs_and_a_writable_cache() {
    let package = Package::new("check");
    let runner = WasmtimeRunner::default();
    let err = runner
        .check(&package.policy(request("run = [\"cc\"]\npresets = [\"pkg-config\"]")))
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<crate::runner::Refusal>(),
        Some(&crate::runner::Refusal {
            message: "the `wasmtime` sandbox runner cannot run programs\n\
                      note: the policy grants `run = [\"cc\"]`\n\
                      note: the policy grants `presets = [\"pkg-config\"]`"
                .to_owned(),
            remedies: vec![crate::runner::Remedy::UseRunner {
                runner: RunnerKind::Native,
                purpose: None,
            }],
        })
    );
    runner
        .check(&package.policy(request("net = [\"localhost:80\"]")))
        .unwrap();

    let cached = WasmtimeRunner::new(Some(package.path("out/cache")));
    let err = cached
        .check(&package.policy(Request::default()))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the `wasmtime` sandbox runner cannot let a build script write to"),
        "{err}"
    );
}
