//! What a build script asks for, and what a consumer grants it.
//!
//! Both sides use the same keys: a package declares its needs in the
//! `[package.build-sandbox]` table of its manifest, and a consumer grants (more)
//! in `[build-sandbox.allow.<package>]` of its Cargo configuration. Each is parsed
//! into a [`Request`] by [`Request::from_toml`], which checks every key and reports
//! the first problem as a [`PolicyError`] carrying the key path, so that the caller
//! can point at the offending key in the file it came from.
//!
//! Paths are kept as written; [`Request::resolve_paths`] makes them absolute
//! against the directory they are relative to (the package root for a manifest,
//! the configuration's directory for a grant). Programs named in `run` are
//! resolved later, by the runner that has to execute them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

pub use self::limits::{DEFAULT_DISK_LIMIT, DEFAULT_OUTPUT_LIMIT, LimitKind, Limits};
pub(crate) use self::limits::{display_duration, display_size};

mod limits;

pub mod config;
pub mod effective;
pub mod grants;
pub mod trust;

/// The keys of `[package.build-sandbox]` and `[build-sandbox.allow.<package>]`.
const REQUEST_KEYS: &[&str] = &[
    "runner",
    "read",
    "write",
    "env",
    "run",
    "net",
    "presets",
    "clock",
    "random",
    "linker-plugins",
    "limits",
];

/// Capabilities asked for by a package, or granted to one by a consumer.
///
/// Every field is optional in the TOML form; an empty `Request` asks for
/// nothing beyond the baseline every sandboxed build script gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Request {
    /// The runner the package author tested the build script with.
    pub runner: Option<RunnerKind>,
    /// Paths the script may read, as written.
    pub read: BTreeSet<PathBuf>,
    /// Paths the script may read and write, as written.
    pub write: BTreeSet<PathBuf>,
    /// Environment variables passed through from Cargo's environment.
    pub env: BTreeSet<EnvPattern>,
    /// Programs the script may execute.
    pub run: BTreeSet<Program>,
    /// Network endpoints the script may connect to.
    pub net: BTreeSet<NetTarget>,
    /// Named bundles of the above.
    pub presets: BTreeSet<Preset>,
    /// Whether the script sees the real wall clock.
    pub clock: bool,
    /// Whether the script gets real entropy.
    pub random: bool,
    /// Whether the script may pass `cargo::rustc-link-arg` options that load
    /// code into the linker or choose another linker (`-fuse-ld=<path>`,
    /// `-Wl,-plugin,...`, `-B<dir>`, ...); see [`crate::police_directives`].
    pub linker_plugins: bool,
    /// Resource limits.
    pub limits: Limits,
}

impl Request {
    /// Parses a `[package.build-sandbox]` or `[build-sandbox.allow.<package>]` table.
    pub fn from_toml(value: &toml::Value) -> Result<Request, PolicyError> {
        let table = expect_table(value, &[])?;
        let mut request = Request::default();
        for (key, value) in table {
            let at = [key.as_str()];
            match key.as_str() {
                "runner" => {
                    // A package says what it was tested with: a sandbox, not `noop`.
                    let name = expect_str(value, &at)?;
                    match name.parse() {
                        Ok(RunnerKind::Noop) | Err(_) => {
                            return Err(PolicyError::new(
                                &at,
                                format!(
                                    "unknown variant `{name}`, expected `wasmtime` or `native`"
                                ),
                            ));
                        }
                        Ok(runner) => request.runner = Some(runner),
                    }
                }
                "read" => request.read = parse_list(value, &at, parse_path)?,
                "write" => request.write = parse_list(value, &at, parse_path)?,
                "env" => request.env = parse_list(value, &at, str::parse)?,
                "run" => request.run = parse_list(value, &at, str::parse)?,
                "net" => request.net = parse_list(value, &at, str::parse)?,
                "presets" => request.presets = parse_list(value, &at, str::parse)?,
                "clock" => request.clock = expect_bool(value, &at)?,
                "random" => request.random = expect_bool(value, &at)?,
                "linker-plugins" => request.linker_plugins = expect_bool(value, &at)?,
                "limits" => request.limits = Limits::from_toml(value)?,
                _ => return Err(PolicyError::unknown_key(&at, REQUEST_KEYS)),
            }
        }
        Ok(request)
    }

