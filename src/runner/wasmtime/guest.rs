//! What the guest sees: its WASI context, built from the invocation and the
//! policy, and the store's memory limiter.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::disk::DiskBudget;
use super::output::GuestOutput;
use super::record::Recording;
use crate::runner::Invocation;
use crate::runner::stream::Pipe;
use crate::{Denial, NetTarget};

/// The data of a run's store.
pub(super) struct Guest {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforces `limits.memory`.
    pub(super) memory: MemoryLimiter,
    /// Enforces `limits.disk`.
    pub(super) disk: Arc<DiskBudget>,
    /// What the script was denied.
    pub(super) recording: Arc<Recording>,
}

impl Guest {
    pub(super) fn new(
        wasi: WasiCtx,
        memory_limit: Option<u64>,
        disk: Arc<DiskBudget>,
        recording: Arc<Recording>,
    ) -> Guest {
        Guest {
            wasi,
            table: ResourceTable::new(),
            disk,
            recording,
            memory: MemoryLimiter {
                limit: memory_limit,
                used: 0,
                exceeded: false,
            },
        }
    }
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Counts the linear memories and tables of the store (a table element as 8
/// bytes) against `limits.memory`; growing past it traps.
pub(super) struct MemoryLimiter {
    limit: Option<u64>,
    used: u64,
    /// Whether the guest tried to grow past the limit.
    pub(super) exceeded: bool,
}

impl MemoryLimiter {
    fn grow(&mut self, bytes: u64) -> wasmtime::Result<bool> {
        let used = self.used.saturating_add(bytes);
        if self.limit.is_some_and(|limit| used > limit) {
            self.exceeded = true;
            wasmtime::bail!("the build script exceeded its memory limit");
        }
        self.used = used;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current) as u64)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow((desired.saturating_sub(current) as u64).saturating_mul(8))
    }
}

/// The seeds of the deterministic generators for scripts without `random`.
const SECURE_SEED: [u8; 32] = *b"build-sandbox: no `random` grant";
const INSECURE_SEED: [u8; 32] = *b"build-sandbox: insecure, no seed";
const INSECURE_SEED_VALUE: u128 = u128::from_le_bytes(*b"build-sandbox!!!");

/// The WASI context of a run: arguments, environment, preopened directories,
/// network, clocks, randomness, and `output` for stdout and stderr; and what
/// records the run's denials.
pub(super) fn wasi_ctx(
    invocation: &Invocation<'_>,
    output: &GuestOutput,
) -> anyhow::Result<(WasiCtx, Arc<Recording>)> {
    let policy = invocation.policy;
    let baseline = &policy.baseline;
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(output.stream(Pipe::Stdout))
        .stderr(output.stream(Pipe::Stderr));

    builder.arg(utf8(invocation.program.as_os_str(), "the program path")?);
    for arg in invocation.args {
        builder.arg(utf8(arg, "an argument")?);
    }

    let temp_dir = utf8_path(&baseline.temp_dir)?;
    for (name, value) in invocation.sandboxed_env() {
        if name != "TMPDIR" {
            let what = format!("the environment variable `{name}`");
            builder.env(&name, utf8(&value, &what)?);
        }
    }
    builder.env("TMPDIR", temp_dir);

    // A directory both readable and writable is preopened read-write; wasi-libc
    // resolves an absolute path with the longest preopen that is a prefix of it.
    let mut dirs: BTreeMap<&Path, FsPerms> = BTreeMap::new();
    for path in policy.readable() {
        dirs.insert(path, FsPerms::ReadOnly);
    }
    for path in policy.writable() {
        dirs.insert(path, FsPerms::ReadWrite);
    }
    for (path, perms) in &dirs {
        preopen(&mut builder, path, utf8_path(path)?, *perms)?;
    }
    // wasi-libc starts in `/`: a relative path resolves against the `.` preopen.
    let root = &baseline.package_root;
    let root_perms = dirs
        .get(root.as_path())
        .copied()
        .unwrap_or(FsPerms::ReadOnly);
    preopen(&mut builder, root, ".", root_perms)?;
    builder.initial_cwd(utf8_path(root)?);
    let writable = (policy.writable())
        .map(|path| path.canonicalize().unwrap_or_else(|_| path.to_owned()))
        .collect();
    let package_root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let recording = Arc::new(Recording::new(package_root, writable));

    network(&mut builder, &policy.granted.net, &recording);

    if !policy.granted.clock {
        builder
            .wall_clock(FixedWallClock(source_date_epoch(invocation)?))
            .monotonic_clock(StepClock(AtomicU64::new(0)));
    }
    if !policy.granted.random {
        builder
            .secure_random(StdRng::from_seed(SECURE_SEED))
            .insecure_random(StdRng::from_seed(INSECURE_SEED))
            .insecure_random_seed(INSECURE_SEED_VALUE);
    }
    Ok((builder.build(), recording))
}

