//! Recording what a build script tried that its sandbox does not allow.
//!
//! A script's view holds only what its policy grants, so a program or a file
//! it was not granted is simply absent: `execve` and `open` fail with
//! `ENOENT`, a write to a read-only part of the view with `EROFS`, and the
//! script says so in its own words, if at all; a connection it was not
//! granted fails with `ENETUNREACH` or `EACCES`. To name the grant that would
//! have helped without believing the script's output, the script's process,
//! once under landlock and before its other seccomp filters, installs a
//! seccomp filter that turns every `execve`, `execveat`, `connect` and every
//! `open` (`open`, `creat`, `openat`, `openat2`) into a user notification
//! (`seccomp_unotify(2)`), and passes the notification descriptor to init over
//! a socket pair; everything the script starts inherits the filter. init, which
//! opens files itself, is not under it. While it waits for the script,
//! init serves the notifications: it reads the path or address from the
//! calling process's memory (`process_vm_readv`), looks a path up in the view (init shares the
//! script's mount namespace, outside its landlock domain) and lets the call
//! continue unchanged (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). The recorder
//! decides nothing.
//!
//! - A program counts as missing when no call for its file name found a
//!   file: the tries of `execvp` along `PATH` before the one that works are
//!   not denials.
//! - A path opened for reading is denied when the view lacks it and the
//!   host's tree has it: init looks it up through a descriptor of the host's
//!   root taken before the view, so the paths a compiler merely probes (its
//!   include directories) are not recorded.
//! - A path opened for writing (or created, or truncated) is denied when it
//!   lies outside every writable path of the spec; recorded is the path if
//!   it exists on the host, else its directory if that does (a grant names
//!   an existing path).
//! - Every IPv4 and IPv6 address connected to is recorded; the hint leaves
//!   out what the policy grants.
//!
//! The script chooses what it tries, as it chooses its output, but Cargo gets
//! file names checked by [`Denial::program`], paths checked by
//! [`Denial::path`] and addresses, never text of the script's to print.
//! Other calls that take a path (`stat`, `access`, `mkdir`, `unlink`,
//! `rename`) are not recorded: a path the script only probes is no denial.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::seccomp::{AUDIT_ARCH, SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, bpf};
use crate::Denial;
use crate::runner::normalize_path;

/// `SECCOMP_IOCTL_NOTIF_RECV`, `_SEND` and `_ID_VALID` from
/// `linux/seccomp.h` (`_IOWR('!', 0, struct seccomp_notif)` and so on), which
/// the `libc` of Cargo's lockfile does not have yet.
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;
const NOTIF_ID_VALID: u64 = 0x4008_2102;

/// The most names kept of each kind; a script that tries more gets no more.
const MAX_NAMES: usize = 64;

/// The longest path read from a calling process (`PATH_MAX`).
const MAX_PATH: usize = 4096;

/// The calls that notify: those that run a program, connect or open a file.
const RECORDED_CALLS: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_connect,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
];

/// init's end of the notifications, and what they told so far.
pub(super) struct Recorder {
    listener: OwnedFd,
    /// The host's root, opened before the view replaced it.
    host_root: File,
    /// The paths the script may write, and what is beneath them.
    writable: Vec<PathBuf>,
    missing: BTreeSet<String>,
    found: BTreeSet<String>,
    connections: BTreeSet<SocketAddr>,
    reads: BTreeSet<PathBuf>,
    writes: BTreeSet<PathBuf>,
}

impl Recorder {
    /// The recorder of the calls that notify `listener` (see [`install`]).
    /// `host_root` is the host's root, opened with [`open_host_root`] before
    /// the view replaced it; `writable` are the paths the script may write.
    pub(super) fn new(listener: OwnedFd, host_root: File, writable: Vec<PathBuf>) -> Recorder {
        Recorder {
            listener,
            host_root,
            writable,
            missing: BTreeSet::new(),
            found: BTreeSet::new(),
            connections: BTreeSet::new(),
            reads: BTreeSet::new(),
            writes: BTreeSet::new(),
        }
    }