    /// Makes every relative `read` and `write` path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for set in [&mut self.read, &mut self.write] {
            *set = set.iter().map(|path| normalize(&base.join(path))).collect();
        }
        self.run = std::mem::take(&mut self.run)
            .into_iter()
            .map(|program| match program {
                Program::Path(path) => Program::Path(normalize(&base.join(path))),
                named => named,
            })
            .collect();
    }

    /// Makes every relative `read`, `write` and `run` path absolute against the
    /// base of its own value: `base(&[field, index])` for the element `index`
    /// of `written.<field>`, the table this request was parsed from.
    pub(crate) fn resolve_paths_at(
        &mut self,
        written: &toml::Value,
        base: impl Fn(&[String]) -> PathBuf,
    ) {
        let base = &base;
        let elements = |field: &'static str| {
            let items = written.get(field).and_then(toml::Value::as_array);
            let items = items.into_iter().flatten().enumerate();
            items.filter_map(move |(index, item)| {
                let text = item.as_str()?;
                let base = base(&[field.to_owned(), index.to_string()]);
                Some((field, text, base))
            })
        };
        for (field, text, base) in elements("read").chain(elements("write")) {
            let set = if field == "read" {
                &mut self.read
            } else {
                &mut self.write
            };
            let path = Path::new(text);
            if path.is_relative() && set.remove(path) {
                set.insert(normalize(&base.join(path)));
            }
        }
        for (_, text, base) in elements("run") {
            if let Ok(Program::Path(path)) = text.parse()
                && path.is_relative()
                && self.run.remove(&Program::Path(path.clone()))
            {
                self.run.insert(Program::Path(normalize(&base.join(path))));
            }
        }
    }

    /// Whether this asks for nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Request::default()
    }

    /// Each capability this asks for as a request of its own: one per path,
    /// variable, program, endpoint and preset, one per flag and one per limit.
    /// Merged together they give `self` without its runner.
    pub fn items(&self) -> Vec<Request> {
        let mut items = Vec::new();
        let mut push = |fill: &dyn Fn(&mut Request)| {
            let mut item = Request::default();
            fill(&mut item);
            items.push(item);
        };
        for path in &self.read {
            push(&|item| {
                item.read.insert(path.clone());
            });
        }
        for path in &self.write {
            push(&|item| {
                item.write.insert(path.clone());
            });
        }
        for pattern in &self.env {
            push(&|item| {
                item.env.insert(pattern.clone());
            });
        }
        for program in &self.run {
            push(&|item| {
                item.run.insert(program.clone());
            });
        }
        for target in &self.net {
            push(&|item| {
                item.net.insert(target.clone());
            });
        }
        for preset in &self.presets {
            push(&|item| {
                item.presets.insert(*preset);
            });
        }
        if self.clock {
            push(&|item| item.clock = true);
        }
        if self.random {
            push(&|item| item.random = true);
        }
        if self.linker_plugins {
            push(&|item| item.linker_plugins = true);
        }
        let limits = &self.limits;
        if let Some(time) = limits.time {
            push(&|item| item.limits.time = Some(time));
        }
        if let Some(memory) = limits.memory {
            push(&|item| item.limits.memory = Some(memory));
        }
        if let Some(output) = limits.output {
            push(&|item| item.limits.output = Some(output));
        }
        if let Some(disk) = limits.disk {
            push(&|item| item.limits.disk = Some(disk));
        }
        items
    }

    /// Adds everything `other` asks for to `self`; `other`'s limits win where set.
    pub fn merge(&mut self, other: &Request) {
        self.read.extend(other.read.iter().cloned());
        self.write.extend(other.write.iter().cloned());
        self.env.extend(other.env.iter().cloned());
        self.run.extend(other.run.iter().cloned());
        self.net.extend(other.net.iter().cloned());
        self.presets.extend(other.presets.iter().copied());
        self.clock |= other.clock;
        self.random |= other.random;
        self.linker_plugins |= other.linker_plugins;
        self.limits.merge(&other.limits);
    }
}

/// The TOML and JSON form of a [`Request`]: the keys of `[package.build-sandbox]`
/// in documented order, paths and programs as strings, limits as written.
#[derive(serde::Serialize)]
#[serde(rename_all = "kebab-case")]
struct RequestForm {
    runner: Option<&'static str>,
    read: Vec<String>,
    write: Vec<String>,
    env: Vec<String>,
    run: Vec<String>,
    net: Vec<String>,
    presets: Vec<String>,
    clock: bool,
    random: bool,
    linker_plugins: bool,
    limits: LimitsForm,
}

#[derive(serde::Serialize)]
struct LimitsForm {
    time: Option<String>,
    memory: Option<String>,
    output: Option<String>,
    disk: Option<String>,
}

