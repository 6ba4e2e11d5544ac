//! Streaming a child's stdout and stderr to line callbacks while capturing both.
//!
//! One thread per pipe reads whole lines and sends them over a bounded channel;
//! the calling thread invokes the callbacks in arrival order (the callbacks need
//! not be `Send`) and appends each line to the captured output. This mirrors
//! `cargo_util::ProcessBuilder::exec_with_streaming`, which Cargo uses for build
//! scripts without a sandbox.
//!
//! Every runner passes a [`Watchdog`]: a thread stops the process tree when
//! the time limit passes, and once the output exceeds its limit
//! ([`DEFAULT_OUTPUT_LIMIT`] unless the policy sets one) no more lines are
//! delivered or captured and the tree is stopped too; either way the result is
//! [`RunError::LimitExceeded`]. Without a watchdog nothing is limited, as in
//! Cargo.
//!
//! The output limit bounds Cargo's memory, not only what is captured: the
//! reader threads share a budget of `limit + 1` bytes, counted as they are
//! read, and stop reading once it is spent. A line without a newline is cut
//! at the budget, so the bytes held in lines, in flight or captured, never
//! exceed it, however the script floods.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::DEFAULT_OUTPUT_LIMIT;
use crate::policy::{display_duration, display_size};
use crate::runner::{LimitKind, LineCallback, RunError};

/// Limits enforced while streaming, and how to stop the process tree.
pub(crate) struct Watchdog<'a> {
    /// Wall-clock time from the start of streaming.
    pub time: Option<Duration>,
    /// Combined bytes of stdout and stderr; [`DEFAULT_OUTPUT_LIMIT`] if `None`.
    pub output: Option<u64>,
    /// Kills the child and everything it started; called at most once per limit.
    pub stop: &'a (dyn Fn() + Sync),
}

/// Which pipe a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pipe {
    Stdout,
    Stderr,
}

/// Hands lines to the callbacks in arrival order and captures them; shared by
/// every runner that streams a script's output.
pub(crate) struct LineDelivery<'a> {
    on_stdout_line: LineCallback<'a>,
    on_stderr_line: LineCallback<'a>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    callback_error: Option<anyhow::Error>,
}

impl<'a> LineDelivery<'a> {
    pub(crate) fn new(on_stdout_line: LineCallback<'a>, on_stderr_line: LineCallback<'a>) -> Self {
        LineDelivery {
            on_stdout_line,
            on_stderr_line,
            stdout: Vec::new(),
            stderr: Vec::new(),
            callback_error: None,
        }
    }

    /// Passes `line` (with its terminator, if any) to its callback, unless one
    /// has failed, and captures it.
    pub(crate) fn deliver(&mut self, pipe: Pipe, line: &[u8]) {
        if self.callback_error.is_none() {
            let text = String::from_utf8_lossy(line);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            let result = match pipe {
                Pipe::Stdout => (self.on_stdout_line)(text),
                Pipe::Stderr => (self.on_stderr_line)(text),
            };
            if let Err(e) = result {
                self.callback_error = Some(e);
            }
        }
        match pipe {
            Pipe::Stdout => self.stdout.extend_from_slice(line),
            Pipe::Stderr => self.stderr.extend_from_slice(line),
        }
    }

    /// The result of a run that ended with `status`: an exceeded limit first,
    /// then a failed callback, else the captured output.
    ///
    /// A script stopped at a limit has the status of a process killed by
    /// `SIGKILL`, whatever it managed to do while it was being stopped (say,
    /// exit on a write error once its output was no longer read): what the
    /// user sees does not depend on which came first.
    pub(crate) fn finish(
        self,
        status: ExitStatus,
        exceeded: Option<(LimitKind, String)>,
    ) -> Result<Output, RunError> {
        let status = match exceeded {
            Some(_) => killed(status),
            None => status,
        };
        let output = Output {
            status,
            stdout: self.stdout,
            stderr: self.stderr,
        };
        match (exceeded, self.callback_error) {
            (Some((limit, value)), _) => Err(RunError::LimitExceeded {
                limit,
                value,
                output,
            }),
            (None, Some(error)) => Err(RunError::Callback { error, output }),
            (None, None) => Ok(output),
        }
    }
}