/// Preopens `path` as `guest`; a path that does not exist is left out (there
/// is nothing to read in it, and creating it needs its parent's permission).
fn preopen(
    builder: &mut WasiCtxBuilder,
    path: &Path,
    guest: &str,
    perms: FsPerms,
) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => bail!(
            "the `wasmtime` sandbox runner can only grant directories, and `{}` is not one\n\
             help: grant the directory that contains it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("failed to open `{}`", path.display()));
        }
    }
    builder
        .preopened_dir(path, guest, perms)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    Ok(())
}

/// Enables TCP, and name lookup if a grant names a host, for the `net` grants;
/// a connection may go only to an address of a granted host, on its port.
/// A refused connection is recorded.
fn network(builder: &mut WasiCtxBuilder, net: &BTreeSet<NetTarget>, recording: &Arc<Recording>) {
    builder.allow_udp(false);
    // Without a grant every connection is refused below, after its address is
    // known, to be recorded.
    builder.allow_tcp(true);
    builder.allow_ip_name_lookup(
        net.iter()
            .any(|target| target.host.parse::<IpAddr>().is_err()),
    );
    let allowed: BTreeSet<SocketAddr> = net
        .iter()
        .flat_map(|target| match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            // A host that does not resolve here will not resolve for the guest
            // either: it gets no address.
            Err(_) => (target.host.as_str(), target.port)
                .to_socket_addrs()
                .map(Iterator::collect)
                .unwrap_or_default(),
        })
        .map(canonical)
        .collect();
    let allowed = Arc::new(allowed);
    let recording = Arc::clone(recording);
    builder.socket_addr_check(move |addr, used| {
        let allow = match used {
            SocketAddrUse::TcpConnect if allowed.contains(&canonical(addr)) => true,
            SocketAddrUse::TcpConnect => {
                let denial = Denial::Connection(canonical(addr));
                recording.denials.record(denial);
                false
            }
            // `connect` asks for the implicit bind to an ephemeral port.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            _ => false,
        };
        Box::pin(async move { allow })
    });
}

/// An IPv4-mapped IPv6 address as IPv4, so that both spellings match a grant.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `SOURCE_DATE_EPOCH` as Cargo passes it to the script, or as Cargo got it,
/// or the Unix epoch.
fn source_date_epoch(invocation: &Invocation<'_>) -> anyhow::Result<Duration> {
    let value = match invocation.env.get("SOURCE_DATE_EPOCH") {
        Some(value) => value.clone(),
        None => std::env::var_os("SOURCE_DATE_EPOCH"),
    };
    let Some(value) = value else {
        return Ok(Duration::ZERO);
    };
    value
        .to_str()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .with_context(|| {
            format!(
                "invalid `SOURCE_DATE_EPOCH` `{}`: expected a number of seconds",
                value.display()
            )
        })
}

/// The wall clock of a script without `clock`: always `SOURCE_DATE_EPOCH`.
struct FixedWallClock(Duration);

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

/// The monotonic clock of a script without `clock`: starts at 0 and advances
/// by one microsecond each time it is read.
struct StepClock(AtomicU64);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }
}

fn utf8<'a>(text: &'a OsStr, what: &str) -> anyhow::Result<&'a str> {
    text.to_str().with_context(|| {
        format!(
            "{what} `{}` is not valid UTF-8, which WASI requires",
            text.display()
        )
    })
}

fn utf8_path(path: &Path) -> anyhow::Result<&str> {
    utf8(path.as_os_str(), "the path")
}
