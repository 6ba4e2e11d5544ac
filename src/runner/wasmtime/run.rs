//! One run: the guest on a worker thread, its output on the calling thread.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::sync::Command;

use super::compile;
use super::disk::{self, DiskBudget};
use super::guest::{self, Guest};
use super::output::{Event, GuestOutput};
use crate::policy::{display_duration, display_size};
use crate::runner::stream::{LineDelivery, Pipe};
use crate::runner::{Invocation, LimitKind, LineCallback, RunError, reset_temp_dir};
use crate::{DEFAULT_DISK_LIMIT, DEFAULT_OUTPUT_LIMIT};

/// How the guest ended, as the worker thread saw it.
pub(super) enum Ending {
    /// It returned from `wasi:cli/run` or called `exit`, with this code.
    Exited(i32),
    /// It trapped: a panic (Rust aborts on WASI), an out-of-bounds access, ...
    Trapped(wasmtime::Error),
    /// A write was refused because of `limits.output`.
    OutputExceeded,
    /// Growing its memory was refused because of `limits.memory`.
    MemoryExceeded,
    /// It was still running at `limits.time` (decided by the calling thread).
    TimedOut,
    /// The component could not be instantiated, e.g. it imports more than WASI.
    NotStarted(anyhow::Error),
}

/// Lines in flight between the guest and the callbacks.
const CHANNEL_CAPACITY: usize = 64;

/// How long a guest may take to stop once its time is up. A guest running wasm
/// code stops at once; one blocked in a host call (a long `sleep`, a socket
/// read) cannot be interrupted, and is abandoned: its thread ends when the call
/// returns, as its next write or wasm instruction traps.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Raw wait statuses, as for a process killed by `SIGABRT` or `SIGKILL`.
const ABORTED: i32 = 6;
const KILLED: i32 = 9;