impl Request {
    fn form(&self) -> RequestForm {
        fn strings<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> Vec<String> {
            items.into_iter().map(|item| item.to_string()).collect()
        }
        let paths = |set: &BTreeSet<PathBuf>| strings(set.iter().map(|path| path.display()));
        RequestForm {
            runner: self.runner.map(RunnerKind::name),
            read: paths(&self.read),
            write: paths(&self.write),
            env: strings(&self.env),
            run: strings(&self.run),
            net: strings(&self.net),
            presets: strings(&self.presets),
            clock: self.clock,
            random: self.random,
            linker_plugins: self.linker_plugins,
            limits: LimitsForm {
                time: self.limits.time.map(display_duration),
                memory: self.limits.memory.map(display_size),
                output: self.limits.output.map(display_size),
                disk: self.limits.disk.map(display_size),
            },
        }
    }

    /// The request as a table with the keys of `[package.build-sandbox]`, in the
    /// order they are documented, leaving out the empty ones; limits form an
    /// inline table. [`Request::from_toml`] reads it back (for paths that are
    /// valid UTF-8, which every path read from TOML is).
    pub fn to_toml_table(&self) -> toml_edit::Table {
        let form = self.form();
        let mut table = toml_edit::Table::new();
        if let Some(runner) = form.runner {
            table.insert("runner", toml_edit::value(runner));
        }
        for (key, items) in [
            ("read", form.read),
            ("write", form.write),
            ("env", form.env),
            ("run", form.run),
            ("net", form.net),
            ("presets", form.presets),
        ] {
            if !items.is_empty() {
                table.insert(key, toml_edit::value(toml_edit::Array::from_iter(items)));
            }
        }
        for (key, set) in [
            ("clock", form.clock),
            ("random", form.random),
            ("linker-plugins", form.linker_plugins),
        ] {
            if set {
                table.insert(key, toml_edit::value(true));
            }
        }
        let mut limits = toml_edit::InlineTable::new();
        for (key, limit) in [
            ("time", form.limits.time),
            ("memory", form.limits.memory),
            ("output", form.limits.output),
            ("disk", form.limits.disk),
        ] {
            if let Some(limit) = limit {
                limits.insert(key, limit.into());
            }
        }
        if !limits.is_empty() {
            table.insert("limits", toml_edit::value(limits));
        }
        table
    }
}

#[cfg(test)]
impl Request {
    /// A request from the text of a table, with relative paths resolved
    /// against `base`, for tests.
    pub(crate) fn parse_at(text: &str, base: &str) -> Request {
        let table = text.parse().expect("test requests are valid TOML");
        let mut request =
            Request::from_toml(&toml::Value::Table(table)).expect("test requests are valid");
        request.resolve_paths(Path::new(base));
        request
    }
}

/// Every key, always present: `runner` and unset limits are `null`, empty
/// lists `[]`; key names as in TOML (`linker-plugins`), limits as written
/// (`"60s"`, `"16MiB"`).
impl serde::Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.form().serialize(serializer)
    }
}

/// The runners this crate knows of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunnerKind {
    /// No sandbox: the build script runs as Cargo runs it without the feature.
    Noop,
    /// The build script compiled to `wasm32-wasip2`, run by wasmtime under WASI.
    Wasmtime,
    /// The native build script confined by the operating system.
    Native,
}

impl RunnerKind {
    /// The name used on the command line and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Noop => "noop",
            RunnerKind::Wasmtime => "wasmtime",
            RunnerKind::Native => "native",
        }
    }
}

impl FromStr for RunnerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "noop" => Ok(RunnerKind::Noop),
            "wasmtime" => Ok(RunnerKind::Wasmtime),
            "native" => Ok(RunnerKind::Native),
            _ => Err(format!(
                "unknown sandbox runner `{s}`, expected `noop`, `wasmtime` or `native`"
            )),
        }
    }
}

impl fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An environment variable name, or a `PREFIX_*` pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvPattern {
    /// Exactly this name.
    Name(String),
    /// Every name starting with this prefix.
    Prefix(String),
}

impl EnvPattern {
    /// Whether `name` is covered by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            EnvPattern::Name(n) => n == name,
            EnvPattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

impl FromStr for EnvPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, is_prefix) = match s.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (s, false),
        };
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "invalid environment variable name `{s}`: expected letters, digits and `_`, \
                 optionally ending in `*` to match a prefix"
            ));
        }
        Ok(if is_prefix {
            EnvPattern::Prefix(name.to_owned())
        } else {
            EnvPattern::Name(name.to_owned())
        })
    }
}

