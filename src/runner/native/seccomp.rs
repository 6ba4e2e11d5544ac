//! The seccomp filters: system calls no build script needs, and that reach
//! past landlock and the namespaces.
//!
//! Everything is allowed except, with `EPERM`:
//!
//! * debugging and inspecting other processes (`ptrace`, `process_vm_*`,
//!   `pidfd_getfd`), which would let the script act through its init process;
//! * kernel interfaces that landlock does not mediate or that are attack
//!   surface: `io_uring`, `bpf`, `perf_event_open`, `userfaultfd`, keyrings,
//!   modules, `kexec`, `open_by_handle_at`;
//! * new namespaces and mounts (`unshare`, `setns`, namespace flags of `clone`,
//!   the mount API), so the script stays in the namespaces it was given;
//! * typing into a terminal (`TIOCSTI`, `TIOCLINUX`);
//! * the setuid and setgid bits, in `chmod` and in the mode of a file created
//!   by `open` or `mknod`: landlock does not mediate `chmod`, and a user (root included)
//!   may set them on any file they own, such as the system's programs;
//!   `openat2`, whose mode is behind a pointer, fails with `ENOSYS` (libc and
//!   std fall back to `openat`);
//! * sockets other than TCP over IPv4/IPv6 (and UDP when DNS is needed):
//!   `AF_UNIX` sockets reach daemons by path, which landlock only mediates from
//!   ABI 9 on, and `AF_VSOCK`, `AF_NETLINK` or `AF_PACKET` are not confined by
//!   a network namespace or landlock. `socketpair` stays allowed for stream
//!   and sequenced-packet pairs, which are connected to each other for good;
//!   a datagram pair is refused, as its sockets can `connect` or `sendto` any
//!   datagram socket by path (`/dev/log`, journald's).
//!
//! `clone3` fails with `ENOSYS` instead (a second filter): its flags are behind a
//! pointer a filter cannot read, and libc falls back to `clone`.
//!
//! On x86_64 a third filter refuses every system call of the x32 ABI: they
//! carry the same architecture in `seccomp_data` and their numbers have
//! `__X32_SYSCALL_BIT` set, so the filters above, which match numbers exactly,
//! would let `unshare | 0x40000000` through on a kernel built with x32.

use std::collections::BTreeMap;

use anyhow::Context;
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::spec::Network;

/// System calls denied whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_syslog,
];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWTIME as u64,
];

/// The mode bits no script may set: a program with them runs with its owner's
/// (or group's) rights for whoever starts it.
const PRIVILEGE_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// The system calls that set a file's mode, with the index of the mode
/// argument; `open` and friends only use it with `O_CREAT` or `O_TMPFILE`,
/// and libc passes 0 otherwise. `mknod` creates regular files too.
const MODE_ARGUMENTS: &[(i64, u8)] = &[
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (libc::SYS_fchmodat2, 2),
    (libc::SYS_openat, 3),
    (libc::SYS_mknodat, 2),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_chmod, 1),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_mknod, 1),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_open, 2),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_creat, 1),
];

/// The socket types a script never gets, whatever the network policy.
const DENIED_SOCKET_TYPES: &[i32] = &[
    libc::SOCK_RAW,
    libc::SOCK_RDM,
    libc::SOCK_SEQPACKET,
    libc::SOCK_DCCP,
];

/// The filters to install, in order.
pub(super) fn filters(network: Network) -> anyhow::Result<Vec<BpfProgram>> {
    build(network).context("failed to build the seccomp filter")
}

fn build(network: Network) -> Result<Vec<BpfProgram>, BackendError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .map(|&syscall| (syscall, Vec::new()))
        .collect();
    denied.insert(
        libc::SYS_clone,
        NAMESPACE_FLAGS
            .iter()
            .map(|&flag| rule(vec![arg(0, SeccompCmpOp::MaskedEq(flag), flag)?]))
            .collect::<Result<_, _>>()?,
    );
    denied.insert(
        libc::SYS_ioctl,
        [libc::TIOCSTI, libc::TIOCLINUX]
            .into_iter()
            .map(|request| rule(vec![arg(1, SeccompCmpOp::Eq, request)?]))
            .collect::<Result<_, _>>()?,
    );
    denied.insert(libc::SYS_socket, socket_rules(network)?);
    denied.insert(
        libc::SYS_socketpair,
        vec![
            rule(vec![arg(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?])?,
            rule(vec![arg(
                1,
                SeccompCmpOp::MaskedEq(0xf),
                libc::SOCK_DGRAM as u64,
            )?])?,
        ],
    );
    for &(syscall, mode) in MODE_ARGUMENTS {
        let rules = PRIVILEGE_BITS
            .iter()
            .map(|&bit| rule(vec![arg(mode, SeccompCmpOp::MaskedEq(bit), bit)?]))
            .collect::<Result<_, _>>()?;
        denied.insert(syscall, rules);
    }
    let absent = BTreeMap::from([
        (libc::SYS_clone3, Vec::new()),
        (libc::SYS_openat2, Vec::new()),
    ]);

    let mut programs = [(denied, libc::EPERM), (absent, libc::ENOSYS)]
        .into_iter()
        .map(|(rules, errno)| {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch,
            )?;
            BpfProgram::try_from(filter)
        })
        .collect::<Result<Vec<_>, _>>()?;
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    Ok(programs)
}

