//! The [`ConfinementSpec`]: an [`Invocation`] and its policy, resolved for the helper.
//!
//! Everything that depends on Cargo's process (its `PATH`, its environment, the
//! sysroot of `RUSTC`, which system directories exist) is decided here, in
//! Cargo's process, so that the helper only applies a plain list of rules:
//!
//! * the **environment** starts empty and gets the variables Cargo sets, the
//!   variables the policy passes through, `TMPDIR` and `HOME` (both the private
//!   temporary directory), and a `PATH` of the compiler's directory and those of
//!   the programs the policy runs;
//! * the **filesystem** rules: the baseline (package root, `OUT_DIR`, the
//!   temporary directory, the script itself, the dynamic loader and system
//!   libraries, a few device files), `RUSTC` with its sysroot (every script may
//!   probe the compiler), the presets, and the policy's `read`, `write` and `run`;
//! * the **network**: no `net` entry means a network namespace of its own;
//!   otherwise TCP connections to the granted ports only.
//!
//! The runner fills in what it decides itself: the descriptors, the cgroups
//! and the landlock ABI the helper applies (see the module `kernel`).
//!
//! Paths that do not exist are left out: a rule can only be attached to an
//! existing file, and what does not exist cannot be read.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::disk::DiskLimit;
use super::kernel::LANDLOCK_ABI;
use crate::policy::find_program;
use crate::runner::Invocation;
use crate::{DEFAULT_DISK_LIMIT, EnvPattern, Preset, Program};

/// The default of the process limit: processes and threads of one build script.
pub(super) const DEFAULT_PROCESSES: u64 = 512;

/// Directories of the dynamic loader and the system libraries every program needs.
const SYSTEM_LIBRARIES: &[&str] = &[
    "/lib",
    "/lib32",
    "/lib64",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
];
/// System headers: public, like the libraries beside them. A script looks for a C library by
/// its header (`openssl-sys` checks `/usr/include/openssl` with a `stat`, which is not
/// recorded) before it runs the compiler (which is); hidden, the script fails before the
/// step at which the recorder learns what it needs.
const SYSTEM_HEADERS: &[&str] = &["/usr/include"];
/// Files the dynamic loader and libc read at startup.
const SYSTEM_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
];
/// Files every script may write to.
const SYSTEM_SINKS: &[&str] = &["/dev/null"];

/// The `cc` preset: the directories whose C toolchain programs it runs ([`cc_programs`]).
const CC_PROGRAM_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/local/bin"];
/// The `cc` preset: the compilers' internal programs (GCC keeps `cc1` and `collect2` in
/// `/usr/lib/gcc`, which the baseline has).
const CC_INTERNALS: &[&str] = &["/usr/libexec"];
/// The `cc` preset: headers and the compilers' data.
const CC_DATA: &[&str] = &["/usr/local/include", "/usr/local/lib", "/usr/share"];
/// The `cc` preset: what goes on `PATH`.
const CC_PATH: &[&str] = &["/usr/bin", "/bin"];

/// The `pkg-config` preset: the default search paths (`/usr/lib/<triple>/pkgconfig` is added
/// for each directory found in `/usr/lib`).
const PKG_CONFIG_DIRS: &[&str] = &[
    "/usr/lib/pkgconfig",
    "/usr/lib64/pkgconfig",
    "/usr/share/pkgconfig",
    "/usr/local/lib/pkgconfig",
    "/usr/local/share/pkgconfig",
];

/// What a script needs to resolve host names and verify TLS certificates.
const NET_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/usr/share/ca-certificates",
];

