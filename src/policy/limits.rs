//! Resource limits of a build-script run: what `limits` in a request says,
//! how they are written, and how a consumer's and a package's combine.

use std::time::Duration;

use super::PolicyError;

/// The keys of the nested `limits` table.
const LIMIT_KEYS: &[&str] = &["time", "memory", "output", "disk"];

/// A resource limit a runner enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKind {
    /// Wall-clock time (`limits.time`).
    Time,
    /// Memory (`limits.memory`).
    Memory,
    /// Combined stdout and stderr (`limits.output`).
    Output,
    /// Files in `OUT_DIR` and the temporary directory (`limits.disk`).
    Disk,
    /// Number of processes and threads (a runner default, not configurable yet).
    Processes,
}

impl LimitKind {
    /// The key under `limits` that sets this limit, e.g. `time`.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::Time => "time",
            LimitKind::Memory => "memory",
            LimitKind::Output => "output",
            LimitKind::Disk => "disk",
            LimitKind::Processes => "processes",
        }
    }

    /// The limit whose [`key`](LimitKind::key) is `key`.
    pub fn from_key(key: &str) -> Option<LimitKind> {
        [
            LimitKind::Time,
            LimitKind::Memory,
            LimitKind::Output,
            LimitKind::Disk,
            LimitKind::Processes,
        ]
        .into_iter()
        .find(|kind| kind.key() == key)
    }
}

/// Resource limits for one build-script run; `None` means the runner's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Wall-clock time.
    pub time: Option<Duration>,
    /// Memory, in bytes.
    pub memory: Option<u64>,
    /// Combined size of stdout and stderr, in bytes.
    pub output: Option<u64>,
    /// What the script keeps in `OUT_DIR` and its temporary directory, in bytes.
    pub disk: Option<u64>,
}

impl Limits {
    pub(super) fn from_toml(value: &toml::Value) -> Result<Limits, PolicyError> {
        let mut limits = Limits::default();
        for (key, value) in super::expect_table(value, &["limits"])? {
            let at = ["limits", key.as_str()];
            match key.as_str() {
                "time" => limits.time = Some(parse_duration(super::expect_str(value, &at)?, &at)?),
                "memory" => limits.memory = Some(parse_size(super::expect_str(value, &at)?, &at)?),
                "output" => limits.output = Some(parse_size(super::expect_str(value, &at)?, &at)?),
                "disk" => limits.disk = Some(parse_size(super::expect_str(value, &at)?, &at)?),
                _ => return Err(PolicyError::unknown_key(&at, LIMIT_KEYS)),
            }
        }
        Ok(limits)
    }

    pub(super) fn merge(&mut self, other: &Limits) {
        *self = other.or(self);
    }

    /// The limits a build script has when nobody sets one: its output is
    /// limited to [`DEFAULT_OUTPUT_LIMIT`] (Cargo keeps it in memory), its
    /// files to [`DEFAULT_DISK_LIMIT`]; time and memory are not limited.
    pub const BUILT_IN: Limits = Limits {
        time: None,
        memory: None,
        output: Some(DEFAULT_OUTPUT_LIMIT),
        disk: Some(DEFAULT_DISK_LIMIT),
    };

    /// Each limit of `self`, or of `fallback` where `self` has none.
    pub fn or(&self, fallback: &Limits) -> Limits {
        Limits {
            time: self.time.or(fallback.time),
            memory: self.memory.or(fallback.memory),
            output: self.output.or(fallback.output),
            disk: self.disk.or(fallback.disk),
        }
    }

    /// The consumer's limits (`self`, with [`Limits::BUILT_IN`] where unset)
    /// lowered by a package's `declared` ones: each is the smaller of the two.
    /// A package can only restrict itself. A limit that neither sets stays
    /// unset, so that the runner applies its built-in one.
    pub fn lowered_by(&self, declared: &Limits) -> Limits {
        fn lower<T: Ord + Copy>(
            consumer: Option<T>,
            built_in: Option<T>,
            declared: Option<T>,
        ) -> Option<T> {
            match (consumer.or(built_in), declared) {
                (Some(ceiling), Some(declared)) => Some(ceiling.min(declared)),
                (_, None) => consumer,
                (None, declared) => declared,
            }
        }
        let built_in = Limits::BUILT_IN;
        Limits {
            time: lower(self.time, built_in.time, declared.time),
            memory: lower(self.memory, built_in.memory, declared.memory),
            output: lower(self.output, built_in.output, declared.output),
            disk: lower(self.disk, built_in.disk, declared.disk),
        }
    }

