//! What the running kernel offers, probed once per process.
//!
//! The native runner needs landlock ABI 6 (Linux 6.12: filesystem, TCP and
//! scope restrictions) and user, PID and network namespaces. The probe finds
//! the newest landlock ABI, up to 6, whose every restriction the kernel
//! enforces, by creating (and closing) a ruleset that handles all of them, and
//! reads the sysctls that disable namespaces; it starts no process. Whether
//! the helper can really create the namespaces is only known when it tries: a
//! failure there is reported as a failure to confine the script.
//!
//! Below ABI 6 the runner refuses (fail closed) unless the user allowed
//! [`Weakening::PartialLandlock`]; then [`check_support`] returns the probed
//! ABI, which the runner passes to the helper, and the helper applies exactly
//! the restrictions of that ABI and fails unless the kernel fully enforces
//! them. What the script gets away with, by ABI:
//!
//! * below 2 (no `Refer`): nothing; the kernel denies every link or rename
//!   into another directory, so scripts that move files between directories
//!   fail;
//! * below 3 (no `Truncate`): `truncate` of any file the user may write,
//!   even outside the policy's `write` grants (reading and writing stay
//!   confined);
//! * below 5 (no `IoctlDev`): `ioctl` on the device files it may open (the
//!   terminal `ioctl`s that inject input are refused by seccomp anyway);
//! * below 6 (no scopes): nothing but defense in depth; the PID namespace
//!   hides every process outside the sandbox from signals, and abstract unix
//!   sockets are out of reach because seccomp refuses `AF_UNIX` sockets (and,
//!   without `net` grants, the network namespace has its own).
//!
//! TCP port rules come with ABI 4. Below it, a policy with `net` grants is
//! refused even with the weakening: the script would share the host's network
//! with nothing limiting its connections, which is no sandbox at all. Without
//! `net` grants the network namespace isolates the script anyway. Without
//! landlock (ABI 0, or disabled at boot) the runner always refuses: nothing
//! would confine the filesystem.

use std::collections::BTreeSet;
use std::fs;
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope,
};

use crate::runner::{Refusal, Remedy};
use crate::{RunnerKind, Weakening};

/// The landlock ABI whose every restriction the runner applies when the kernel
/// has it; older ABIs only with [`Weakening::PartialLandlock`].
pub(super) const LANDLOCK_ABI: ABI = ABI::V6;

/// The ABIs the runner can apply, newest first.
const ABIS: [ABI; 6] = [ABI::V6, ABI::V5, ABI::V4, ABI::V3, ABI::V2, ABI::V1];

/// What each ABI after the first added that the runner uses, oldest first.
const ADDED: [(ABI, &str); 5] = [
    (ABI::V2, "links and renames across directories (ABI 2)"),
    (ABI::V3, "truncation rules (ABI 3)"),
    (ABI::V4, "TCP port rules (ABI 4)"),
    (ABI::V5, "device ioctl rules (ABI 5)"),
    (ABI::V6, "signal and abstract unix socket scopes (ABI 6)"),
];

/// What the kernel offers.
struct Support {
    /// The newest ABI of [`ABIS`] whose every restriction the kernel enforces,
    /// or [`ABI::Unsupported`].
    landlock: ABI,
    /// Why namespaces cannot be used, if they cannot.
    namespaces: Result<(), String>,
}

/// Checks, once per process, that the kernel can confine build scripts, and
/// returns the landlock ABI to apply; `net` is whether the policy has `net` grants.
pub(super) fn check_support(net: bool, allow_weaker: &BTreeSet<Weakening>) -> anyhow::Result<ABI> {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    check(SUPPORT.get_or_init(probe), net, allow_weaker)
}

/// [`check_support`] with what the kernel offers.
fn check(support: &Support, net: bool, allow_weaker: &BTreeSet<Weakening>) -> anyhow::Result<ABI> {
    // A missing namespace first: no weakening helps with it.
    support
        .namespaces
        .as_ref()
        .map_err(|missing| refusal(missing, &[], vec![]))
        .and_then(|()| decide(support.landlock, net, allow_weaker))
        .map_err(anyhow::Error::new)
}

