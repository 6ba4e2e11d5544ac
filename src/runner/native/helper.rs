//! The helper: a small single-threaded server that starts each build script's
//! confinement in a child of its own.
//!
//! The runner starts the helper executable (see [`HELPER_NAME`]) once per
//! process, on its first run, with its end of a *control socket* as stdin; the
//! helper answers [`READY`]. For each run the runner sends [`START`] with the
//! run's descriptors ([`RUN_FDS`]: the run's socket, the script's stdout and
//! stderr, the *status pipe*; then the script's jobserver, if any), and the
//! server forks a child for it: a fresh fork of a single-threaded process, so
//! the child may allocate and use the standard library, and may create a user
//! namespace. Nothing here runs between `fork` and `exec` of a multi-threaded
//! program, and no run pays for an `execve` of the helper.
//!
//! ```text
//! cargo ── helper server ── run ── init (PID 1) ── build script ── its children
//!          outside          └──── new user, PID, mount, IPC, UTS [and network] namespaces
//! ```
//!
//! 0. The **server**, in a session of its own (no run has a controlling
//!    terminal), forks a run per [`START`] in a process group of its own and
//!    answers the run's id, which is the group's. It kills a run's group for
//!    [`KILL`] (the watchdog's limits) if it has not reaped the run yet, so
//!    that the id is not reused, and reaps the runs that exit. When the
//!    runner's end of the control socket closes (Cargo exited, however), it
//!    kills every run and exits.
//! 1. The **run** dies with the server (`PR_SET_PDEATHSIG`) and reads the
//!    spec from the run's socket until end of file (the runner wrote it
//!    there before [`START`]). It puts the script's stdout, stderr and
//!    jobserver in place (the jobserver at [`JOBSERVER_FDS`]), moves itself
//!    into the run's cgroups (see the module `cgroup`), points stdin at
//!    `/dev/null`, forbids core dumps, creates the namespaces with `unshare`,
//!    maps its user and group to themselves, sets `RLIMIT_NPROC` (counted per
//!    user namespace, so only the script's processes count; a second layer
//!    under the `pids` cgroup, and none for root) and forks init. It then
//!    closes its copies of the script's output, the status pipe and the
//!    run's socket and waits for init, which it outlives.
//! 2. **init**, PID 1 of the new PID namespace, dies with the run
//!    (`PR_SET_PDEATHSIG`), replaces the host's tree with a view of the spec's
//!    paths only, `OUT_DIR` and the temporary directory on a `tmpfs` of the
//!    disk limit (the modules `view` and `disk`), changes to the working
//!    directory and forks the build script, keeping no copy of its output. It
//!    receives the descriptor of
//!    the script's recording filter (the module `record`) and, until the
//!    script exits, reaps every process and serves the filter's notifications;
//!    then it kills what is left in the namespace (daemons
//!    included), copies `OUT_DIR` back to the host, reports the denials and
//!    closes the status pipe, writes the script's wait status to the run's
//!    socket and exits: the runner has the script's result without waiting
//!    for init or the run to exit. A run killed before init reported writes
//!    nothing, and the runner takes its status as `SIGKILL`'s. init itself
//!    is not confined further: it
//!    runs no code of the script's, and the script, without capabilities and
//!    in a landlock domain of its own, can neither signal nor trace it.
//! 3. The **build script** process marks every inherited descriptor but the
//!    jobserver's close-on-exec (init's descriptors of the disk included),
//!    sets `RLIMIT_AS` if the spec asks for it (no `memory` cgroup), empties
//!    its capability bounding set, and applies landlock (filesystem, TCP
//!    ports, signal and abstract-socket scopes, with `no_new_privs`), the
//!    recording filter, whose descriptor it sends to init, and the seccomp
//!    filters. Landlock gets exactly the restrictions of the ABI the
//!    spec names (6, or what the kernel has when the user allowed
//!    `partial-landlock`, see the module `kernel`), and the kernel must
//!    enforce all of them. Then it writes `confined` to the status pipe and
//!    calls `execve`. The pipe is close-on-exec, so the runner sees end of
//!    file once the script runs.
//!
//! A failure before `execve` is written to the status pipe as `error: <message>`
//! (`exec: <errno>` when `execve` itself fails), which the runner turns into an
//! error naming the step; stdout and stderr stay the script's own. init writes
//! `limit: disk` when the disk is full at the end (or `OUT_DIR` did not fit in
//! it at the start), and `error: <message>` when copying back failed.
//!
//! [`HELPER_NAME`]: super::HELPER_NAME

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, bail};
use landlock::{
    ABI, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, RulesetCreatedAttr, RulesetStatus,
};

