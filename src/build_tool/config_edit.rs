//! Adding a grant to the embedding program's configuration file.
//!
//! [`add_grant`] edits the text of a TOML configuration file with `toml_edit`,
//! so that comments, whitespace and everything it does not touch stay byte for
//! byte as they were. The embedding program names the table that holds the
//! grants (its path of keys, say `allow` below its own sandbox table). The
//! edit adds to that table's `"<key>"` entry for the package, creating it at
//! the end of the file if there is none, and reusing it however it is written
//! (a table header, dotted keys, an inline table). Lists gain the new entries
//! that are not there yet; booleans are set; limits are replaced.

use std::fmt;

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use crate::Request;
use crate::policy::dotted;

/// Why a configuration could not be edited.
#[derive(Debug)]
pub enum ConfigEditError {
    /// The file is not valid TOML.
    Parse(toml_edit::TomlError),
    /// A key on the way to the grant holds a value of another type.
    WrongType {
        /// The dotted key, from the root of the file, e.g. `<table>.foo.run`.
        key: String,
        /// What the grant needs there, e.g. `an array of strings`.
        expected: &'static str,
        /// What is there, e.g. `a string`.
        found: &'static str,
    },
    /// The additions choose a runner, which a grant cannot; the embedding
    /// program may say where the runner is chosen instead.
    Runner,
}

impl fmt::Display for ConfigEditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigEditError::Parse(e) => write!(f, "failed to parse the configuration: {e}"),
            ConfigEditError::WrongType {
                key,
                expected,
                found,
            } => write!(
                f,
                "`{key}` is {found}, expected {expected}\n\
                 help: fix or remove `{key}`, then add the grant again"
            ),
            ConfigEditError::Runner => f.write_str("a grant cannot choose the runner"),
        }
    }
}

impl std::error::Error for ConfigEditError {}

/// Ready-to-paste configuration granting each `(package key, request)`:
/// one `[<table>."<key>"]` table per entry, in the given order, with the keys
/// of [`Request::to_toml_table`]; `table` is the path of keys of the table
/// that holds the grants. The key is what a consumer
/// would write, e.g. `openssl-sys@0.9.109` (a caret requirement: it keeps
/// applying to `0.9.110`, whose new requests are checked again, but not to
/// `0.10.0`).
pub fn grant_snippet(table: &[&str], entries: &[(String, Request)]) -> String {
    let mut grants = Table::new();
    grants.set_implicit(true);
    for (key, request) in entries {
        grants.insert(key, Item::Table(request.to_toml_table()));
    }
    for key in table.iter().rev() {
        let mut parent = implicit();
        parent.insert(key, Item::Table(grants));
        grants = parent;
    }
    DocumentMut::from(grants).to_string()
}