/// Decides which landlock ABI to apply when the kernel enforces `probed`, or
/// refuses; `net` is whether the policy has `net` grants.
fn decide(probed: ABI, net: bool, allow_weaker: &BTreeSet<Weakening>) -> Result<ABI, Refusal> {
    if probed >= LANDLOCK_ABI {
        return Ok(LANDLOCK_ABI);
    }
    let weakening = Weakening::PartialLandlock;
    if probed == ABI::Unsupported {
        let mut notes = Vec::new();
        if allow_weaker.contains(&weakening) {
            notes.push(format!(
                "note: `{weakening}` needs landlock ABI 1 or newer: without landlock nothing \
                 would confine the filesystem"
            ));
        }
        return Err(refusal(
            "landlock is not available (the kernel is built without it, or it is not enabled \
             at boot)",
            &notes,
            vec![],
        ));
    }
    let lacking: Vec<_> = ADDED
        .iter()
        .filter(|(abi, _)| *abi > probed)
        .map(|(_, feature)| *feature)
        .collect();
    let missing = format!(
        "landlock ABI {LANDLOCK_ABI} is not available: the kernel has ABI {probed}, without {}",
        lacking.join(", ")
    );
    if net && probed < ABI::V4 {
        return Err(refusal(
            &missing,
            &[format!(
                "note: the policy grants `net`, and without TCP port rules the build script \
                 could connect anywhere, which `{weakening}` does not allow"
            )],
            vec![],
        ));
    }
    if allow_weaker.contains(&weakening) {
        return Ok(probed);
    }
    Err(refusal(
        &missing,
        &[],
        vec![Remedy::AllowWeaker {
            weakening,
            purpose: "to run build scripts with the landlock restrictions this kernel enforces",
        }],
    ))
}

/// The refusal to run because the system lacks `missing`, with more `note:`
/// lines, and `remedies` before the last one, the `noop` runner.
fn refusal(missing: &str, notes: &[String], mut remedies: Vec<Remedy>) -> Refusal {
    let mut message = format!(
        "the `native` sandbox runner cannot confine build scripts on this system: {missing}\n\
         note: it needs Linux 6.12 or newer with landlock enabled and user, PID and network \
         namespaces"
    );
    for note in notes {
        message.push('\n');
        message.push_str(note);
    }
    remedies.push(Remedy::UseRunner {
        runner: RunnerKind::Noop,
        purpose: Some("to run build scripts unconfined"),
    });
    Refusal { message, remedies }
}

fn probe() -> Support {
    Support {
        landlock: ABIS
            .into_iter()
            .find(|&abi| landlock_ruleset(abi).is_ok())
            .unwrap_or(ABI::Unsupported),
        namespaces: probe_namespaces(),
    }
}

fn probe_namespaces() -> Result<(), String> {
    for (kind, sysctl) in [
        ("user", "user/max_user_namespaces"),
        ("PID", "user/max_pid_namespaces"),
        ("network", "user/max_net_namespaces"),
    ] {
        match sysctl_value(sysctl) {
            None => {
                return Err(format!(
                    "{kind} namespaces are not supported by this kernel"
                ));
            }
            Some(value) if value == "0" => {
                return Err(format!("{kind} namespaces are disabled (`{sysctl}` is 0)"));
            }
            Some(_) => {}
        }
    }
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if sysctl_value("kernel/unprivileged_userns_clone").as_deref() == Some("0") {
            return Err("user namespaces are disabled for unprivileged users \
                 (`kernel.unprivileged_userns_clone` is 0)"
                .to_owned());
        }
        if sysctl_value("kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
            return Err("AppArmor restricts unprivileged user namespaces \
                 (`kernel.apparmor_restrict_unprivileged_userns` is 1)"
                .to_owned());
        }
    }
    Ok(())
}

