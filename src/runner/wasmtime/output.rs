//! The guest's stdout and stderr: split into lines and sent to the calling thread.
//!
//! Both streams share one [`GuestOutput`]: it counts the bytes written against
//! `limits.output`, keeps the unfinished line of each stream, and sends every
//! complete line over the run's bounded channel, so that lines arrive in the
//! order the guest wrote them and a slow consumer slows the guest down (like a
//! full pipe). A write that would exceed the limit, or any write after the run
//! was stopped, fails with a trap, which ends the guest.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::run::Ending;
use crate::runner::stream::Pipe;

/// What the worker thread sends to the calling thread.
pub(super) enum Event {
    /// One line, with its terminator unless it is the last one and has none.
    Line(Pipe, Vec<u8>),
    /// The guest is done; nothing follows.
    Finished(Ending),
}

/// The most a guest may write at once (what WASI's own pipes allow).
const WRITE_PERMIT: usize = 64 * 1024;

/// The output state shared by the guest's two streams and the worker thread.
#[derive(Clone)]
pub(super) struct GuestOutput {
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

struct State {
    sender: SyncSender<Event>,
    /// `limits.output`, in bytes of stdout and stderr together.
    limit: Option<u64>,
    written: u64,
    exceeded: bool,
    /// The unfinished line of stdout and of stderr.
    partial: [Vec<u8>; 2],
}

impl GuestOutput {
    /// Output that goes to `sender`; once `stopped` is set every write traps.
    pub(super) fn new(
        sender: SyncSender<Event>,
        limit: Option<u64>,
        stopped: Arc<AtomicBool>,
    ) -> GuestOutput {
        GuestOutput {
            state: Arc::new(Mutex::new(State {
                sender,
                limit,
                written: 0,
                exceeded: false,
                partial: [Vec::new(), Vec::new()],
            })),
            stopped,
        }
    }

    /// The guest's stream for `pipe`, for `WasiCtxBuilder::stdout`/`stderr`.
    pub(super) fn stream(&self, pipe: Pipe) -> GuestStream {
        GuestStream {
            output: self.clone(),
            pipe,
        }
    }

    /// Whether a write was refused because of `limits.output`.
    pub(super) fn exceeded(&self) -> bool {
        self.lock().exceeded
    }

    /// Sends the unfinished lines, then how the guest ended: the last event.
    pub(super) fn finish(&self, ending: Ending) {
        let mut state = self.lock();
        for pipe in [Pipe::Stdout, Pipe::Stderr] {
            let line = std::mem::take(&mut state.partial[pipe as usize]);
            if !line.is_empty() {
                // The calling thread is gone only when it gave up on the run.
                let _ = state.sender.send(Event::Line(pipe, line));
            }
        }
        let _ = state.sender.send(Event::Finished(ending));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, pipe: Pipe, bytes: &[u8]) -> Result<(), StreamError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(trap("the build script was stopped"));
        }
        let mut state = self.lock();
        let written = state.written.saturating_add(bytes.len() as u64);
        if state.limit.is_some_and(|limit| written > limit) {
            state.exceeded = true;
            return Err(trap("the build script exceeded its output limit"));
        }
        state.written = written;
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end + 1);
            rest = tail;
            let mut full = std::mem::take(&mut state.partial[pipe as usize]);
            full.extend_from_slice(line);
            if state.sender.send(Event::Line(pipe, full)).is_err() {
                return Err(trap("the build script's output is no longer read"));
            }
        }
        state.partial[pipe as usize].extend_from_slice(rest);
        Ok(())
    }

    fn check_write(&self) -> StreamResult<usize> {
        if self.stopped.load(Ordering::SeqCst) || self.lock().exceeded {
            Err(StreamError::Closed)
        } else {
            Ok(WRITE_PERMIT)
        }
    }
}

fn trap(message: &'static str) -> StreamError {
    StreamError::Trap(wasmtime::Error::msg(message))
}

/// The guest's stdout or stderr.
#[derive(Clone)]
pub(super) struct GuestStream {
    output: GuestOutput,
    pipe: Pipe,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.pipe, &bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.output.check_write()
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

/// The stream as WASI 0.3 would use it (the runner links only WASI 0.2).
impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self
            .output
            .write(self.pipe, buf)
            .map(|()| buf.len())
            .map_err(io::Error::other);
        Poll::Ready(result)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
