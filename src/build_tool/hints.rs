//! Hints for a failed sandboxed build script: which grant would have helped.
//!
//! When a sandboxed script fails, Cargo's error names the runner and the
//! effective policy; [`suggest_grant`] adds the grant for what the runner
//! recorded it refused the script (see [`Denial`]): never what the script
//! printed, which the script controls and could word to ask for any path.
//!
//! - A program maps to the preset that runs it where there is one, else to a
//!   `run` grant if Cargo's `PATH` has it (a program that is nowhere on the
//!   host was not denied).
//! - A path read maps to a `read` grant, a path written to a `write` grant,
//!   unless the policy grants it already.
//! - A connection maps to a `net` grant of its address, unless a grant covers
//!   it; a connection to port 53 (a name lookup the script did not ask for)
//!   is left out, as a grant of the host's name is what it needs.
//! - A limit the script was stopped at maps to twice the limit it had
//!   (`limits.processes` is not configurable, so it maps to nothing).
//!
//! This is a hint, not a verdict: the script chose what it tried, so the
//! suggestion is printed as a `help:` for the user to judge, never applied.

use std::net::IpAddr;
use std::path::Path;

use crate::policy::find_program;
use crate::{Denial, EffectivePolicy, LimitKind, Limits, NetTarget, Preset, Program, Request};

/// The grant that would have allowed what the runner recorded it denied;
/// `None` when the policy grants all of it already.
pub fn suggest_grant(policy: &EffectivePolicy, denials: &[Denial]) -> Option<Request> {
    let mut grant = Request::default();
    for denial in denials {
        match denial {
            Denial::Program(name) => match Preset::running(name) {
                Some(preset) => {
                    grant.presets.insert(preset);
                }
                None if find_program(Path::new(name)).is_ok() => {
                    grant.run.insert(Program::Name(name.clone()));
                }
                None => {}
            },
            Denial::Read(path) => {
                if !policy.readable().any(|dir| path.starts_with(dir)) {
                    grant.read.insert(path.clone());
                }
            }
            Denial::Write(path) => {
                if !policy.writable().any(|dir| path.starts_with(dir)) {
                    grant.write.insert(path.clone());
                }
            }
            Denial::Limit(kind) => {
                let current = policy.granted.limits.or(&Limits::BUILT_IN);
                let doubled = &mut grant.limits;
                match kind {
                    LimitKind::Time => doubled.time = current.time.map(|time| time * 2),
                    LimitKind::Memory => {
                        doubled.memory = current.memory.map(|m| m.saturating_mul(2))
                    }
                    LimitKind::Output => {
                        doubled.output = current.output.map(|o| o.saturating_mul(2))
                    }
                    LimitKind::Disk => doubled.disk = current.disk.map(|d| d.saturating_mul(2)),
                    // Not configurable.
                    LimitKind::Processes => {}
                }
            }
            Denial::Connection(address) if address.port() == 53 => {}
            Denial::Connection(address) => {
                let granted = (policy.granted.net.iter()).any(|target| {
                    target.port == address.port()
                        && target
                            .host
                            .parse()
                            .map_or(true, |ip: IpAddr| ip == address.ip())
                });
                if !granted {
                    grant.net.insert(NetTarget {
                        host: address.ip().to_string(),
                        port: address.port(),
                    });
                }
            }
        }
    }
    grant
        .presets
        .retain(|preset| !policy.granted.presets.contains(preset));
    grant
        .run
        .retain(|program| !policy.granted.run.contains(program));
    (grant != Request::default()).then_some(grant)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::Baseline;

    fn policy() -> EffectivePolicy {
        let baseline = Baseline {
            package_root: "/src/foo".into(),
            out_dir: "/target/build/foo/out".into(),
            temp_dir: "/target/build/foo/tmp".into(),
            dependency_out_dirs: BTreeSet::new(),
        };
        let mut declared = Request::default();
        declared.read.insert("/data".into());
        EffectivePolicy::granting(baseline, declared)
    }

    #[test]
    fn recorded_paths_suggest_reading_or_writing_them() {
        let denials = [
            Denial::Read("/opt/sdk/include/sdk.h".into()),
            Denial::Read("/data/granted.txt".into()),
            Denial::Write("/src/foo/generated.rs".into()),
            Denial::Write("/target/build/foo/out/x".into()),
        ];
        let grant = suggest_grant(&policy(), &denials).unwrap();
        assert_eq!(
            grant.read,
            BTreeSet::from([PathBuf::from("/opt/sdk/include/sdk.h")])
        );
        assert_eq!(
            grant.write,
            BTreeSet::from([PathBuf::from("/src/foo/generated.rs")])
        );
    }

    #[test]
    fn nothing_recorded_is_no_hint() {
        assert_eq!(suggest_grant(&policy(), &[]), None);
        let granted = [Denial::Read("/data/x".into())];
        assert_eq!(suggest_grant(&policy(), &granted), None);
    }

    #[test]
    fn recorded_programs_suggest_the_preset_that_runs_them() {
        let denials = [
            Denial::Program("x86_64-linux-gnu-gcc".into()),
            Denial::Program("pkg-config".into()),
            Denial::Program("ar".into()),
        ];
        let grant = suggest_grant(&policy(), &denials).unwrap();
        assert_eq!(
            grant.presets,
            BTreeSet::from([Preset::Cc, Preset::PkgConfig])
        );
        assert!(grant.read.is_empty());
    }

    #[test]
    fn a_recorded_program_without_a_preset_is_suggested_if_the_host_has_it() {
        let grant = suggest_grant(&policy(), &[Denial::Program("sh".into())]).unwrap();
        assert_eq!(grant.run, BTreeSet::from([Program::Name("sh".into())]));
        let nowhere = [Denial::Program("no-such-program-anywhere".into())];
        assert_eq!(suggest_grant(&policy(), &nowhere), None);
    }

    #[test]
    fn a_recorded_connection_suggests_its_address_unless_granted() {
        let denials = [
            Denial::Connection("192.0.2.7:443".parse().unwrap()),
            Denial::Connection("127.0.0.53:53".parse().unwrap()),
        ];
        let grant = suggest_grant(&policy(), &denials).unwrap();
        let expected = NetTarget {
            host: "192.0.2.7".into(),
            port: 443,
        };
        assert_eq!(grant.net, BTreeSet::from([expected.clone()]));
        let mut granted = policy();
        granted.granted.net.insert(expected);
        assert_eq!(suggest_grant(&granted, &denials), None);
    }

    #[test]
    fn a_limit_hit_suggests_twice_the_limit() {
        let mut policy = policy();
        policy.granted.limits.time = Some(std::time::Duration::from_secs(60));
        let denials = [
            Denial::Limit(LimitKind::Time),
            Denial::Limit(LimitKind::Output),
        ];
        let grant = suggest_grant(&policy, &denials).unwrap();
        assert_eq!(grant.limits.time, Some(std::time::Duration::from_secs(120)));
        assert_eq!(grant.limits.output, Some(2 * crate::DEFAULT_OUTPUT_LIMIT));
        assert_eq!(grant.limits.memory, None);
        let processes = [Denial::Limit(LimitKind::Processes)];
        assert_eq!(suggest_grant(&policy, &processes), None);
    }
}