/// A request as a list for a message, e.g. `` `run = ["cc"]`, `clock = true` ``:
/// the lines of its [`grant_snippet`] entry, each in backticks.
pub fn describe_grant(request: &Request) -> String {
    (request.to_toml_table().iter())
        .map(|(key, value)| format!("`{key} = {}`", value.to_string().trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `config` with `additions` added to `[<table>."<package_key>"]`; `table`
/// is the path of keys of the table that holds the grants.
///
/// `package_key` is written as given (`name`, `name@req` or `*`); the caller
/// checks it first. Paths are written as given too.
pub fn add_grant(
    config: &str,
    table: &[&str],
    package_key: &str,
    additions: &Request,
) -> Result<String, ConfigEditError> {
    if additions.runner.is_some() {
        return Err(ConfigEditError::Runner);
    }
    let mut document: DocumentMut = config.parse().map_err(ConfigEditError::Parse)?;
    let mut path: Vec<String> = Vec::new();
    let mut grants: &mut dyn TableLike = document.as_table_mut();
    for key in table {
        path.push((*key).to_owned());
        grants = child_table(grants, key, &path, implicit())?;
    }
    path.push(package_key.to_owned());
    let grant = child_table(grants, package_key, &path, Table::new())?;

    let new = additions.to_toml_table();
    for (key, item) in new.iter() {
        let key_path = dotted(&[&path[..], &[key.to_owned()]].concat());
        match item {
            Item::Value(Value::Array(items)) => {
                let existing = array_at(grant, key, &key_path)?;
                for item in items {
                    let present = existing.iter().any(|e| e.as_str() == item.as_str());
                    if !present {
                        let prefix = next_prefix(existing);
                        existing.push_formatted(item.clone().decorated(prefix, ""));
                    }
                }
            }
            Item::Value(Value::Boolean(_)) => set_value(grant, key, true.into(), &key_path)?,
            Item::Value(Value::InlineTable(limits)) => {
                path.push(key.to_owned());
                let mut new = Table::new();
                new.set_dotted(true);
                let table = child_table(grant, key, &path, new)?;
                for (limit, value) in limits.iter() {
                    let limit_path = dotted(&[&path[..], &[limit.to_owned()]].concat());
                    set_value(table, limit, value.clone(), &limit_path)?;
                }
                path.pop();
            }
            _ => {}
        }
    }
    // Values added to an inline table would keep the spacing of the end of
    // the table before them; inline tables are reformatted instead.
    let grant = (table.iter().copied().chain([package_key]))
        .try_fold(document.as_item_mut(), |item, key| item.get_mut(key))
        .and_then(Item::as_inline_table_mut);
    if let Some(grant) = grant {
        grant.fmt();
    }
    Ok(document.to_string())
}

/// A table without a header of its own, for the keys on the way to a grant.
fn implicit() -> Table {
    let mut table = Table::new();
    table.set_implicit(true);
    table
}

/// The spacing before an element appended to `array`: on a line of its own,
/// indented like the last one, if that one is; otherwise after a space.
fn next_prefix(array: &toml_edit::Array) -> String {
    let Some(last) = array.iter().last() else {
        return String::new();
    };
    let prefix = last.decor().prefix().and_then(|prefix| prefix.as_str());
    match prefix.and_then(|prefix| prefix.rsplit_once('\n')) {
        Some((_, indent)) => format!("\n{indent}"),
        None => " ".to_owned(),
    }
}

fn type_of(item: &Item) -> &'static str {
    match item {
        Item::None => "missing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(value) => match value {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "an inline table",
        },
    }
}

/// The table at `parent[key]`, `new` if there is none (`TableLike::insert`
/// of an inline table makes it an inline table).
fn child_table<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    path: &[String],
    new: Table,
) -> Result<&'a mut dyn TableLike, ConfigEditError> {
    if parent.get(key).is_none() {
        parent.insert(key, Item::Table(new));
    }
    let item = parent.get_mut(key);
    let found = item.as_deref().map_or("missing", type_of);
    item.and_then(Item::as_table_like_mut)
        .ok_or_else(|| ConfigEditError::WrongType {
            key: dotted(path),
            expected: "a table",
            found,
        })
}

fn array_at<'a>(
    table: &'a mut dyn TableLike,
    key: &str,
    key_path: &str,
) -> Result<&'a mut toml_edit::Array, ConfigEditError> {
    if table.get(key).is_none() {
        table.insert(key, toml_edit::value(toml_edit::Array::new()));
    }
    let item = table.get_mut(key);
    let found = item.as_deref().map_or("missing", type_of);
    let wrong = |found| ConfigEditError::WrongType {
        key: key_path.to_owned(),
        expected: "an array of strings",
        found,
    };
    let array = item
        .and_then(Item::as_array_mut)
        .ok_or_else(|| wrong(found))?;
    let not_a_string = array.iter().find(|value| !value.is_str()).cloned();
    match not_a_string {
        Some(value) => Err(wrong(type_of(&Item::Value(value)))),
        None => Ok(array),
    }
}