/// Everything the helper needs to confine and start one build script.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ConfinementSpec {
    /// The build-script executable.
    pub program: PathBuf,
    /// Its arguments, without the program name.
    pub args: Vec<OsString>,
    /// Its complete environment.
    pub env: BTreeMap<String, OsString>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Filesystem rules: each path and everything beneath it.
    pub paths: BTreeMap<PathBuf, PathAccess>,
    /// TCP ports the script may connect to.
    pub tcp_connect: BTreeSet<u16>,
    /// How the script reaches the network.
    pub network: Network,
    /// Resource limits applied with `setrlimit`.
    pub limits: ProcessLimits,
    /// The limit of `OUT_DIR` and the temporary directory.
    pub disk: DiskLimit,
    /// Inherited descriptors the script keeps (the jobserver's pipe, at
    /// `helper::JOBSERVER_FDS`).
    pub keep_fds: Vec<i32>,
    /// The files through which the helper moves itself into the run's cgroups
    /// (see the module `cgroup`).
    pub cgroups: Vec<PathBuf>,
    /// The landlock ABI whose restrictions the helper applies, all of them:
    /// 6, or less with the `partial-landlock` weakening (see the module `kernel`).
    pub landlock_abi: u8,
}

/// What a script may do with a path and what is beneath it; reading is always allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PathAccess {
    /// Create, change and remove files.
    pub write: bool,
    /// Execute programs.
    pub execute: bool,
}

impl PathAccess {
    pub const READ: PathAccess = PathAccess {
        write: false,
        execute: false,
    };
    pub const READ_WRITE: PathAccess = PathAccess {
        write: true,
        execute: false,
    };
    pub const READ_EXECUTE: PathAccess = PathAccess {
        write: false,
        execute: true,
    };
}

/// How a script reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Network {
    /// A network namespace of its own, with no interface up: no network at all.
    Isolated,
    /// The host's network, limited to TCP connections to the granted ports.
    Host {
        /// Whether UDP sockets are allowed, for DNS: a granted host is a name.
        udp: bool,
    },
}

/// Limits applied with `setrlimit`, besides the run's cgroups (see the module `cgroup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ProcessLimits {
    /// `RLIMIT_NPROC`: processes and threads in the script's user namespace;
    /// the kernel does not apply it to root.
    pub processes: u64,
    /// `RLIMIT_AS`: the address space of each process, in bytes; only when no
    /// `memory` cgroup limits the whole tree.
    pub memory: Option<u64>,
}

