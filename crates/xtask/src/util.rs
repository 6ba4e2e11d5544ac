//! Helpers shared by the tasks: running commands, hashing, reading files.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::Workspace;

/// The identity and date of every commit xtask makes, so that the same inputs always give the
/// same commits.
const GIT_IDENTITY: [(&str, &str); 6] = [
    ("GIT_AUTHOR_NAME", "build-sandbox xtask"),
    ("GIT_AUTHOR_EMAIL", "xtask@build-sandbox.invalid"),
    ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_COMMITTER_NAME", "build-sandbox xtask"),
    ("GIT_COMMITTER_EMAIL", "xtask@build-sandbox.invalid"),
    ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
];

/// `git` working in `dir`, with xtask's fixed identity and without the user's or the system's
/// configuration, which could change the commits and diffs it makes.
pub fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    for config in [
        "commit.gpgsign=false",
        "core.hooksPath=/dev/null",
        "core.autocrlf=false",
        "advice.mergeConflict=false",
        "advice.amWorkDir=false",
    ] {
        cmd.args(["-c", config]);
    }
    cmd.envs(GIT_IDENTITY)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_CONFIG_PARAMETERS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The `cargo` that runs xtask, for the tasks that use stock Cargo.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` with its output passed through, failing unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to run `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its standard output, failing with its output unless it succeeds.
pub fn output(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .output()
        .with_context(|| format!("failed to run `{}`", describe(cmd)))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        bail!(
            "`{}` failed ({})\n{}",
            describe(cmd),
            output.status,
            text.trim_end()
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("`{}` printed invalid UTF-8", describe(cmd)))
}

/// The command line of `cmd` for messages, without `git`'s `-C DIR` and `-c KEY=VALUE`.
fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy()];
    let mut args = cmd.get_args();
    while let Some(arg) = args.next() {
        if arg == OsStr::new("-C") || arg == OsStr::new("-c") {
            args.next();
        } else {
            words.push(arg.to_string_lossy());
        }
    }
    words.join(" ")
}

/// Reads `path`, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("failed to read `{}`", path.display())),
    }
}

/// Removes the directory `path` and everything in it, if it exists.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => {
            Err(err).with_context(|| format!("failed to remove `{}`", path.display()))
        }
        _ => Ok(()),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints a progress line on stderr, with the verb right-aligned like Cargo's.
pub fn status(verb: &str, message: impl std::fmt::Display) {
    eprintln!("{verb:>12} {message}");
}

pub fn warn(message: impl std::fmt::Display) {
    eprintln!("warning: {message}");
}

/// `1m 05s` or `4.2s`.
pub fn elapsed(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Copies `from` to `bin/name` unless it is there already: a copy, so a later build does not
/// change a binary that is in use, and put in place by a rename, so a running one keeps its file.
pub fn copy_binary(from: &Path, bin: &Path, name: &str) -> Result<()> {
    let to = bin.join(name);
    let new = fs::read(from).with_context(|| format!("failed to read `{}`", from.display()))?;
    if read_optional(&to)?.as_ref() != Some(&new) {
        let temp = bin.join(format!(".{name}.new"));
        fs::copy(from, &temp)
            .with_context(|| format!("failed to copy `{name}` to `{}`", bin.display()))?;
        fs::rename(&temp, &to)
            .with_context(|| format!("failed to copy `{name}` to `{}`", bin.display()))?;
    }
    Ok(())
}

/// Replaces what is between the markers `<!-- report:{section}:begin -->` and
/// `<!-- report:{section}:end -->` of `design/rfc.md` with `table`, appending the markers when the
/// file has none.
pub fn write_rfc_section(ws: &Workspace, section: &str, table: &str) -> Result<()> {
    let path = ws.root.join("design/rfc.md");
    let (begin, end) = (
        format!("<!-- report:{section}:begin -->"),
        format!("<!-- report:{section}:end -->"),
    );
    let text = fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let text = match (text.find(&begin), text.find(&end)) {
        (Some(at), Some(until)) if at < until => format!(
            "{}{begin}\n{table}{end}{}",
            &text[..at],
            &text[until + end.len()..]
        ),
        _ => {
            warn(format_args!(
                "`design/rfc.md` has no `{begin}` ... `{end}`; appending them"
            ));
            format!("{}\n\n{begin}\n{table}{end}\n", text.trim_end())
        }
    };
    fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))
}

/// When and where a measurement ran: `2026-12-05 23:50 UTC, Linux 6.18.0, 2 cores`.
pub fn when_and_where() -> Result<String> {
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    let kernel = output(Command::new("uname").arg("-sr"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(format!("{}, {}, {cores} cores", date.trim(), kernel.trim()))
}
