//! Canary tests: what a malicious build script tries, per runner.
//!
//! Each attack is a build script that tries one thing and reports the outcome
//! as a `cargo::warning` (`<attack>: succeeded: <data>` or `<attack>: blocked:
//! <error kind>`). Every test runs the attack three ways:
//!
//! * **baseline**: with the `noop` runner, proving the attack works without a sandbox;
//! * **sandboxed**: with the runner under test, proving it fails, and that the
//!   canary appears nowhere in Cargo's output or the target directory;
//! * **control**: legitimate work in the same script still succeeds.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Duration;

use cargo_test_support::{Project, paths, str};

use crate::utils::{ProjectExt, assert_canary_absent, canary_project, per_runner, write_canary};

/// The native calls some attacks make, next to the shared helpers.
const UNIX_CALLS: &str = r#"
unsafe extern "C" {
    fn fork() -> i32;
    fn setsid() -> i32;
    fn close(fd: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn setxattr(path: *const std::ffi::c_char, name: *const std::ffi::c_char, value: *const std::ffi::c_void, size: usize, flags: i32) -> i32;
    fn inotify_init1(flags: i32) -> i32;
    fn inotify_add_watch(fd: i32, path: *const std::ffi::c_char, mask: u32) -> i32;
}
"#;

/// A package whose build script runs `body`; see [`canary_project`].
fn attack_project(body: &str) -> Project {
    canary_project(UNIX_CALLS, body, "")
}

/// Reading a file outside every grant: an SSH key and Cargo's registry token
/// in the (fake) home directory.
fn reads_secrets_in_home(runner: &str) {
    let ssh_key = paths::home().join(".ssh/id_ed25519");
    let credentials = paths::cargo_home().join("credentials.toml");
    write_canary(&ssh_key, "CANARY-ssh-key");
    write_canary(&credentials, "CANARY-registry-token");
    let p = attack_project(&format!(
        r#"
        report("read ssh key", std::fs::read_to_string({ssh_key:?}));
        report("read credentials", std::fs::read_to_string({credentials:?}));
        "#
    ));

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read ssh key: succeeded: CANARY-ssh-key
[WARNING] victim@0.1.0: read credentials: succeeded: CANARY-registry-token
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `read = ["[ROOT]/home/.cargo/credentials.toml", "[ROOT]/home/.ssh/id_ed25519"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: read ssh key: blocked: NotFound
[WARNING] victim@0.1.0: read credentials: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
}

/// Secrets in Cargo's environment.
fn reads_secret_env(runner: &str) {
    let p = attack_project(
        r#"
        report("read env", std::env::var("GITHUB_TOKEN").map_err(|_| std::io::ErrorKind::NotFound.into()));
        "#,
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .env("GITHUB_TOKEN", "CANARY-env-token")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read env: succeeded: CANARY-env-token
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .env("GITHUB_TOKEN", "CANARY-env-token")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read env: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
}

/// Another process's environment through `/proc`.
fn reads_other_processes_environ(runner: &str) {
    let p = attack_project(
        r#"
        let mut found = Err(std::io::ErrorKind::NotFound.into());
        match std::fs::read_dir("/proc") {
            Err(e) => found = Err(e),
            Ok(entries) => for entry in entries.flatten() {
                if let Ok(environ) = std::fs::read(entry.path().join("environ")) {
                    if let Some(at) = String::from_utf8_lossy(&environ).find("CANARY-proc") {
                        found = Ok(String::from_utf8_lossy(&environ)[at..at + 16].to_string());
                    }
                }
            },
        }
        report("read /proc/*/environ", found);
        "#,
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .env("SOME_SECRET", "CANARY-proc-7d1e")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read /proc/*/environ: succeeded: CANARY-proc-7d1e
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .env("SOME_SECRET", "CANARY-proc-7d1e")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read /proc/*/environ: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-proc-7d1e");
}

/// Writes outside `OUT_DIR`: the package's own sources, another crate's
/// sources in `CARGO_HOME`, another package's build directory, through `..`.
fn writes_outside_out_dir(runner: &str) {
    let registry_src = paths::cargo_home().join("registry/src/index/other-1.0.0/src/lib.rs");
    write_canary(&registry_src, "pub fn other() {}\n");
    let p = attack_project(&format!(
        r#"
        let append = |path: &std::path::Path| -> std::io::Result<String> {{
            let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
            file.write_all(b"// CANARY-write\n")?;
            Ok("appended".into())
        }};
        let root = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
        report("write own src", append(&root.join("src/lib.rs")));
        report("write registry src", append(std::path::Path::new({registry_src:?})));
        report("create in target/debug", std::fs::write(root.join("target/debug/CANARY-write"), "x").map(|_| "created".into()));
        report("create via ..", std::fs::write(out_dir().join("../../../CANARY-dotdot"), "x").map(|_| "created".into()));
        "#
    ));

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: write own src: succeeded: appended
[WARNING] victim@0.1.0: write registry src: succeeded: appended
[WARNING] victim@0.1.0: create in target/debug: succeeded: created
[WARNING] victim@0.1.0: create via ..: succeeded: created
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    // Undo the baseline's damage before the sandboxed run.
    p.change_file(
        "src/lib.rs",
        r#"include!(concat!(env!("OUT_DIR"), "/generated.rs"));"#,
    );
    fs::write(&registry_src, "pub fn other() {}\n").unwrap();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `write = ["[ROOT]/foo/src/lib.rs", "[ROOT]/foo/target/debug", "[ROOT]/home/.cargo/registry/src/index/other-1.0.0/src/lib.rs"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: write own src: blocked: ReadOnlyFilesystem
[WARNING] victim@0.1.0: write registry src: blocked: NotFound
[WARNING] victim@0.1.0: create in target/debug: blocked: ReadOnlyFilesystem
[WARNING] victim@0.1.0: create via ..: blocked: ReadOnlyFilesystem
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
    assert!(!p.read_file("src/lib.rs").contains("CANARY"));
    assert!(
        !fs::read_to_string(&registry_src)
            .unwrap()
            .contains("CANARY")
    );
}

/// Escapes through links created inside `OUT_DIR`: a symlink to a secret, a
/// symlink to a file to overwrite, a hard link to a secret.
fn escapes_through_links(runner: &str) {
    let secret = paths::home().join("secret.txt");
    write_canary(&secret, "CANARY-link");
    let target_file = paths::root().join("outside.txt");
    fs::write(&target_file, "untouched").unwrap();
    let p = attack_project(&format!(
        r#"
        let out = out_dir();
        report("read via symlink", std::os::unix::fs::symlink({secret:?}, out.join("link"))
            .and_then(|_| std::fs::read_to_string(out.join("link"))));
        report("write via symlink", std::os::unix::fs::symlink({target_file:?}, out.join("wlink"))
            .and_then(|_| std::fs::write(out.join("wlink"), "CANARY-overwritten"))
            .map(|_| "written".into()));
        report("read via hardlink", std::fs::hard_link({secret:?}, out.join("hard"))
            .and_then(|_| std::fs::read_to_string(out.join("hard"))));
        "#
    ));

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read via symlink: succeeded: CANARY-link
[WARNING] victim@0.1.0: write via symlink: succeeded: written
[WARNING] victim@0.1.0: read via hardlink: succeeded: CANARY-link
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    fs::write(&target_file, "untouched").unwrap();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: read via symlink: blocked: NotFound
[WARNING] victim@0.1.0: write via symlink: blocked: ReadOnlyFilesystem
[WARNING] victim@0.1.0: read via hardlink: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_canary_absent(&p, &output, "CANARY-");
    assert_eq!(fs::read_to_string(&target_file).unwrap(), "untouched");
}

/// Exfiltration over TCP, UDP and unix sockets to listeners on this machine.
/// A unix datagram socket made with `socketpair`, which needs no `socket`
/// call, can still send to any datagram socket by its path.
fn exfiltrates_over_sockets(runner: &str) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let unix_path = paths::root().join("exfil.sock");
    let unix = UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let dgram_path = paths::root().join("exfil-dgram.sock");
    let dgram = UnixDatagram::bind(&dgram_path).unwrap();
    dgram.set_nonblocking(true).unwrap();
    let p = attack_project(&format!(
        r#"
        report("tcp", std::net::TcpStream::connect({tcp:?})
            .and_then(|mut s| s.write_all(b"CANARY-tcp").map(|_| "sent".into())));
        report("udp", std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.send_to(b"CANARY-udp", {udp:?}).map(|_| "sent".into())));
        report("unix", std::os::unix::net::UnixStream::connect({unix_path:?})
            .and_then(|mut s| s.write_all(b"CANARY-unix").map(|_| "sent".into())));
        report("unix datagram", std::os::unix::net::UnixDatagram::pair()
            .and_then(|(s, _)| s.send_to(b"CANARY-dgram", {dgram_path:?}).map(|_| "sent".into())));
        "#,
        tcp = tcp.local_addr().unwrap().to_string(),
        udp = udp.local_addr().unwrap().to_string(),
    ));
    let received = |tcp: &TcpListener, udp: &UdpSocket, unix: &UnixListener| {
        let mut buf = [0; 64];
        let mut got = Vec::new();
        if let Ok((mut stream, _)) = tcp.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut data = String::new();
            let _ = stream.read_to_string(&mut data);
            got.push(data);
        }
        if let Ok(n) = udp.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if let Ok((mut stream, _)) = unix.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut data = String::new();
            let _ = stream.read_to_string(&mut data);
            got.push(data);
        }
        if let Ok(n) = dgram.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    };

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: tcp: succeeded: sent
[WARNING] victim@0.1.0: udp: succeeded: sent
[WARNING] victim@0.1.0: unix: succeeded: sent
[WARNING] victim@0.1.0: unix datagram: succeeded: sent
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(
        received(&tcp, &udp, &unix),
        ["CANARY-tcp", "CANARY-udp", "CANARY-unix", "CANARY-dgram"]
    );
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `net = ["127.0.0.1:[..]"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: tcp: blocked: PermissionDenied
[WARNING] victim@0.1.0: udp: blocked: PermissionDenied
[WARNING] victim@0.1.0: unix: blocked: PermissionDenied
[WARNING] victim@0.1.0: unix datagram: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert!(received(&tcp, &udp, &unix).is_empty());
    let _ = std::io::stdout().flush();
}

/// Setting the setuid bit, which landlock does not mediate: on a program
/// outside every grant that the user owns (root owns the system's), and on a
/// new file in `OUT_DIR`. A setuid program runs with its owner's rights for
/// whoever starts it. Control: ordinary modes still change.
fn sets_the_setuid_bit(runner: &str) {
    let program = paths::root().join("victim-program");
    fs::write(&program, "#!/bin/sh\n").unwrap();
    let p = attack_project(&format!(
        r#"
        use std::os::unix::fs::{{OpenOptionsExt, PermissionsExt}};
        let mode = |path: &str| std::fs::metadata(path).map(|m| format!("{{:o}}", m.permissions().mode() & 0o7777));
        report("chmod u+s outside", std::fs::set_permissions({program:?}, std::fs::Permissions::from_mode(0o4755))
            .and_then(|()| mode({program:?})));
        let out = std::env::var("OUT_DIR").unwrap();
        let created = format!("{{out}}/setuid");
        report("create u+s in OUT_DIR", std::fs::OpenOptions::new().write(true).create(true).mode(0o6755).open(&created)
            .and_then(|_| mode(&created)));
        let plain = format!("{{out}}/plain");
        std::fs::write(&plain, "").unwrap();
        report("chmod 755 in OUT_DIR", std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755))
            .and_then(|()| mode(&plain)));
        "#
    ));
    let program_mode = || fs::metadata(&program).unwrap().permissions().mode() & 0o7777;

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: chmod u+s outside: succeeded: 4755
[WARNING] victim@0.1.0: create u+s in OUT_DIR: succeeded: 6755
[WARNING] victim@0.1.0: chmod 755 in OUT_DIR: succeeded: 755
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(program_mode(), 0o4755);
    fs::set_permissions(&program, fs::Permissions::from_mode(0o644)).unwrap();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: chmod u+s outside: blocked: PermissionDenied
[WARNING] victim@0.1.0: create u+s in OUT_DIR: blocked: PermissionDenied
[WARNING] victim@0.1.0: chmod 755 in OUT_DIR: succeeded: 755
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(program_mode(), 0o644);
}

/// Changing the metadata of files the script may not write: the mode of a
/// file outside every grant (making a secret world-readable), the times of
/// another package's source (fingerprint poisoning) and an extended attribute.
/// Landlock has no right for these calls. The package's own root, readable
/// only, is tried too.
fn changes_metadata_outside_the_policy(runner: &str) {
    let secret = paths::home().join(".ssh/id_ed25519");
    write_canary(&secret, "CANARY-metadata");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let other_source = paths::root().join("other/src/lib.rs");
    write_canary(&other_source, "// another package");
    let p = attack_project(&format!(
        r#"
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &str| std::fs::metadata(path).map(|m| format!("{{:o}}", m.permissions().mode() & 0o777));
        report("chmod secret 644", std::fs::set_permissions({secret:?}, std::fs::Permissions::from_mode(0o644))
            .and_then(|()| mode({secret:?})));
        let epoch = std::time::SystemTime::UNIX_EPOCH;
        report("reset mtime of another package", std::fs::File::open({other_source:?})
            .and_then(|file| file.set_modified(epoch))
            .map(|()| "1970".to_owned()));
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        report("chmod own manifest", std::fs::set_permissions(manifest, std::fs::Permissions::from_mode(0o666))
            .and_then(|()| mode(manifest)));
        let path = std::ffi::CString::new({other_source:?}).unwrap();
        let value = b"x";
        let set = unsafe {{ setxattr(path.as_ptr(), c"user.sneak".as_ptr(), value.as_ptr().cast(), 1, 0) }};
        report("setxattr on another package", if set == 0 {{ Ok("set".to_owned()) }} else {{ Err(std::io::Error::last_os_error()) }});
        "#
    ));
    let secret_mode = || fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    let other_mtime = || fs::metadata(&other_source).unwrap().modified().unwrap();

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: chmod secret 644: succeeded: 644
[WARNING] victim@0.1.0: reset mtime of another package: succeeded: 1970
[WARNING] victim@0.1.0: chmod own manifest: succeeded: 666
[WARNING] victim@0.1.0: setxattr on another package: succeeded: set
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(secret_mode(), 0o644);
    assert_eq!(other_mtime(), std::time::SystemTime::UNIX_EPOCH);
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(
        p.root().join("Cargo.toml"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    write_canary(&other_source, "// another package");
    let before = other_mtime();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `read = ["[ROOT]/other/src/lib.rs"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: chmod secret 644: blocked: NotFound
[WARNING] victim@0.1.0: reset mtime of another package: blocked: NotFound
[WARNING] victim@0.1.0: chmod own manifest: blocked: ReadOnlyFilesystem
[WARNING] victim@0.1.0: setxattr on another package: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(secret_mode(), 0o600);
    assert_eq!(other_mtime(), before);
}