impl ConfinementSpec {
    /// Resolves `invocation` against Cargo's process; descriptors, cgroups and
    /// the landlock ABI (ABI 6 until then) are filled in by the runner.
    pub fn resolve(invocation: &Invocation<'_>) -> anyhow::Result<ConfinementSpec> {
        let policy = invocation.policy;
        let baseline = &policy.baseline;
        let mut spec = ConfinementSpec {
            program: invocation.program.to_owned(),
            args: invocation.args.to_vec(),
            env: invocation.sandboxed_env(),
            cwd: invocation.cwd.to_owned(),
            paths: BTreeMap::new(),
            tcp_connect: policy
                .granted
                .net
                .iter()
                .map(|target| target.port)
                .collect(),
            network: Network::Isolated,
            limits: ProcessLimits {
                processes: DEFAULT_PROCESSES,
                memory: policy.granted.limits.memory,
            },
            disk: DiskLimit {
                bytes: (policy.granted.limits.disk).unwrap_or(DEFAULT_DISK_LIMIT),
                out_dir: baseline.out_dir.clone(),
                temp_dir: baseline.temp_dir.clone(),
            },
            keep_fds: Vec::new(),
            cgroups: Vec::new(),
            landlock_abi: LANDLOCK_ABI as u8,
        };
        spec.env
            .insert("TMPDIR".to_owned(), baseline.temp_dir.clone().into());
        spec.env
            .insert("HOME".to_owned(), baseline.temp_dir.clone().into());

        spec.grant(&baseline.package_root, PathAccess::READ);
        for out_dir in &baseline.dependency_out_dirs {
            spec.grant(out_dir, PathAccess::READ);
        }
        spec.grant(&baseline.out_dir, PathAccess::READ_WRITE);
        spec.grant(&baseline.temp_dir, PathAccess::READ_WRITE);
        spec.grant(invocation.program, PathAccess::READ_EXECUTE);
        spec.grant_all(SYSTEM_LIBRARIES, PathAccess::READ_EXECUTE);
        spec.grant_all(SYSTEM_HEADERS, PathAccess::READ);
        spec.grant_all(SYSTEM_FILES, PathAccess::READ);
        spec.grant_all(SYSTEM_SINKS, PathAccess::READ_WRITE);
        for path in &policy.granted.read {
            spec.grant(path, PathAccess::READ);
        }
        for path in &policy.granted.write {
            spec.grant(path, PathAccess::READ_WRITE);
        }

        // Every script may probe the compiler Cargo passes (`rustc-probe` is part
        // of this runner's baseline): a confined `rustc` is no way out.
        let rustc = match invocation.env.get("RUSTC") {
            Some(Some(rustc)) => Some(find_program(Path::new(rustc)).with_context(|| {
                format!("failed to find `{}` (`RUSTC`)", Path::new(rustc).display())
            })?),
            _ => None,
        };
        // `PATH` lists the directories of the programs the policy runs, starting
        // with the compiler's: `RUSTC` may be a bare name (Cargo passes what it
        // resolved), and a probe must find it as it would without a sandbox.
        let mut path: Vec<PathBuf> = Vec::new();
        if let Some(rustc) = &rustc {
            let sysroot = match invocation.rustc_sysroot {
                Some(sysroot) => sysroot.to_owned(),
                None => sysroot(rustc)?,
            };
            spec.grant(rustc, PathAccess::READ_EXECUTE);
            spec.grant(&sysroot, PathAccess::READ_EXECUTE);
            // A `rustc` outside its sysroot is a wrapper such as rustup's proxy,
            // which needs `~/.rustup` and its environment, out of reach here. The
            // compiler it stands for is the sysroot's, so that one is found first
            // and, where `RUSTC` names the wrapper by path, runs in its place.
            let real = sysroot
                .join("bin")
                .join(rustc.file_name().unwrap_or_default());
            if !rustc.starts_with(&sysroot) && real.is_file() {
                path.push(sysroot.join("bin"));
                if let Some(Some(named)) = invocation.env.get("RUSTC")
                    && Path::new(named).components().count() > 1
                {
                    spec.env.insert("RUSTC".to_owned(), real.into_os_string());
                }
            }
            path.extend(rustc.parent().map(Path::to_owned));
        }
        for program in &policy.granted.run {
            let found = match program {
                Program::Name(name) => find_program(Path::new(name)),
                Program::Path(path) => find_program(path),
            }
            .with_context(|| format!("failed to find the program `{program}` granted in `run`"))?;
            spec.grant(&found, PathAccess::READ_EXECUTE);
            if let Some(dir) = found.parent() {
                path.push(dir.to_owned());
            }
        }
        for preset in &policy.granted.presets {
            match preset {
                // Part of this runner's baseline, see above.
                Preset::RustcProbe => {}
                Preset::Cc => {
                    for program in cc_programs() {
                        spec.grant(program, PathAccess::READ_EXECUTE);
                    }
                    spec.grant_all(CC_INTERNALS, PathAccess::READ_EXECUTE);
                    spec.grant_all(CC_DATA, PathAccess::READ);
                    path.extend(CC_PATH.iter().map(PathBuf::from));
                }
                Preset::PkgConfig => {
                    let pkg_config = find_program(Path::new("pkg-config"))
                        .context("failed to find `pkg-config` for the `pkg-config` preset")?;
                    spec.grant(&pkg_config, PathAccess::READ_EXECUTE);
                    spec.grant_all(PKG_CONFIG_DIRS, PathAccess::READ);
                    for dir in fs::read_dir("/usr/lib").into_iter().flatten().flatten() {
                        spec.grant(&dir.path().join("pkgconfig"), PathAccess::READ);
                    }
                    let pattern = EnvPattern::Prefix("PKG_CONFIG".to_owned());
                    for (name, value) in std::env::vars_os() {
                        let Some(name) = name.to_str().filter(|name| pattern.matches(name)) else {
                            continue;
                        };
                        if name == "PKG_CONFIG_PATH" || name == "PKG_CONFIG_LIBDIR" {
                            for dir in std::env::split_paths(&value) {
                                spec.grant(&dir, PathAccess::READ);
                            }
                        }
                        spec.env.entry(name.to_owned()).or_insert(value);
                    }
                    if let Some(dir) = pkg_config.parent() {
                        path.push(dir.to_owned());
                    }
                }
            }
        }
        if !path.is_empty() {
            let mut seen = BTreeSet::new();
            path.retain(|dir| seen.insert(dir.clone()));
            let joined = std::env::join_paths(&path).context("failed to build `PATH`")?;
            spec.env.insert("PATH".to_owned(), joined);
        }

        if !policy.granted.net.is_empty() {
            let udp = policy
                .granted
                .net
                .iter()
                .any(|target| target.host.parse::<IpAddr>().is_err());
            spec.network = Network::Host { udp };
            spec.grant_all(NET_FILES, PathAccess::READ);
        }
        spec.grant_links_out_of_program_dirs();
        Ok(spec)
    }

