//! `limits.disk` under `wasmtime`: the host counts what the guest's writes add.
//!
//! The calls of `wasi:filesystem` that make a file larger or add one are
//! redefined in the linker over wasmtime-wasi's own. `write`,
//! `write-via-stream`, `append-via-stream` (whose streams are wrapped) and
//! `set-size` count the bytes a write adds past the file's end (all of it for
//! an append); `open-at` with `create`, `create-directory-at`, `symlink-at` and
//! `link-at` count [`ENTRY`] bytes, as the `native` runner's `tmpfs` allows
//! one file per 4 KiB of the limit. The count starts from what `OUT_DIR` holds
//! when the script starts, and is taken before the call: a call that would
//! pass the limit fails with `insufficient-space` (`ENOSPC` in the guest), as
//! on a full disk.
//!
//! The count errs on the side of stopping: deleting or truncating a file gives
//! nothing back, and writes to every writable directory count, not only to
//! `OUT_DIR` and the temporary directory.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsError, OutputStream, Pollable, StreamError};
use wasmtime_wasi::runtime::in_tokio;

use super::guest::Guest;

/// The interface whose calls are redefined, as `add_to_linker_sync` names it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// What a new file, directory or link counts.
const ENTRY: u64 = 4096;

/// The bytes a run may still add to files.
#[derive(Debug)]
pub(super) struct DiskBudget {
    limit: u64,
    used: AtomicU64,
    exceeded: AtomicBool,
}

impl DiskBudget {
    /// A budget of `limit` bytes, of which what is in `out_dir` is used.
    pub(super) fn new(limit: u64, out_dir: &Path) -> io::Result<Arc<DiskBudget>> {
        Ok(Arc::new(DiskBudget {
            limit,
            used: AtomicU64::new(size_of_tree(out_dir)?),
            exceeded: AtomicBool::new(false),
        }))
    }

    /// Whether a write was refused.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// Counts `bytes` more, or refuses them if that passes the limit.
    fn take(&self, bytes: u64) -> io::Result<()> {
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|&used| used <= self.limit)
            });
        if taken.is_err() {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    /// Gives back what a call that failed had counted.
    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Counts a write of `len` bytes at `position` of `file` (`None`: at its end).
    fn take_write(&self, file: &File, position: Option<u64>, len: u64) -> io::Result<()> {
        let grows_by = match position {
            Some(position) => position
                .saturating_add(len)
                .saturating_sub(file.metadata()?.len()),
            None => len,
        };
        self.take(grows_by)
    }
}

/// The size of the regular files under `dir`, which need not exist.
fn size_of_tree(dir: &Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        entries => entries?,
    };
    let mut size = 0;
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            size += size_of_tree(&entry.path())?;
        } else if file_type.is_file() {
            size += entry.metadata()?.len();
        }
    }
    Ok(size)
}

