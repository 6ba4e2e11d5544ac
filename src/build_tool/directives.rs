//! Policing what a sandboxed build script tells Cargo to do after it exits.
//!
//! A build script's `cargo::` directives are carried out by Cargo, rustc and
//! the linker, none of which is sandboxed. A few directives would let a
//! confined script run code outside its sandbox during the build:
//!
//! * `cargo::rustc-env=NAME=VALUE` sets `NAME` in the environment of rustc,
//!   which passes it on to the linker it runs. [`forbidden_rustc_env`] names
//!   the variables that make the dynamic loader, the compiler driver or a shell
//!   load code of the script's choosing, or choose which program runs.
//! * `cargo::rustc-link-arg` (and its `-bin`, `-bins`, `-tests`, `-examples`,
//!   `-benches`, `-cdylib` forms) passes options to the compiler driver (`cc`)
//!   rustc links with. [`police_directives`] recognises the options that make
//!   the driver or the linker load or run code: plugins, another linker by
//!   path, tool directories, specs files, wrappers and response files. A
//!   package granted `linker-plugins = true` may use them.
//!
//! Cargo calls these for sandboxed packages right after it parsed the script's
//! output, and fails the build naming the directive and the reason.
//!
//! Separately, [`neutralize_control`] makes text from a script safe to print
//! on a terminal: `cargo::warning` messages and the `-vv` echo of its output
//! must not be able to move the cursor, rewrite earlier lines or change the
//! terminal's title or state.
//!
//! What a script puts into the *final binary* (libraries it links with
//! `rustc-link-lib`, `-Wl,--wrap`, `-Wl,--dynamic-linker`, ...) runs when the
//! user runs that binary, not during the build; see `design/cargo-policy.md`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::EffectivePolicy;

/// Why `cargo::rustc-env` may not set `name` for a sandboxed package, or
/// `None` if it may.
///
/// Names are compared ignoring ASCII case: on Windows `Path` is `PATH`, and on
/// Unix no build script has a reason to set `ld_preload` either.
pub fn forbidden_rustc_env(name: &str) -> Option<&'static str> {
    const LOADER: &str = "makes the dynamic loader load code into rustc and the programs it runs";
    let upper = name.to_ascii_uppercase();
    let reason = match upper.as_str() {
        _ if upper.starts_with("LD_") => LOADER,
        _ if upper.starts_with("DYLD_") => LOADER,
        "GCONV_PATH" => {
            "makes the C library load character-set conversion modules from a directory"
        }
        "GLIBC_TUNABLES" => {
            "changes how the C library and its loader behave in rustc and the programs it runs"
        }
        "PATH" => "chooses which programs rustc runs, such as the linker",
        "COMPILER_PATH" | "GCC_EXEC_PREFIX" => {
            "makes the compiler driver run the linker and its other tools from a directory"
        }
        "COLLECT_GCC" | "COLLECT_LTO_WRAPPER" => {
            "makes the compiler driver's `collect2` run a program of the script's choosing"
        }
        "CCC_OVERRIDE_OPTIONS" | "CCC_ADD_ARGS" | "GCC_COMPARE_DEBUG" => {
            "changes the command line of the compiler driver, which can then load plugins or run \
             programs"
        }
        "DEPENDENCIES_OUTPUT" | "SUNPRO_DEPENDENCIES" | "LLD_REPRODUCE" => {
            "makes the compiler driver or the linker write a file where the script chooses"
        }
        "BASH_ENV" => "makes every bash that rustc's tools start run a script first",
        _ if upper.starts_with("BASH_FUNC_") => {
            "defines shell functions in every bash that rustc's tools start"
        }
        "PERL5OPT" | "PERL5LIB" | "PYTHONPATH" | "PYTHONHOME" | "RUBYOPT" | "RUBYLIB"
        | "NODE_OPTIONS" => {
            "makes a script interpreter load code, e.g. in a linker wrapper written in a script language"
        }
        _ => return None,
    };
    Some(reason)
}

