//! A jobserver of the script's own, with Cargo relaying tokens to it.
//!
//! Sharing Cargo's jobserver pipe with a script shares a channel: two scripts
//! running at once could pass bytes to each other through it, and a script
//! could keep a token for good. Instead each script gets a pipe of its own
//! (passed as `CARGO_MAKEFLAGS`, as Cargo passes its jobserver), and a thread
//! in Cargo's process relays:
//!
//! * when the script's pipe is empty, it takes a token from Cargo's jobserver
//!   (if one is free) and puts a byte of its own into the pipe;
//! * a byte that stays in the pipe for [`IDLE`] is taken back and its token
//!   returned, so that an idle script does not hold up other jobs;
//! * bytes the script writes back are taken and a token returned for each,
//!   up to the number it was given; what the script writes is never passed
//!   on.
//!
//! When the script is gone, dropping the [`TokenRelay`] returns every token
//! it was given, also those it never gave back. What can still pass between two
//! scripts is timing: how many tokens are free.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Context;
use jobserver::Client;

/// How often the relay looks at the script's pipe.
const TICK: Duration = Duration::from_millis(2);
/// How long an offered token may wait for the script before it is returned.
const IDLE: Duration = Duration::from_millis(20);

/// The relay of one run; see the module documentation. Dropping it stops
/// relaying and returns every token the script was given.
pub(super) struct TokenRelay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenRelay {
    /// Creates the script's jobserver, passes it to `command` (descriptors and
    /// `CARGO_MAKEFLAGS`) and starts relaying tokens from `shared`.
    pub(super) fn start(shared: &Client, command: &mut Command) -> anyhow::Result<TokenRelay> {
        let private = Client::new(0).context("failed to create the build script's jobserver")?;
        private.configure(command);
        let shared_read = nonblocking_read_end(shared)
            .context("failed to open Cargo's jobserver for the build script's relay")?;
        let private_read = nonblocking_read_end(&private)
            .context("failed to open the build script's jobserver")?;
        let stop = Arc::new(AtomicBool::new(false));
        let relay = Relay {
            shared: shared.clone(),
            shared_read,
            private,
            private_read,
            given: 0,
            offered_for: Duration::ZERO,
        };
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("jobserver relay".to_owned())
                .spawn(move || relay.run(&stop))
                .context("failed to start the build script's jobserver relay")?
        };
        Ok(TokenRelay {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Now, not at its next tick: the run waits for it.
            thread.thread().unpark();
            // It only fails to join if it panicked, and then holds no token.
            let _ = thread.join();
        }
    }
}

struct Relay {
    shared: Client,
    /// The read end of Cargo's jobserver, non-blocking for this relay only.
    shared_read: File,
    private: Client,
    /// The read end of the script's pipe, non-blocking for this relay only.
    private_read: File,
    /// Tokens taken from Cargo's jobserver: in the script's pipe or its hands.
    given: usize,
    /// How long the byte in the script's pipe has waited.
    offered_for: Duration,
}

impl Relay {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            // An error of the pipes ends relaying: the script then runs with
            // the tokens it has, and all are returned at the end.
            if self.step().is_err() {
                break;
            }
            thread::park_timeout(TICK);
        }
        // Whatever is left in the pipe, and whatever the script kept.
        while read_some(&mut self.private_read, &mut [0; 4096]).unwrap_or(0) > 0 {}
        for _ in 0..self.given {
            let _ = self.shared.release_raw();
        }
    }

    fn step(&mut self) -> io::Result<()> {
        let waiting = self.private.available()?;
        // Bytes written back by the script (or more than one of ours), read
        // at most a buffer at a time, however fast the script writes.
        if waiting > 1 {
            let mut returned = [0; 4096];
            let wanted = (waiting - 1).min(returned.len());
            for _ in 0..read_some(&mut self.private_read, &mut returned[..wanted])? {
                self.give_back()?;
            }
        }
        match waiting {
            0 => {
                self.offered_for = Duration::ZERO;
                if take(&mut self.shared_read)? {
                    self.given += 1;
                    self.private.release_raw()?;
                }
            }
            _ => {
                self.offered_for += TICK;
                if self.offered_for >= IDLE && take(&mut self.private_read)? {
                    self.offered_for = Duration::ZERO;
                    self.give_back()?;
                }
            }
        }
        Ok(())
    }

    /// Returns a token to Cargo's jobserver for a byte taken from the
    /// script's pipe; bytes beyond the tokens given are dropped.
    fn give_back(&mut self) -> io::Result<()> {
        if self.given > 0 {
            self.given -= 1;
            self.shared.release_raw()?;
        }
        Ok(())
    }
}

