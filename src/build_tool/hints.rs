//! Hints for a failed sandboxed build script: which grant would have helped.
//!
//! When a sandboxed script fails, Cargo's error names the runner and the
//! effective policy; [`suggest_grant`] adds the grant for the capability the
//! script was denied. Programs come from what the runner recorded (the
//! `native` runner records the programs a script tried to run and its view
//! does not hold), and map to the preset that runs them where there is one.
//! Paths are still told from what the script printed, which the script
//! controls: runners deny access with the operating system's own errors, and a script
//! that fails on one usually prints it with the path it tried, as
//! `Permission denied (os error 13)` or `Operation not permitted (os error 1)`
//! from Rust's `io::Error`, or the `errno` text from a C tool. Where the
//! runner hides what the policy leaves out (the `native` runner's view), the
//! error is `No such file or directory` for a path that exists outside the
//! sandbox, and `Read-only file system` for a path the script may only read.
//! A line with such an error and an absolute path outside the policy suggests
//! `read` (or `write`, when the path is already readable) for that path.
//!
//! This is a hint, not a verdict: the path may be one the script merely
//! mentions, so the suggestion is printed as a `help:` for the user to judge,
//! never applied.

use std::path::{Path, PathBuf};
use std::process::Output;

use std::net::IpAddr;

use crate::policy::find_program;
use crate::{Denial, EffectivePolicy, NetTarget, Preset, Program, Request};

/// Error texts of a denied file access: Linux's `EACCES`, `EPERM` and WASI's
/// `ENOTCAPABLE`, as Rust and C print them. WASI's errno number (76) is not
/// one of them: on Linux, `os error 76` is `ENOTUNIQ`.
const DENIED: [&str; 4] = [
    "Permission denied",
    "Operation not permitted",
    "os error 13",
    "Capabilities insufficient",
];

/// Error texts of a path the sandbox hid (`ENOENT`): a denial only for a path
/// that exists outside the sandbox.
const HIDDEN: [&str; 2] = ["No such file or directory", "os error 2)"];

/// Error texts of a write to a read-only mount (`EROFS`).
const READ_ONLY: [&str; 2] = ["Read-only file system", "os error 30"];

/// The grant that would likely have let the script past what it was denied:
/// the programs the runner recorded (a preset where one runs the program),
/// then a path its output names; `None` when neither shows.
pub fn suggest_grant(
    policy: &EffectivePolicy,
    output: &Output,
    denials: &[Denial],
) -> Option<Request> {
    let mut grant = Request::default();
    for denial in denials {
        match denial {
            Denial::Program(name) => match Preset::running(name) {
                Some(preset) => {
                    grant.presets.insert(preset);
                }
                // A program that is nowhere on the host was not denied.
                None if find_program(Path::new(name)).is_ok() => {
                    grant.run.insert(Program::Name(name.clone()));
                }
                None => {}
            },
            // Name lookups connect to port 53 without the script asking for
            // a resolver: a host-name grant is what they need.
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
    if grant.presets.is_empty() && grant.run.is_empty() && grant.net.is_empty() {
        return denied_path(policy, output);
    }
    Some(grant)
}

/// The grant for the first path outside the policy that a line of the
/// script's output shows as denied.
fn denied_path(policy: &EffectivePolicy, output: &Output) -> Option<Request> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let says = |line: &str, texts: &[&str]| texts.iter().any(|text| line.contains(text));
    for line in stderr.lines().chain(stdout.lines()) {
        let hidden = says(line, &HIDDEN);
        if !hidden && !says(line, &DENIED) && !says(line, &READ_ONLY) {
            continue;
        }
        let paths = absolute_paths(line).filter(|path| !hidden || path.symlink_metadata().is_ok());
        for path in paths {
            let mut grant = Request::default();
            if !is_readable(policy, &path) {
                grant.read.insert(path);
            } else if !is_writable(policy, &path) {
                grant.write.insert(path);
            } else {
                continue;
            }
            return Some(grant);
        }
    }
    None
}

/// Absolute paths in `line`: tokens starting with `/`, without surrounding
/// quotes and punctuation.
fn absolute_paths(line: &str) -> impl Iterator<Item = PathBuf> + '_ {
    line.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | ')' | ','))
        .map(|token| token.trim_end_matches([':', ';', '.']))
        .filter(|token| token.starts_with('/') && token.len() > 1)
        .map(PathBuf::from)
}

fn is_writable(policy: &EffectivePolicy, path: &Path) -> bool {
    policy.writable().any(|dir| path.starts_with(dir))
}