/// A ruleset handling every restriction of `abi` (at most [`LANDLOCK_ABI`]);
/// an error if the kernel lacks any of them.
pub(super) fn landlock_ruleset(
    abi: ABI,
) -> Result<landlock::RulesetCreated, landlock::RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))?;
    // Handling no access right, or no scope, is an error.
    if abi >= ABI::V4 {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    ruleset.create()
}

fn sysctl_value(name: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/sys/{name}")).ok()?;
    Some(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_can_confine_build_scripts() {
        // The machines this suite runs on (Linux 6.18, landlock ABI 7, user
        // namespaces on) can confine scripts; anywhere else this says why not.
        let none = BTreeSet::new();
        assert_eq!(probe().namespaces, Ok(()));
        assert_eq!(check_support(false, &none).unwrap(), LANDLOCK_ABI);
        assert_eq!(check_support(true, &none).unwrap(), LANDLOCK_ABI);
    }

    fn allow(weakenings: &[Weakening]) -> BTreeSet<Weakening> {
        weakenings.iter().copied().collect()
    }

    #[test]
    fn abi_6_and_newer_need_no_weakening() {
        for probed in [ABI::V6, ABI::V7] {
            for net in [false, true] {
                assert_eq!(decide(probed, net, &allow(&[])), Ok(ABI::V6));
                let all = allow(&Weakening::ALL);
                assert_eq!(decide(probed, net, &all), Ok(ABI::V6));
            }
        }
    }

    const PARTIAL: Remedy = Remedy::AllowWeaker {
        weakening: Weakening::PartialLandlock,
        purpose: "to run build scripts with the landlock restrictions this kernel enforces",
    };

    const NOOP: Remedy = Remedy::UseRunner {
        runner: RunnerKind::Noop,
        purpose: Some("to run build scripts unconfined"),
    };

    #[test]
    fn older_abis_are_refused_without_the_weakening() {
        let err = decide(ABI::V5, false, &allow(&[Weakening::ProcessLimit])).unwrap_err();
        assert_eq!(
            err,
            Refusal {
                message: "the `native` sandbox runner cannot confine build scripts on this \
                          system: landlock ABI 6 is not available: the kernel has ABI 5, \
                          without signal and abstract unix socket scopes (ABI 6)\n\
                          note: it needs Linux 6.12 or newer with landlock enabled and user, \
                          PID and network namespaces"
                    .to_owned(),
                remedies: vec![PARTIAL, NOOP],
            }
        );
        let err = decide(ABI::V1, false, &allow(&[])).unwrap_err();
        assert!(
            err.message.starts_with(
                "the `native` sandbox runner cannot confine build scripts on this system: \
                 landlock ABI 6 is not available: the kernel has ABI 1, without links and \
                 renames across directories (ABI 2), truncation rules (ABI 3), TCP port rules \
                 (ABI 4), device ioctl rules (ABI 5), signal and abstract unix socket scopes \
                 (ABI 6)\n"
            ),
            "{err}"
        );
        // The weakening is offered wherever it would help.
        for probed in [ABI::V1, ABI::V2, ABI::V3, ABI::V4, ABI::V5] {
            let err = decide(probed, false, &allow(&[])).unwrap_err();
            assert_eq!(err.remedies, [PARTIAL, NOOP], "{err}");
        }
        for probed in [ABI::V4, ABI::V5] {
            let err = decide(probed, true, &allow(&[])).unwrap_err();
            assert_eq!(err.remedies, [PARTIAL, NOOP], "{err}");
        }
    }

    #[test]
    fn older_abis_are_applied_with_the_weakening() {
        let partial = allow(&[Weakening::PartialLandlock]);
        for probed in [ABI::V1, ABI::V2, ABI::V3, ABI::V4, ABI::V5] {
            assert_eq!(decide(probed, false, &partial), Ok(probed));
        }
        for probed in [ABI::V4, ABI::V5] {
            assert_eq!(decide(probed, true, &partial), Ok(probed));
        }
    }

    #[test]
    fn net_grants_need_tcp_port_rules() {
        for allowed in [allow(&[]), allow(&[Weakening::PartialLandlock])] {
            let err = decide(ABI::V3, true, &allowed).unwrap_err();
            assert_eq!(
                err,
                Refusal {
                    message: "the `native` sandbox runner cannot confine build scripts on this \
                              system: landlock ABI 6 is not available: the kernel has ABI 3, \
                              without TCP port rules (ABI 4), device ioctl rules (ABI 5), \
                              signal and abstract unix socket scopes (ABI 6)\n\
                              note: it needs Linux 6.12 or newer with landlock enabled and \
                              user, PID and network namespaces\n\
                              note: the policy grants `net`, and without TCP port rules the \
                              build script could connect anywhere, which `partial-landlock` \
                              does not allow"
                        .to_owned(),
                    remedies: vec![NOOP],
                }
            );
        }
        for probed in [ABI::V1, ABI::V2] {
            for allowed in [allow(&[]), allow(&[Weakening::PartialLandlock])] {
                let err = decide(probed, true, &allowed).unwrap_err();
                assert!(
                    err.message.contains("\nnote: the policy grants `net`"),
                    "{err}"
                );
                assert_eq!(err.remedies, [NOOP], "{err}");
            }
        }
    }

    #[test]
    fn no_landlock_is_always_refused() {
        let refusal = |note: &str| Refusal {
            message: format!(
                "the `native` sandbox runner cannot confine build scripts on this system: \
                 landlock is not available (the kernel is built without it, or it is not \
                 enabled at boot)\n\
                 note: it needs Linux 6.12 or newer with landlock enabled and user, PID and \
                 network namespaces\
                 {note}"
            ),
            remedies: vec![NOOP],
        };
        for net in [false, true] {
            assert_eq!(decide(ABI::Unsupported, net, &allow(&[])), Err(refusal("")));
            assert_eq!(
                decide(ABI::Unsupported, net, &allow(&Weakening::ALL)),
                Err(refusal(
                    "\nnote: `partial-landlock` needs landlock ABI 1 or newer: without landlock \
                     nothing would confine the filesystem"
                ))
            );
        }
    }

    #[test]
    fn refusals_reach_the_embedding_program_typed() {
        let support = Support {
            landlock: ABI::V3,
            namespaces: Ok(()),
        };
        let err = check(&support, false, &allow(&[])).unwrap_err();
        let refusal = err.downcast_ref::<Refusal>().unwrap();
        assert_eq!(refusal.remedies, [PARTIAL, NOOP]);
        assert_eq!(err.to_string(), refusal.message);
        let support = Support {
            landlock: ABI::V6,
            namespaces: Err(
                "user namespaces are disabled (`user/max_user_namespaces` is 0)".to_owned(),
            ),
        };
        let err = check(&support, false, &allow(&[])).unwrap_err();
        let refusal = err.downcast_ref::<Refusal>().unwrap();
        assert!(refusal.message.ends_with("namespaces"), "{refusal}");
        assert_eq!(refusal.remedies, [NOOP]);
    }

    #[test]
    fn the_probe_agrees_with_the_kernel() {
        // The ABI the kernel reports for itself, asked without the landlock crate.
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: with this flag the call takes no ruleset and returns a number.
        let version = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        let expected = ABIS
            .into_iter()
            .find(|&abi| version >= abi as i64)
            .unwrap_or(ABI::Unsupported);
        assert_eq!(
            probe().landlock,
            expected,
            "the kernel reports ABI {version}"
        );
        // Every ABI up to the probed one can be requested, none above it.
        for abi in ABIS {
            assert_eq!(landlock_ruleset(abi).is_ok(), abi <= expected, "{abi}");
        }
        // A ruleset that would handle nothing is an error, never no confinement.
        assert!(landlock_ruleset(ABI::Unsupported).is_err());
    }
}