    /// The descriptor to poll: readable when a call waits.
    pub(super) fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Takes one waiting call, records it and lets it continue.
    pub(super) fn serve(&mut self) {
        // SAFETY: `seccomp_notif` is plain data; the kernel wants it zeroed.
        let mut call: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `call` is a valid `seccomp_notif` for the kernel to fill.
        if unsafe { libc::ioctl(self.fd(), NOTIF_RECV as _, &mut call) } != 0 {
            // The caller died meanwhile, or a signal came.
            return;
        }
        match i64::from(call.data.nr) {
            libc::SYS_connect => {
                if let Some(address) = connected_to(&call)
                    && self.is_valid(&call)
                {
                    insert_capped(&mut self.connections, address);
                }
            }
            libc::SYS_execve | libc::SYS_execveat => {
                if let Some((name, exists)) = self.executed(&call) {
                    let names = match exists {
                        true => &mut self.found,
                        false => &mut self.missing,
                    };
                    insert_capped(names, name);
                }
            }
            _ => self.record_open(&call),
        }
        let mut response = libc::seccomp_notif_resp {
            id: call.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: `response` is a valid `seccomp_notif_resp`. A failure means
        // the caller is gone.
        unsafe { libc::ioctl(self.fd(), NOTIF_SEND as _, &mut response) };
    }

    /// The programs no call found, the paths denied and the addresses
    /// connected to.
    pub(super) fn denials(&self) -> impl Iterator<Item = Denial> + '_ {
        let programs = self.missing.difference(&self.found);
        (programs.filter_map(|name| Denial::program(name)))
            .chain(self.reads.iter().filter_map(|p| Denial::path(p, false)))
            .chain(self.writes.iter().filter_map(|p| Denial::path(p, true)))
            .chain(self.connections.iter().copied().map(Denial::Connection))
    }

    /// Whether `call` still waits: its process did not die, its id was not
    /// reused, while init read its memory.
    fn is_valid(&self, call: &libc::seccomp_notif) -> bool {
        // SAFETY: `call.id` is a plain `u64` the kernel reads.
        unsafe { libc::ioctl(self.fd(), NOTIF_ID_VALID as _, &call.id) == 0 }
    }

    /// The file name `call` executes and whether it exists in the view.
    fn executed(&self, call: &libc::seccomp_notif) -> Option<(String, bool)> {
        let args = call.data.args;
        let (dir_fd, address) = match i64::from(call.data.nr) {
            libc::SYS_execve => (libc::AT_FDCWD, args[0]),
            _ => (args[0] as i32, args[1]),
        };
        let path = PathBuf::from(read_c_string(call.pid, address)?);
        if !self.is_valid(call) {
            return None;
        }
        let name = path.file_name()?.to_str()?.to_owned();
        let process = Path::new("/proc").join(call.pid.to_string());
        let resolved = match (path.is_absolute(), dir_fd) {
            (true, _) => path,
            (false, libc::AT_FDCWD) => process.join("cwd").join(path),
            (false, dir) => process.join("fd").join(dir.to_string()).join(path),
        };
        Some((name, resolved.metadata().is_ok()))
    }

    /// Records the path an `open` call reads and the view lacks, or writes
    /// outside the writable paths.
    fn record_open(&mut self, call: &libc::seccomp_notif) {
        let Some((path, writes)) = opened(call) else {
            return;
        };
        if !self.is_valid(call) {
            return;
        }
        if writes {
            if self.writable.iter().any(|dir| path.starts_with(dir)) {
                return;
            }
            // A file to create needs its directory: only an existing path
            // can be granted.
            let granted = match self.on_host(&path) {
                true => Some(path.as_path()),
                false => path.parent().filter(|dir| self.on_host(dir)),
            };
            if let Some(granted) = granted {
                insert_capped(&mut self.writes, granted.to_owned());
            }
        } else if path.symlink_metadata().is_err() && self.on_host(&path) {
            insert_capped(&mut self.reads, path);
        }
    }

