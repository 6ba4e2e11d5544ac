//! Recording what a build script tried that its sandbox does not allow.
//!
//! A script's view holds only what its policy grants, so a program it was not
//! granted is simply absent: `execve` fails with `ENOENT`, and the script says
//! so in its own words, if at all; a connection it was not granted fails with
//! `ENETUNREACH` or `EACCES`. To name the grant that would have helped without
//! believing the script's output, init installs on itself, before it forks the
//! script, a seccomp filter that turns every `execve`, `execveat` and
//! `connect` into a user notification (`seccomp_unotify(2)`); the script and
//! everything it starts inherit it. While it waits for the script, init serves
//! the notifications: it reads the path or address from the calling process's
//! memory, looks a path up in the view (init shares the script's mount
//! namespace, outside its landlock domain) and lets the call continue
//! unchanged (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). The recorder decides
//! nothing.
//!
//! A program counts as missing when no call for its file name found a file:
//! the tries of `execvp` along `PATH` before the one that works are not
//! denials. Every IPv4 and IPv6 address connected to is recorded; the hint
//! leaves out what the policy grants. The script chooses what it asks for, as
//! it chooses its output, but Cargo gets file names checked by
//! [`Denial::program`] and addresses, never text of the script's to print.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::seccomp::{AUDIT_ARCH, SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, bpf};
use crate::Denial;

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

/// init's end of the notifications, and what they told so far.
pub(super) struct Recorder {
    listener: OwnedFd,
    missing: BTreeSet<String>,
    found: BTreeSet<String>,
    connections: BTreeSet<SocketAddr>,
}

impl Recorder {
    /// Installs the filter on the calling process; its children inherit it.
    pub(super) fn install() -> io::Result<Recorder> {
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
        Ok(Recorder {
            // SAFETY: the kernel returned a new descriptor, owned by nothing else.
            listener: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            missing: BTreeSet::new(),
            found: BTreeSet::new(),
            connections: BTreeSet::new(),
        })
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
        if i64::from(call.data.nr) == libc::SYS_connect {
            if let Some(address) = connected_to(&call)
                && self.is_valid(&call)
                && self.connections.len() < MAX_NAMES
            {
                self.connections.insert(address);
            }
        } else if let Some((name, exists)) = self.look_up(&call) {
            let names = match exists {
                true => &mut self.found,
                false => &mut self.missing,
            };
            if names.len() < MAX_NAMES {
                names.insert(name);
            }
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

    /// The programs no call found and the addresses connected to.
    pub(super) fn denials(&self) -> impl Iterator<Item = Denial> + '_ {
        let programs = self.missing.difference(&self.found);
        (programs.filter_map(|name| Denial::program(name)))
            .chain(self.connections.iter().copied().map(Denial::Connection))
    }

    /// Whether `call` still waits: its process did not die, its id was not
    /// reused, while init read its memory.
    fn is_valid(&self, call: &libc::seccomp_notif) -> bool {
        // SAFETY: `call.id` is a plain `u64` the kernel reads.
        unsafe { libc::ioctl(self.fd(), NOTIF_ID_VALID as _, &call.id) == 0 }
    }

    /// The file name `call` executes and whether it exists in the view.
    fn look_up(&self, call: &libc::seccomp_notif) -> Option<(String, bool)> {
        let args = call.data.args;
        let (dir_fd, address) = match i64::from(call.data.nr) {
            libc::SYS_execve => (libc::AT_FDCWD, args[0]),
            libc::SYS_execveat => (args[0] as i32, args[1]),
            _ => return None,
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
}

/// The IPv4 or IPv6 address of a `connect(fd, address, length)` call.
fn connected_to(call: &libc::seccomp_notif) -> Option<SocketAddr> {
    let [_, address, length, ..] = call.data.args;
    let mut bytes = [0u8; 28];
    let length = usize::try_from(length).ok()?.min(bytes.len());
    let memory = File::open(format!("/proc/{}/mem", call.pid)).ok()?;
    memory.read_exact_at(&mut bytes[..length], address).ok()?;
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

/// The NUL-terminated string at `address` in process `pid`, read a page at a
/// time so that a string ending before an unmapped page is read whole.
fn read_c_string(pid: u32, address: u64) -> Option<OsString> {
    let memory = File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut bytes = Vec::new();
    let mut at = address;
    while bytes.len() < MAX_PATH {
        let mut page = [0; 4096];
        let until_page_end = 4096 - (at % 4096) as usize;
        let read = memory.read_at(&mut page[..until_page_end], at).ok()?;
        if read == 0 {
            return None;
        }
        if let Some(end) = page[..read].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&page[..end]);
            return Some(OsString::from_vec(bytes));
        }
        bytes.extend_from_slice(&page[..read]);
        at += read as u64;
    }
    None
}

/// `execve`, `execveat` and `connect` of this architecture notify; everything else,
/// other architectures' calls included (the other filters refuse those), is
/// allowed. `seccompiler` has no user notifications, so this short program is
/// written out.
fn filter() -> Vec<seccompiler::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};

    vec![
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_ARCH),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, AUDIT_ARCH),
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_NR),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, libc::SYS_execve as u32),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, libc::SYS_execveat as u32),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, libc::SYS_connect as u32),
        bpf(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        bpf(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
    ]
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