impl fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvPattern::Name(name) => f.write_str(name),
            EnvPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A program a build script may execute: a bare name looked up on `PATH`, or a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Program {
    /// A name such as `cc`, resolved when the script is run.
    Name(String),
    /// A path, absolute once [`Request::resolve_paths`] ran.
    Path(PathBuf),
}

impl FromStr for Program {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_path_text(s)?;
        Ok(
            if s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
                Program::Path(PathBuf::from(s))
            } else {
                Program::Name(s.to_owned())
            },
        )
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Program::Name(name) => f.write_str(name),
            Program::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A `host:port` a build script may connect to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetTarget {
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl FromStr for NetTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| format!("invalid network address `{s}`: {why}");
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(invalid("expected `host:port`"));
        };
        let host = match host.strip_prefix('[') {
            Some(bracketed) => match bracketed.strip_suffix(']') {
                Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
                _ => return Err(invalid("expected an IPv6 address inside `[...]`")),
            },
            None if host.contains(':') => {
                return Err(invalid(
                    "an IPv6 address must be written as `[address]:port`",
                ));
            }
            None => host,
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !host_ok {
            return Err(invalid("expected a host name or an IP address before `:`"));
        }
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(invalid("expected a port number from 1 to 65535 after `:`")),
        };
        Ok(NetTarget {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for NetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Something a runner refused a build script, as the runner itself saw it:
/// never read from the script's output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denial {
    /// A program the script tried to run that its sandbox does not hold:
    /// its file name, as the script named it.
    Program(String),
    /// An address the script tried to connect to (the runner saw the
    /// attempt; whether the policy allows it is for the hint to tell).
    Connection(std::net::SocketAddr),
    /// A path the script tried to read that its sandbox hides, and that
    /// exists outside it.
    Read(PathBuf),
    /// A path the script tried to create or write outside every writable
    /// directory of its sandbox.
    Write(PathBuf),
    /// A limit the script was stopped at.
    Limit(LimitKind),
}

impl Denial {
    /// The longest program name recorded; longer ones are dropped.
    pub const MAX_NAME: usize = 64;

    /// A program denial, if `name` reads as a program's file name: at most
    /// [`Denial::MAX_NAME`] ASCII letters, digits and `.`, `_`, `+`, `-`.
    /// The name comes from the script, so nothing else is kept.
    pub fn program(name: &str) -> Option<Denial> {
        let plausible = !name.is_empty()
            && name.len() <= Denial::MAX_NAME
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        plausible.then(|| Denial::Program(name.to_owned()))
    }

    /// The longest path recorded, in bytes; longer ones are dropped.
    pub const MAX_PATH: usize = 1024;

    /// The path of a read (`write` false) or write denial, if `path` is
    /// absolute, normal (no `.` or `..`), UTF-8 without control characters and
    /// at most [`Denial::MAX_PATH`] bytes: it is printed in a `help:` line.
    /// Paths under `/proc` and `/dev` are never denials to grant: they name
    /// the state of whichever process looks them up (`/dev/fd/3`,
    /// `/proc/self/...`) or devices (`/dev/tty`) no script needs.
    pub fn path(path: &Path, write: bool) -> Option<Denial> {
        let text = path.to_str()?;
        let plausible = path.is_absolute()
            && !path.starts_with("/proc")
            && !path.starts_with("/dev")
            && text.len() <= Denial::MAX_PATH
            && !text.chars().any(char::is_control)
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            // Written as its components would be: no `.`, `//` or trailing `/`.
            && path.components().collect::<PathBuf>().as_os_str() == path.as_os_str();
        let path = path.to_owned();
        plausible.then_some(match write {
            false => Denial::Read(path),
            true => Denial::Write(path),
        })
    }
}

/// `program cc`, `read /opt/sdk`, `write /src/gen`, `connect 10.0.0.1:443`,
/// `limit time`: the form a [`DenialRecord`](crate::DenialRecord) stores.
impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Program(name) => write!(f, "program {name}"),
            Denial::Connection(address) => write!(f, "connect {address}"),
            Denial::Read(path) => write!(f, "read {}", path.display()),
            Denial::Write(path) => write!(f, "write {}", path.display()),
            Denial::Limit(kind) => write!(f, "limit {}", kind.key()),
        }
    }
}