use super::disk::Disk;
use super::kernel::landlock_ruleset;
use super::record::{self, Recorder, open_host_root};
use super::spec::{ConfinementSpec, Network, PathAccess};
use super::sys::{check, pipe, receive_fds, send_fds};
use super::{cgroup, seccomp, view};
use crate::Denial;

/// The largest spec the helper reads; environments are large, but not this large.
const MAX_SPEC_BYTES: u64 = 64 << 20;

/// What the server writes to the runner once it is ready, with the crate's
/// version: a helper from another build is refused.
pub(super) const READY: &str = concat!("build-sandbox-helper ", env!("CARGO_PKG_VERSION"), "\n");

/// A request to start a run, with its descriptors ([`RUN_FDS`]); the server
/// answers the run's id, which is its process group's (4 bytes).
pub(super) const START: u8 = b's';
/// A request to kill a run's process group, with its id (4 bytes).
pub(super) const KILL: u8 = b'k';

/// The descriptors of a run, in the order [`START`] sends them: the run's
/// socket, the script's stdout and stderr, the status pipe, and the script's
/// jobserver, if any.
pub(super) const RUN_FDS: usize = 4;

/// Where a run's jobserver descriptors are in the script's process, as the
/// runner writes them into its environment.
pub(super) const JOBSERVER_FDS: [i32; 2] = [3, 4];

/// How the server exits when it cannot go on.
const EXIT_SERVER_FAILED: i32 = 101;
/// How a process exits after reporting an error on the status pipe.
const EXIT_SETUP_FAILED: i32 = 126;
/// How the script's process exits when `execve` failed.
const EXIT_EXEC_FAILED: i32 = 127;

/// Runs the helper server; never returns.
pub(super) fn main() -> ! {
    // SAFETY: the runner passes its end of the control socket as stdin, and
    // nothing else in this process owns it.
    let control = unsafe { UnixStream::from_raw_fd(0) };
    let Err(e) = serve(&control);
    eprintln!("error: the sandbox helper failed: {e:#}");
    std::process::exit(EXIT_SERVER_FAILED);
}

/// The server's loop: starts a run for each [`START`], kills a run's process group
/// for each [`KILL`], reaps the runs that exit, and when the runner's end of
/// `control` closes (Cargo exited), kills every run and exits.
fn serve(control: &UnixStream) -> anyhow::Result<std::convert::Infallible> {
    set_child_signals(libc::SIG_BLOCK)?;
    let signals = child_signal_fd().context("failed to watch the runs")?;
    // SAFETY: a plain system call. A session of its own: no run, and no
    // script, has a controlling terminal.
    check(unsafe { libc::setsid() }).context("failed to start a session")?;
    let network = IsolatedNetwork::create()
        .context("failed to create the network namespace of build scripts without network")?;
    // SAFETY: no preconditions.
    let server = unsafe { libc::getpid() };
    let mut runs = std::collections::BTreeSet::new();
    (&*control)
        .write_all(READY.as_bytes())
        .context("failed to greet the runner")?;
    loop {
        let [control_ready, exited] = poll_readable([control.as_raw_fd(), signals.as_raw_fd()]);
        if exited {
            drain(&signals);
            loop {
                // SAFETY: a plain system call.
                let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                runs.remove(&pid);
            }
        }
        if !control_ready {
            continue;
        }
        match receive_fds(control) {
            Ok((START, fds)) => match fork().context("failed to start a run")? {
                0 => {
                    drop(signals);
                    // SAFETY: a plain system call; the server does the same,
                    // so that the group exists whichever comes first.
                    unsafe { libc::setpgid(0, 0) };
                    start_run(server, &network, fds)
                }
                run => {
                    // SAFETY: a plain system call.
                    unsafe { libc::setpgid(run, run) };
                    runs.insert(run);
                    (&*control)
                        .write_all(&run.to_ne_bytes())
                        .context("failed to answer a request")?;
                }
            },
            Ok((KILL, _)) => {
                let mut id = [0; 4];
                (&*control)
                    .read_exact(&mut id)
                    .context("failed to read a request")?;
                let run = libc::pid_t::from_ne_bytes(id);
                // Only a run that was not reaped: its id is not reused yet.
                if runs.contains(&run) {
                    // SAFETY: a plain system call.
                    unsafe { libc::kill(-run, libc::SIGKILL) };
                }
            }
            Ok((request, _)) => bail!("unknown request {request}"),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                for run in runs {
                    // SAFETY: a plain system call.
                    unsafe { libc::kill(-run, libc::SIGKILL) };
                }
                std::process::exit(0);
            }
            Err(e) => return Err(e).context("failed to read a request"),
        }
    }
}