/// The status of a process killed by `SIGKILL`.
#[cfg(unix)]
fn killed(_status: ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(libc::SIGKILL)
}

/// Elsewhere a stopped process keeps the status it had.
#[cfg(not(unix))]
fn killed(status: ExitStatus) -> ExitStatus {
    status
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
    let pipes = (stdout_pipe, stderr_pipe);
    stream_pipes(
        pipes,
        || child.wait(),
        on_stdout_line,
        on_stderr_line,
        watchdog,
    )
}

/// Feeds the output read from `stdout_pipe` and `stderr_pipe` to the
/// callbacks and captures it; `wait` returns the status of the process that
/// wrote it, once it is gone.
pub(crate) fn stream_pipes(
    (stdout_pipe, stderr_pipe): (impl Read + Send, impl Read + Send),
    wait: impl FnOnce() -> io::Result<ExitStatus>,
    on_stdout_line: LineCallback<'_>,
    on_stderr_line: LineCallback<'_>,
    watchdog: Option<&Watchdog<'_>>,
) -> Result<Output, RunError> {
    let mut delivery = LineDelivery::new(on_stdout_line, on_stderr_line);
    let mut read_error = None;
    let output_limit = watchdog.map(|watchdog| watchdog.output.unwrap_or(DEFAULT_OUTPUT_LIMIT));
    let mut output_len: u64 = 0;
    let mut output_exceeded = false;
    let timed_out = AtomicBool::new(false);
    // One byte over the limit is enough to tell that it was exceeded.
    let budget = output_limit.map(|limit| Budget::new(limit.saturating_add(1)));
    let budget = budget.as_ref();

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
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let stdout_sender = sender.clone();
        scope.spawn(move || read_lines(stdout_pipe, Pipe::Stdout, budget, stdout_sender));
        scope.spawn(move || read_lines(stderr_pipe, Pipe::Stderr, budget, sender));
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
            delivery.deliver(pipe, &line);
        }
        // Dropping `done` tells the watchdog that the child is gone.
        let status = wait();
        drop(done);
        status
    });

    let status = status.map_err(RunError::Process)?;
    if let Some(e) = read_error {
        return Err(RunError::Process(e));
    }
    let time_limit = watchdog.and_then(|watchdog| watchdog.time);
    let exceeded = match (time_limit, output_limit, timed_out.into_inner()) {
        (Some(time), _, true) => Some((LimitKind::Time, display_duration(time))),
        (_, Some(limit), false) if output_exceeded => {
            Some((LimitKind::Output, display_size(limit)))
        }
        _ => None,
    };
    delivery.finish(status, exceeded)
}

/// Bytes the reader threads may still read, shared between them.
struct Budget {
    left: AtomicU64,
}

impl Budget {
    fn new(bytes: u64) -> Budget {
        Budget {
            left: AtomicU64::new(bytes),
        }
    }

    /// Takes up to `wanted` bytes from the budget; returns how many it got.
    fn take(&self, wanted: usize) -> usize {
        let wanted = wanted as u64;
        match (self.left).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            Some(left - left.min(wanted))
        }) {
            // `left.min(wanted)` is at most `wanted`, a `usize`.
            Ok(left) | Err(left) => left.min(wanted) as usize,
        }
    }
}