/// The [`Display`](fmt::Display) form back, checked as when recorded.
impl FromStr for Denial {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s.split_once(' ').unwrap_or((s, ""));
        let denial = match kind {
            "program" => Denial::program(value),
            "connect" => value.parse().ok().map(Denial::Connection),
            "read" => Denial::path(Path::new(value), false),
            "write" => Denial::path(Path::new(value), true),
            "limit" => LimitKind::from_key(value).map(Denial::Limit),
            _ => None,
        };
        denial.ok_or_else(|| format!("invalid denial `{}`", s.escape_debug()))
    }
}

/// Finds an executable: a bare name on Cargo's `PATH`, or a path that must exist.
pub(crate) fn find_program(program: &Path) -> anyhow::Result<PathBuf> {
    let is_executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && has_execute_bits(&meta))
    };
    if program.components().count() > 1 {
        if is_executable(program) {
            return Ok(program.to_owned());
        }
        anyhow::bail!(
            "`{}` does not exist or is not executable",
            program.display()
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_absolute() && is_executable(candidate))
        .ok_or_else(|| anyhow::anyhow!("`{}` is not on `PATH`", program.display()))
}

#[cfg(unix)]
fn has_execute_bits(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn has_execute_bits(_: &std::fs::Metadata) -> bool {
    true
}

/// A named bundle of capabilities for a common kind of build script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Preset {
    /// Run the `RUSTC` Cargo passes (version checks, probe compiles), with its sysroot.
    RustcProbe,
    /// Run the C/C++ toolchain: compiler, assembler, linker, archiver, system headers.
    Cc,
    /// Run `pkg-config` and read its search paths.
    PkgConfig,
}

impl Preset {
    /// Every preset, in the order they are documented.
    pub const ALL: [Preset; 3] = [Preset::RustcProbe, Preset::Cc, Preset::PkgConfig];

    /// The name used in TOML.
    pub fn name(self) -> &'static str {
        match self {
            Preset::RustcProbe => "rustc-probe",
            Preset::Cc => "cc",
            Preset::PkgConfig => "pkg-config",
        }
    }

    /// The preset that lets a script run the program named `program` (a file
    /// name, as `cc` or `x86_64-linux-gnu-gcc`), if one does.
    pub fn running(program: &str) -> Option<Preset> {
        /// The C/C++ toolchain's programs, also with a target prefix (`<triple>-gcc`).
        const CC: [&str; 14] = [
            "cc", "c++", "gcc", "g++", "clang", "clang++", "cpp", "ar", "ranlib", "as", "ld", "nm",
            "objcopy", "strip",
        ];
        const PKG_CONFIG: [&str; 2] = ["pkg-config", "pkgconf"];
        let is = |names: &[&str]| {
            names.iter().any(|name| {
                program == *name
                    || program
                        .strip_suffix(name)
                        .is_some_and(|prefix| prefix.ends_with('-'))
            })
        };
        if is(&PKG_CONFIG) {
            Some(Preset::PkgConfig)
        } else if is(&CC) {
            Some(Preset::Cc)
        } else if program == "rustc" {
            Some(Preset::RustcProbe)
        } else {
            None
        }
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|preset| preset.name() == s)
            .ok_or_else(|| {
                format!("unknown preset `{s}`, expected one of `rustc-probe`, `cc`, `pkg-config`")
            })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A problem in a policy table, at a key path relative to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The keys from the table to the offending value; array elements are
    /// named by their index.
    pub path: Vec<String>,
    /// What is wrong, as a lowercase phrase.
    pub message: String,
    /// Whether the key itself is wrong (an unknown key) rather than its value.
    pub at_key: bool,
}

impl PolicyError {
    pub(crate) fn new(path: &[&str], message: impl Into<String>) -> PolicyError {
        PolicyError {
            path: path.iter().map(|key| key.to_string()).collect(),
            message: message.into(),
            at_key: false,
        }
    }

    pub(crate) fn unknown_key(path: &[&str], expected: &[&str]) -> PolicyError {
        let key = path.last().copied().unwrap_or_default();
        let expected = expected
            .iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ");
        PolicyError {
            at_key: true,
            ..PolicyError::new(
                path,
                format!("unknown field `{key}`, expected one of {expected}"),
            )
        }
    }

    /// The key path joined with dots, e.g. `limits.time`, with keys that are
    /// not bare TOML keys quoted, e.g. `allow."ring@0.17"`.
    pub fn dotted_path(&self) -> String {
        dotted(&self.path)
    }