/// A run, forked from the server with the descriptors of [`START`]: in a
/// process group of its own, it reads the spec from the run's socket, puts
/// the script's stdout, stderr and jobserver in place, creates the
/// namespaces (see [`supervise`]) and waits for init, which reports the
/// script's status over the run's socket itself.
fn start_run(server: libc::pid_t, network: &IsolatedNetwork, fds: Vec<OwnedFd>) -> ! {
    // Out of the way of the standard streams and `JOBSERVER_FDS`.
    let Ok(mut fds) = fds
        .into_iter()
        .map(above_jobserver)
        .collect::<io::Result<Vec<_>>>()
    else {
        std::process::exit(EXIT_SERVER_FAILED);
    };
    let jobserver = fds.split_off(RUN_FDS.min(fds.len()));
    let Ok([run, stdout, stderr, status]) = <[OwnedFd; RUN_FDS]>::try_from(fds) else {
        std::process::exit(EXIT_SERVER_FAILED);
    };
    let run = UnixStream::from(run);
    let status = Status(File::from(status));
    let started = (|| -> anyhow::Result<ConfinementSpec> {
        set_child_signals(libc::SIG_UNBLOCK)?;
        // SAFETY: plain system calls.
        unsafe {
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))
                .context("failed to tie the run to the helper")?;
            if libc::getppid() != server {
                std::process::exit(EXIT_SETUP_FAILED);
            }
        }
        let mut spec = read_spec(&run)?;
        // SAFETY: plain system calls on descriptors this process owns; the
        // targets are free or the standard streams.
        unsafe {
            check(libc::dup2(stdout.as_raw_fd(), 1))?;
            check(libc::dup2(stderr.as_raw_fd(), 2))?;
            for (fd, target) in jobserver.iter().zip(JOBSERVER_FDS) {
                check(libc::dup2(fd.as_raw_fd(), target))?;
            }
        }
        spec.keep_fds = JOBSERVER_FDS[..jobserver.len()].to_vec();
        Ok(spec)
    })();
    drop((stdout, stderr, jobserver));
    let spec = match started {
        Ok(spec) => spec,
        Err(e) => {
            status.error(&e);
            std::process::exit(EXIT_SETUP_FAILED);
        }
    };
    match supervise(&spec, network, &status, &run) {
        Ok(init) => {
            // init holds what it reports on: the status pipe closes, and the
            // runner sees the run's socket close, when init is gone.
            drop((status, run));
            release_output();
            wait(init);
            std::process::exit(0)
        }
        Err(e) => {
            status.error(&e);
            std::process::exit(EXIT_SETUP_FAILED);
        }
    }
}

/// A network namespace with no interface up, in a user namespace of its own,
/// made once by the server: the runs of scripts without network join it, as
/// making and tearing down a network namespace for each costs about a
/// millisecond. What they share is nothing: no interface is up, and a
/// script can neither create a unix or datagram socket (seccomp) nor bind or
/// connect a TCP one (landlock), nor configure the namespace (it has no
/// capability in it).
struct IsolatedNetwork {
    user: File,
    net: File,
}