/// The options in `args` (the values of a package's `rustc-link-arg`
/// directives, in order) that load or run code of the script's choosing in
/// the compiler driver or the linker, or make the linker write a file where
/// the script chooses, in order, each with the reason.
///
/// The offending text is the argument, or for a two-argument form both
/// arguments joined by a space (`-Xlinker -plugin`, `-B /tmp`). Options the
/// driver forwards to the linker (`-Wl,a,b,c` and `-Xlinker a`) are checked
/// one by one, so `-Wl,-z,now,-plugin,/x.so` is caught.
fn link_arg_offences(args: &[String]) -> impl Iterator<Item = (String, &'static str)> + '_ {
    let mut index = 0;
    std::iter::from_fn(move || {
        while index < args.len() {
            let arg = &args[index];
            let next = args.get(index + 1);
            index += 1;
            if let Some(list) = arg.strip_prefix("-Wl,") {
                if let Some(reason) = list.split(',').find_map(linker_option) {
                    return Some((arg.clone(), reason));
                }
            } else if arg == "-Xlinker" {
                if let Some(next) = next {
                    index += 1;
                    if let Some(reason) = linker_option(next) {
                        return Some((format!("{arg} {next}"), reason));
                    }
                }
            } else if let Some((reason, takes_value)) = driver_option(arg) {
                let offending = match next {
                    Some(next) if takes_value => format!("{arg} {next}"),
                    _ => arg.clone(),
                };
                return Some((offending, reason));
            }
        }
        None
    })
}

/// The first argument in `args` that is not on the list of link arguments
/// known to be safe for a sandboxed script, or a value such an option reads
/// from a file the script may not read: anything else needs `linker-plugins`.
///
/// The list: libraries and search paths (`-l`, `-L`); the driver's linking
/// modes (`-static`, `-shared`, `-pie`, `-nostartfiles`, `-pthread`, ...,
/// `-fuse-ld=` with a linker's name); objects and archives by absolute path
/// where the script may read; and the linker options, in `-Wl,` lists or
/// after `-Xlinker`, that only choose how to link ([`SAFE_LINKER_FLAGS`],
/// [`SAFE_LINKER_OPTIONS`] with their value, section addresses `-Ttext=`).
fn unknown_link_arg<'a>(args: &'a [String], readable: &dyn Fn(&Path) -> bool) -> Option<&'a str> {
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        let known = if let Some(list) = arg.strip_prefix("-Wl,") {
            safe_linker_options(&list.split(',').collect::<Vec<_>>(), readable)
        } else if arg == "-Xlinker" || arg == "-l" || arg == "-L" {
            let Some(next) = args.get(index) else {
                return Some(arg);
            };
            index += 1;
            arg != "-Xlinker" || safe_linker_options(&[next.as_str()], readable)
        } else if let Some(path) = arg.strip_prefix('/').map(|_| Path::new(arg.as_str())) {
            readable(path)
        } else {
            SAFE_DRIVER_FLAGS.contains(&arg.as_str())
                || ["-l", "-L", "-Wl,"]
                    .iter()
                    .any(|prefix| arg.starts_with(prefix))
                || arg
                    .strip_prefix("-fuse-ld=")
                    .is_some_and(|name| !name.contains(['/', '\\']))
        };
        if !known {
            return Some(arg);
        }
    }
    None
}

/// Driver options that only choose how to link.
const SAFE_DRIVER_FLAGS: &[&str] = &[
    "-static",
    "-static-pie",
    "-static-libgcc",
    "-static-libstdc++",
    "-shared",
    "-pie",
    "-no-pie",
    "-rdynamic",
    "-nostartfiles",
    "-nodefaultlibs",
    "-nostdlib",
    "-pthread",
    "-s",
    "-g",
    "-m32",
    "-m64",
    "-fPIC",
    "-fpic",
    "-fPIE",
    "-fpie",
    "-fno-pie",
    "-fno-PIE",
];

/// Linker options without a value that only choose how to link.
const SAFE_LINKER_FLAGS: &[&str] = &[
    "as-needed",
    "no-as-needed",
    "Bstatic",
    "Bdynamic",
    "static",
    "dy",
    "dn",
    "Bsymbolic",
    "Bsymbolic-functions",
    "whole-archive",
    "no-whole-archive",
    "start-group",
    "end-group",
    "(",
    ")",
    "export-dynamic",
    "no-export-dynamic",
    "E",
    "gc-sections",
    "no-gc-sections",
    "O0",
    "O1",
    "O2",
    "O3",
    "s",
    "S",
    "strip-all",
    "strip-debug",
    "eh-frame-hdr",
    "no-undefined",
    "allow-shlib-undefined",
    "no-allow-shlib-undefined",
    "relax",
    "no-relax",
    "warn-common",
    "fatal-warnings",
    "no-fatal-warnings",
    "enable-new-dtags",
    "disable-new-dtags",
    "pie",
    "no-pie",
    "shared",
    "Bshareable",
    "allow-multiple-definition",
    "undefined-version",
    "no-undefined-version",
    "dynamic-list-data",
    "emit-relocs",
    "x",
    "X",
    "discard-all",
    "discard-locals",
    "demangle",
    "no-demangle",
    "fix-cortex-a53-843419",
    "pic-veneer",
    "no-dynamic-linker",
    "nmagic",
    "n",
    "omagic",
    "N",
    "build-id",
    "no-relax",
];

/// Linker options that take a value (`-opt=value`, or the next piece), and
/// whether the value is a file the linker reads.
const SAFE_LINKER_OPTIONS: &[(&str, bool)] = &[
    ("z", false),
    ("rpath", false),
    ("rpath-link", false),
    ("R", false),
    ("soname", false),
    ("h", false),
    ("undefined", false),
    ("u", false),
    ("wrap", false),
    ("defsym", false),
    ("exclude-libs", false),
    ("export-dynamic-symbol", false),
    ("require-defined", false),
    ("entry", false),
    ("e", false),
    ("dynamic-linker", false),
    ("hash-style", false),
    ("build-id", false),
    ("icf", false),
    ("threads", false),
    ("compress-debug-sections", false),
    ("color-diagnostics", false),
    ("error-limit", false),
    ("image-base", false),
    ("sort-section", false),
    ("version-script", true),
    ("dynamic-list", true),
];