/// Redefines the calls that make files larger, so that they count.
pub(super) fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, Guest>,
         (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            let budget = Arc::clone(&store.data().disk);
            let mut view = store.data_mut().filesystem();
            if let Descriptor::File(f) = view.table.get(&fd)?
                && !f.perms.write_not_permitted()
                && let Err(e) = budget.take_write(&f.file, Some(offset), buffer.len() as u64)
            {
                return Ok((Err(ErrorCode::from(e)),));
            }
            let written = in_tokio(HostDescriptor::write(&mut view, fd, buffer, offset));
            error_code(written).map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, Guest>, (fd, size): (Resource<Descriptor>, u64)| {
            let budget = Arc::clone(&store.data().disk);
            let mut view = store.data_mut().filesystem();
            if let Descriptor::File(f) = view.table.get(&fd)?
                && !f.perms.write_not_permitted()
                && let Err(e) = f
                    .file
                    .metadata()
                    .and_then(|metadata| budget.take(size.saturating_sub(metadata.len())))
            {
                return Ok((Err(ErrorCode::from(e)),));
            }
            let set = in_tokio(HostDescriptor::set_size(&mut view, fd, size));
            error_code(set).map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, Guest>, (fd, offset): (Resource<Descriptor>, u64)| {
            counted_stream(&mut store, fd, Some(offset)).map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, Guest>, (fd,): (Resource<Descriptor>,)| {
            counted_stream(&mut store, fd, None).map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, Guest>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            let creates = open_flags.contains(OpenFlags::CREATE);
            let writes = creates
                || open_flags.contains(OpenFlags::TRUNCATE)
                || flags.intersects(DescriptorFlags::WRITE | DescriptorFlags::MUTATE_DIRECTORY);
            let dir = match store.data_mut().filesystem().table.get(&fd)? {
                Descriptor::Dir(d) => Some(Arc::clone(&d.dir)),
                Descriptor::File(_) => None,
            };
            let recording = Arc::clone(&store.data().recording);
            let result = counting_entry(&mut store, creates, |view| {
                in_tokio(HostDescriptor::open_at(
                    view,
                    fd,
                    path_flags,
                    path.clone(),
                    open_flags,
                    flags,
                ))
            })?;
            if let (Err(_), Some(dir)) = (&result, dir) {
                recording.open_failed(&dir, &path, writes);
            }
            Ok((result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, Guest>, (fd, path): (Resource<Descriptor>, String)| {
            counting_entry(&mut store, true, |view| {
                in_tokio(HostDescriptor::create_directory_at(view, fd, path))
            })
            .map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, Guest>,
         (fd, old_path, new_path): (Resource<Descriptor>, String, String)| {
            counting_entry(&mut store, true, |view| {
                in_tokio(HostDescriptor::symlink_at(view, fd, old_path, new_path))
            })
            .map(|result| (result,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, Guest>,
         (fd, old_flags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            counting_entry(&mut store, true, |view| {
                in_tokio(HostDescriptor::link_at(
                    view, fd, old_flags, old_path, new_fd, new_path,
                ))
            })
            .map(|result| (result,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `call`, counting [`ENTRY`] bytes first if it `adds` an entry (and
/// giving them back if it fails).
fn counting_entry<T>(
    store: &mut StoreContextMut<'_, Guest>,
    adds: bool,
    call: impl FnOnce(&mut WasiFilesystemCtxView<'_>) -> Result<T, FsError>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    let budget = Arc::clone(&store.data().disk);
    if adds && let Err(e) = budget.take(ENTRY) {
        return Ok(Err(ErrorCode::from(e)));
    }
    let result = error_code(call(&mut store.data_mut().filesystem()))?;
    if adds && result.is_err() {
        budget.give_back(ENTRY);
    }
    Ok(result)
}

/// wasmtime-wasi's stream for writing to `fd` at `position` (`None`:
/// appending), wrapped so that its writes count.
fn counted_stream(
    store: &mut StoreContextMut<'_, Guest>,
    fd: Resource<Descriptor>,
    position: Option<u64>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, ErrorCode>> {
    let budget = Arc::clone(&store.data().disk);
    let mut view = store.data_mut().filesystem();
    let file = match view.table.get(&fd)? {
        Descriptor::File(f) => Some(Arc::clone(&f.file)),
        Descriptor::Dir(_) => None,
    };
    let opened = match position {
        Some(offset) => HostDescriptor::write_via_stream(&mut view, fd, offset),
        None => HostDescriptor::append_via_stream(&mut view, fd),
    };
    let stream = match error_code(opened)? {
        Ok(stream) => stream,
        Err(code) => return Ok(Err(code)),
    };
    let Some(file) = file else {
        return Ok(Ok(stream));
    };
    let inner = view.table.delete(stream)?;
    let counted: DynOutputStream = Box::new(CountedStream {
        inner,
        file,
        position,
        budget,
    });
    Ok(Ok(view.table.push(counted)?))
}

/// Splits a wasmtime-wasi result into a trap and the guest's error code.
fn error_code<T>(result: Result<T, FsError>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => e.downcast().map(Err),
    }
}

/// A file's output stream whose writes count against the budget first.
struct CountedStream {
    inner: DynOutputStream,
    file: Arc<File>,
    /// Where the next write goes; `None` when appending.
    position: Option<u64>,
    budget: Arc<DiskBudget>,
}

impl CountedStream {
    fn take(&mut self, len: usize) -> Result<(), StreamError> {
        self.budget
            .take_write(&self.file, self.position, len as u64)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))?;
        if let Some(position) = &mut self.position {
            *position = position.saturating_add(len as u64);
        }
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CountedStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CountedStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(bytes.len())?;
        self.inner.write(bytes)
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, len: usize) -> Result<(), StreamError> {
        self.take(len)?;
        self.inner.write_zeroes(len)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}