impl IsolatedNetwork {
    /// Makes the namespaces in a child, which exits once they are open here.
    fn create() -> anyhow::Result<IsolatedNetwork> {
        let (made_read, made_write) = pipe()?;
        let (opened_read, opened_write) = pipe()?;
        match fork()? {
            0 => {
                drop((made_read, opened_write));
                let user = user();
                // SAFETY: this process is single-threaded, as `CLONE_NEWUSER` requires.
                let made =
                    check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) })
                        .and_then(|()| map_user(user));
                let _ = File::from(made_write).write_all(&[u8::from(made.is_ok())]);
                // Until the server opened the namespaces, or is gone.
                let _ = File::from(opened_read).read(&mut [0]);
                std::process::exit(0);
            }
            maker => {
                drop((made_write, opened_read));
                let mut made = [0];
                let opened = File::from(made_read)
                    .read_exact(&mut made)
                    .ok()
                    .filter(|()| made == [1])
                    .map(|()| {
                        let namespace = |kind| File::open(format!("/proc/{maker}/ns/{kind}"));
                        Ok(IsolatedNetwork {
                            user: namespace("user")?,
                            net: namespace("net")?,
                        })
                    });
                drop(opened_write);
                wait(maker);
                opened.context("failed to create the namespaces")?
            }
        }
    }

    /// Moves the calling process, which must be single-threaded, into the
    /// namespaces.
    fn join(&self) -> anyhow::Result<()> {
        // SAFETY: plain system calls on descriptors this process owns.
        unsafe {
            check(libc::setns(self.user.as_raw_fd(), libc::CLONE_NEWUSER))
                .context("failed to join the user namespace of the isolated network")?;
            check(libc::setns(self.net.as_raw_fd(), libc::CLONE_NEWNET))
                .context("failed to join the isolated network")?;
        }
        Ok(())
    }
}

/// The calling process's user and group.
fn user() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: no preconditions.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Maps the user and group the calling process had, `(uid, gid)`, to
/// themselves in the user namespace it just created.
fn map_user((uid, gid): (libc::uid_t, libc::gid_t)) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// `fd` moved to a number above [`JOBSERVER_FDS`], close-on-exec.
fn above_jobserver(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: a plain system call; the new descriptor is ours.
    unsafe {
        let moved = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, JOBSERVER_FDS[1] + 1);
        check(moved)?;
        Ok(OwnedFd::from_raw_fd(moved))
    }
}

fn read_spec(run: &UnixStream) -> anyhow::Result<ConfinementSpec> {
    let mut bytes = Vec::new();
    run.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("failed to read the spec")?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        bail!("the spec is larger than {MAX_SPEC_BYTES} bytes");
    }
    serde_json::from_slice(&bytes).context("failed to parse the spec")
}

/// Waits until one of `fds` is readable; returns which are.
fn poll_readable<const N: usize>(fds: [RawFd; N]) -> [bool; N] {
    let mut polled = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `polled` is an array of `N` `pollfd`s.
    if unsafe { libc::poll(polled.as_mut_ptr(), N as libc::nfds_t, -1) } < 0 {
        return [false; N];
    }
    polled.map(|fd| fd.revents & libc::POLLIN != 0)
}

/// A `signalfd` of `SIGCHLD`, which must be blocked.
fn child_signal_fd() -> io::Result<OwnedFd> {
    let mask = child_signals();
    // SAFETY: `mask` is an initialized signal set.
    let signals = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC) };
    check(signals)?;
    // SAFETY: a new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(signals) })
}

/// Reads the pending signal of a `signalfd`.
fn drain(signals: &OwnedFd) {
    // SAFETY: `signalfd_siginfo` is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    // SAFETY: reads at most `size_of_val(&info)` bytes into `info`.
    unsafe {
        libc::read(
            signals.as_raw_fd(),
            (&raw mut info).cast(),
            std::mem::size_of_val(&info),
        )
    };
}

/// The write end of the status pipe.
struct Status(File);

impl Status {
    /// Reports a failure; one `write` so that reports of two processes never mix.
    fn error(&self, e: &anyhow::Error) {
        let message = format!("{e:#}").replace('\n', " ");
        let _ = (&self.0).write_all(format!("error: {message}\n").as_bytes());
    }

    /// Reports that the script's disk is full: it reached `limits.disk`.
    fn disk_full(&self) {
        let _ = (&self.0).write_all(b"limit: disk\n");
    }

    /// Ends the report: the status pipe is closed (the descriptor now reads
    /// `/dev/null`, stdin), so that the runner has it whole before init exits.
    fn close(&self) {
        // SAFETY: a plain system call on descriptors this process owns.
        unsafe { libc::dup2(0, self.0.as_raw_fd()) };
    }

