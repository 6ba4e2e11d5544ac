//! The process-wide engine and the compiled-component cache.
//!
//! Compiling a component with Cranelift takes a fraction of a second to
//! seconds; loading a compiled one takes milliseconds. A component is found,
//! in this order:
//!
//! 1. in memory, if this process loaded it before (the last
//!    [`MEMORY_ENTRIES`] components, by content);
//! 2. on disk, as `<cache dir>/<engine hash>/<sha256 of the component>.cwasm`,
//!    where the engine hash ([`Engine::precompile_compatibility_hash`]) changes
//!    with wasmtime's version and the engine's configuration, so a stale
//!    artifact is never even opened;
//! 3. otherwise it is compiled, and written to the cache (a temporary file
//!    renamed into place, so a reader never sees half a file).
//!
//! Loading an artifact runs the machine code in it, unchecked: the cache
//! directory must be written by this code only. The runner refuses policies
//! that let a build script write there (see `super::check_cache_dir`).

use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How [`precompile`](super::precompile) obtained a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// This process had already loaded it.
    InMemory,
    /// It was loaded from the cache directory.
    Hit,
    /// It was compiled now, and stored in the cache directory if there is one.
    Compiled,
}

/// How many loaded components the process keeps.
const MEMORY_ENTRIES: usize = 16;

/// The loaded components, most recently used first.
static LOADED: Mutex<Vec<([u8; 32], Component)>> = Mutex::new(Vec::new());

/// The engine every run uses: Cranelift, the component model, and epoch
/// interruption for the time limit.
pub(super) fn engine() -> anyhow::Result<&'static Engine> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("failed to set up the wasmtime engine: {e}"))
}

/// The compiled `component`, from memory, the cache directory, or compiled now.
pub(super) fn load(
    component: &Path,
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, CacheOutcome)> {
    let engine = engine()?;
    let bytes = fs::read(component)
        .with_context(|| format!("failed to read the component `{}`", component.display()))?;
    // The preamble: the magic number, then the version and layer of a component.
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
        Some([0, b'a', b's', b'm', ..]) => anyhow::bail!(
            "`{}` is a WebAssembly module, not a component\n\
             help: the `wasmtime` runner runs build scripts compiled for `wasm32-wasip2`",
            component.display()
        ),
        _ => anyhow::bail!(
            "`{}` is not a WebAssembly component\n\
             help: the `wasmtime` runner runs build scripts compiled for `wasm32-wasip2`",
            component.display()
        ),
    }
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(found) = lookup(&digest) {
        return Ok((found, CacheOutcome::InMemory));
    }
    let artifact = cache_dir.map(|dir| artifact_path(engine, dir, &digest));
    if let Some(artifact) = &artifact
        && artifact.is_file()
    {
        // SAFETY: the artifact is machine code that wasmtime maps and runs
        // without checking it. It was written by `Component::serialize` of an
        // engine with this configuration (the directory is named after the
        // engine's compatibility hash, and wasmtime checks the header again),
        // into the cache directory, which the runner never lets a build script
        // write (`check_cache_dir`); the file name is the hash of the component
        // it was compiled from.
        // A damaged artifact (say, from a full disk) is replaced below.
        if let Ok(loaded) = unsafe { Component::deserialize_file(engine, artifact) } {
            remember(digest, &loaded);
            return Ok((loaded, CacheOutcome::Hit));
        }
    }
    let compiled = Component::from_binary(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to compile the component `{}`", component.display()))?;
    if let Some(artifact) = &artifact {
        store(&compiled, artifact).with_context(|| {
            format!(
                "failed to store the compiled component in `{}`",
                artifact.display()
            )
        })?;
    }
    remember(digest, &compiled);
    Ok((compiled, CacheOutcome::Compiled))
}

/// The loaded component with this digest, now the most recently used.
fn lookup(digest: &[u8; 32]) -> Option<Component> {
    let mut entries = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    let index = entries.iter().position(|(key, _)| key == digest)?;
    let entry = entries.remove(index);
    let component = entry.1.clone();
    entries.insert(0, entry);
    Some(component)
}

/// Records a loaded component as the most recently used.
fn remember(digest: [u8; 32], component: &Component) {
    let mut entries = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    entries.retain(|(key, _)| *key != digest);
    entries.insert(0, (digest, component.clone()));
    entries.truncate(MEMORY_ENTRIES);
}

/// Forgets every loaded component, so that tests see the disk cache.
#[cfg(test)]
pub(super) fn forget_loaded() {
    LOADED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

/// `<cache dir>/<engine hash>/<component digest>.cwasm`.
fn artifact_path(engine: &Engine, cache_dir: &Path, digest: &[u8; 32]) -> PathBuf {
    let mut hasher = Sha256Hasher::default();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let engine_hash: [u8; 32] = hasher.0.finalize().into();
    cache_dir
        .join(hex(&engine_hash[..16]))
        .join(format!("{}.cwasm", hex(digest)))
}

/// Writes `component` to `path` through a temporary file in the same directory.
fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let serialized = component.serialize().map_err(anyhow::Error::from)?;
    let dir = path
        .parent()
        .context("the artifact path has no parent directory")?;
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::File::create(&temp).and_then(|mut file| {
        file.write_all(&serialized)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    Ok(renamed?)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds a `Hash` value into SHA-256, for a name that is stable across runs.
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}