/// Looking at what the script may not read: whether a secret exists, where a
/// link points, watching a directory for the names of its files, and the
/// host's processes (Cargo's own among them) by their `/proc` entries.
fn sees_outside_the_policy(runner: &str) {
    let ssh = paths::home().join(".ssh");
    write_canary(&ssh.join("id_ed25519"), "CANARY-visibility");
    std::os::unix::fs::symlink(ssh.join("id_ed25519"), ssh.join("current")).unwrap();
    let p = attack_project(&format!(
        r#"
        report("stat secret", std::fs::metadata({key:?}).map(|m| m.len().to_string()));
        report("readlink in home", std::fs::read_link({link:?}).map(|t| t.file_name().unwrap().to_string_lossy().into_owned()));
        let fd = unsafe {{ inotify_init1(0) }};
        let dir = std::ffi::CString::new({ssh:?}).unwrap();
        let watch = unsafe {{ inotify_add_watch(fd, dir.as_ptr(), 0x100) }};
        report("inotify on home", if watch >= 0 {{ Ok("watching".to_owned()) }} else {{ Err(std::io::Error::last_os_error()) }});
        report("stat cargo's /proc entry", std::fs::metadata(format!("/proc/{{}}", {cargo_pid})).map(|_| "found".to_owned()));
        "#,
        key = ssh.join("id_ed25519"),
        link = ssh.join("current"),
        cargo_pid = std::process::id(),
    ));

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: stat secret: succeeded: 17
[WARNING] victim@0.1.0: readlink in home: succeeded: id_ed25519
[WARNING] victim@0.1.0: inotify on home: succeeded: watching
[WARNING] victim@0.1.0: stat cargo's /proc entry: succeeded: found
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: stat secret: blocked: NotFound
[WARNING] victim@0.1.0: readlink in home: blocked: NotFound
[WARNING] victim@0.1.0: inotify on home: blocked: NotFound
[WARNING] victim@0.1.0: stat cargo's /proc entry: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// Spawning a shell without a `run` grant.
fn spawns_a_shell(runner: &str) {
    let p = attack_project(
        r#"
        report("spawn /bin/sh", std::process::Command::new("/bin/sh")
            .args(["-c", "echo shell ran"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()));
        "#,
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: spawn /bin/sh: succeeded: shell ran
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `run = ["sh"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: spawn /bin/sh: blocked: NotFound
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// Signalling the Cargo process that runs the build (`SIGCONT`: harmless, but
/// delivered only where any signal would be).
fn signals_cargo(runner: &str) {
    let p = attack_project(
        r#"
        let pid: i32 = std::fs::read_to_string("cargo.pid").unwrap().trim().parse().unwrap();
        const SIGCONT: i32 = 18;
        let result = if unsafe { kill(pid, SIGCONT) } == 0 {
            Ok("signal delivered".to_string())
        } else {
            Err(std::io::Error::last_os_error())
        };
        report("signal cargo", result);
        "#,
    );
    // `exec` keeps the shell's pid, so the script can find Cargo's.
    let cargo_with_pid_file = |runner: &str| {
        let mut execs = p.process("/bin/sh");
        execs
            .arg("-c")
            .arg(format!(
                "echo $$ > cargo.pid && exec \"$0\" build -Zsandboxed-build-scripts={runner}"
            ))
            .arg(crate::utils::fork_cargo())
            .masquerade_as_nightly_cargo(&["sandboxed-build-scripts"]);
        execs
    };

    cargo_with_pid_file("noop")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: signal cargo: succeeded: signal delivered
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    cargo_with_pid_file(runner)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: signal cargo: blocked: Uncategorized
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// Two packages' scripts running at once (`-j2`) pass bytes to each other
/// through the jobserver pipe Cargo shares with them: `sender` writes `%`
/// bytes into it, `receiver` reads what comes out for a while. Two packages
/// could pool what each was granted.
fn passes_bytes_through_the_jobserver(runner: &str) {
    const JOBSERVER: &str = r#"
        fn jobserver() -> (std::fs::File, std::fs::File) {
            use std::os::fd::FromRawFd;
            let flags = std::env::var("CARGO_MAKEFLAGS").unwrap();
            let auth = flags.split(' ').find_map(|a| a.strip_prefix("--jobserver-auth=")).unwrap();
            let (read, write) = auth.split_once(',').unwrap();
            unsafe { (std::fs::File::from_raw_fd(read.parse().unwrap()), std::fs::File::from_raw_fd(write.parse().unwrap())) }
        }
    "#;
    let package = |name: &str, body: &str| {
        (
            format!("{name}/Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
            format!("{name}/build.rs"),
            format!("{JOBSERVER}\nfn main() {{\n{body}\n}}"),
        )
    };
    let sender = package(
        "sender",
        r#"
        use std::io::Write;
        let (_, mut write) = jobserver();
        write.write_all(b"%%%%%%%%%%%%%%%%").unwrap();
        // Stay alive while the receiver runs.
        std::thread::sleep(std::time::Duration::from_secs(4));
        "#,
    );
    let receiver = package(
        "receiver",
        r#"
        use std::io::{Read, Write};
        let (mut read, mut write) = jobserver();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0];
            while read.read_exact(&mut byte).is_ok() {
                if tx.send(byte[0]).is_err() { break; }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        let mut received = false;
        while let Ok(byte) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            if byte == b'%' { received = true; break; }
            // A token: give it back.
            write.write_all(&[byte]).unwrap();
        }
        println!("cargo::warning=received from the other script: {received}");
        "#,
    );
    let mut p = cargo_test_support::project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            [dependencies]
            sender = { path = "sender" }
            receiver = { path = "receiver" }
            "#,
        )
        .file("src/lib.rs", "");
    for (manifest, manifest_text, script, script_text) in [sender, receiver] {
        let lib = manifest.replace("Cargo.toml", "src/lib.rs");
        p = p
            .file(&manifest, &manifest_text)
            .file(&script, &script_text)
            .file(&lib, "");
    }
    let p = p.build();

    p.cargo_sandboxed(Some("noop"), "build -j2")
        .with_stderr_contains("[WARNING] receiver@0.1.0: received from the other script: true")
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build -j2")
        .with_stderr_contains("[WARNING] receiver@0.1.0: received from the other script: false")
        .run();
}

/// Two scripts without `net` running at once (`-j2`) pass bytes over the
/// loopback: under `native` they share one network namespace, with no
/// interface up and no TCP `bind` or `connect` (landlock).
fn talks_over_loopback(runner: &str) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let package = |name: &str, body: &str| {
        (
            format!("{name}/Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
            format!("{name}/build.rs"),
            format!(
                "fn main() {{\n{}\n}}",
                body.replace("PORT", &port.to_string())
            ),
        )
    };
    let talker = package(
        "talker",
        r#"
        use std::io::Write;
        // Counted, not timed: `wasmtime`'s clocks stand still.
        for _ in 0..200 {
            if let Ok(mut stream) = std::net::TcpStream::connect("127.0.0.1:PORT") {
                let _ = stream.write_all(b"%%%%");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        "#,
    );
    let listener = package(
        "listener",
        r#"
        use std::io::Read;
        let received = match std::net::TcpListener::bind("127.0.0.1:PORT") {
            Err(e) => format!("blocked: {:?}", e.kind()),
            Ok(listener) => {
                listener.set_nonblocking(true).unwrap();
                let mut received = String::from("nothing");
                for _ in 0..200 {
                    if let Ok((mut stream, _)) = listener.accept() {
                        stream.set_nonblocking(false).unwrap();
                        let mut bytes = String::new();
                        let _ = stream.read_to_string(&mut bytes);
                        received = bytes;
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                received
            }
        };
        println!("cargo::warning=received from the other script: {received}");
        "#,
    );
    let mut p = cargo_test_support::project()
        .file(
            "Cargo.toml",
            r#"
            [package]
            name = "foo"
            version = "0.1.0"
            edition = "2021"
            [dependencies]
            talker = { path = "talker" }
            listener = { path = "listener" }
            "#,
        )
        .file("src/lib.rs", "");
    for (manifest, manifest_text, script, script_text) in [talker, listener] {
        let lib = manifest.replace("Cargo.toml", "src/lib.rs");
        p = p
            .file(&manifest, &manifest_text)
            .file(&script, &script_text)
            .file(&lib, "");
    }
    let p = p.build();

    p.cargo_sandboxed(Some("noop"), "build -j2")
        .with_stderr_contains("[WARNING] listener@0.1.0: received from the other script: %%%%")
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build -j2")
        .with_stderr_contains(
            "[WARNING] listener@0.1.0: received from the other script: blocked: PermissionDenied",
        )
        .run();
}

/// A script that leaves a daemon behind: it must not outlive the build.
fn leaves_a_daemon(runner: &str) {
    let p = attack_project(
        r#"
        let marker = out_dir().join("daemon-survived");
        let _ = std::fs::remove_file(&marker);
        if unsafe { fork() } == 0 {
            unsafe {
                setsid();
                close(1);
                close(2);
            }
            std::thread::sleep(std::time::Duration::from_millis(1500));
            std::fs::write(&marker, "the daemon outlived the build").unwrap();
            std::process::exit(0);
        }
        report("daemonize", Ok("forked".into()));
        "#,
    );
    // The daemon writes its marker 1.5 s after it starts; give a loaded machine
    // up to 10 s before concluding that it is gone.
    let marker_exists = |p: &Project| {
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(250));
            if glob_out_dir(p, "daemon-survived") {
                return true;
            }
        }
        false
    };

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: daemonize: succeeded: forked
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert!(
        marker_exists(&p),
        "baseline: the daemon should survive without a sandbox"
    );
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: daemonize: succeeded: forked
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert!(
        !marker_exists(&p),
        "the daemon survived the sandboxed build"
    );
}

/// Whether `OUT_DIR` of the `victim` build script holds `name`.
fn glob_out_dir(p: &Project, name: &str) -> bool {
    let build = p.root().join("target/debug/build");
    fs::read_dir(build)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.path().join("out").join(name).exists())
}

/// A fork bomb, bounded so that the baseline does not hurt the machine.
fn forks_a_thousand_processes(runner: &str) {
    let p = attack_project(
        r#"
        let mut forked = 0;
        let mut refused = None;
        for _ in 0..1000 {
            match unsafe { fork() } {
                0 => {
                    unsafe { close(1); close(2); }
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    std::process::exit(0);
                }
                -1 => {
                    refused = Some(std::io::Error::last_os_error());
                    break;
                }
                _ => forked += 1,
            }
        }
        match refused {
            None => report("fork 1000 processes", Ok(format!("{forked} processes"))),
            Some(e) => println!("cargo::warning=fork 1000 processes: stopped after {forked}: {e}"),
        }
        "#,
    );

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: fork 1000 processes: succeeded: 1000 processes
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    let output = p
        .cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: fork 1000 processes: stopped after [..]: Resource temporarily unavailable (os error 11)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    // The limit is 512 tasks in the run's `pids` cgroup, the sandbox's own
    // processes (helper, init, the script) included.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let forked: usize = stderr
        .split("stopped after ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|count| count.parse().ok())
        .unwrap();
    assert!((500..512).contains(&forked), "forked {forked}");
}

/// A script that spins for longer than its time limit is stopped at the limit;
/// a quick script is not.
fn loops_forever(runner: &str) {
    let limited = r#"
        [package]
        name = "victim"
        version = "0.1.0"
        edition = "2021"
        [package.build-sandbox.limits]
        time = "2s"
        "#;
    let p = attack_project(
        r#"
        if std::env::var_os("CARGO_FEATURE_SPIN").is_some() {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(5) {}
            println!("cargo::warning=spun for 5s");
        }
        "#,
    );
    p.change_file("Cargo.toml", &format!("{limited}\n[features]\nspin = []\n"));

    // Baseline: without the flag nothing stops it.
    p.cargo("build --features spin")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: spun for 5s
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();

    // Control: within the limit.
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo_sandboxed(Some(runner), "build --features spin")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `native` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; time limit 2s)
[HELP] the sandbox may have denied `limits = { time = "4s" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { time = "4s" }

Caused by:
  the build script exceeded its time limit of 2s

Caused by:
  process didn't exit successfully: `[ROOT]/foo/target/debug/build/victim-[HASH]/build-script-build` (signal: 9, SIGKILL: kill)

"#]])
        .run();
}

/// Memory and output floods are stopped at their limits; modest use is not.
fn floods_memory_and_output(runner: &str) {
    let p = attack_project(
        r#"
        if std::env::var_os("CARGO_FEATURE_MEMORY").is_some() {
            let mut hog = vec![1u8; 256 << 20];
            hog[12345] = 2;
            println!("cargo::warning=allocated {} bytes", hog.iter().map(|&b| b as usize).sum::<usize>());
        }
        if std::env::var_os("CARGO_FEATURE_OUTPUT").is_some() {
            let line = "x".repeat(1023);
            for _ in 0..1024 {
                println!("{line}");
            }
        }
        "#,
    );
    p.change_file(
        "Cargo.toml",
        r#"
        [package]
        name = "victim"
        version = "0.1.0"
        edition = "2021"
        [features]
        memory = []
        output = []
        [package.build-sandbox.limits]
        memory = "64MiB"
        output = "64KiB"
        "#,
    );

    // Baseline: `noop` does not limit memory, and without the flag nothing
    // limits the output.
    p.cargo_sandboxed(Some("noop"), "build --features memory")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: allocated 268435457 bytes
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("build --features output")
        .with_stderr_data(str![[r#"
[WARNING] unused manifest key: package.build-sandbox
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();

    // Control: within the limits.
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    let stopped = p
        .cargo_sandboxed(Some(runner), "build --features memory")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `native` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; memory limit 64MiB; output limit 64KiB)
[HELP] the sandbox may have denied `limits = { memory = "128MiB" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { memory = "128MiB" }

Caused by:
  the build script exceeded its memory limit of [FILE_SIZE]B

Caused by:
  process didn't exit successfully: `[ROOT]/foo/target/debug/build/victim-[HASH]/build-script-build` (signal: 9, SIGKILL: kill)

"#]])
        .run();
    // The snapshot redacts sizes: the limit itself, as written.
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("exceeded its memory limit of 64MiB")
    );
    let stopped = p
        .cargo_sandboxed(Some(runner), "build --features output")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `native` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; memory limit 64MiB; output limit 64KiB)
[HELP] the sandbox may have denied `limits = { output = "128KiB" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { output = "128KiB" }

Caused by:
  the build script exceeded its output limit of [FILE_SIZE]B

Caused by:
  process didn't exit successfully: `[ROOT]/foo/target/debug/build/victim-[HASH]/build-script-build` (signal: 9, SIGKILL: kill)
  --- stdout
...

"#]])
        .run();
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("exceeded its output limit of 64KiB")
    );
}

/// Filling the disk: 64 MiB into `OUT_DIR` and 20,000 files in the temporary
/// directory, against a disk limit of 8 MiB. A script that copes with the
/// full disk succeeds, one that does not fails at the limit; a modest script
/// is not stopped, and what it writes is in `OUT_DIR` after the run.
fn fills_the_disk(runner: &str) {
    let p = canary_project(
        "",
        r#"
        if std::env::var_os("CARGO_FEATURE_FILL").is_some() {
            // The legitimate work first: a full disk is reported, not fatal.
            control();
            let chunk = vec![7u8; 1 << 20];
            let written = (|| {
                let mut file = std::fs::File::create(out_dir().join("fill"))?;
                for _ in 0..64 {
                    file.write_all(&chunk)?;
                }
                Ok("64 MiB".to_owned())
            })();
            std::fs::remove_file(out_dir().join("fill")).unwrap();
            report("fill OUT_DIR", written);
            // `noop` sets no `TMPDIR`: a directory in `OUT_DIR` stands in.
            let temp = std::env::var_os("TMPDIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(out_dir)
                .join("fill-files");
            let created = (|| {
                std::fs::create_dir(&temp)?;
                for i in 0..20_000 {
                    std::fs::File::create(temp.join(format!("f{i}")))?;
                }
                Ok("20000 files".to_owned())
            })();
            let _ = std::fs::remove_dir_all(&temp);
            report("fill TMPDIR", created);
            return;
        }
        if std::env::var_os("CARGO_FEATURE_UNWRAP").is_some() {
            std::fs::write(out_dir().join("fill"), vec![7u8; 64 << 20]).unwrap();
        }
        std::fs::write(out_dir().join("kept"), vec![1u8; 1 << 20]).unwrap();
        "#,
        r#"
        [features]
        fill = []
        unwrap = []
        [package.build-sandbox.limits]
        disk = "8MiB"
        "#,
    );

    // Baseline: nothing limits the disk without a sandbox.
    p.cargo_sandboxed(Some("noop"), "build").run();
    p.cargo_sandboxed(Some("noop"), "build --features fill")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: fill OUT_DIR: succeeded: 64 MiB
[WARNING] victim@0.1.0: fill TMPDIR: succeeded: 20000 files
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();

    // Control: 1 MiB, and what it writes is in `OUT_DIR` after the run.
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    let out_dir = fs::read_dir(p.target_debug_dir().join("build"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("out"))
        .find(|dir| dir.join("generated.rs").exists())
        .unwrap();
    assert_eq!(fs::read(out_dir.join("kept")).unwrap(), vec![1u8; 1 << 20]);

    // wasi-libc reports every failed stream write as `EIO`; creating a file
    // on a full disk is `ENOSPC` under both runners.
    let write_error = match runner {
        "wasmtime" => "Uncategorized",
        _ => "StorageFull",
    };
    p.cargo_sandboxed(Some(runner), "build --features fill")
        .with_stderr_data(format!(
            "\
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: fill OUT_DIR: blocked: {write_error}
[WARNING] victim@0.1.0: fill TMPDIR: blocked: StorageFull
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s
"
        ))
        .run();
    let stopped = p
        .cargo_sandboxed(Some(runner), "build --features unwrap")
        .with_status(101)
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[ERROR] failed to run custom build command for `victim v0.1.0 ([ROOT]/foo)`
[NOTE] the build script ran in the `[..]` sandbox (read [[ROOT]/foo]; write [[ROOT]/foo/target/debug/build/victim-[HASH]/out, [ROOT]/foo/target/debug/build/victim-[HASH]/tmp]; disk limit 8MiB)
[HELP] the sandbox may have denied `limits = { disk = "16MiB" }`; if the build script needs it, grant it in `.cargo/config.toml`:

[build-sandbox.allow.victim]
limits = { disk = "16MiB" }

Caused by:
  the build script exceeded its disk limit of [FILE_SIZE]B
...
"#]])
        .run();
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("exceeded its disk limit of 8MiB"));
}

/// The raw system calls of [`uses_kernel_interfaces`] (x86_64 numbers).
const SYSCALLS: &str = r#"
unsafe extern "C" {
    fn fork() -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn syscall(number: i64, ...) -> i64;
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn unshare(flags: i32) -> i32;
    fn _exit(code: i32) -> !;
}

/// `returned` if the call reached the kernel and succeeded, else the kernel's
/// (or the filter's) error.
fn outcome(result: i64) -> String {
    if result >= 0 {
        "returned".to_owned()
    } else {
        std::io::Error::last_os_error().to_string()
    }
}

/// `f`'s outcome in a child process, which exits with its error number.
fn in_child(f: fn() -> i64) -> String {
    let pid = unsafe { fork() };
    if pid == 0 {
        let code = if f() >= 0 { 0 } else { std::io::Error::last_os_error().raw_os_error().unwrap_or(255) };
        unsafe { _exit(code) }
    }
    let mut status = 0;
    unsafe { waitpid(pid, &mut status, 0) };
    let code = (status >> 8) & 0xff;
    if code == 0 { "returned".to_owned() } else { std::io::Error::from_raw_os_error(code).to_string() }
}
"#;

/// Kernel interfaces that landlock and the namespaces do not mediate, or that
/// are attack surface, each tried once: the seccomp filter refuses them all
/// with `EPERM` before the kernel looks at the arguments. Under `noop` each
/// call reaches the kernel (which may still refuse it for its own reasons,
/// such as `ENOTTY` for `TIOCSTI` on `/dev/null`).
fn uses_kernel_interfaces(runner: &str) {
    let body = r#"
        let child = unsafe { fork() };
        if child == 0 {
            loop { std::thread::sleep(std::time::Duration::from_secs(1)); }
        }
        const PTRACE_SEIZE: i64 = 0x4206;
        let seized = outcome(unsafe { syscall(101, PTRACE_SEIZE, child as i64, 0i64, 0i64) });
        unsafe { kill(child, 9); waitpid(child, std::ptr::null_mut(), 0) };
        println!("cargo::warning=ptrace another process: {seized}");
        let mut params = [0u8; 120];
        println!("cargo::warning=io_uring_setup: {}", outcome(unsafe { syscall(425, 1i64, params.as_mut_ptr()) }));
        const CLONE_NEWUSER: i32 = 0x10000000;
        println!("cargo::warning=unshare a user namespace: {}", in_child(|| unsafe { unshare(CLONE_NEWUSER) } as i64));
        const TIOCSTI: u64 = 0x5412;
        let byte = b'x';
        println!("cargo::warning=TIOCSTI: {}", outcome(unsafe { ioctl(0, TIOCSTI, &byte) } as i64));
        const AF_NETLINK: i32 = 16;
        const SOCK_RAW: i32 = 3;
        println!("cargo::warning=netlink socket: {}", outcome(unsafe { socket(AF_NETLINK, SOCK_RAW, 0) } as i64));
        let attr = [0u8; 128];
        println!("cargo::warning=bpf: {}", outcome(unsafe { syscall(321, 0i64, attr.as_ptr(), 128i64) }));
        const KEY_SPEC_SESSION_KEYRING: i64 = -3;
        println!("cargo::warning=keyctl: {}", outcome(unsafe { syscall(250, 0i64, KEY_SPEC_SESSION_KEYRING, 0i64) }));
        "#;
    let p = canary_project(SYSCALLS, body, "");

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: ptrace another process: returned
[WARNING] victim@0.1.0: io_uring_setup: returned
[WARNING] victim@0.1.0: unshare a user namespace: returned
[WARNING] victim@0.1.0: TIOCSTI: Inappropriate ioctl for device (os error 25)
[WARNING] victim@0.1.0: netlink socket: returned
[WARNING] victim@0.1.0: bpf: Invalid argument (os error 22)
[WARNING] victim@0.1.0: keyctl: returned
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: ptrace another process: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: io_uring_setup: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: unshare a user namespace: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: TIOCSTI: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: netlink socket: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: bpf: Operation not permitted (os error 1)
[WARNING] victim@0.1.0: keyctl: Operation not permitted (os error 1)
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
}

/// With a `net` grant the script shares the host's network: TCP to the
/// granted port works, to another port and over UDP it does not.
fn connects_only_where_granted(runner: &str) {
    let granted = TcpListener::bind("127.0.0.1:0").unwrap();
    granted.set_nonblocking(true).unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let p = attack_project(&format!(
        r#"
        report("tcp granted", std::net::TcpStream::connect({granted:?})
            .and_then(|mut s| s.write_all(b"CANARY-granted").map(|_| "sent".into())));
        report("tcp other port", std::net::TcpStream::connect({other:?})
            .and_then(|mut s| s.write_all(b"CANARY-other").map(|_| "sent".into())));
        report("udp", std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.send_to(b"CANARY-udp", {udp:?}).map(|_| "sent".into())));
        "#,
        granted = granted.local_addr().unwrap().to_string(),
        other = other.local_addr().unwrap().to_string(),
        udp = udp.local_addr().unwrap().to_string(),
    ));
    p.change_file(
        ".cargo/config.toml",
        &format!(
            "[build-sandbox.allow.victim]\nnet = [\"{}\"]\n",
            granted.local_addr().unwrap()
        ),
    );
    let received = |listener: &TcpListener| {
        let mut data = String::new();
        if let Ok((mut stream, _)) = listener.accept() {
            stream.set_nonblocking(false).unwrap();
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = stream.read_to_string(&mut data);
        }
        data
    };
    let received_udp = || {
        let mut buf = [0; 64];
        udp.recv(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
            .unwrap_or_default()
    };

    p.cargo_sandboxed(Some("noop"), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: tcp granted: succeeded: sent
[WARNING] victim@0.1.0: tcp other port: succeeded: sent
[WARNING] victim@0.1.0: udp: succeeded: sent
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(received(&granted), "CANARY-granted");
    assert_eq!(received(&other), "CANARY-other");
    assert_eq!(received_udp(), "CANARY-udp");
    p.cargo("clean").run();
    p.cargo_sandboxed(Some(runner), "build")
        .with_stderr_data(str![[r#"
[COMPILING] victim v0.1.0 ([ROOT]/foo)
[WARNING] victim@0.1.0: the sandbox refused what `net = ["127.0.0.1:[..]"]` grants, and the build script succeeded without it; if it needs it, grant it in `[build-sandbox.allow.victim]` of `.cargo/config.toml`
[WARNING] `victim` (build script) generated 1 warning
[WARNING] victim@0.1.0: tcp granted: succeeded: sent
[WARNING] victim@0.1.0: tcp other port: blocked: PermissionDenied
[WARNING] victim@0.1.0: udp: blocked: PermissionDenied
[FINISHED] `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]s

"#]])
        .run();
    assert_eq!(received(&granted), "CANARY-granted");
    assert_eq!(received(&other), "");
    assert_eq!(received_udp(), "");
}

mod native {
    use super::*;

    per_runner!("native" =>
        reads_secrets_in_home,
        passes_bytes_through_the_jobserver,
        talks_over_loopback,
        changes_metadata_outside_the_policy,
        sees_outside_the_policy,
        reads_secret_env,
        reads_other_processes_environ,
        writes_outside_out_dir,
        escapes_through_links,
        sets_the_setuid_bit,
        exfiltrates_over_sockets,
        spawns_a_shell,
        signals_cargo,
        leaves_a_daemon,
        forks_a_thousand_processes,
        loops_forever,
        floods_memory_and_output,
        fills_the_disk,
        uses_kernel_interfaces,
        connects_only_where_granted,
    );
}

mod wasmtime {
    use super::*;

    per_runner!("wasmtime" => fills_the_disk, talks_over_loopback);
}