    /// Reports something the script was denied.
    fn denied(&self, denial: &Denial) {
        let _ = (&self.0).write_all(format!("denied: {denial}\n").as_bytes());
    }
}

/// The run's part: namespaces, then init; returns init's process id.
fn supervise(
    spec: &ConfinementSpec,
    network: &IsolatedNetwork,
    status: &Status,
    run: &UnixStream,
) -> anyhow::Result<libc::pid_t> {
    cgroup::join(&spec.cgroups)
        .context("failed to limit the processes and memory of the build script")?;
    let null = File::open("/dev/null").context("failed to open `/dev/null`")?;
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        check(libc::dup2(null.as_raw_fd(), 0)).context("failed to redirect stdin")?;
    }
    set_limit(libc::RLIMIT_CORE, "core dumps", 0)?;

    if spec.network == Network::Isolated {
        network.join()?;
    }
    let user = user();
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: this process is single-threaded, as `CLONE_NEWUSER` requires.
    check(unsafe { libc::unshare(flags) })
        .context("failed to create the namespaces of the build script")?;
    map_user(user).context("failed to map the user in the new user namespace")?;
    set_limit(libc::RLIMIT_NPROC, "processes", spec.limits.processes)?;

    match fork().context("failed to start the init process of the build script")? {
        0 => init(spec, status, run),
        init => Ok(init),
    }
}

/// PID 1 of the namespace: build the view, start the script, reap, copy
/// `OUT_DIR` back and report the script's wait status over `run` (or its
/// own, [`EXIT_SETUP_FAILED`], after a failure it reported on the status
/// pipe). A run killed before init reports has no status: the runner takes
/// that as `SIGKILL`'s.
fn init(spec: &ConfinementSpec, status: &Status, run: &UnixStream) -> ! {
    let started = (|| -> anyhow::Result<(Disk, Recorder, libc::pid_t)> {
        let host_root = open_host_root().context("failed to open the host's root")?;
        let disk = enter_view(spec)?;
        let writable = (spec.paths.iter())
            .filter(|(_, access)| access.write)
            .map(|(path, _)| path.clone())
            .chain([spec.disk.out_dir.clone(), spec.disk.temp_dir.clone()])
            .collect();
        let (socket, script_socket) =
            UnixStream::pair().context("failed to create a socket pair")?;
        // Blocked before the fork, so that no exit is missed; see `wait_for`.
        set_child_signals(libc::SIG_BLOCK)?;
        let script = fork().context("failed to start the build script")?;
        if script == 0 {
            drop(socket);
            if let Err(e) =
                set_child_signals(libc::SIG_UNBLOCK).and_then(|()| confine(spec, &script_socket))
            {
                status.error(&e);
                std::process::exit(EXIT_SETUP_FAILED);
            }
            drop(script_socket);
            exec(spec, status)
        }
        drop(script_socket);
        release_output();
        // The script's process sends it once confined; without it, the
        // process failed and reported why.
        let listener = receive_fds(&socket)
            .and_then(|(_, mut fds)| fds.pop().ok_or(io::ErrorKind::InvalidData.into()))
            .context("failed to receive the recorder of the build script's calls")?;
        let recorder = Recorder::new(listener, host_root, writable);
        Ok((disk, recorder, script))
    })();
    let (disk, mut recorder, script) = match started {
        Ok(started) => started,
        Err(e) => {
            if is_disk_full(&e) {
                status.disk_full();
            }
            status.error(&e);
            exit_reporting(run, EXIT_SETUP_FAILED << 8);
        }
    };
    let script_status = match wait_for(script, &mut recorder) {
        Ok(status) => status,
        Err(e) => {
            status.error(&e);
            exit_reporting(run, EXIT_SETUP_FAILED << 8);
        }
    };
    // Whatever the script left running could still change `OUT_DIR`.
    // SAFETY: plain system calls; as PID 1, init is not among those killed.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        while libc::waitpid(-1, std::ptr::null_mut(), 0) >= 0
            || io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
    if disk.is_full() {
        status.disk_full();
    }
    if let Err(e) = disk.copy_back() {
        status.error(&e);
        exit_reporting(run, EXIT_SETUP_FAILED << 8);
    }
    for denial in recorder.denials() {
        status.denied(&denial);
    }
    status.close();
    exit_reporting(run, script_status)
}

