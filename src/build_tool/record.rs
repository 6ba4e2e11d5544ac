//! What a sandboxed build script's last run was refused, kept for later.
//!
//! After every sandboxed run the embedding program makes a [`DenialRecord`]
//! from what the runner recorded it refused ([`Denial`]s, never the script's
//! output) and stores it in a directory of its own that the script cannot
//! write ([`DenialRecord::store`]): a TOML file with the package, whether the
//! run failed, the denials and the grant [`suggest_grant`] derives from them.
//! A run that passed and was refused nothing removes the file, so that it
//! always tells of the last run.
//!
//! The records outlive the build: `cargo build-sandbox learn` turns them into
//! grants and `cargo build-sandbox report --format json` shows a failed run's.
//! [`DenialRecord::load`] checks every denial again as the runner did.

use std::path::Path;

use anyhow::{Context as _, bail, format_err};
use toml_edit::{DocumentMut, Item, value};

use crate::{Denial, EffectivePolicy, Request, suggest_grant};

/// The denials of one run of a package's build script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenialRecord {
    pub package: String,
    pub version: String,
    /// Whether the run failed: the script exited unsuccessfully, hit a
    /// limit or could not be run.
    pub failed: bool,
    /// What the runner refused, in order.
    pub denials: Vec<Denial>,
    /// The grant that would have allowed what was refused, if the policy
    /// lacks any of it.
    pub grant: Option<Request>,
}

impl DenialRecord {
    /// The file a record is stored in, in the directory the caller chooses.
    pub const FILE_NAME: &str = "build-sandbox-denials.toml";

    /// The record of a run of `package`'s script with `policy` that was
    /// refused `denials`.
    pub fn new(
        package: impl Into<String>,
        version: impl Into<String>,
        failed: bool,
        policy: &EffectivePolicy,
        denials: Vec<Denial>,
    ) -> DenialRecord {
        DenialRecord {
            package: package.into(),
            version: version.into(),
            failed,
            grant: suggest_grant(policy, &denials),
            denials,
        }
    }

    /// Writes the record to `path`, or removes `path` when the run passed
    /// and was refused nothing.
    pub fn store(&self, path: &Path) -> anyhow::Result<()> {
        if !self.failed && self.denials.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("failed to remove `{}`", path.display()))
                }
                _ => Ok(()),
            };
        }
        std::fs::write(path, self.to_toml())
            .with_context(|| format!("failed to write `{}`", path.display()))
    }

    /// The record stored at `path`, if there is one.
    pub fn load(path: &Path) -> anyhow::Result<Option<DenialRecord>> {
        let text = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            read => read.with_context(|| format!("failed to read `{}`", path.display()))?,
        };
        let record = DenialRecord::from_toml(&text)
            .with_context(|| format!("failed to parse `{}`", path.display()))?;
        Ok(Some(record))
    }

    fn to_toml(&self) -> String {
        let mut document = DocumentMut::new();
        document["package"] = value(&self.package);
        document["version"] = value(&self.version);
        document["failed"] = value(self.failed);
        let denials: toml_edit::Array = self.denials.iter().map(|d| d.to_string()).collect();
        document["denials"] = value(denials);
        if let Some(grant) = &self.grant {
            document["grant"] = Item::Table(grant.to_toml_table());
        }
        document.to_string()
    }

    fn from_toml(text: &str) -> anyhow::Result<DenialRecord> {
        let table: toml::Table = text.parse()?;
        let string = |key: &str| match table.get(key) {
            Some(toml::Value::String(s)) => Ok(s.clone()),
            _ => Err(format_err!("`{key}` is not a string")),
        };
        let Some(toml::Value::Boolean(failed)) = table.get("failed") else {
            bail!("`failed` is not a boolean");
        };
        let Some(toml::Value::Array(denials)) = table.get("denials") else {
            bail!("`denials` is not an array");
        };
        let denials = (denials.iter())
            .map(|denial| match denial {
                toml::Value::String(denial) => denial.parse().map_err(anyhow::Error::msg),
                _ => bail!("`denials` holds a value that is not a string"),
            })
            .collect::<anyhow::Result<_>>()?;
        let grant = match table.get("grant") {
            None => None,
            Some(grant) => Some(
                Request::from_toml(grant)
                    .map_err(|e| format_err!("`grant.{}`: {}", e.dotted_path(), e.message))?,
            ),
        };
        Ok(DenialRecord {
            package: string("package")?,
            version: string("version")?,
            failed: *failed,
            denials,
            grant,
        })
    }
}

/// `{"failed": true, "denials": ["program cc"], "grant": {...}}`: the run and
/// what it was refused, as `report --format json` shows it (the package is
/// the entry's).
impl serde::Serialize for DenialRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Form<'a> {
            failed: bool,
            denials: Vec<String>,
            grant: &'a Option<Request>,
        }
        Form {
            failed: self.failed,
            denials: self.denials.iter().map(|d| d.to_string()).collect(),
            grant: &self.grant,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Approval, Baseline};

    fn policy() -> EffectivePolicy {
        let baseline = Baseline {
            package_root: "/src/foo".into(),
            out_dir: "/target/out".into(),
            temp_dir: "/target/tmp".into(),
            dependency_out_dirs: Default::default(),
        };
        EffectivePolicy::new(baseline, &Request::default(), &Approval::default())
    }

    fn record(denials: &[&str]) -> DenialRecord {
        let denials = denials.iter().map(|d| d.parse().unwrap()).collect();
        DenialRecord::new("foo", "1.0.0", true, &policy(), denials)
    }

    #[test]
    fn a_record_reads_back_as_stored() {
        let dir = std::env::temp_dir().join(format!("denial-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DenialRecord::FILE_NAME);
        let stored = record(&["program cc", "read /opt/sdk", "connect 10.0.0.1:443"]);
        stored.store(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "package = \"foo\"\nversion = \"1.0.0\"\nfailed = true\n\
             denials = [\"program cc\", \"read /opt/sdk\", \"connect 10.0.0.1:443\"]\n\n\
             [grant]\nread = [\"/opt/sdk\"]\nnet = [\"10.0.0.1:443\"]\npresets = [\"cc\"]\n"
        );
        assert_eq!(DenialRecord::load(&path).unwrap(), Some(stored));
        // A failed run is kept even if it was refused nothing; a run that
        // passed and was refused nothing leaves no record.
        let failed = record(&[]);
        failed.store(&path).unwrap();
        assert_eq!(DenialRecord::load(&path).unwrap(), Some(failed));
        let passed = DenialRecord {
            failed: false,
            ..record(&[])
        };
        passed.store(&path).unwrap();
        assert_eq!(DenialRecord::load(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_is_checked_when_read() {
        let text = "package = \"foo\"\nversion = \"1\"\nfailed = true\n\
                    denials = [\"read /a/../etc/shadow\"]\n";
        let error = DenialRecord::from_toml(text).unwrap_err();
        assert_eq!(error.to_string(), "invalid denial `read /a/../etc/shadow`");
    }
}