pub(super) fn run(
    invocation: &Invocation<'_>,
    cache_dir: Option<&Path>,
    on_stdout_line: LineCallback<'_>,
    on_stderr_line: LineCallback<'_>,
) -> Result<Output, RunError> {
    // A missing program is the same error as for a process.
    File::open(invocation.program).map_err(RunError::Process)?;
    let engine = compile::engine().map_err(RunError::Sandbox)?;
    let (component, _) = compile::load(invocation.program, cache_dir).map_err(RunError::Sandbox)?;
    let limits = invocation.policy.granted.limits;
    // Unlimited output would grow Cargo's memory without bound.
    let output_limit = limits.output.unwrap_or(DEFAULT_OUTPUT_LIMIT);
    reset_temp_dir(&invocation.policy.baseline.temp_dir).map_err(RunError::Sandbox)?;

    let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
    let stopped = Arc::new(AtomicBool::new(false));
    let output = GuestOutput::new(sender, Some(output_limit), Arc::clone(&stopped));
    let (wasi, recording) = guest::wasi_ctx(invocation, &output).map_err(RunError::Sandbox)?;
    let disk_limit = limits.disk.unwrap_or(DEFAULT_DISK_LIMIT);
    let disk = DiskBudget::new(disk_limit, &invocation.policy.baseline.out_dir)
        .context("failed to measure `OUT_DIR`")
        .map_err(RunError::Sandbox)?;
    let guest = Guest::new(
        wasi,
        limits.memory,
        Arc::clone(&disk),
        Arc::clone(&recording),
    );
    let mut store = Store::new(engine, guest);
    store.limiter(|guest| &mut guest.memory);
    // Every epoch tick (see `engine.increment_epoch` below, and other runs')
    // checks whether this run was stopped.
    let interrupt = Arc::clone(&stopped);
    store.epoch_deadline_callback(move |_| {
        Ok(if interrupt.load(Ordering::SeqCst) {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    store.set_epoch_deadline(1);
    let linker = linker(engine).map_err(RunError::Sandbox)?;

    let worker = thread::Builder::new()
        .name("build-script".into())
        .spawn(move || {
            let ending = run_guest(&mut store, linker, &component, &output);
            drop(store);
            output.finish(ending);
        })
        .map_err(RunError::Process)?;

    let mut delivery = LineDelivery::new(on_stdout_line, on_stderr_line);

    // A limit too far in the future to represent is no limit.
    let deadline = limits
        .time
        .and_then(|time| Instant::now().checked_add(time));
    let mut stop_requested = false;
    let (ending, finished) = loop {
        let event = match deadline {
            None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(deadline) => {
                let until = if stop_requested {
                    deadline.checked_add(STOP_GRACE).unwrap_or(deadline)
                } else {
                    deadline
                };
                receiver.recv_timeout(until.saturating_duration_since(Instant::now()))
            }
        };
        match event {
            Ok(Event::Line(pipe, line)) => delivery.deliver(pipe, &line),
            Ok(Event::Finished(_)) if stop_requested => break (Ending::TimedOut, true),
            Ok(Event::Finished(ending)) => break (ending, true),
            Err(RecvTimeoutError::Timeout) if !stop_requested => {
                stop_requested = true;
                stopped.store(true, Ordering::SeqCst);
                engine.increment_epoch();
            }
            // The guest is stuck in a host call: leave its thread behind.
            Err(RecvTimeoutError::Timeout) => break (Ending::TimedOut, false),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(RunError::Sandbox(anyhow::anyhow!(
                    "the thread running the build script stopped unexpectedly"
                )));
            }
        }
    };
    if finished {
        // It has sent its last event and is about to return.
        let _ = worker.join();
    }
    if let Some(denials) = invocation.denials {
        for denial in recording.denials.recorded() {
            denials.record(denial);
        }
    }

    // A script that failed after a refused write failed at the disk limit.
    let disk_exceeded = || {
        disk.exceeded()
            .then(|| (LimitKind::Disk, display_size(disk_limit)))
    };
    let (status, limit) = match ending {
        Ending::Exited(0) => (exit_status(0), None),
        Ending::Exited(code) => (exit_status(code), disk_exceeded()),
        Ending::Trapped(error) => {
            let message = format!("error: the build script trapped: {error:?}\n");
            for line in message.split_inclusive('\n') {
                delivery.deliver(Pipe::Stderr, line.as_bytes());
            }
            (ExitStatus::from_raw(ABORTED), disk_exceeded())
        }
        Ending::TimedOut => (
            ExitStatus::from_raw(KILLED),
            limits
                .time
                .map(|time| (LimitKind::Time, display_duration(time))),
        ),
        Ending::OutputExceeded => (
            ExitStatus::from_raw(KILLED),
            Some((LimitKind::Output, display_size(output_limit))),
        ),
        Ending::MemoryExceeded => (
            ExitStatus::from_raw(KILLED),
            limits
                .memory
                .map(|size| (LimitKind::Memory, display_size(size))),
        ),
        Ending::NotStarted(error) => return Err(RunError::Sandbox(error)),
    };
    delivery.finish(status, limit)
}

/// The status of a process that exited with `code` (truncated to 8 bits, as
/// the kernel does).
pub(super) fn exit_status(code: i32) -> ExitStatus {
    ExitStatus::from_raw((code & 0xff) << 8)
}

/// Instantiates the component and calls its `wasi:cli/run`.
fn run_guest(
    store: &mut Store<Guest>,
    linker: &Linker<Guest>,
    component: &Component,
    output: &GuestOutput,
) -> Ending {
    let result = match Command::instantiate(&mut *store, component, linker) {
        Ok(command) => command.wasi_cli_run().call_run(&mut *store),
        Err(_) if store.data().memory.exceeded => return Ending::MemoryExceeded,
        Err(error) => {
            return Ending::NotStarted(
                anyhow::Error::from(error)
                    .context("failed to instantiate the build script's component"),
            );
        }
    };
    match result {
        Ok(Ok(())) => Ending::Exited(0),
        Ok(Err(())) => Ending::Exited(1),
        Err(error) => {
            if let Some(exit) = error.downcast_ref::<I32Exit>() {
                Ending::Exited(exit.0)
            } else if output.exceeded() {
                Ending::OutputExceeded
            } else if store.data().memory.exceeded {
                Ending::MemoryExceeded
            } else {
                Ending::Trapped(error)
            }
        }
    }
}

/// WASI 0.2 for a command (with `exit-with-code`, stable since WASI 0.2.12, so
/// that a guest calling it keeps its exit code), with the disk limit's calls.
/// Made once per process, for the process-wide engine: defining its few
/// hundred functions is a cost every run would otherwise pay.
fn linker(engine: &'static wasmtime::Engine) -> anyhow::Result<&'static Linker<Guest>> {
    static LINKER: OnceLock<Result<Linker<Guest>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| {
            let mut linker = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
                .and_then(|()| disk::add_to_linker(&mut linker))
                .map_err(|e| format!("{e:#}"))?;
            Ok(linker)
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("failed to define WASI for the build script: {e}"))
}