/// Points stdout and stderr at stdin, `/dev/null`: the script's output
/// ends, for the runner, when the script's processes are gone, whatever the
/// run and init still do.
fn release_output() {
    // SAFETY: plain system calls on the standard descriptors.
    unsafe {
        libc::dup2(0, 1);
        libc::dup2(0, 2);
    }
}

/// Reports the wait status `status` over `run` and exits.
fn exit_reporting(run: &UnixStream, status: i32) -> ! {
    let _ = (&*run).write_all(&status.to_ne_bytes());
    std::process::exit(0)
}

/// Reaps processes until `script` exits, serving the recorder's calls
/// meanwhile; returns the script's wait status. `SIGCHLD` is blocked and read
/// from a `signalfd`, so that init sleeps in one `poll` for both.
fn wait_for(script: libc::pid_t, recorder: &mut Recorder) -> anyhow::Result<i32> {
    let signals = child_signal_fd().context("failed to wait for the build script")?;
    loop {
        loop {
            let mut raw = 0;
            // SAFETY: a plain system call.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid == script {
                return Ok(raw);
            }
            if pid == 0 {
                break;
            }
            if pid < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(
                        anyhow::Error::new(e).context("failed to wait for the build script")
                    );
                }
            }
        }
        let [exited, called] = poll_readable([signals.as_raw_fd(), recorder.fd()]);
        if called {
            recorder.serve();
        }
        if exited {
            drain(&signals);
        }
    }
}

/// The signal set of `SIGCHLD`.
fn child_signals() -> libc::sigset_t {
    // SAFETY: `sigemptyset` initializes the set before `sigaddset` uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

/// Blocks or unblocks `SIGCHLD` (`how`); the mask survives `fork` and `execve`.
fn set_child_signals(how: libc::c_int) -> anyhow::Result<()> {
    let set = child_signals();
    // SAFETY: `set` is an initialized signal set.
    let result = unsafe { libc::sigprocmask(how, &set, std::ptr::null_mut()) };
    check(result).context("failed to set the signal mask of init")?;
    Ok(())
}

/// Ties init to the helper and replaces its filesystem with the view.
fn enter_view(spec: &ConfinementSpec) -> anyhow::Result<Disk> {
    // SAFETY: a plain system call with valid arguments.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))
            .context("failed to tie the build script to the helper")?;
    }
    let disk = view::enter(spec).context("failed to build the build script's filesystem view")?;
    std::env::set_current_dir(&spec.cwd)
        .with_context(|| format!("failed to change to the directory `{}`", spec.cwd.display()))?;
    Ok(disk)
}

/// Whether `e` comes from a full disk: `OUT_DIR` did not fit.
fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.raw_os_error() == Some(libc::ENOSPC))
    })
}

/// Confines the build script's process; everything it starts inherits the
/// confinement. init stays outside it, to copy `OUT_DIR` back, and gets the
/// descriptor of the recorder's filter over `socket`.
fn confine(spec: &ConfinementSpec, socket: &UnixStream) -> anyhow::Result<()> {
    // SAFETY: marks descriptors close-on-exec, closing none.
    unsafe {
        check(libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        ))
        .context("failed to mark inherited file descriptors close-on-exec")?;
        for &fd in &spec.keep_fds {
            check(libc::fcntl(fd, libc::F_SETFD, 0))
                .with_context(|| format!("failed to keep the jobserver's file descriptor {fd}"))?;
        }
    }
    if let Some(memory) = spec.limits.memory {
        set_limit(libc::RLIMIT_AS, "memory", memory)?;
    }
    drop_capabilities()?;
    restrict_access(spec)?;
    // After landlock, whose rules open the spec's paths: those opens need no record.
    let listener = record::install()
        .context("failed to record what the build script runs, opens and connects to")?;
    send_fds(socket, 0, &[listener.as_raw_fd()]).context("failed to pass the recorder to init")?;
    drop(listener);
    for filter in seccomp::filters(spec.network)? {
        seccompiler::apply_filter(&filter).context("failed to install the seccomp filter")?;
    }
    Ok(())
}

/// Empties the capability bounding set: the script gets no capability, even
/// in its own user namespace, from `execve`.
fn drop_capabilities() -> anyhow::Result<()> {
    for capability in 0..64 {
        // SAFETY: a plain system call; `EINVAL` ends the list of capabilities.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability as libc::c_ulong) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) && capability > 0 {
                break;
            }
            return Err(anyhow::Error::new(e).context("failed to drop capabilities"));
        }
    }
    Ok(())
}