    /// The path of keys in `table`, the table that was parsed, down to the
    /// offending item as a TOML document locates it: an array element that
    /// is a string is named by its value (`read.0` becomes `read."inc"`);
    /// the path stops at an array holding some other element.
    pub fn document_path(&self, table: &toml::Value) -> Vec<String> {
        let mut keys = Vec::new();
        let mut value = Some(table);
        for part in &self.path {
            let index = part.parse::<usize>().ok();
            let next = match (value, index) {
                (Some(toml::Value::Array(items)), Some(index)) => items.get(index),
                (Some(toml::Value::Table(table)), _) => table.get(part),
                _ => None,
            };
            match (next, index) {
                (Some(toml::Value::String(s)), Some(_)) => keys.push(s.clone()),
                (Some(_), Some(_)) => break,
                _ => keys.push(part.clone()),
            }
            value = next;
        }
        keys
    }
}

/// The keys of `path` joined with dots, each quoted unless it is a bare TOML
/// key.
pub(crate) fn dotted(path: &[impl AsRef<str>]) -> String {
    let is_bare = |key: &str| {
        !key.is_empty() && (key.chars()).all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    (path.iter())
        .map(|key| match is_bare(key.as_ref()) {
            true => key.as_ref().to_owned(),
            false => format!("{:?}", key.as_ref()),
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (at `{}`)", self.message, self.dotted_path())
        }
    }
}

impl std::error::Error for PolicyError {}

fn type_name(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer `{i}`"),
        toml::Value::Float(f) => format!("floating point `{f}`"),
        toml::Value::Boolean(b) => format!("boolean `{b}`"),
        toml::Value::Datetime(d) => format!("datetime `{d}`"),
        toml::Value::Array(_) => "sequence".to_owned(),
        toml::Value::Table(_) => "map".to_owned(),
    }
}

fn invalid_type(value: &toml::Value, expected: &str, at: &[&str]) -> PolicyError {
    PolicyError::new(
        at,
        format!("invalid type: {}, expected {expected}", type_name(value)),
    )
}

pub(crate) fn expect_table<'a>(
    value: &'a toml::Value,
    at: &[&str],
) -> Result<&'a toml::Table, PolicyError> {
    value
        .as_table()
        .ok_or_else(|| invalid_type(value, "a table", at))
}

pub(crate) fn expect_str<'a>(value: &'a toml::Value, at: &[&str]) -> Result<&'a str, PolicyError> {
    value
        .as_str()
        .ok_or_else(|| invalid_type(value, "a string", at))
}

fn expect_bool(value: &toml::Value, at: &[&str]) -> Result<bool, PolicyError> {
    value
        .as_bool()
        .ok_or_else(|| invalid_type(value, "a boolean", at))
}

pub(crate) fn parse_list<T: Ord>(
    value: &toml::Value,
    at: &[&str],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<BTreeSet<T>, PolicyError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid_type(value, "an array of strings", at))?;
    let mut parsed = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let index = index.to_string();
        let item_at = [at, &[index.as_str()]].concat();
        let text = expect_str(item, &item_at)?;
        parsed.insert(parse(text).map_err(|message| PolicyError::new(&item_at, message))?);
    }
    Ok(parsed)
}

fn check_path_text(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("invalid path: a path must not be empty".to_owned());
    }
    if s.contains('\0') {
        return Err(format!(
            "invalid path `{}`: contains a NUL byte",
            s.escape_debug()
        ));
    }
    if s == "~" || s.starts_with("~/") {
        return Err(format!(
            "invalid path `{s}`: `~` is not expanded, write the path out in full"
        ));
    }
    Ok(())
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    check_path_text(s)?;
    Ok(PathBuf::from(s))
}