/// Sends every line of `pipe` (with its terminator) until end of file, or
/// until the `budget` is spent: then the bytes read so far are sent, and the
/// pipe is closed.
fn read_lines(
    pipe: impl Read,
    which: Pipe,
    budget: Option<&Budget>,
    sender: mpsc::SyncSender<(Pipe, io::Result<Vec<u8>>)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = sender.send((which, Err(e)));
                return;
            }
        };
        if available.is_empty() {
            if !line.is_empty() {
                let _ = sender.send((which, Ok(line)));
            }
            return;
        }
        let wanted = match available.iter().position(|&byte| byte == b'\n') {
            Some(newline) => newline + 1,
            None => available.len(),
        };
        let granted = budget.map_or(wanted, |budget| budget.take(wanted));
        line.extend_from_slice(&available[..granted]);
        reader.consume(granted);
        if granted < wanted {
            if !line.is_empty() {
                let _ = sender.send((which, Ok(line)));
            }
            return;
        }
        if line.ends_with(b"\n") && sender.send((which, Ok(std::mem::take(&mut line)))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    fn flood(script: &str, output: Option<u64>) -> (Result<Output, RunError>, usize) {
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let stop = move || {
            // SAFETY: a plain system call; the child is reaped only after
            // `stream_output` stopped using this closure.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        };
        let watchdog = Watchdog {
            time: Some(Duration::from_secs(60)),
            output,
            stop: &stop,
        };
        let mut longest = 0;
        let mut on_line = |line: &str| {
            longest = longest.max(line.len());
            Ok(())
        };
        let result = stream_output(child, &mut on_line, &mut |_| Ok(()), Some(&watchdog));
        (result, longest)
    }

    fn assert_stopped_at(result: Result<Output, RunError>, limit: u64, value: &str) {
        match result {
            Err(RunError::LimitExceeded {
                limit: LimitKind::Output,
                value: shown,
                output,
            }) => {
                assert_eq!(shown, value);
                // However the script ended, it was stopped at the limit.
                #[cfg(unix)]
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&output.status),
                    Some(libc::SIGKILL)
                );
                let captured = (output.stdout.len() + output.stderr.len()) as u64;
                assert!(captured <= limit, "captured {captured} bytes");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_flood_without_newlines_stops_at_the_default_limit() {
        let (result, longest) = flood("exec head -c 314572800 /dev/zero", None);
        assert_stopped_at(result, DEFAULT_OUTPUT_LIMIT, "64MiB");
        // The one endless line was never delivered: it is over the limit.
        assert_eq!(longest, 0);
    }

    #[test]
    fn a_flood_of_lines_stops_at_the_limit() {
        let (result, longest) = flood(
            "yes 0123456789abcdef | head -c 314572800; yes x >&2",
            Some(1 << 20),
        );
        assert_stopped_at(result, 1 << 20, "1MiB");
        assert_eq!(longest, 16);
    }

    #[test]
    fn both_pipes_share_the_limit() {
        let (result, _) = flood("yes out & yes err >&2", Some(100_000));
        assert_stopped_at(result, 100_000, "100KB");
    }

    #[test]
    fn a_script_stopped_at_a_limit_always_reports_the_kill() {
        // The script ends by itself once its output is no longer read, before
        // (here: instead of) being killed: the status is still the kill's.
        let child = Command::new("/bin/sh")
            .args(["-c", "trap '' PIPE; yes 'a line'; exit 3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let watchdog = Watchdog {
            time: None,
            output: Some(1000),
            stop: &|| {},
        };
        let result = stream_output(child, &mut |_| Ok(()), &mut |_| Ok(()), Some(&watchdog));
        assert_stopped_at(result, 1000, "1KB");
    }

    #[test]
    fn output_within_the_limit_is_kept_whole() {
        let (result, longest) = flood("printf 'a\\nbb\\nno newline'", Some(15));
        let output = result.unwrap();
        assert_eq!(output.stdout, b"a\nbb\nno newline");
        assert_eq!(longest, 10);
        let (result, _) = flood("printf 'a\\nbb\\nno newline!'", Some(15));
        assert_stopped_at(result, 15, "15B");
    }

    #[test]
    fn the_budget_is_shared() {
        let budget = Budget::new(10);
        assert_eq!(budget.take(4), 4);
        assert_eq!(budget.take(8), 6);
        assert_eq!(budget.take(1), 0);
    }
}