/// Whether every piece of a `-Wl,` list (or the value of `-Xlinker`) is a
/// safe linker option, with a value it takes after it.
fn safe_linker_options(pieces: &[&str], readable: &dyn Fn(&Path) -> bool) -> bool {
    let mut pieces = pieces.iter();
    while let Some(piece) = pieces.next() {
        let Some(name) = piece.strip_prefix("--").or_else(|| piece.strip_prefix('-')) else {
            // An input file given to the linker directly.
            if !Path::new(piece).is_absolute() || !readable(Path::new(piece)) {
                return false;
            }
            continue;
        };
        let (name, attached) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (name, None),
        };
        let sections = [
            "Ttext",
            "Tdata",
            "Tbss",
            "Tldata",
            "Trodata-segment",
            "Ttext-segment",
        ];
        if SAFE_LINKER_FLAGS.contains(&name) || sections.contains(&name) {
            continue;
        }
        // `-zNAME` and `-hNAME`: short options with the value attached.
        let short_attached = ["z", "h", "u", "e", "R"]
            .into_iter()
            .find(|short| name.len() > 1 && name.starts_with(short) && attached.is_none());
        let (name, attached) = match short_attached {
            Some(short) => (short, Some(&name[1..])),
            None => (name, attached),
        };
        let Some(&(_, is_file)) = SAFE_LINKER_OPTIONS
            .iter()
            .find(|(option, _)| *option == name)
        else {
            return false;
        };
        let Some(value) = attached.or_else(|| pieces.next().copied()) else {
            return false;
        };
        if is_file && !readable(Path::new(value)) {
            return false;
        }
    }
    true
}

/// A directive of a sandboxed build script that the build tool refuses to
/// carry out, because it would run code or write files outside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForbiddenDirective {
    /// What the script may not do, as a phrase that follows "the build script
    /// of `<package>`", then a `note:` line with the reason. The script's text
    /// in it is made printable ([`neutralize_control`]).
    pub message: String,
    /// The grant that would allow it, if one would: `linker-plugins = true`.
    pub grant: Option<&'static str>,
}

impl fmt::Display for ForbiddenDirective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Checks the directives of a sandboxed script under `policy`: the variables
/// it sets with `cargo::rustc-env` (`forbidden_rustc_env`), the arguments it
/// passes to the linker (`link_arg_offences`), and the libraries the linker
/// would find in the directories it adds with `cargo::rustc-link-search`
/// (`KIND=PATH` or `PATH`, as rustc's `-L` takes them) where sandboxed
/// scripts write, or that `cargo::rustc-link-arg` names there: each must be
/// an archive or a shared object, not a linker script (`library_offence`). A
/// granted `linker-plugins` allows the arguments that load code and linker
/// scripts, but never what makes the linker write a file where the script
/// chooses. Returns the first offence.
pub fn police_directives<'a>(
    policy: &EffectivePolicy,
    rustc_env: impl IntoIterator<Item = &'a str>,
    link_args: &[String],
    link_search: impl IntoIterator<Item = &'a Path>,
) -> Result<(), ForbiddenDirective> {
    for name in rustc_env {
        if let Some(reason) = forbidden_rustc_env(name) {
            let name = neutralize_control(name);
            return Err(ForbiddenDirective {
                message: format!(
                    "may not set `{name}` with `cargo::rustc-env`\nnote: `{name}` {reason}"
                ),
                grant: None,
            });
        }
    }
    let exempt = |reason: &str| policy.granted.linker_plugins && reason != OUTPUT;
    if let Some((arg, reason)) = link_arg_offences(link_args).find(|(_, reason)| !exempt(reason)) {
        return Err(ForbiddenDirective {
            message: format!(
                "may not pass `{}` to the linker\nnote: it {reason}",
                neutralize_control(&arg)
            ),
            grant: (reason != OUTPUT).then_some("linker-plugins = true"),
        });
    }
    if policy.granted.linker_plugins {
        return Ok(());
    }
    let readable = |path: &Path| policy.readable().any(|dir| path.starts_with(dir));
    if let Some(arg) = unknown_link_arg(link_args, &readable) {
        return Err(ForbiddenDirective {
            message: format!(
                "may not pass `{}` to the linker\nnote: it is not among the link arguments known \
                 to be safe for a sandboxed build script, or names a file the script may not read",
                neutralize_control(arg)
            ),
            grant: Some("linker-plugins = true"),
        });
    }
    let written = |path: &Path| {
        (policy.writable())
            .chain(
                policy
                    .baseline
                    .dependency_out_dirs
                    .iter()
                    .map(PathBuf::as_path),
            )
            .any(|dir| path.starts_with(dir))
    };
    let searched = link_search.into_iter().map(|path| {
        let text = path.to_str().and_then(|text| text.split_once('='));
        match text {
            Some(("native" | "crate" | "dependency" | "framework" | "all", dir)) => Path::new(dir),
            _ => path,
        }
    });
    // `-L` in link arguments adds search paths too.
    let mut from_args = Vec::new();
    for (index, arg) in link_args.iter().enumerate() {
        match arg.strip_prefix("-L") {
            Some("") => from_args.extend(link_args.get(index + 1).map(Path::new)),
            Some(dir) => from_args.push(Path::new(dir)),
            None => {}
        }
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    for dir in searched.chain(from_args).filter(|dir| written(dir)) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("lib") && (name.ends_with(".a") || name.contains(".so")) {
                candidates.push(entry.path());
            }
        }
    }
    // Files a link argument names by path, which the linker reads as input.
    for arg in link_args {
        let pieces: Vec<&str> = match arg.strip_prefix("-Wl,") {
            Some(list) => list.split(',').collect(),
            None => vec![arg],
        };
        let named = pieces.into_iter().map(Path::new);
        candidates.extend(
            named
                .filter(|path| path.is_absolute() && written(path))
                .map(Path::to_owned),
        );
    }
    match candidates
        .iter()
        .find(|path| path.is_file() && !is_library(path))
    {
        None => Ok(()),
        Some(path) => Err(ForbiddenDirective {
            message: format!(
                "may not hand `{}` to the linker\nnote: it is not an archive or a shared object; \
                 the linker would read it as a linker script, which can make it read any file \
                 into the output",
                neutralize_control(&path.to_string_lossy())
            ),
            grant: Some("linker-plugins = true"),
        }),
    }
}

