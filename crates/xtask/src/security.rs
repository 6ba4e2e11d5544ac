//! `cargo xtask security`: the security table of `design/rfc.md`, from the canary tests.
//!
//! Each row of [`ATTACKS`] is one attack, with the canary test that tries it under each
//! sandboxing runner (`tests/testsuite/attacks.rs`, `wasmtime.rs`, `policy.rs`), or the reason
//! the attack has no meaning under that runner. Every canary test runs the attack under `noop`
//! first and fails unless it works there, so a passing test shows both the baseline and the
//! block.
//!
//! The flow: build the fork, run exactly the named tests against it (`cargo test --test
//! testsuite -- --exact <names>`), read libtest's `test <name> ... ok|FAILED|ignored` lines,
//! and write the table, with [`CANNOT_BLOCK`], between the markers
//! `<!-- report:security:begin -->` and `<!-- report:security:end -->` of `design/rfc.md`.
//! A test that fails is written as `NOT BLOCKED`, and the command fails after writing it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use crate::Workspace;
use crate::fork;
use crate::oracle;
use crate::util::{self, status};

/// What stands in a runner's column of one attack.
enum Cell {
    /// The attack works: `noop`, as the baselines of the other columns' tests show.
    Works,
    /// The canary test that tries the attack under the runner.
    Test(&'static str),
    /// Why the attack has no meaning under the runner.
    NotApplicable(&'static str),
}

use Cell::{NotApplicable, Test, Works};

/// An attack, and its cell for each runner.
struct Attack {
    name: &'static str,
    noop: Cell,
    native: Cell,
    wasmtime: Cell,
}

/// Every attack a runner or the Cargo-side policy claims to block.
const ATTACKS: &[Attack] = &[
    Attack {
        name: "read a secret in the home directory (`~/.ssh`, Cargo's token)",
        noop: Works,
        native: Test("attacks::native::reads_secrets_in_home"),
        wasmtime: Test("wasmtime::reads_outside_grants"),
    },
    Attack {
        name: "read secrets from Cargo's environment",
        noop: Works,
        native: Test("attacks::native::reads_secret_env"),
        wasmtime: Test("wasmtime::reads_secret_env"),
    },
    Attack {
        name: "read another process's environment through `/proc`",
        noop: Works,
        native: Test("attacks::native::reads_other_processes_environ"),
        wasmtime: NotApplicable("WASI has no `/proc` and no other processes"),
    },
    Attack {
        name: "write outside `OUT_DIR` (own sources, other crates, `..`)",
        noop: Works,
        native: Test("attacks::native::writes_outside_out_dir"),
        wasmtime: Test("wasmtime::writes_outside_out_dir"),
    },
    Attack {
        name: "escape through a symlink or hard link made in `OUT_DIR`",
        noop: Works,
        native: Test("attacks::native::escapes_through_links"),
        wasmtime: Test("wasmtime::writes_outside_out_dir"),
    },
    Attack {
        name: "change metadata outside the policy (`chmod`, mtimes, xattrs)",
        noop: Works,
        native: Test("attacks::native::changes_metadata_outside_the_policy"),
        wasmtime: NotApplicable("WASI names files only inside preopened directories"),
    },
    Attack {
        name: "set the setuid bit",
        noop: Works,
        native: Test("attacks::native::sets_the_setuid_bit"),
        wasmtime: NotApplicable("WASI has no file modes"),
    },
    Attack {
        name: "see outside the policy (`stat`, `readlink`, inotify, `/proc`)",
        noop: Works,
        native: Test("attacks::native::sees_outside_the_policy"),
        wasmtime: NotApplicable("WASI names files only inside preopened directories"),
    },
    Attack {
        name: "exfiltrate over TCP, UDP or unix sockets",
        noop: Works,
        native: Test("attacks::native::exfiltrates_over_sockets"),
        wasmtime: Test("wasmtime::connects_over_tcp"),
    },
    Attack {
        name: "with a `net` grant, connect elsewhere than granted",
        noop: Works,
        native: Test("attacks::native::connects_only_where_granted"),
        wasmtime: Test("wasmtime::connects_over_tcp"),
    },
    Attack {
        name: "spawn a shell without a `run` grant",
        noop: Works,
        native: Test("attacks::native::spawns_a_shell"),
        wasmtime: NotApplicable("WASI cannot start processes"),
    },
    Attack {
        name: "with the `cc` preset, run a program outside the C toolchain",
        noop: Works,
        native: Test("policy::the_cc_preset_runs_the_toolchain_and_nothing_else"),
        wasmtime: NotApplicable("WASI cannot start processes"),
    },
    Attack {
        name: "signal the Cargo process",
        noop: Works,
        native: Test("attacks::native::signals_cargo"),
        wasmtime: NotApplicable("WASI has no signals"),
    },
    Attack {
        name: "pass bytes to another script through the jobserver",
        noop: Works,
        native: Test("attacks::native::passes_bytes_through_the_jobserver"),
        wasmtime: NotApplicable("a WASI script gets no jobserver"),
    },
    Attack {
        name: "pass bytes to another script over the loopback",
        noop: Works,
        native: Test("attacks::native::talks_over_loopback"),
        wasmtime: Test("attacks::wasmtime::talks_over_loopback"),
    },
    Attack {
        name: "leave a daemon running after the build",
        noop: Works,
        native: Test("attacks::native::leaves_a_daemon"),
        wasmtime: NotApplicable("WASI cannot start processes"),
    },
    Attack {
        name: "fork a thousand processes",
        noop: Works,
        native: Test("attacks::native::forks_a_thousand_processes"),
        wasmtime: NotApplicable("WASI cannot start processes"),
    },
    Attack {
        name: "use kernel interfaces (ptrace, `io_uring`, namespaces, `TIOCSTI`, `bpf`, ...)",
        noop: Works,
        native: Test("attacks::native::uses_kernel_interfaces"),
        wasmtime: NotApplicable("a WASI guest makes no system calls"),
    },
    Attack {
        name: "loop forever",
        noop: Works,
        native: Test("attacks::native::loops_forever"),
        wasmtime: Test("wasmtime::loops_and_memory_bombs_are_stopped"),
    },
    Attack {
        name: "flood memory and output",
        noop: Works,
        native: Test("attacks::native::floods_memory_and_output"),
        wasmtime: Test("wasmtime::loops_and_memory_bombs_are_stopped"),
    },
    Attack {
        name: "fill the disk",
        noop: Works,
        native: Test("attacks::native::fills_the_disk"),
        wasmtime: Test("attacks::wasmtime::fills_the_disk"),
    },
    Attack {
        name: "link a file the script may not read (a linker script posing as a library)",
        noop: Test("policy::noop::linker_scripts_posing_as_libraries_are_refused"),
        native: Test("policy::native::linker_scripts_posing_as_libraries_are_refused"),
        wasmtime: Test("policy::wasmtime::linker_scripts_posing_as_libraries_are_refused"),
    },
    Attack {
        name: "get a grant hinted by printing a fake denial",
        noop: NotApplicable("`noop` records nothing and hints nothing"),
        native: Test("policy::native::a_denial_the_script_prints_is_not_hinted"),
        wasmtime: Test("policy::wasmtime::a_denial_the_script_prints_is_not_hinted"),
    },
];

/// Attacks on what runs unconfined after the script (the linker, rustc, the terminal), which
/// Cargo refuses from the script's output whatever the runner: one test each.
const CARGO_SIDE: &[(&str, &str)] = &[
    (
        "link arguments outside the allow list (the linker reads any file)",
        "policy::link_args_outside_the_allow_list_are_refused",
    ),
    (
        "make the linker write a file (`-o`, `-Map`), even with `linker-plugins`",
        "policy::linker_output_args_are_refused_even_with_linker_plugins",
    ),
    (
        "load code into the linker without `linker-plugins`",
        "policy::linker_args_that_load_code_need_a_grant",
    ),
    (
        "set a loader variable (`LD_PRELOAD`) for rustc with `rustc-env`",
        "policy::rustc_env_of_loader_variables_is_refused",
    ),
    (
        "hide text from the user with terminal control sequences",
        "policy::terminal_control_sequences_are_neutralised",
    ),
];

/// What each runner does not block, and why.
const CANNOT_BLOCK: &[(&str, &str)] = &[
    (
        "every runner",
        "code the script writes into `OUT_DIR` for its crate to `include!`: it is compiled into \
         the crate and runs, unconfined, in the user's tests and programs. The sandbox protects \
         the build, not what the build makes.",
    ),
    (
        "every runner",
        "what a granted program does inside the script's policy, and reads of whatever a grant \
         opens: a grant is trust in the package.",
    ),
    (
        "`native`",
        "with a `net` grant, TCP to other hosts on a granted port: landlock filters connections \
         by port, not by address.",
    ),
    (
        "`native`",
        "the clock and entropy (`clock`, `random`): the script sees the real ones, so its output \
         may differ between runs.",
    ),
    (
        "`native`",
        "the dynamic loader run on any readable file: `run` grants are not a boundary, files, \
         network and namespaces are.",
    ),
    (
        "`wasmtime`",
        "with a `net` grant naming a host, name lookups of any name: wasmtime-wasi 48 has no hook \
         to restrict them, so names can carry data to the resolver.",
    ),
    (
        "`noop`",
        "anything: it is today's behaviour, with limits only.",
    ),
];

pub fn security(ws: &Workspace) -> Result<()> {
    let cargo = fork::build(ws)?;
    let mut names: Vec<&str> = ATTACKS
        .iter()
        .flat_map(|attack| [&attack.noop, &attack.native, &attack.wasmtime])
        .filter_map(|cell| match cell {
            Test(name) => Some(*name),
            Works | NotApplicable(_) => None,
        })
        .chain(CARGO_SIDE.iter().map(|(_, name)| *name))
        .collect();
    names.sort_unstable();
    names.dedup();
    status("Running", format!("{} canary tests", names.len()));
    let output = util::cargo()
        .current_dir(&ws.root)
        .args(["test", "--test", "testsuite", "--", "--exact"])
        .args(&names)
        .env("BUILD_SANDBOX_FORK_CARGO", &cargo)
        .output()
        .context("failed to run the canary tests")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = oracle::test_results(&stdout);
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !results.contains_key(**n))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the canary tests did not report {}:\n{}",
            missing.len(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let table = to_markdown(&results);
    util::write_rfc_section(ws, "security", &table)?;
    let failed: Vec<_> = results.iter().filter(|(_, r)| *r != "ok").collect();
    if !failed.is_empty() {
        bail!("{} canary tests did not pass: {failed:?}", failed.len());
    }
    status(
        "Wrote",
        format!("the security table of {} canary tests", names.len()),
    );
    Ok(())
}

fn to_markdown(results: &BTreeMap<String, String>) -> String {
    let cell = |cell: &Cell| match cell {
        Works => "works".to_owned(),
        NotApplicable(reason) => format!("n/a: {reason}"),
        Test(name) => verdict(results, name),
    };
    let mut table = String::from(
        "Generated by `cargo xtask security` from the canary tests: a test passes only when the \
         attack works under `noop` and is blocked under the runner, while a control in the same \
         test still works. The last rows are refused by Cargo from the script's output with the flag \
         on, whatever the runner (`noop` included; their baseline is Cargo without the flag), \
         and tested once.\n\n\
         | attack | `noop` | `native` | `wasmtime` |\n|---|---|---|---|\n",
    );
    for attack in ATTACKS {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} |",
            attack.name,
            cell(&attack.noop),
            cell(&attack.native),
            cell(&attack.wasmtime)
        );
    }
    for (name, test) in CARGO_SIDE {
        let verdict = verdict(results, test);
        let _ = writeln!(table, "| {name} | {verdict} | {verdict} | {verdict} |");
    }
    table.push_str("\nWhat the runners do not block:\n\n");
    for (runner, what) in CANNOT_BLOCK {
        let _ = writeln!(table, "* {runner}: {what}");
    }
    table
}

/// `blocked` or `NOT BLOCKED`, with the test's name.
fn verdict(results: &BTreeMap<String, String>, test: &str) -> String {
    match results.get(test).map(String::as_str) {
        Some("ok") => format!("blocked (`{test}`)"),
        _ => format!("**NOT BLOCKED** (`{test}`)"),
    }
}