    /// Whether `path` exists in the host's tree.
    fn on_host(&self, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix("/") else {
            return false;
        };
        let relative = match relative.as_os_str().is_empty() {
            true => Path::new("."),
            false => relative,
        };
        let Ok(relative) = std::ffi::CString::new(relative.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `stat` is plain data for the kernel to fill.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor, a NUL-terminated path and a valid buffer.
        unsafe {
            libc::fstatat(
                self.host_root.as_raw_fd(),
                relative.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
        }
    }
}

/// Installs the filter on the calling process, the script's (its children
/// inherit it), and returns the descriptor its calls notify. Not init's: init
/// opens files itself, and would wait for itself.
pub(super) fn install() -> io::Result<OwnedFd> {
    let filter = filter();
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        // `seccompiler`'s `sock_filter` is the kernel's, as `libc`'s is.
        filter: filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `program` points to `filter`, which outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The host's root as a path-only descriptor, for [`Recorder::new`].
pub(super) fn open_host_root() -> io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open("/")
}

/// Inserts `value` unless `set` already holds [`MAX_NAMES`] values.
fn insert_capped<T: Ord>(set: &mut BTreeSet<T>, value: T) {
    if set.len() < MAX_NAMES {
        set.insert(value);
    }
}

/// The absolute, normalized path an `open` call names, and whether it opens
/// for writing (or creates or truncates). A relative path is resolved
/// against the calling process's working directory or directory descriptor,
/// as the view shows them.
fn opened(call: &libc::seccomp_notif) -> Option<(PathBuf, bool)> {
    let args = call.data.args;
    let (dir_fd, address, flags) = match i64::from(call.data.nr) {
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => (libc::AT_FDCWD, args[0], args[1]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => (libc::AT_FDCWD, args[0], libc::O_CREAT as u64),
        libc::SYS_openat => (args[0] as i32, args[1], args[2]),
        // `struct open_how` starts with the flags.
        libc::SYS_openat2 => (args[0] as i32, args[1], read_u64(call.pid, args[2])?),
        _ => return None,
    };
    let flags = flags as libc::c_int;
    let writes =
        flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_CREAT | libc::O_TRUNC) != 0;
    let path = PathBuf::from(read_c_string(call.pid, address)?);
    let absolute = match (path.is_absolute(), dir_fd) {
        (true, _) => path,
        (false, libc::AT_FDCWD) => std::fs::read_link(format!("/proc/{}/cwd", call.pid))
            .ok()?
            .join(path),
        (false, dir) => std::fs::read_link(format!("/proc/{}/fd/{dir}", call.pid))
            .ok()?
            .join(path),
    };
    Some((normalize_path(&absolute)?, writes))
}

/// The `u64` at `address` in process `pid`.
fn read_u64(pid: u32, address: u64) -> Option<u64> {
    let mut bytes = [0; 8];
    read_exact_memory(pid, address, &mut bytes)?;
    Some(u64::from_ne_bytes(bytes))
}

/// The IPv4 or IPv6 address of a `connect(fd, address, length)` call.
fn connected_to(call: &libc::seccomp_notif) -> Option<SocketAddr> {
    let [_, address, length, ..] = call.data.args;
    let mut bytes = [0u8; 28];
    let length = usize::try_from(length).ok()?.min(bytes.len());
    read_exact_memory(call.pid, address, &mut bytes[..length])?;
    let family = i32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    match family {
        libc::AF_INET if length >= 8 => {
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Some(SocketAddr::new(ip.into(), port))
        }
        libc::AF_INET6 if length >= 24 => {
            let ip: [u8; 16] = bytes[8..24].try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        _ => None,
    }
}

/// The NUL-terminated string at `address` in process `pid`, read up to a
/// page boundary at a time so that a string ending before an unmapped page is
/// read whole.
fn read_c_string(pid: u32, address: u64) -> Option<OsString> {
    let mut bytes = Vec::new();
    let mut at = address;
    while bytes.len() < MAX_PATH {
        let mut page = [0; 4096];
        let until_page_end = 4096 - (at % 4096) as usize;
        let read = read_memory(pid, at, &mut page[..until_page_end])?;
        if let Some(end) = page[..read].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&page[..end]);
            return Some(OsString::from_vec(bytes));
        }
        bytes.extend_from_slice(&page[..read]);
        at += read as u64;
    }
    None
}

/// Reads `buffer.len()` bytes at `address` in process `pid` with one
/// `process_vm_readv` (no descriptor to open, unlike `/proc/<pid>/mem`);
/// returns how many were read, never 0.
fn read_memory(pid: u32, address: u64, buffer: &mut [u8]) -> Option<usize> {
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: buffer.len(),
    };
    // SAFETY: `local` points to `buffer`, which the kernel fills at most;
    // `remote` is only read, in the other process.
    let read = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    usize::try_from(read).ok().filter(|&read| read > 0)
}

/// Reads exactly `buffer.len()` bytes at `address` in process `pid`.
fn read_exact_memory(pid: u32, address: u64, buffer: &mut [u8]) -> Option<()> {
    (read_memory(pid, address, buffer)? == buffer.len()).then_some(())
}

/// The [`RECORDED_CALLS`] of this architecture notify; everything else,
/// other architectures' calls included (the other filters refuse those), is
/// allowed. `seccompiler` has no user notifications, so this short program is
/// written out.
fn filter() -> Vec<seccompiler::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};

    let calls = RECORDED_CALLS.len() as u8;
    let mut filter = vec![
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_ARCH),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, calls + 1, AUDIT_ARCH),
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_NR),
    ];
    for (i, &call) in RECORDED_CALLS.iter().enumerate() {
        // Jumps to the last instruction, the notification.
        filter.push(bpf(
            BPF_JMP | BPF_JEQ | BPF_K,
            calls - i as u8,
            0,
            call as u32,
        ));
    }
    filter.push(bpf(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    filter.push(bpf(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF));
    filter
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ioctl_numbers_are_the_kernels() {
        assert_eq!(
            super::NOTIF_RECV as libc::Ioctl,
            libc::SECCOMP_IOCTL_NOTIF_RECV
        );
        assert_eq!(
            super::NOTIF_SEND as libc::Ioctl,
            libc::SECCOMP_IOCTL_NOTIF_SEND
        );
        assert_eq!(
            super::NOTIF_ID_VALID as libc::Ioctl,
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID
        );
    }
}