/// Sets `table[key]` to `value`, keeping the existing value's comments and
/// spacing; the existing value must be of the same type.
fn set_value(
    table: &mut dyn TableLike,
    key: &str,
    mut value: Value,
    key_path: &str,
) -> Result<(), ConfigEditError> {
    match table.get_mut(key) {
        Some(Item::Value(existing)) if existing.type_name() == value.type_name() => {
            *value.decor_mut() = existing.decor().clone();
            *existing = value;
            Ok(())
        }
        Some(existing) if !existing.is_none() => Err(ConfigEditError::WrongType {
            key: key_path.to_owned(),
            expected: if value.is_bool() {
                "a boolean"
            } else {
                "a string"
            },
            found: type_of(existing),
        }),
        _ => {
            table.insert(key, Item::Value(value));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{Approval, Grant, grants_for};

    fn request(text: &str) -> Request {
        Request::parse_at(text, "/ws/pkg")
    }

    fn additions(text: &str) -> Request {
        Request::parse_at(text, "")
    }

    /// Where the tests keep grants, as Cargo does.
    const TABLE: &[&str] = &["build-sandbox", "allow"];

    fn add(config: &str, key: &str, text: &str) -> String {
        add_grant(config, TABLE, key, &additions(text)).unwrap()
    }

    const CONFIG: &str = "\
# Build settings, hand-written.
[build]
jobs = 2   # keep the laptop cool

[build-sandbox]
runner = \"native\"  # see the team wiki

[build-sandbox.allow.openssl-sys]
# pkg-config finds the system OpenSSL
run = [\"pkg-config\"]   # trailing comment
clock = false

# Trailing comment at the end.
";

    #[test]
    fn creates_a_table_at_the_end_keeping_everything_else() {
        let edited = add(CONFIG, "ring@0.17", "presets = [\"cc\"]\nclock = true");
        // The comment at the end of the file stays at the end.
        let (body, end) = CONFIG.split_at(CONFIG.find("\n# Trailing").unwrap());
        assert_eq!(
            edited,
            format!(
                "{body}\n[build-sandbox.allow.\"ring@0.17\"]\npresets = [\"cc\"]\nclock = true\n{end}"
            )
        );
    }

    #[test]
    fn merges_into_the_existing_table() {
        let edited = add(
            CONFIG,
            "openssl-sys",
            "run = [\"pkg-config\", \"cc\"]\nclock = true\nread = [\"/usr/include\"]",
        );
        assert_eq!(
            edited,
            CONFIG.replace(
                "run = [\"pkg-config\"]   # trailing comment\nclock = false\n",
                "run = [\"pkg-config\", \"cc\"]   # trailing comment\nclock = true\n\
                     read = [\"/usr/include\"]\n"
            )
        );
    }

    #[test]
    fn adding_what_is_there_changes_nothing() {
        assert_eq!(add(CONFIG, "openssl-sys", "run = [\"pkg-config\"]"), CONFIG);
    }

    #[test]
    fn appends_to_multi_line_arrays_on_new_lines() {
        let config =
            "[build-sandbox.allow.foo]\nread = [\n    # headers\n    \"/usr/include\",\n]\n";
        assert_eq!(
            add(config, "foo", "read = [\"/opt/include\"]"),
            "[build-sandbox.allow.foo]\nread = [\n    # headers\n    \"/usr/include\",\n    \"/opt/include\",\n]\n"
        );
    }

    #[test]
    fn creates_the_whole_path_in_an_empty_file() {
        let edited = add("", "*", "env = [\"CC\", \"CXX\"]\nlinker-plugins = true");
        assert_eq!(
            edited,
            "[build-sandbox.allow.\"*\"]\nenv = [\"CC\", \"CXX\"]\nlinker-plugins = true\n"
        );
        let grants: toml::Table = edited.parse().unwrap();
        let value = &grants["build-sandbox"]["allow"]["*"];
        let grant = crate::Grant::from_toml("*", value, |_| "/".into()).unwrap();
        assert!(grant.request.linker_plugins);
    }

    #[test]
    fn reuses_dotted_keys() {
        let config = "build-sandbox.allow.foo.run = [\"cc\"] # why\n";
        let edited = add(config, "foo", "run = [\"ar\"]\nrandom = true");
        let parsed: toml::Table = edited.parse().unwrap();
        let foo = &parsed["build-sandbox"]["allow"]["foo"];
        assert_eq!(foo["run"].as_array().unwrap().len(), 2);
        assert_eq!(foo["random"].as_bool(), Some(true));
        assert!(edited.starts_with("build-sandbox.allow.foo.run = [\"cc\", \"ar\"] # why\n"));
        assert!(!edited.contains("[build-sandbox"), "{edited}");
    }

    #[test]
    fn reuses_inline_tables() {
        let config = "[build-sandbox.allow]\nfoo = { run = [\"cc\"] }\n";
        let edited = add(config, "foo", "clock = true");
        assert_eq!(
            edited,
            "[build-sandbox.allow]\nfoo = { run = [\"cc\"], clock = true }\n"
        );
        let edited = add(config, "bar", "clock = true");
        assert_eq!(
            edited,
            "[build-sandbox.allow]\nfoo = { run = [\"cc\"] }\n\n[build-sandbox.allow.bar]\nclock = true\n"
        );
    }

    #[test]
    fn sets_limits_in_a_table_of_their_own() {
        let edited = add("", "foo", "limits = { time = \"2m\", output = \"1MiB\" }");
        assert_eq!(
            edited,
            "[build-sandbox.allow.foo]\nlimits.time = \"120s\"\nlimits.output = \"1MiB\"\n"
        );
        let config = "[build-sandbox.allow.foo]\nlimits = { time = \"1s\" } # short\n";
        assert_eq!(
            add(config, "foo", "limits = { time = \"2s\" }"),
            "[build-sandbox.allow.foo]\nlimits = { time = \"2s\" } # short\n"
        );
    }

    #[test]
    fn wrong_types_are_errors_naming_the_key() {
        let err = |config: &str, text: &str| {
            add_grant(config, TABLE, "foo@1.2", &additions(text))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(
                "[build-sandbox.allow.\"foo@1.2\"]\nrun = \"cc\"\n",
                "run = [\"cc\"]"
            ),
            "`build-sandbox.allow.\"foo@1.2\".run` is a string, expected an array of strings\n\
             help: fix or remove `build-sandbox.allow.\"foo@1.2\".run`, then add the grant again"
        );
        assert!(
            err(
                "[build-sandbox.allow.\"foo@1.2\"]\nrun = [1]\n",
                "run = [\"cc\"]"
            )
            .starts_with("`build-sandbox.allow.\"foo@1.2\".run` is an integer, expected")
        );
        assert!(
            err(
                "[build-sandbox.allow.\"foo@1.2\"]\nclock = \"yes\"\n",
                "clock = true"
            )
            .starts_with("`build-sandbox.allow.\"foo@1.2\".clock` is a string, expected a boolean")
        );
        assert!(
            err("build-sandbox = 1\n", "clock = true")
                .starts_with("`build-sandbox` is an integer, expected a table")
        );
        assert!(
            err("[[build-sandbox.allow]]\n", "clock = true")
                .starts_with("`build-sandbox.allow` is an array of tables, expected a table")
        );
        assert!(err("[build", "clock = true").starts_with("failed to parse the configuration: "));
        let runner = Request {
            runner: Some(crate::RunnerKind::Native),
            ..Request::default()
        };
        let err = add_grant("", TABLE, "foo", &runner).unwrap_err();
        assert!(matches!(err, ConfigEditError::Runner), "{err}");
        assert_eq!(err.to_string(), "a grant cannot choose the runner");
    }

    #[test]
    fn descriptions_list_each_key() {
        let request = request("run = [\"cc\"]\nclock = true\nlimits = { time = \"2s\" }");
        assert_eq!(
            describe_grant(&request),
            "`run = [\"cc\"]`, `clock = true`, `limits = { time = \"2s\" }`"
        );
    }

    #[test]
    fn snippet_has_fixed_key_order() {
        let missing = request(
            "linker-plugins = true\nrun = [\"cc\"]\nread = [\"/usr/include\"]\nclock = true",
        );
        let snippet = grant_snippet(
            TABLE,
            &[
                ("openssl-sys@0.9.109".to_owned(), missing),
                ("ring".to_owned(), request("env = [\"CC\"]")),
            ],
        );
        assert_eq!(
            snippet,
            "[build-sandbox.allow.\"openssl-sys@0.9.109\"]\n\
             read = [\"/usr/include\"]\n\
             run = [\"cc\"]\n\
             clock = true\n\
             linker-plugins = true\n\
             \n\
             [build-sandbox.allow.ring]\n\
             env = [\"CC\"]\n"
        );
        assert_eq!(grant_snippet(TABLE, &[]), "");
    }

    #[test]
    fn snippet_round_trips_through_grants() {
        let missing = request(
            "read = [\"/usr/include\", \"/opt/sdk \\\"quoted\\\"\"]\nwrite = [\"/ws/gen\"]\n\
             env = [\"CC\", \"PROTOC_*\"]\nrun = [\"cc\", \"/usr/bin/protoc\"]\n\
             net = [\"[::1]:80\", \"example.com:443\"]\npresets = [\"cc\", \"rustc-probe\"]\n\
             clock = true\nrandom = true\nlinker-plugins = true\n\
             limits = { output = \"1000GB\" }",
        );
        let key = "openssl-sys@0.9.109".to_owned();
        let snippet = grant_snippet(TABLE, &[(key.clone(), missing.clone())]);
        let config: toml::Table = snippet.parse().unwrap();
        let allow = config["build-sandbox"]["allow"].as_table().unwrap();
        let grants: Vec<Grant> = allow
            .iter()
            .map(|(key, value)| Grant::from_toml(key, value, |_| "/elsewhere".into()).unwrap())
            .collect();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].request, missing);
        let version = |v: &str| semver::Version::parse(v).unwrap();
        let declared = missing.clone();
        let unapproved_at = |v: &str| {
            let v = version(v);
            let consumer = Approval {
                grants: grants_for(&grants, "openssl-sys", &v)
                    .map(|grant| grant.request.clone())
                    .collect(),
                ..Approval::default()
            };
            consumer.unapproved(&declared, Path::new("/ws/pkg"))
        };
        assert!(unapproved_at("0.9.109").is_empty());
        assert!(unapproved_at("0.9.110").is_empty());
        // The grant stops applying when the version leaves the requirement.
        assert_eq!(unapproved_at("0.10.0"), missing);
        assert_eq!(unapproved_at("0.9.108"), missing);
    }
}