    /// The limits of `self` that are higher than `ceiling`'s (with
    /// [`Limits::BUILT_IN`] where `ceiling` has none): what a declaration asks
    /// beyond what the consumer allows.
    pub fn above(&self, ceiling: &Limits) -> Limits {
        fn above<T: Ord + Copy>(limit: Option<T>, ceiling: Option<T>) -> Option<T> {
            limit.filter(|limit| ceiling.is_some_and(|ceiling| *limit > ceiling))
        }
        let ceiling = ceiling.or(&Limits::BUILT_IN);
        Limits {
            time: above(self.time, ceiling.time),
            memory: above(self.memory, ceiling.memory),
            output: above(self.output, ceiling.output),
            disk: above(self.disk, ceiling.disk),
        }
    }
}

/// The output limit of a build script whose policy sets none: 64 MiB of
/// stdout and stderr together.
///
/// Cargo keeps a build script's whole output in memory (and writes it to the
/// `output` file in the build directory), so without a limit a script could
/// exhaust Cargo's memory by printing. Real build scripts print kilobytes; a
/// `-vv` build of a large `cc` compilation with warnings a few megabytes. The
/// limit is far above that, and `-j` scripts at a time stay within a few
/// hundred megabytes at worst.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;

/// The disk limit of a build script whose policy sets none: 1 GiB in
/// `OUT_DIR` and its temporary directory together.
///
/// The largest `OUT_DIR`s of real build scripts hold the objects of a C
/// library they compile: tens of megabytes (44 MiB for `libgit2-sys`, the
/// largest in the self-hosted build). The limit leaves room for twenty times
/// that, and stops a script that fills the disk.
pub const DEFAULT_DISK_LIMIT: u64 = 1 << 30;

/// Writes a duration in seconds, or milliseconds if it has a fraction, e.g. `60s`.
pub(crate) fn display_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

/// Writes a size in the largest unit of `limits.memory` that divides it, e.g. `16MiB`.
pub(crate) fn display_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (1 << 30, "GiB"),
        (1_000_000_000, "GB"),
        (1 << 20, "MiB"),
        (1_000_000, "MB"),
        (1 << 10, "KiB"),
        (1_000, "KB"),
    ];
    UNITS
        .into_iter()
        .find(|(unit, _)| bytes.is_multiple_of(*unit))
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, name)| format!("{}{name}", bytes / unit),
        )
}

fn parse_duration(s: &str, at: &[&str]) -> Result<Duration, PolicyError> {
    let invalid = || {
        PolicyError::new(
            at,
            format!(
                "invalid duration `{s}`: expected a number followed by `ms`, `s`, `m` or `h`, e.g. `60s`"
            ),
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(invalid()),
    };
    if duration.is_zero() {
        return Err(PolicyError::new(
            at,
            format!("invalid duration `{s}`: must be more than zero"),
        ));
    }
    Ok(duration)
}

fn parse_size(s: &str, at: &[&str]) -> Result<u64, PolicyError> {
    let invalid = || {
        PolicyError::new(
            at,
            format!(
                "invalid size `{s}`: expected a number followed by `B`, `KiB`, `MiB`, `GiB`, \
                 `KB`, `MB` or `GB`, e.g. `512MiB`"
            ),
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim_start() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(invalid()),
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err(PolicyError::new(
            at,
            format!("invalid size `{s}`: must be more than zero"),
        )),
        Some(bytes) => Ok(bytes),
        None => Err(PolicyError::new(
            at,
            format!("invalid size `{s}`: too large"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_displayed_as_written() {
        assert_eq!(display_duration(Duration::from_secs(60)), "60s");
        assert_eq!(display_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(display_size(16 << 20), "16MiB");
        assert_eq!(display_size(1 << 30), "1GiB");
        assert_eq!(display_size(5_000_000), "5MB");
        assert_eq!(display_size(1234), "1234B");
    }
}