/// Reads one byte without blocking: whether there was one.
fn take(read: &mut File) -> io::Result<bool> {
    Ok(read_some(read, &mut [0])? == 1)
}

/// Reads what is there, up to `buffer`'s length, without blocking.
fn read_some(read: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        return match read.read(buffer) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// A read end of `client`'s pipe that is non-blocking for this process only:
/// a new open file description of the same pipe, through `/proc/self/fd`.
fn nonblocking_read_end(client: &Client) -> io::Result<File> {
    let mut command = Command::new("true");
    client.configure(&mut command);
    let auth = (command.get_envs())
        .filter_map(|(_, value)| value?.to_str())
        .flat_map(str::split_ascii_whitespace)
        .find_map(|arg| arg.strip_prefix("--jobserver-auth="))
        .ok_or_else(|| io::Error::other("the jobserver passes no `--jobserver-auth`"))?;
    let path = match auth.strip_prefix("fifo:") {
        Some(fifo) => fifo.into(),
        None => {
            let read = auth.split(',').next().unwrap_or_default();
            format!("/proc/self/fd/{read}")
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's side: the descriptors `configure` passed.
    fn script_pipe(command: &Command) -> (File, File) {
        let auth = (command.get_envs())
            .filter_map(|(_, value)| value?.to_str())
            .flat_map(str::split_ascii_whitespace)
            .find_map(|arg| arg.strip_prefix("--jobserver-auth="))
            .unwrap()
            .to_owned();
        let (read, write) = auth.split_once(',').unwrap();
        let open = |fd: &str, write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(format!("/proc/self/fd/{fd}"))
                .unwrap()
        };
        (open(read, false), open(write, true))
    }

    #[test]
    fn tokens_are_relayed_and_all_come_back() {
        use std::io::Write;
        let shared = Client::new(2).unwrap();
        let mut command = Command::new("true");
        let relay = TokenRelay::start(&shared, &mut command).unwrap();
        let (mut read, mut write) = script_pipe(&command);
        // The script takes a token: one fewer in Cargo's jobserver.
        let mut byte = [0];
        read.read_exact(&mut byte).unwrap();
        assert_eq!(byte, [b'+']);
        // Garbage written back is not passed on, and returns at most what was taken.
        write.write_all(b"SECRET").unwrap();
        thread::sleep(IDLE * 3);
        let mut shared_bytes = Vec::new();
        while let Ok(Some(token)) = shared_try(&shared) {
            shared_bytes.push(token);
        }
        assert!(!shared_bytes.contains(&b'S'), "{shared_bytes:?}");
        for _ in &shared_bytes {
            shared.release_raw().unwrap();
        }
        // A script that dies holding a token: it comes back with the relay.
        read.read_exact(&mut byte).unwrap();
        drop(relay);
        assert_eq!(shared.available().unwrap(), 2);
    }

    /// A byte from Cargo's jobserver without blocking.
    fn shared_try(shared: &Client) -> io::Result<Option<u8>> {
        let mut read = nonblocking_read_end(shared)?;
        let mut byte = [0];
        match read.read(&mut byte) {
            Ok(1) => Ok(Some(byte[0])),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}