/// `AUDIT_ARCH_*` of this architecture (`EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
#[cfg(target_arch = "x86_64")]
pub(super) const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
pub(super) const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The offsets of `nr` and `arch` in `struct seccomp_data`.
pub(super) const SECCOMP_DATA_NR: u32 = 0;
pub(super) const SECCOMP_DATA_ARCH: u32 = 4;

/// One classic BPF instruction, for the short programs written out where
/// `seccompiler` cannot express them.
pub(super) fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter {
        // The instruction codes fit in 16 bits.
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The bit that marks a system call number of the x32 ABI (`__X32_SYSCALL_BIT`
/// in `asm/unistd.h`).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Refuses, with `EPERM`, every system call of the x32 ABI (see the module
/// documentation). `seccompiler` describes rules per system call number, not
/// ranges of numbers, so this short program is written out.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

    vec![
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_ARCH),
        // Another architecture: the other filters refuse it.
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, AUDIT_ARCH),
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, SECCOMP_DATA_NR),
        bpf(BPF_JMP | BPF_JSET | BPF_K, 0, 1, X32_SYSCALL_BIT),
        bpf(
            BPF_RET | BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        bpf(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// `socket(domain, type, protocol)` calls to deny.
fn socket_rules(network: Network) -> Result<Vec<SeccompRule>, BackendError> {
    let inet = [libc::AF_INET as u64, libc::AF_INET6 as u64];
    // Any family but IPv4 and IPv6.
    let mut rules = vec![rule(vec![
        arg(0, SeccompCmpOp::Ne, inet[0])?,
        arg(0, SeccompCmpOp::Ne, inet[1])?,
    ])?];
    let udp = matches!(network, Network::Host { udp: true });
    let mut denied_types = DENIED_SOCKET_TYPES.to_vec();
    let mut protocols = vec![0, libc::IPPROTO_TCP as u64];
    if udp {
        protocols.push(libc::IPPROTO_UDP as u64);
    } else {
        denied_types.push(libc::SOCK_DGRAM);
    }
    for family in inet {
        // The type's low bits, without `SOCK_NONBLOCK` and `SOCK_CLOEXEC`.
        for socket_type in &denied_types {
            rules.push(rule(vec![
                arg(0, SeccompCmpOp::Eq, family)?,
                arg(1, SeccompCmpOp::MaskedEq(0xf), *socket_type as u64)?,
            ])?);
        }
        // Protocols landlock does not mediate, such as MPTCP or SCTP.
        let mut conditions = vec![arg(0, SeccompCmpOp::Eq, family)?];
        for &protocol in &protocols {
            conditions.push(arg(2, SeccompCmpOp::Ne, protocol)?);
        }
        rules.push(rule(conditions)?);
    }
    Ok(rules)
}

/// A condition on the low 32 bits of argument `index`.
fn arg(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
}

/// A rule that matches when every condition holds.
fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, BackendError> {
    SeccompRule::new(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_every_network_mode() {
        for network in [
            Network::Isolated,
            Network::Host { udp: false },
            Network::Host { udp: true },
        ] {
            let filters = filters(network).unwrap();
            let expected = if cfg!(target_arch = "x86_64") { 3 } else { 2 };
            assert_eq!(filters.len(), expected);
            assert!(filters.iter().all(|filter| !filter.is_empty()));
        }
    }

    /// A system call made in a confined child, returning its result.
    type SystemCall = fn() -> i64;

    /// Runs `call` in a child process confined by the filters of `network`,
    /// and returns its result: the value, or `-errno`.
    fn confined(network: Network, call: SystemCall) -> i64 {
        let filters = filters(network).unwrap();
        // SAFETY: the child only makes system calls (`apply_filter` builds its
        // arguments on the stack) and leaves with `_exit`.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                for filter in &filters {
                    if seccompiler::apply_filter(filter).is_err() {
                        libc::_exit(255);
                    }
                }
                let result = call();
                let errno = *libc::__errno_location();
                libc::_exit(if result >= 0 { 0 } else { errno.min(254) });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "the child was killed: {status}");
            match libc::WEXITSTATUS(status) {
                0 => 0,
                255 => panic!("the filter could not be applied"),
                errno => -i64::from(errno),
            }
        }
    }

    #[test]
    fn the_filters_refuse_what_they_claim() {
        let eperm = -i64::from(libc::EPERM);
        let enosys = -i64::from(libc::ENOSYS);
        // SAFETY (each call): plain system calls with valid or null arguments.
        let refused: [(&str, SystemCall); 10] = [
            ("ptrace", || unsafe {
                libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0)
            }),
            ("unshare", || unsafe {
                i64::from(libc::unshare(libc::CLONE_NEWNS))
            }),
            ("keyctl", || unsafe {
                libc::syscall(libc::SYS_keyctl, 0, -3, 0)
            }),
            ("bpf", || unsafe {
                libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0)
            }),
            ("a netlink socket", || unsafe {
                i64::from(libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0))
            }),
            ("a unix socket", || unsafe {
                i64::from(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0))
            }),
            ("chmod u+s", || unsafe {
                i64::from(libc::chmod(c"/nonexistent/x".as_ptr(), 0o4755))
            }),
            ("fchmodat g+s", || unsafe {
                i64::from(libc::fchmodat(
                    libc::AT_FDCWD,
                    c"/nonexistent/x".as_ptr(),
                    0o2755,
                    0,
                ))
            }),
            ("create u+s", || unsafe {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC;
                i64::from(libc::openat(
                    libc::AT_FDCWD,
                    c"/nonexistent/x".as_ptr(),
                    flags,
                    0o4755,
                ))
            }),
            ("a unix datagram pair", || unsafe {
                let mut fds = [0; 2];
                let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC;
                i64::from(libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()))
            }),
        ];
        for network in [Network::Isolated, Network::Host { udp: true }] {
            for (name, call) in refused {
                assert_eq!(confined(network, call), eperm, "{name} under {network:?}");
            }
            // `clone3` and `openat2` fail as if the kernel lacked them, so that
            // libc falls back to `clone` and `openat`.
            let clone3 = confined(network, || unsafe {
                libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0)
            });
            assert_eq!(clone3, enosys);
            let openat2 = confined(network, || unsafe {
                libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, c"/".as_ptr(), 0, 0)
            });
            assert_eq!(openat2, enosys);
        }
        // The same calls through the x32 ABI (`getpid`, harmless, stands for
        // all): refused, not merely unknown to a kernel without x32.
        #[cfg(target_arch = "x86_64")]
        for network in [Network::Isolated, Network::Host { udp: true }] {
            let x32 = confined(network, || unsafe {
                libc::syscall(libc::SYS_getpid | i64::from(X32_SYSCALL_BIT))
            });
            assert_eq!(x32, eperm, "x32 under {network:?}");
        }
        // UDP only where a granted host name needs DNS.
        let udp = || unsafe { i64::from(libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)) };
        assert_eq!(confined(Network::Host { udp: false }, udp), eperm);
        assert!(confined(Network::Host { udp: true }, udp) >= 0);
        // Control: what the filters allow still works.
        let tcp = || unsafe { i64::from(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)) };
        assert!(confined(Network::Isolated, tcp) >= 0);
        let chmod = || unsafe { i64::from(libc::chmod(c"/nonexistent/x".as_ptr(), 0o755)) };
        assert_ne!(confined(Network::Isolated, chmod), eperm);
        let pairs: [SystemCall; 2] = [
            || unsafe {
                let mut fds = [0; 2];
                i64::from(libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM,
                    0,
                    fds.as_mut_ptr(),
                ))
            },
            || unsafe {
                let mut fds = [0; 2];
                let kind = libc::SOCK_SEQPACKET;
                i64::from(libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()))
            },
        ];
        for pair in pairs {
            assert!(confined(Network::Isolated, pair) >= 0);
        }
    }
}