/// Whether `path` starts as an ELF file or an `ar` archive (thin or not) does.
fn is_library(path: &Path) -> bool {
    let mut magic = [0; 8];
    let read = fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic));
    read.is_ok()
        && (magic.starts_with(b"\x7fELF") || magic == *b"!<arch>\n" || magic == *b"!<thin>\n")
}

const RESPONSE_FILE: &str =
    "reads more arguments from a file, which can hold any option, including ones that load code";
const PLUGIN: &str = "makes the linker load a plugin, which runs its code outside the sandbox";

const LINKER_SCRIPT: &str = "gives the linker a linker script, which can make it read any file \
     into the output";

/// Why an option given to the linker itself is forbidden.
fn linker_option(option: &str) -> Option<&'static str> {
    if option.starts_with('@') {
        return Some(RESPONSE_FILE);
    }
    // `-o <path>` and `-o<path>`: the short form takes its value attached too.
    if option.starts_with("-o") && !option.starts_with("--") {
        return Some(OUTPUT);
    }
    // `-T <script>` and `-T<script>`, but not the section addresses `-Ttext=...`.
    if let Some(rest) = option.strip_prefix("-T") {
        let sections = [
            "text",
            "data",
            "bss",
            "ldata",
            "rodata-segment",
            "text-segment",
        ];
        if !sections.iter().any(|section| rest.starts_with(section)) {
            return Some(LINKER_SCRIPT);
        }
    }
    // GNU ld and lld accept long options with one dash or two.
    let name = option
        .strip_prefix("--")
        .or_else(|| option.strip_prefix('-'))?;
    let name = name.split_once('=').map_or(name, |(name, _)| name);
    match name {
        "plugin" | "load-pass-plugin" => Some(PLUGIN),
        "script" | "dT" | "default-script" => Some(LINKER_SCRIPT),
        "output" | "Map" | "dependency-file" | "out-implib" => Some(OUTPUT),
        _ => None,
    }
}

const OUTPUT: &str = "makes the linker write a file at a path of the script's choosing, outside the \
     sandbox (an executable there runs with the user's rights)";

/// Why an option given to the compiler driver is forbidden, and whether its
/// value may be the next argument.
fn driver_option(arg: &str) -> Option<(&'static str, bool)> {
    const TOOL_DIR: &str =
        "makes the compiler driver run the linker and its other tools from a directory";
    const LINKER_PATH: &str =
        "makes the compiler driver run a program of the script's choosing as the linker";
    if let Some(reason) = linker_option(arg) {
        return Some((reason, arg.starts_with('-') && !arg.contains('=')));
    }
    if let Some(dir) = arg.strip_prefix("-B") {
        // `-Bstatic` and friends are linker options: `-Wl,-Bstatic` passes them.
        return Some((TOOL_DIR, dir.is_empty()));
    }
    if let Some(linker) = arg.strip_prefix("-fuse-ld=") {
        return linker.contains(['/', '\\']).then_some((LINKER_PATH, false));
    }
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let (name, has_value) = match name.split_once('=') {
        Some((name, _)) => (name, true),
        None => (name, false),
    };
    let reason = match name {
        "prefix" | "gcc-toolchain" | "gcc-install-dir" => TOOL_DIR,
        "ld-path" => LINKER_PATH,
        "fplugin" | "fpass-plugin" => {
            "makes the compiler load a plugin for link-time optimization, which runs its code \
             outside the sandbox"
        }
        "specs" => "gives the compiler driver a specs file, which can run any program",
        "wrapper" => "makes the compiler driver run its tools through another program",
        _ => return None,
    };
    Some((reason, !has_value))
}

