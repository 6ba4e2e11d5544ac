//! What the running kernel offers, probed once per process.
//!
//! The native runner needs landlock ABI 6 (Linux 6.12: filesystem, TCP and
//! scope restrictions) and user, PID and network namespaces. The probe creates
//! (and closes) a landlock ruleset that handles everything ABI 6 knows, and reads
//! the sysctls that disable namespaces; it starts no process. Whether the
//! helper can really create the namespaces is only known when it tries: a
//! failure there is reported as a failure to confine the script.

use std::fs;
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope,
};

/// The landlock ABI whose every restriction the runner applies.
pub(super) const LANDLOCK_ABI: ABI = ABI::V6;

/// Checks, once per process, that the kernel can confine build scripts.
pub(super) fn check_support() -> anyhow::Result<()> {
    static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
    match SUPPORT.get_or_init(probe) {
        Ok(()) => Ok(()),
        Err(missing) => anyhow::bail!(
            "the `native` sandbox runner cannot confine build scripts on this system: {missing}\n\
             note: it needs Linux 6.12 or newer with landlock enabled and user, PID and network \
             namespaces\n\
             help: choose the `noop` runner with `-Zsandboxed-build-scripts=noop` to run build \
             scripts unconfined"
        ),
    }
}

fn probe() -> Result<(), String> {
    landlock_ruleset()
        .map_err(|e| format!("landlock ABI {LANDLOCK_ABI} is not available ({e})"))?;
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

/// A ruleset handling every restriction of [`LANDLOCK_ABI`]; an error if the
/// kernel lacks any of them.
pub(super) fn landlock_ruleset() -> Result<landlock::RulesetCreated, landlock::RulesetError> {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))?
        .scope(Scope::from_all(LANDLOCK_ABI))?
        .create()
}

fn sysctl_value(name: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/sys/{name}")).ok()?;
    Some(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_sane() {
        // Either this kernel can confine scripts, or the refusal names what it lacks.
        match probe() {
            Ok(()) => check_support().unwrap(),
            Err(missing) => {
                assert!(
                    missing.contains("landlock") || missing.contains("namespaces"),
                    "{missing}"
                );
                let err = check_support().unwrap_err().to_string();
                assert!(err.contains(&missing), "{err}");
            }
        }
    }
}
