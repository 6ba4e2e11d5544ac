//! Streaming a child's stdout and stderr to line callbacks while capturing both.
//!
//! One thread per pipe reads whole lines and sends them over a bounded channel;
//! the calling thread invokes the callbacks in arrival order (the callbacks need
//! not be `Send`) and appends each line to the captured output. This mirrors
//! `cargo_util::ProcessBuilder::exec_with_streaming`, which Cargo uses for build
//! scripts without a sandbox.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Output};
use std::sync::mpsc;
use std::thread;

use crate::runner::{LineCallback, RunError};

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

    thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let stdout_sender = sender.clone();
        scope.spawn(move || read_lines(stdout_pipe, Pipe::Stdout, stdout_sender));
        scope.spawn(move || read_lines(stderr_pipe, Pipe::Stderr, sender));
        for (pipe, line) in receiver {
            let line: Vec<u8> = match line {
                Ok(line) => line,
                Err(e) => {
                    read_error.get_or_insert(e);
                    continue;
                }
            };
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
    });

    let status = child.wait().map_err(RunError::Process)?;
    if let Some(e) = read_error {
        return Err(RunError::Process(e));
    }
    let output = Output {
        status,
        stdout,
        stderr,
    };
    match callback_error {
        Some(error) => Err(RunError::Callback { error, output }),
        None => Ok(output),
    }
}

/// Sends every line of `pipe` (with its terminator) until end of file.
fn read_lines(pipe: impl Read, which: Pipe, sender: mpsc::SyncSender<(Pipe, io::Result<Vec<u8>>)>) {
    let mut reader = BufReader::new(pipe);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
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