    /// Grants the symbolic links that the links in a directory of `PATH` go
    /// through outside the granted paths (`/usr/bin/cc` →
    /// `/etc/alternatives/cc` → `/usr/bin/gcc`), so that the helper's view has
    /// them: landlock let a program follow such links, and a view without
    /// them would not. Only the directory's own entries are looked at.
    fn grant_links_out_of_program_dirs(&mut self) {
        let Some(path) = self.env.get("PATH") else {
            return;
        };
        let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
        for dir in dirs {
            for link in links_out_of(&dir) {
                if !self.paths.keys().any(|granted| link.starts_with(granted)) {
                    self.grant(&link, PathAccess::READ_EXECUTE);
                }
            }
        }
    }

    /// Adds `access` to `path` if it exists.
    pub fn grant(&mut self, path: &Path, access: PathAccess) {
        if fs::symlink_metadata(path).is_err() {
            return;
        }
        let entry = self.paths.entry(path.to_owned()).or_default();
        entry.write |= access.write;
        entry.execute |= access.execute;
    }

    fn grant_all(&mut self, paths: &[&str], access: PathAccess) {
        for path in paths {
            self.grant(Path::new(path), access);
        }
    }
}

/// The C toolchain's programs in [`CC_PROGRAM_DIRS`], found once per process: every file whose
/// name, without a version (`gcc-12`) or a linker's flavour (`ld.bfd`), is one that
/// [`Preset::running`] gives the `cc` preset for. Not the rest of `/usr/bin`: a script granted
/// `cc` runs compilers, not `pkg-config`, `curl` or `git`.
fn cc_programs() -> &'static [PathBuf] {
    static PROGRAMS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut programs = Vec::new();
        for dir in CC_PROGRAM_DIRS {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                // `ld.so` is the dynamic loader, which the baseline has.
                let Some(name) = name.to_str().filter(|name| !name.ends_with(".so")) else {
                    continue;
                };
                let name = name.split_once('.').map_or(name, |(name, _)| name);
                let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
                let name = name.strip_suffix('-').unwrap_or(name);
                if Preset::running(name) == Some(Preset::Cc) {
                    programs.push(entry.path());
                }
            }
        }
        programs
    })
}