/// Applies the landlock ruleset of the spec's ABI: its paths and ports, and
/// the scopes.
fn restrict_access(spec: &ConfinementSpec) -> anyhow::Result<()> {
    // An ABI the runner does not apply (0, say) handles nothing: creating the ruleset fails.
    let abi = ABI::from(i32::from(spec.landlock_abi));
    let failed =
        || format!("failed to restrict filesystem and network access with landlock ABI {abi}");
    let mut ruleset = landlock_ruleset(abi).with_context(failed)?;
    for (path, access) in &spec.paths {
        let rule = path_rule(path, *access, abi)
            .with_context(|| format!("failed to add a landlock rule for `{}`", path.display()))?;
        ruleset = ruleset.add_rule(rule).with_context(failed)?;
    }
    for &port in &spec.tcp_connect {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .with_context(failed)?;
    }
    let status = ruleset.restrict_self().with_context(failed)?;
    if status.ruleset != RulesetStatus::FullyEnforced || !status.no_new_privs {
        bail!(
            "{}: the kernel enforces the ruleset only partially ({status:?})",
            failed()
        );
    }
    Ok(())
}

fn path_rule(path: &Path, access: PathAccess, abi: ABI) -> anyhow::Result<PathBeneath<PathFd>> {
    let mut rights = AccessFs::ReadFile | AccessFs::ReadDir;
    if access.execute {
        rights |= AccessFs::Execute;
    }
    if access.write {
        rights |= AccessFs::from_write(abi);
    }
    let fd = PathFd::new(path)?;
    if !std::fs::metadata(path)?.is_dir() {
        rights &= AccessFs::from_file(abi);
    }
    Ok(PathBeneath::new(fd, rights))
}

/// The script's process: report success and become the build script.
fn exec(spec: &ConfinementSpec, status: &Status) -> ! {
    let prepared = (|| {
        let program = c_string(spec.program.as_os_str())?;
        let mut argv = vec![program.clone()];
        for arg in &spec.args {
            argv.push(c_string(arg)?);
        }
        let mut envp = Vec::new();
        for (name, value) in &spec.env {
            let mut entry = name.clone().into_bytes();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            envp.push(CString::new(entry).context("an environment variable contains a NUL byte")?);
        }
        anyhow::Ok((program, argv, envp))
    })();
    let (program, argv, envp) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            status.error(&e);
            std::process::exit(EXIT_SETUP_FAILED);
        }
    };
    let pointers = |strings: &[CString]| {
        let mut pointers: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        pointers
    };
    let (argv_ptrs, envp_ptrs) = (pointers(&argv), pointers(&envp));
    let _ = (&status.0).write_all(b"confined\n");
    // SAFETY: the Rust runtime of the helper ignores `SIGPIPE`; the script gets
    // the default, as from `std::process::Command`. Every pointer refers to a
    // NUL-terminated string that outlives the call, and both arrays end with a
    // null pointer.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let _ = (&status.0).write_all(format!("exec: {errno}\n").as_bytes());
    std::process::exit(EXIT_EXEC_FAILED);
}

fn c_string(s: &OsStr) -> anyhow::Result<CString> {
    CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains a NUL byte"))
}

fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: a plain system call.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // The child is gone without a status: report it as killed.
            return libc::SIGKILL;
        }
    }
    status
}

fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the process is single-threaded, so the child may do anything.
    let pid = unsafe { libc::fork() };
    check(pid)?;
    Ok(pid)
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Lowers the soft and hard limit of `resource` to `value` (never raises them).
fn set_limit(resource: Resource, name: &str, value: u64) -> anyhow::Result<()> {
    let failed = || format!("failed to limit {name} to {value}");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with valid pointers.
    unsafe {
        check(libc::getrlimit(resource, &mut limit)).with_context(failed)?;
        let value = libc::rlim_t::try_from(value).unwrap_or(libc::RLIM_INFINITY);
        limit.rlim_max = limit.rlim_max.min(value);
        limit.rlim_cur = limit.rlim_max;
        check(libc::setrlimit(resource, &limit)).with_context(failed)
    }
}