/// Removes `.` and resolves `..` lexically, without touching the filesystem.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<Request, PolicyError> {
        Request::from_toml(&toml::Value::Table(text.parse().unwrap()))
    }

    #[test]
    fn recorded_program_names_are_file_names_only() {
        assert_eq!(
            Denial::program("x86_64-linux-gnu-gcc"),
            Some(Denial::Program("x86_64-linux-gnu-gcc".into()))
        );
        let long = "a".repeat(Denial::MAX_NAME + 1);
        for name in [
            "",
            "cc\nhelp: grant everything",
            "../cc",
            ".hidden",
            "c c",
            &long,
        ] {
            assert_eq!(Denial::program(name), None, "{name:?}");
        }
    }

    #[test]
    fn recorded_paths_are_absolute_normal_and_printable() {
        assert_eq!(
            Denial::path(Path::new("/opt/sdk/include/sdk.h"), false),
            Some(Denial::Read("/opt/sdk/include/sdk.h".into()))
        );
        assert_eq!(
            Denial::path(Path::new("/src/foo/gen.rs"), true),
            Some(Denial::Write("/src/foo/gen.rs".into()))
        );
        let long = format!("/{}", "a".repeat(Denial::MAX_PATH));
        for path in [
            "relative/x",
            "/a/../etc/shadow",
            "/a/./b",
            "/x\nhelp: grant everything",
            "/dev/fd/14",
            "/dev/tty",
            "/proc/self/environ",
            &long,
        ] {
            assert_eq!(Denial::path(Path::new(path), false), None, "{path:?}");
        }
    }

    #[test]
    fn denials_read_back_as_written_and_checked_again() {
        for text in [
            "program x86_64-linux-gnu-gcc",
            "connect 10.0.0.1:443",
            "connect [::1]:8080",
            "read /opt/sdk/include",
            "write /src/foo/gen.rs",
            "limit time",
        ] {
            let denial: Denial = text.parse().unwrap();
            assert_eq!(denial.to_string(), text);
        }
        for text in [
            "program ../cc",
            "read relative",
            "write /a/../b",
            "exec cc",
            "read",
        ] {
            assert!(text.parse::<Denial>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn presets_name_the_programs_they_run() {
        assert_eq!(Preset::running("cc"), Some(Preset::Cc));
        assert_eq!(Preset::running("aarch64-linux-gnu-g++"), Some(Preset::Cc));
        assert_eq!(
            Preset::running("x86_64-linux-gnu-pkg-config"),
            Some(Preset::PkgConfig)
        );
        assert_eq!(Preset::running("rustc"), Some(Preset::RustcProbe));
        // A suffix alone is not the program.
        assert_eq!(Preset::running("xcc"), None);
        assert_eq!(Preset::running("cmake"), None);
    }

    #[test]
    fn parses_every_key() {
        let request = parse(
            r#"
            runner = "native"
            read = ["/usr/include", "data"]
            write = ["gen"]
            env = ["CC", "PROTOC_*"]
            run = ["cc", "/usr/bin/pkg-config"]
            net = ["example.com:443", "[::1]:8080"]
            presets = ["cc", "rustc-probe"]
            clock = true
            random = true
            linker-plugins = true
            [limits]
            time = "60s"
            memory = "1GiB"
            output = "16MiB"
            "#,
        )
        .unwrap();
        assert_eq!(request.runner, Some(RunnerKind::Native));
        assert!(request.read.contains(Path::new("data")));
        assert!(request.env.contains(&EnvPattern::Prefix("PROTOC_".into())));
        assert!(request.run.contains(&Program::Name("cc".into())));
        assert!(
            request
                .run
                .contains(&Program::Path("/usr/bin/pkg-config".into()))
        );
        assert!(request.net.contains(&NetTarget {
            host: "::1".into(),
            port: 8080
        }));
        assert_eq!(request.presets.len(), 2);
        assert!(request.clock && request.random && request.linker_plugins);
        assert_eq!(request.limits.time, Some(Duration::from_secs(60)));
        assert_eq!(request.limits.memory, Some(1 << 30));
        assert_eq!(request.limits.output, Some(16 << 20));
    }

    #[test]
    fn errors_name_the_key_path() {
        let err = parse("limits = { time = 5 }").unwrap_err();
        assert_eq!(err.path, ["limits", "time"]);
        assert_eq!(err.message, "invalid type: integer `5`, expected a string");

        let err = parse("net = [\"localhost:80\", \"localhost\"]").unwrap_err();
        assert_eq!(err.path, ["net", "1"]);
        assert_eq!(
            err.message,
            "invalid network address `localhost`: expected `host:port`"
        );

        let err = parse("reed = []").unwrap_err();
        assert_eq!(err.path, ["reed"]);
        assert!(err.at_key);
        assert!(
            err.message
                .starts_with("unknown field `reed`, expected one of `runner`")
        );

        let err = parse("read = [\"\"]").unwrap_err();
        assert_eq!(err.dotted_path(), "read.0");
        let err = PolicyError::new(&["allow", "ring@0.17", "run"], "");
        assert_eq!(err.dotted_path(), "allow.\"ring@0.17\".run");
    }

    #[test]
    fn document_paths_name_array_strings_by_value() {
        let table = |text: &str| toml::Value::Table(text.parse().unwrap());
        let path = |text: &str| parse(text).unwrap_err().document_path(&table(text));
        assert_eq!(
            path("net = [\"localhost:80\", \"localhost\"]"),
            ["net", "localhost"]
        );
        assert_eq!(path("limits = { time = 5 }"), ["limits", "time"]);
        assert_eq!(path("read = [1]"), ["read"]);
        assert_eq!(path("reed = []"), ["reed"]);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "runner = \"docker\"",
            "env = [\"A-B\"]",
            "env = [\"*\"]",
            "net = [\"host:0\"]",
            "net = [\"::1:80\"]",
            "net = [\"host:http\"]",
            "presets = [\"curl\"]",
            "read = [\"~/.ssh\"]",
            "clock = \"yes\"",
            "linker-plugins = 1",
            "linker_plugins = true",
            "limits = { memory = \"1 lightyear\" }",
            "limits = { time = \"0s\" }",
            "limits = { cpu = \"1\" }",
        ] {
            assert!(parse(bad).is_err(), "accepted `{bad}`");
        }
    }

    #[test]
    fn resolves_relative_paths_against_base() {
        let mut request =
            parse("read = [\"data\", \"../shared/./x\", \"/abs\"]\nrun = [\"./tool\"]").unwrap();
        request.resolve_paths(Path::new("/ws/pkg"));
        let read: Vec<_> = request.read.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(read, ["/abs", "/ws/pkg/data", "/ws/shared/x"]);
        assert!(request.run.contains(&Program::Path("/ws/pkg/tool".into())));
    }

    const EVERY_KEY: &str = r#"
runner = "native"
read = ["/usr/include", "data"]
write = ["gen"]
env = ["CC", "PROTOC_*"]
run = ["cc", "/usr/bin/pkg-config"]
net = ["[::1]:8080", "example.com:443"]
presets = ["rustc-probe", "cc"]
clock = true
random = true
linker-plugins = true
limits = { time = "1500ms", memory = "1GiB", output = "16MiB", disk = "2GiB" }
"#;

    #[test]
    fn to_toml_table_round_trips_in_documented_order() {
        let request = parse(EVERY_KEY).unwrap();
        let table = request.to_toml_table();
        let text = toml_edit::DocumentMut::from(table).to_string();
        assert_eq!(text, EVERY_KEY.trim_start());
        assert_eq!(parse(&text).unwrap(), request);
        assert!(Request::default().to_toml_table().is_empty());
    }

    #[test]
    fn serializes_every_key_to_json() {
        let json = serde_json::to_value(parse("env = [\"CC\"]\nclock = true").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "runner": null, "read": [], "write": [], "env": ["CC"], "run": [], "net": [],
                "presets": [], "clock": true, "random": false, "linker-plugins": false,
                "limits": {"time": null, "memory": null, "output": null, "disk": null},
            })
        );
        let json = serde_json::to_value(parse(EVERY_KEY).unwrap()).unwrap();
        assert_eq!(json["runner"], "native");
        assert_eq!(json["limits"]["time"], "1500ms");
        assert_eq!(json["net"][0], "[::1]:8080");
    }

    #[test]
    fn merge_unions_sets_and_prefers_later_limits() {
        let mut a = parse("env = [\"A\"]\nlimits = { time = \"1s\", memory = \"1MiB\" }").unwrap();
        let b =
            parse("env = [\"B\"]\nclock = true\nlinker-plugins = true\nlimits = { time = \"2s\" }")
                .unwrap();
        a.merge(&b);
        assert_eq!(a.env.len(), 2);
        assert!(a.clock && a.linker_plugins);
        assert!(!a.random);
        assert_eq!(a.limits.time, Some(Duration::from_secs(2)));
        assert_eq!(a.limits.memory, Some(1 << 20));
    }

    #[test]
    fn items_are_single_capabilities_that_merge_back() {
        let request = parse(
            "runner = \"native\"\nread = [\"/a\", \"/b\"]\npresets = [\"cc\"]\nclock = true\n\
             limits = { time = \"2s\", disk = \"1GiB\" }",
        )
        .unwrap();
        let items = request.items();
        let described: Vec<String> = items.iter().map(crate::describe_grant).collect();
        assert_eq!(
            described,
            [
                "`read = [\"/a\"]`",
                "`read = [\"/b\"]`",
                "`presets = [\"cc\"]`",
                "`clock = true`",
                "`limits = { time = \"2s\" }`",
                "`limits = { disk = \"1GiB\" }`",
            ]
        );
        let mut merged = Request::default();
        items.iter().for_each(|item| merged.merge(item));
        assert_eq!(
            merged,
            Request {
                runner: None,
                ..request
            }
        );
    }
}