/// The sysroot of `rustc`, from `rustc --print sysroot`, once per compiler and process.
///
/// The lock is held while `rustc` runs: the first scripts of a build start
/// together, and one `rustc` (through `rustup`, some 20 ms of CPU) is enough.
fn sysroot(rustc: &Path) -> anyhow::Result<PathBuf> {
    static SYSROOTS: OnceLock<Mutex<BTreeMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut sysroots = SYSROOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(sysroot) = sysroots.get(rustc) {
        return Ok(sysroot.clone());
    }
    let failed = || format!("failed to find the sysroot of `{}`", rustc.display());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .with_context(failed)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(anyhow::anyhow!("{}\n{}", output.status, stderr.trim_end()).context(failed()));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| anyhow::anyhow!("the sysroot is not valid UTF-8"))
        .with_context(failed)?;
    let sysroot = PathBuf::from(text.trim_end());
    sysroots.insert(rustc.to_owned(), sysroot.clone());
    Ok(sysroot)
}

/// The symbolic links outside `dir` that the links among its entries go
/// through, found once per directory and process.
fn links_out_of(dir: &Path) -> Vec<PathBuf> {
    static LINKS: OnceLock<Mutex<BTreeMap<PathBuf, Vec<PathBuf>>>> = OnceLock::new();
    let mut cache = LINKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(links) = cache.get(dir) {
        return links.clone();
    }
    let mut links = BTreeSet::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let mut link = entry.path();
        // As many links as the kernel follows in one lookup.
        for _ in 0..40 {
            let Ok(target) = fs::read_link(&link) else {
                break;
            };
            let parent = link.parent().unwrap_or(Path::new("/"));
            link = crate::policy::normalize(&parent.join(target));
            if !link.starts_with(dir) && fs::symlink_metadata(&link).is_ok_and(|m| m.is_symlink()) {
                links.insert(link.clone());
            }
        }
    }
    let links: Vec<PathBuf> = links.into_iter().collect();
    cache.insert(dir.to_owned(), links.clone());
    links
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;
    use crate::{Baseline, EffectivePolicy, Request};

    struct Dirs {
        root: PathBuf,
    }

    impl Dirs {
        fn new(name: &str) -> Dirs {
            let root = std::env::temp_dir()
                .join(format!("build-sandbox-spec-{name}-{}", std::process::id()));
            for dir in ["pkg", "out", "tmp", "dep-out"] {
                fs::create_dir_all(root.join(dir)).unwrap();
            }
            Dirs { root }
        }

        fn policy(&self, request: &str) -> EffectivePolicy {
            let baseline = Baseline {
                package_root: self.root.join("pkg"),
                out_dir: self.root.join("out"),
                temp_dir: self.root.join("tmp"),
                dependency_out_dirs: [self.root.join("dep-out")].into(),
            };
            let table: toml::Table = request.parse().unwrap();
            let request = Request::from_toml(&toml::Value::Table(table)).unwrap();
            EffectivePolicy::granting(baseline, request)
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn resolve(
        policy: &EffectivePolicy,
        env: &BTreeMap<String, Option<OsString>>,
    ) -> anyhow::Result<ConfinementSpec> {
        let invocation = Invocation {
            program: Path::new("/bin/sh"),
            args: &[],
            env,
            cwd: &policy.baseline.package_root,
            jobserver: None,
            rustc_sysroot: None,
            policy,
            denials: None,
        };
        ConfinementSpec::resolve(&invocation)
    }

    #[test]
    fn environment_is_cargos_variables_and_the_granted_ones() {
        // `cargo test` sets `CARGO_PKG_NAME` and `CARGO_PKG_VERSION` for the test
        // process; the environment is never changed here (`set_var` races
        // other threads).
        let dirs = Dirs::new("env");
        let policy = dirs.policy("env = [\"CARGO_PKG_NAME\"]");
        let env = BTreeMap::from([
            ("OUT_DIR".to_owned(), Some(dirs.root.join("out").into())),
            ("CARGO_PKG_NAME".to_owned(), None),
        ]);
        let spec = resolve(&policy, &env).unwrap();
        let names: Vec<_> = spec.env.keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "OUT_DIR", "TMPDIR"]);
        assert_eq!(spec.env["TMPDIR"], dirs.root.join("tmp"));

        let env = BTreeMap::from([("OUT_DIR".to_owned(), Some(dirs.root.join("out").into()))]);
        let spec = resolve(&policy, &env).unwrap();
        assert_eq!(spec.env["CARGO_PKG_NAME"], "build-sandbox");
        assert!(!spec.env.contains_key("CARGO_PKG_VERSION"));
        assert!(!spec.env.contains_key("PATH"));
    }

    #[test]
    fn baseline_paths() {
        let dirs = Dirs::new("baseline");
        let spec = resolve(&dirs.policy(""), &BTreeMap::new()).unwrap();
        assert_eq!(spec.paths[&dirs.root.join("pkg")], PathAccess::READ);
        assert_eq!(spec.paths[&dirs.root.join("dep-out")], PathAccess::READ);
        assert_eq!(spec.paths[&dirs.root.join("out")], PathAccess::READ_WRITE);
        assert_eq!(spec.paths[&dirs.root.join("tmp")], PathAccess::READ_WRITE);
        assert_eq!(spec.paths[Path::new("/bin/sh")], PathAccess::READ_EXECUTE);
        assert_eq!(spec.paths[Path::new("/usr/lib")], PathAccess::READ_EXECUTE);
        assert_eq!(spec.paths[Path::new("/usr/include")], PathAccess::READ);
        assert_eq!(spec.paths[Path::new("/dev/null")], PathAccess::READ_WRITE);
        assert!(!spec.paths.contains_key(Path::new("/usr/bin")));
        assert!(!spec.paths.keys().any(|path| path.starts_with("/proc")));
        assert_eq!(spec.network, Network::Isolated);
        assert_eq!(spec.limits.processes, DEFAULT_PROCESSES);
    }

    #[test]
    fn grants_and_presets() {
        let dirs = Dirs::new("grants");
        fs::create_dir_all(dirs.root.join("pkg/data")).unwrap();
        let policy = dirs.policy(
            "read = [\"/etc/hostname\"]\nrun = [\"sh\"]\npresets = [\"cc\"]\n\
             net = [\"127.0.0.1:8080\"]\nlimits = { memory = \"1GiB\" }",
        );
        let spec = resolve(&policy, &BTreeMap::new()).unwrap();
        let cc = find_program(Path::new("cc")).unwrap();
        assert_eq!(spec.paths[&cc], PathAccess::READ_EXECUTE);
        assert!(!spec.paths.contains_key(Path::new("/usr/bin")));
        let pkg_config = find_program(Path::new("pkg-config"));
        assert!(pkg_config.is_err() || !spec.paths.contains_key(&pkg_config.unwrap()));
        assert_eq!(spec.paths[Path::new("/usr/include")], PathAccess::READ);
        let path = std::env::split_paths(&spec.env["PATH"]).collect::<Vec<_>>();
        assert!(path.contains(&PathBuf::from("/usr/bin")), "{path:?}");
        assert_eq!(spec.network, Network::Host { udp: false });
        assert_eq!(spec.tcp_connect, BTreeSet::from([8080]));
        assert_eq!(spec.limits.memory, Some(1 << 30));

        let policy = dirs.policy("net = [\"localhost:80\"]");
        let spec = resolve(&policy, &BTreeMap::new()).unwrap();
        assert_eq!(spec.network, Network::Host { udp: true });
    }

    #[test]
    fn missing_programs_are_errors() {
        let dirs = Dirs::new("missing");
        let policy = dirs.policy("run = [\"build-sandbox-no-such-program\"]");
        let err = resolve(&policy, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "failed to find the program `build-sandbox-no-such-program` granted in `run`: \
             `build-sandbox-no-such-program` is not on `PATH`"
        );
        let policy = dirs.policy("run = [\"/nonexistent/protoc\"]");
        let err = resolve(&policy, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "failed to find the program `/nonexistent/protoc` granted in `run`: \
             `/nonexistent/protoc` does not exist or is not executable"
        );
    }

    #[test]
    fn rustc_and_its_sysroot_are_granted() {
        let rustc = find_program(Path::new("rustc")).expect("the tests need `rustc` on `PATH`");
        let dirs = Dirs::new("rustc");
        let env = BTreeMap::from([("RUSTC".to_owned(), Some(OsString::from("rustc")))]);
        let spec = resolve(&dirs.policy(""), &env).unwrap();
        assert_eq!(spec.paths[&rustc], PathAccess::READ_EXECUTE);
        let sysroot = sysroot(&rustc).unwrap();
        assert_eq!(spec.paths[&sysroot], PathAccess::READ_EXECUTE);
        let path = std::env::split_paths(&spec.env["PATH"]).collect::<Vec<_>>();
        assert_eq!(path.last().unwrap(), rustc.parent().unwrap());
    }

    #[test]
    fn a_known_sysroot_is_used_without_asking_rustc() {
        let dirs = Dirs::new("known-sysroot");
        // A `rustc` that cannot tell its sysroot: only the one given is used.
        let rustc = dirs.root.join("rustc");
        fs::write(&rustc, "#!/bin/sh\nexit 1\n").unwrap();
        fs::set_permissions(&rustc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let sysroot = dirs.root.join("sysroot");
        fs::create_dir_all(&sysroot).unwrap();
        let env = BTreeMap::from([("RUSTC".to_owned(), Some(rustc.clone().into_os_string()))]);
        let policy = dirs.policy("");
        let invocation = |rustc_sysroot| Invocation {
            program: Path::new("/bin/sh"),
            args: &[],
            env: &env,
            cwd: &policy.baseline.package_root,
            jobserver: None,
            rustc_sysroot,
            policy: &policy,
            denials: None,
        };
        let spec = ConfinementSpec::resolve(&invocation(Some(&sysroot))).unwrap();
        assert_eq!(spec.paths[&sysroot], PathAccess::READ_EXECUTE);
        let err = ConfinementSpec::resolve(&invocation(None)).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("failed to find the sysroot of"),
            "{err:#}"
        );
    }

    #[test]
    fn a_rustc_wrapper_gives_way_to_the_sysroots_compiler() {
        let real = find_program(Path::new("rustc")).expect("the tests need `rustc` on `PATH`");
        let dirs = Dirs::new("wrapper");
        let wrapper = dirs.root.join("rustc");
        fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec {} \"$@\"\n", real.display()),
        )
        .unwrap();
        fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let env = BTreeMap::from([("RUSTC".to_owned(), Some(wrapper.clone().into_os_string()))]);
        let spec = resolve(&dirs.policy(""), &env).unwrap();
        let sysroot_rustc = sysroot(&wrapper).unwrap().join("bin/rustc");
        assert_eq!(spec.env["RUSTC"], sysroot_rustc.as_os_str());
        let path = std::env::split_paths(&spec.env["PATH"]).collect::<Vec<_>>();
        assert_eq!(path, [sysroot_rustc.parent().unwrap(), dirs.root.as_path()]);
    }

    #[test]
    fn links_that_leave_a_program_directory_are_found() {
        let dirs = Dirs::new("links");
        let (bin, alternatives) = (dirs.root.join("bin"), dirs.root.join("alternatives"));
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&alternatives).unwrap();
        fs::write(bin.join("gcc"), "").unwrap();
        // `bin/cc` → `alternatives/cc` → `bin/gcc`; `bin/c99` stays inside.
        std::os::unix::fs::symlink(alternatives.join("cc"), bin.join("cc")).unwrap();
        std::os::unix::fs::symlink("../bin/gcc", alternatives.join("cc")).unwrap();
        std::os::unix::fs::symlink("gcc", bin.join("c99")).unwrap();
        assert_eq!(links_out_of(&bin), [alternatives.join("cc")]);
    }
}