fn is_readable(policy: &EffectivePolicy, path: &Path) -> bool {
    policy.readable().any(|dir| path.starts_with(dir))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

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

    fn failed(stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(101 << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_denied_read_suggests_reading_that_path() {
        let output = failed(
            "thread 'main' panicked at build.rs:3:5:\n\
             failed to read `/opt/sdk/include/sdk.h`: Permission denied (os error 13)\n",
        );
        let grant = suggest_grant(&policy(), &output, &[]).unwrap();
        assert_eq!(
            grant.read,
            BTreeSet::from([PathBuf::from("/opt/sdk/include/sdk.h")])
        );
        assert!(grant.write.is_empty());
    }

    #[test]
    fn a_denied_write_to_a_readable_path_suggests_writing_it() {
        let output = failed("error: could not create /src/foo/generated.rs: Permission denied\n");
        let grant = suggest_grant(&policy(), &output, &[]).unwrap();
        assert_eq!(
            grant.write,
            BTreeSet::from([PathBuf::from("/src/foo/generated.rs")])
        );
    }

    #[test]
    fn a_hidden_path_is_a_denial_only_if_it_exists_outside_the_sandbox() {
        // `/etc/hostname` exists on every Linux system the tests run on; the
        // sandbox's view left it out.
        let hidden = "Error: /etc/hostname: No such file or directory (os error 2)\n";
        let grant = suggest_grant(&policy(), &failed(hidden), &[]).unwrap();
        assert_eq!(grant.read, BTreeSet::from([PathBuf::from("/etc/hostname")]));
        let missing = "Error: /nonexistent/x.h: No such file or directory (os error 2)\n";
        assert_eq!(suggest_grant(&policy(), &failed(missing), &[]), None);
        // A read-only mount: the path may be read, not written.
        let read_only = "error: /src/foo/gen.rs: Read-only file system (os error 30)\n";
        let grant = suggest_grant(&policy(), &failed(read_only), &[]).unwrap();
        assert_eq!(
            grant.write,
            BTreeSet::from([PathBuf::from("/src/foo/gen.rs")])
        );
    }

    #[test]
    fn no_hint_without_a_denial_or_a_path_outside_the_policy() {
        assert_eq!(
            suggest_grant(&policy(), &failed("error: /opt/x: No such file\n"), &[]),
            None
        );
        assert_eq!(
            suggest_grant(&policy(), &failed("Permission denied (os error 13)\n"), &[]),
            None
        );
        // `ENOTUNIQ` on Linux, not a denial.
        assert_eq!(
            suggest_grant(
                &policy(),
                &failed("/opt/x: Name not unique on network (os error 76)\n"),
                &[]
            ),
            None
        );
        assert!(
            suggest_grant(
                &policy(),
                &failed("/opt/x: Capabilities insufficient (os error 76)\n"),
                &[]
            )
            .is_some()
        );
        assert_eq!(
            suggest_grant(
                &policy(),
                &failed("/target/build/foo/out/x: Permission denied\n"),
                &[]
            ),
            None
        );
    }

    #[test]
    fn recorded_programs_suggest_the_preset_that_runs_them() {
        let denials = [
            Denial::Program("x86_64-linux-gnu-gcc".into()),
            Denial::Program("pkg-config".into()),
            Denial::Program("ar".into()),
        ];
        // The script's words do not matter when the runner recorded something.
        let grant = suggest_grant(
            &policy(),
            &failed("spoofed: /etc/shadow: Permission denied\n"),
            &denials,
        )
        .unwrap();
        assert_eq!(
            grant.presets,
            BTreeSet::from([Preset::Cc, Preset::PkgConfig])
        );
        assert!(grant.read.is_empty());
    }

    #[test]
    fn a_recorded_program_without_a_preset_is_suggested_if_the_host_has_it() {
        let grant = suggest_grant(&policy(), &failed(""), &[Denial::Program("sh".into())]).unwrap();
        assert_eq!(grant.run, BTreeSet::from([Program::Name("sh".into())]));
        let nowhere = [Denial::Program("no-such-program-anywhere".into())];
        assert_eq!(suggest_grant(&policy(), &failed(""), &nowhere), None);
    }

    #[test]
    fn a_recorded_connection_suggests_its_address_unless_granted() {
        let denials = [
            Denial::Connection("192.0.2.7:443".parse().unwrap()),
            Denial::Connection("127.0.0.53:53".parse().unwrap()),
        ];
        let grant = suggest_grant(&policy(), &failed(""), &denials).unwrap();
        let expected = NetTarget {
            host: "192.0.2.7".into(),
            port: 443,
        };
        assert_eq!(grant.net, BTreeSet::from([expected.clone()]));
        let mut granted = policy();
        granted.granted.net.insert(expected);
        assert_eq!(suggest_grant(&granted, &failed(""), &denials), None);
    }
}
