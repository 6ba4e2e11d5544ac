//! Streaming a child's stdout and stderr to line callbacks while capturing both.
//!
//! One thread per pipe reads whole lines and sends them over a bounded channel;
//! the calling thread invokes the callbacks in arrival order (the callbacks need
//! not be `Send`) and appends each line to the captured output. This mirrors
//! `cargo_util::ProcessBuilder::exec_with_streaming`, which Cargo uses for build
//! scripts without a sandbox.
//!
//! A runner that enforces limits passes a [`Watchdog`]: a thread stops the
//! process tree when the time limit passes, and once the output exceeds its
//! limit no more lines are delivered or captured and the tree is stopped too;
//! either way the result is [`RunError::LimitExceeded`]. Without a watchdog
//! nothing is limited, as in Cargo.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::runner::{LimitKind, LineCallback, RunError, display_duration, display_size};

/// Limits enforced while streaming, and how to stop the process tree.
pub(crate) struct Watchdog<'a> {
    /// Wall-clock time from the start of streaming.
    pub time: Option<Duration>,
    /// Combined bytes of stdout and stderr.
    pub output: Option<u64>,
    /// Kills the child and everything it started; called at most once per limit.
    pub stop: &'a (dyn Fn() + Sync),
}

/// Which pipe a line came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

/// Lines in flight between the reader threads and the callbacks.
const CHANNEL_CAPACITY: usize = 64;

/// Feeds the child's output to the callbacks, captures it, and waits for the child.
///
/// The child must have been spawned with piped stdout and stderr.
pub(crate) fn stream_output(
    mut child: Child,
    on_stdout_line: LineCallback<'_>,
    on_stderr_line: LineCallback<'_>,
    watchdog: Option<&Watchdog<'_>>,
) -> Result<Output, RunError> {
    let (Some(stdout_pipe), Some(stderr_pipe)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunError::Process(io::Error::other(
            "the child's stdout and stderr were not piped",
        )));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut callback_error = None;
    let mut read_error = None;
    let output_limit = watchdog.and_then(|watchdog| watchdog.output);
    let mut output_len: u64 = 0;
    let mut output_exceeded = false;
    let timed_out = AtomicBool::new(false);

    let status = thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<()>();
        if let Some(Watchdog {
            time: Some(time),
            stop,
            ..
        }) = watchdog
        {
            let timed_out = &timed_out;
            scope.spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(*time) {
                    timed_out.store(true, Ordering::SeqCst);
                    stop();
                }
            });
        }
        // A line can be no longer than the output limit allows, so that a
        // script printing without newlines cannot exhaust Cargo's memory.
        let max_line = output_limit.map(|limit| limit.saturating_add(1));
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let stdout_sender = sender.clone();
        scope.spawn(move || read_lines(stdout_pipe, Pipe::Stdout, max_line, stdout_sender));
        scope.spawn(move || read_lines(stderr_pipe, Pipe::Stderr, max_line, sender));
        for (pipe, line) in receiver {
            let line: Vec<u8> = match line {
                Ok(line) => line,
                Err(e) => {
                    read_error.get_or_insert(e);
                    continue;
                }
            };
            if output_exceeded {
                continue;
            }
            output_len = output_len.saturating_add(line.len() as u64);
            if let (Some(limit), Some(watchdog)) = (output_limit, watchdog)
                && output_len > limit
            {
                output_exceeded = true;
                (watchdog.stop)();
                continue;
            }
            if callback_error.is_none() {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                let result = match pipe {
                    Pipe::Stdout => on_stdout_line(text),
                    Pipe::Stderr => on_stderr_line(text),
                };
                if let Err(e) = result {
                    callback_error = Some(e);
                }
            }
            match pipe {
                Pipe::Stdout => stdout.extend_from_slice(&line),
                Pipe::Stderr => stderr.extend_from_slice(&line),
            }
        }
        // Dropping `done` tells the watchdog that the child is gone.
        let status = child.wait();
        drop(done);
        status
    });

    let status = status.map_err(RunError::Process)?;
    if let Some(e) = read_error {
        return Err(RunError::Process(e));
    }
    let output = Output {
        status,
        stdout,
        stderr,
    };
    let exceeded = match (watchdog, output_exceeded, timed_out.into_inner()) {
        (
            Some(Watchdog {
                time: Some(time), ..
            }),
            _,
            true,
        ) => Some((LimitKind::Time, display_duration(*time))),
        (
            Some(Watchdog {
                output: Some(limit),
                ..
            }),
            true,
            _,
        ) => Some((LimitKind::Output, display_size(*limit))),
        _ => None,
    };
    match (exceeded, callback_error) {
        (Some((limit, value)), _) => Err(RunError::LimitExceeded {
            limit,
            value,
            output,
        }),
        (None, Some(error)) => Err(RunError::Callback { error, output }),
        (None, None) => Ok(output),
    }
}

/// Sends every line of `pipe` (with its terminator) until end of file; a line
/// longer than `max_line` bytes is sent in pieces of that size.
fn read_lines(
    pipe: impl Read,
    which: Pipe,
    max_line: Option<u64>,
    sender: mpsc::SyncSender<(Pipe, io::Result<Vec<u8>>)>,
) {
    let mut reader = BufReader::new(pipe);
    loop {
        let mut line = Vec::new();
        let read = match max_line {
            Some(max) => (&mut reader).take(max).read_until(b'\n', &mut line),
            None => reader.read_until(b'\n', &mut line),
        };
        match read {
            Ok(0) => return,
            Ok(_) => {
                if sender.send((which, Ok(line))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = sender.send((which, Err(e)));
                return;
            }
        }
    }
}