/// `text` with every terminal control character replaced by a visible escape
/// such as `\u{1b}`: the C0 controls except tab, DEL, and the C1 controls
/// (U+0080 to U+009F). Everything else, including all other UTF-8, is kept;
/// text without controls is returned as is.
pub fn neutralize_control(text: &str) -> Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\t';
    let Some(first) = text.find(is_control) else {
        return Cow::Borrowed(text);
    };
    let mut escaped = String::with_capacity(text.len() + 8);
    escaped.push_str(&text[..first]);
    for c in text[first..].chars() {
        if is_control(c) {
            // Writing to a `String` cannot fail.
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// A `cargo::warning` or `cargo::error` message made printable as
/// [`neutralize_control`] makes a line, keeping its line breaks: a script's
/// message is one line (the build tool splits the script's output at line
/// breaks), so a line break in a message is the build tool's own, such as the
/// `note:` Cargo adds to its warning about `RUSTC_BOOTSTRAP`.
pub fn neutralize_message(text: &str) -> Cow<'_, str> {
    if !text.contains('\n') {
        return neutralize_control(text);
    }
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(neutralize_control).collect();
    match lines.iter().all(|line| matches!(line, Cow::Borrowed(_))) {
        true => Cow::Borrowed(text),
        false => Cow::Owned(lines.join("\n")),
    }
}

/// How much of each output stream of a failed script [`printable_output`]
/// keeps: the last mebibyte.
pub const ERROR_OUTPUT_TAIL: usize = 1 << 20;

/// `output` as an error message may show it: the last [`ERROR_OUTPUT_TAIL`]
/// bytes of each stream (where a failing script says why), after a line
/// counting those left out, with [`neutralize_control`] applied to each line.
pub fn printable_output(output: &Output) -> Output {
    let printable = |bytes: &[u8]| {
        let omitted = bytes.len().saturating_sub(ERROR_OUTPUT_TAIL);
        let text = String::from_utf8_lossy(&bytes[omitted..]);
        let mut shown = String::with_capacity(text.len() + 64);
        if omitted > 0 {
            let _ = writeln!(shown, "[{omitted} earlier bytes not shown]");
        }
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                shown.push('\n');
            }
            shown.push_str(&neutralize_control(line));
        }
        shown.into_bytes()
    };
    Output {
        status: output.status,
        stdout: printable(&output.stdout),
        stderr: printable(&output.stderr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Option<(String, &'static str)> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        link_arg_offences(&args).next()
    }

    fn offending(args: &[&str]) -> Option<String> {
        check(args).map(|(offending, _)| offending)
    }

    #[test]
    fn loader_variables_are_forbidden() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "LD_BIND_NOW",
            "DYLD_INSERT_LIBRARIES",
            "DYLD_LIBRARY_PATH",
            "GCONV_PATH",
            "GLIBC_TUNABLES",
        ] {
            assert!(forbidden_rustc_env(name).is_some(), "{name}");
        }
        assert_eq!(
            forbidden_rustc_env("LD_PRELOAD"),
            Some("makes the dynamic loader load code into rustc and the programs it runs")
        );
    }

    #[test]
    fn program_choice_and_script_hooks_are_forbidden() {
        for name in [
            "PATH",
            "COMPILER_PATH",
            "GCC_EXEC_PREFIX",
            "BASH_ENV",
            "BASH_FUNC_cc%%",
            "PERL5OPT",
            "PYTHONPATH",
            "NODE_OPTIONS",
        ] {
            assert!(forbidden_rustc_env(name).is_some(), "{name}");
        }
    }

    #[test]
    fn compiler_driver_overrides_are_forbidden() {
        for name in [
            "CCC_OVERRIDE_OPTIONS",
            "CCC_ADD_ARGS",
            "GCC_COMPARE_DEBUG",
            "COLLECT_GCC",
            "COLLECT_LTO_WRAPPER",
            "DEPENDENCIES_OUTPUT",
            "SUNPRO_DEPENDENCIES",
            "LLD_REPRODUCE",
        ] {
            assert!(forbidden_rustc_env(name).is_some(), "{name}");
        }
    }

    #[test]
    fn env_names_are_compared_ignoring_case() {
        assert!(forbidden_rustc_env("ld_preload").is_some());
        assert!(forbidden_rustc_env("Path").is_some());
        assert!(forbidden_rustc_env("dyld_insert_libraries").is_some());
    }

    #[test]
    fn ordinary_env_is_allowed() {
        for name in [
            "PROTOC",
            "OUT_DIR_EXTRA",
            "VERSION",
            "GIT_HASH",
            "CARGO_PKG_X",
            "OLD_PATH",
            "LDFLAGS",
            "MALLOC_ARENA_MAX",
            "MALLOC_CHECK_",
            "PATHS",
            "ENV",
            "ENVIRONMENT",
        ] {
            assert_eq!(forbidden_rustc_env(name), None, "{name}");
        }
    }

    #[test]
    fn plugins_through_the_driver() {
        assert_eq!(
            offending(&["-Wl,-z,now,-plugin,/x.so"]).as_deref(),
            Some("-Wl,-z,now,-plugin,/x.so")
        );
        for args in [
            &["-Wl,-plugin,/x.so"][..],
            &["-Wl,--plugin,/x.so"],
            &["-Wl,--plugin=/x.so"],
            &["-Wl,-plugin=/x.so"],
            &["-Wl,--load-pass-plugin=/x.so"],
            &["-Wl,--load-pass-plugin,/x.so"],
            &["-Wl,-load-pass-plugin=/x.so"],
            &["-Wl,-plugin", "-Wl,/x.so"],
        ] {
            assert_eq!(
                check(args).map(|(_, reason)| reason),
                Some(PLUGIN),
                "{args:?}"
            );
        }
    }

    #[test]
    fn plugins_through_xlinker_take_two_arguments() {
        assert_eq!(
            offending(&["-Xlinker", "-plugin", "-Xlinker", "/x.so"]).as_deref(),
            Some("-Xlinker -plugin")
        );
        assert_eq!(
            offending(&["-Xlinker", "--plugin=/x.so"]).as_deref(),
            Some("-Xlinker --plugin=/x.so")
        );
        // The value of `-Xlinker` is a linker option, not a driver option.
        assert_eq!(offending(&["-Xlinker", "-Bstatic"]), None);
        assert_eq!(offending(&["-Xlinker"]), None);
    }

    #[test]
    fn plugins_given_to_the_linker_directly() {
        assert_eq!(
            offending(&["-plugin", "/x.so"]).as_deref(),
            Some("-plugin /x.so")
        );
        assert_eq!(
            offending(&["--plugin=/x.so"]).as_deref(),
            Some("--plugin=/x.so")
        );
        assert!(check(&["--load-pass-plugin", "/x.so"]).is_some());
    }

    #[test]
    fn linker_choice() {
        assert!(check(&["-fuse-ld=/tmp/ld"]).is_some());
        assert!(check(&["-fuse-ld=./ld"]).is_some());
        assert!(check(&["-fuse-ld=C:\\ld.exe"]).is_some());
        assert!(check(&["--ld-path=/tmp/ld"]).is_some());
        assert_eq!(check(&["-fuse-ld=lld"]), None);
        assert_eq!(check(&["-fuse-ld=mold"]), None);
        assert_eq!(check(&["-fuse-linker-plugin"]), None);
    }

    #[test]
    fn tool_directories() {
        assert_eq!(offending(&["-B/tmp"]).as_deref(), Some("-B/tmp"));
        assert_eq!(offending(&["-B", "/tmp"]).as_deref(), Some("-B /tmp"));
        assert_eq!(offending(&["-B"]).as_deref(), Some("-B"));
        // `-Bstatic` given to the driver names a directory `static`.
        assert!(check(&["-Bstatic"]).is_some());
        assert_eq!(check(&["-Wl,-Bstatic", "-Wl,-Bdynamic"]), None);
        assert_eq!(
            offending(&["--prefix", "/tmp"]).as_deref(),
            Some("--prefix /tmp")
        );
        assert!(check(&["--prefix=/tmp"]).is_some());
        assert!(check(&["--gcc-toolchain=/tmp"]).is_some());
        assert!(check(&["--gcc-install-dir=/tmp"]).is_some());
    }

    #[test]
    fn compiler_plugins_specs_and_wrappers() {
        assert!(check(&["-fplugin=/x.so"]).is_some());
        assert!(check(&["-fpass-plugin=/x.so"]).is_some());
        assert!(check(&["-specs=/tmp/specs"]).is_some());
        assert!(check(&["--specs=/tmp/specs"]).is_some());
        assert_eq!(
            offending(&["-wrapper", "/tmp/w,-x"]).as_deref(),
            Some("-wrapper /tmp/w,-x")
        );
        assert_eq!(check(&["-fplugin-arg-x-y=1"]), None);
    }

    #[test]
    fn files_written_by_the_linker() {
        for args in [
            &["-Wl,-o,/home/u/.cargo/bin/cargo"][..],
            &["-Wl,-o/home/u/.cargo/bin/cargo"],
            &["-Wl,--output=/tmp/x"],
            &["-Wl,--output,/tmp/x"],
            &["-Wl,-Map,/tmp/map"],
            &["-Wl,-Map=/tmp/map"],
            &["-Wl,--Map=/tmp/map"],
            &["-Wl,--dependency-file=/tmp/deps"],
            &["-Wl,--out-implib,/tmp/x.lib"],
            &["-Xlinker", "-o", "-Xlinker", "/tmp/x"],
            &["-o", "/tmp/x"],
            &["-o/tmp/x"],
            &["--output=/tmp/x"],
        ] {
            assert_eq!(
                check(args).map(|(_, reason)| reason),
                Some(OUTPUT),
                "{args:?}"
            );
        }
        assert_eq!(offending(&["-o", "/tmp/x"]).as_deref(), Some("-o /tmp/x"));
        // Options that only look alike.
        assert_eq!(
            check(&["-Wl,--no-undefined", "-Wl,-O1", "-Wl,--omagic"]),
            None
        );
    }

    #[test]
    fn response_files() {
        assert_eq!(
            check(&["@/tmp/args"]),
            Some(("@/tmp/args".to_owned(), RESPONSE_FILE))
        );
        assert!(check(&["-Wl,@/tmp/args"]).is_some());
        assert!(check(&["-Xlinker", "@/tmp/args"]).is_some());
    }

    #[test]
    fn ordinary_link_args_are_allowed() {
        assert_eq!(
            check(&[
                "-Wl,-rpath,$ORIGIN",
                "-Wl,--as-needed",
                "-Wl,-z,relro,-z,now",
                "-Wl,--plugin-opt=O2",
                "-Wl,--version-script=/ws/pkg/exports.map",
                "-Xlinker",
                "--export-dynamic",
                "-nostartfiles",
                "-static",
                "-lfoo",
                "-L/usr/lib",
                "-fuse-ld=lld",
                "/ws/target/out/lib.a",
            ]),
            None
        );
        assert_eq!(check(&[]), None);
    }

    #[test]
    fn the_first_offence_is_reported() {
        assert_eq!(
            offending(&["-Wl,--as-needed", "-fuse-ld=/tmp/ld", "@args"]).as_deref(),
            Some("-fuse-ld=/tmp/ld")
        );
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            neutralize_control("\x1b]0;owned\x07red\x1b[31m"),
            "\\u{1b}]0;owned\\u{7}red\\u{1b}[31m"
        );
        assert_eq!(neutralize_control("a\rb\x7fc\0"), "a\\u{d}b\\u{7f}c\\u{0}");
        assert_eq!(neutralize_control("x\u{9b}2Jy\u{85}"), "x\\u{9b}2Jy\\u{85}");
        assert_eq!(neutralize_control("line\n"), "line\\u{a}");
    }

    #[test]
    fn a_message_keeps_its_line_breaks() {
        let cargo_note = "cannot set `RUSTC_BOOTSTRAP=1`.\nnote: crates cannot set it";
        assert!(matches!(neutralize_message(cargo_note), Cow::Borrowed(_)));
        assert_eq!(
            neutralize_message("a\x1b[31m\nb\rc"),
            "a\\u{1b}[31m\nb\\u{d}c"
        );
    }

    #[test]
    fn printable_output_keeps_the_tail_of_each_stream() {
        use std::os::unix::process::ExitStatusExt;
        let mut stdout = vec![b'a'; ERROR_OUTPUT_TAIL + 3];
        stdout.extend_from_slice(b"\nend\x1b[2J");
        let output = Output {
            status: std::process::ExitStatus::from_raw(256),
            stdout,
            stderr: b"why\x07\n".to_vec(),
        };
        let shown = printable_output(&output);
        assert_eq!(shown.status, output.status);
        let stdout = String::from_utf8(shown.stdout).unwrap();
        assert!(
            stdout.starts_with("[11 earlier bytes not shown]\naaa"),
            "{}",
            &stdout[..40]
        );
        assert!(stdout.ends_with("aaa\nend\\u{1b}[2J"));
        assert_eq!(shown.stderr, b"why\\u{7}\n");
    }

    fn policing(
        linker_plugins: bool,
        env: &[&str],
        args: &[&str],
    ) -> Result<(), ForbiddenDirective> {
        let baseline = crate::Baseline {
            package_root: "/src/foo".into(),
            out_dir: "/target/build/foo/out".into(),
            temp_dir: "/target/build/foo/tmp".into(),
            dependency_out_dirs: Default::default(),
        };
        let granted = crate::Request {
            linker_plugins,
            ..Default::default()
        };
        let policy = EffectivePolicy::granting(baseline, granted);
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        police_directives(&policy, env.iter().copied(), &args, [])
    }

    #[test]
    fn policing_names_the_directive_and_the_grant() {
        assert_eq!(
            policing(false, &["CC", "CFLAGS"], &["-Wl,-z,relro"]),
            Ok(())
        );
        let err = policing(false, &["CC", "LD_PRELOAD"], &[]).unwrap_err();
        assert!(err.message.starts_with(
            "may not set `LD_PRELOAD` with `cargo::rustc-env`\nnote: `LD_PRELOAD` makes"
        ));
        assert_eq!(err.grant, None);
        let err = policing(false, &[], &["-Wl,-z,relro", "-Wl,-plugin,/x.so"]).unwrap_err();
        assert_eq!(
            err.message,
            format!("may not pass `-Wl,-plugin,/x.so` to the linker\nnote: it {PLUGIN}")
        );
        assert_eq!(err.grant, Some("linker-plugins = true"));
        // Escapes in the script's text are shown, not sent to the terminal.
        let err = policing(false, &["LD_PRELOAD\u{1b}[2J"], &[]).unwrap_err();
        assert!(err.message.contains("`LD_PRELOAD\\u{1b}[2J`"), "{err}");
    }

    #[test]
    fn linker_plugins_never_allow_writing_files() {
        assert_eq!(
            policing(true, &[], &["-Wl,-plugin,/x.so", "-fuse-ld=/x/ld"]),
            Ok(())
        );
        // Past the exempted plugin, the output option is still found.
        let err = policing(
            true,
            &[],
            &["-Wl,-plugin,/x.so", "-Wl,-o,/home/u/.cargo/bin/cargo"],
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("may not pass `-Wl,-o,/home/u/.cargo/bin/cargo`"),
            "{err}"
        );
        assert_eq!(err.grant, None);
        // `linker-plugins` does not cover `rustc-env` either.
        assert!(policing(true, &["LD_PRELOAD"], &[]).is_err());
    }

    #[test]
    fn ordinary_text_is_borrowed() {
        for text in [
            "",
            "plain",
            "tab\tseparated",
            "ünïcødé ✓ 日本語",
            "\u{a0}\u{200b}",
        ] {
            assert!(
                matches!(neutralize_control(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        assert_eq!(neutralize_control("é\x1bé"), "é\\u{1b}é");
    }

    #[test]
    fn linker_scripts_are_refused_as_options() {
        let err = policing(false, &[], &["-Wl,-T,/tmp/x.ld"]).unwrap_err();
        assert!(err.message.contains("linker script"), "{}", err.message);
        assert!(policing(false, &[], &["-Wl,--script=/tmp/x.ld"]).is_err());
        assert!(policing(false, &[], &["-T/tmp/x.ld"]).is_err());
        assert_eq!(policing(false, &[], &["-Wl,-Ttext=0x1000"]), Ok(()));
        // `cortex-m-rt` and other embedded crates: a grant away.
        assert!(policing(false, &[], &["-T", "link.x"]).is_err());
        assert_eq!(
            policing(true, &[], &["-Wl,-T,/tmp/x.ld", "-Tlink.x"]),
            Ok(())
        );
    }

    #[test]
    fn libraries_where_scripts_write_must_be_archives_or_shared_objects() {
        let root = std::env::temp_dir().join(format!("build-sandbox-libs-{}", std::process::id()));
        let (out_dir, system) = (root.join("out"), root.join("system"));
        fs::create_dir_all(&out_dir).unwrap();
        fs::create_dir_all(&system).unwrap();
        fs::write(out_dir.join("libgood.a"), b"!<arch>\n").unwrap();
        fs::write(out_dir.join("generated.rs"), "pub fn f() {}").unwrap();
        // A system `libc.so` is a linker script, and no script wrote it.
        fs::write(system.join("libc.so"), "GROUP ( /lib/libc.so.6 )").unwrap();
        let baseline = crate::Baseline {
            package_root: root.join("pkg"),
            out_dir: out_dir.clone(),
            temp_dir: root.join("tmp"),
            dependency_out_dirs: Default::default(),
        };
        let police = |linker_plugins: bool, args: &[String], search: &[PathBuf]| {
            let granted = crate::Request {
                linker_plugins,
                ..Default::default()
            };
            let policy = EffectivePolicy::granting(baseline.clone(), granted);
            police_directives(&policy, [], args, search.iter().map(PathBuf::as_path))
        };
        let native_out = PathBuf::from(format!("native={}", out_dir.display()));
        assert_eq!(
            police(false, &[], &[native_out.clone(), system.clone()]),
            Ok(())
        );

        fs::write(
            out_dir.join("libsneak.so"),
            "INPUT(/home/user/.ssh/id_ed25519)",
        )
        .unwrap();
        let err = police(false, &[], std::slice::from_ref(&native_out)).unwrap_err();
        assert!(err.message.starts_with("may not hand `"), "{}", err.message);
        assert!(
            err.message
                .contains("libsneak.so` to the linker\nnote: it is not an archive")
        );
        assert_eq!(err.grant, Some("linker-plugins = true"));
        assert_eq!(police(true, &[], &[native_out]), Ok(()));
        // Named as an input file.
        let script = out_dir.join("libsneak.so").display().to_string();
        assert!(police(false, &[format!("-Wl,{script}")], &[]).is_err());
        assert!(police(false, &[script], &[]).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn only_link_arguments_known_to_be_safe_pass() {
        let readable = |path: &Path| path.starts_with("/ws/pkg") || path.starts_with("/ws/out");
        let unknown = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
            unknown_link_arg(&args, &readable).map(str::to_owned)
        };
        let safe = [
            "-Wl,--as-needed",
            "-Wl,-z,relro,-z,now",
            "-Wl,-znoexecstack",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--version-script=/ws/pkg/exports.map",
            "-Wl,--whole-archive",
            "-Wl,-Ttext=0x1000",
            "-Xlinker",
            "--export-dynamic",
            "-lfoo",
            "-l",
            "bar",
            "-L/usr/lib/x86_64-linux-gnu",
            "-static",
            "-fuse-ld=lld",
            "/ws/out/lib.a",
        ];
        assert_eq!(unknown(&safe), None);
        assert_eq!(unknown(&["-flto"]).as_deref(), Some("-flto"));
        assert_eq!(
            unknown(&["-Wl,--no-such-option"]).as_deref(),
            Some("-Wl,--no-such-option")
        );
        // A file the script may not read, as an input or as a version script.
        assert_eq!(
            unknown(&["/home/u/.ssh/key.o"]).as_deref(),
            Some("/home/u/.ssh/key.o")
        );
        let script = "-Wl,--version-script,/home/u/secret";
        assert_eq!(unknown(&[script]).as_deref(), Some(script));
        assert_eq!(unknown(&["-Wl,-z"]).as_deref(), Some("-Wl,-z"));
    }
}
