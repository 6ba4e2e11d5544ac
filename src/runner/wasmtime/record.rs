//! Recording what a build script tried that its sandbox does not allow.
//!
//! As under `native`, the hint for a failed script comes from what the
//! runner saw, never from the script's output (see [`Denial`]). The host
//! sees every call the guest makes, so recording is a matter of looking:
//!
//! - **Connections**: the socket address check that refuses a connection
//!   records its address. TCP is always enabled for that, with every
//!   connection and listen refused when the policy has no `net` grant (a
//!   refused socket would fail before the address is known).
//! - **Paths**: the guest finds its files through preopened directories:
//!   wasi-libc takes an absolute path to the longest preopen that is a
//!   prefix of it, and both a relative path and an absolute path outside
//!   every preopen to the package root preopened as `.` (its working
//!   directory is `/`, so it cannot tell the two apart). When an `open-at`
//!   fails, the host records the path: under the package root, the path as
//!   given, or else the absolute path it may have been. A path counts as a
//!   write if the call creates, truncates or opens for writing, outside
//!   every writable directory, and it or its directory exists on the host;
//!   as a read if it exists on the host. What is recorded is the directory
//!   that holds a file: only directories can be preopened. The host path of a directory
//!   comes from `/proc/self/fd`: elsewhere than on Linux, no path is
//!   recorded.
//!
//! What is not recorded: host name lookups without a grant (the guest gets
//! no address to connect to), and calls other than `open-at` (`stat-at`,
//! `readlink-at`, ...): a path the script only probes is no denial.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::Denial;
use crate::runner::{Denials, normalize_path};

/// What a run records, and what it needs to tell a denial.
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) denials: Denials,
    /// The package root, preopened as `.`.
    package_root: PathBuf,
    /// The directories the script may write.
    writable: Vec<PathBuf>,
}

impl Recording {
    /// `package_root` and `writable` as the host's `/proc/self/fd` shows
    /// them (canonical).
    pub(super) fn new(package_root: PathBuf, writable: Vec<PathBuf>) -> Recording {
        Recording {
            denials: Denials::default(),
            package_root,
            writable,
        }
    }

    /// Records an `open-at` of `path` under the directory `dir` that failed;
    /// `writes` if it creates, truncates or opens for writing.
    pub(super) fn open_failed(&self, dir: &File, path: &str, writes: bool) {
        let Ok(dir) = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
            return;
        };
        let mut candidates = vec![dir.join(path)];
        if dir == self.package_root {
            candidates.push(Path::new("/").join(path));
        }
        let exists = |path: &Path| path.symlink_metadata().is_ok();
        for candidate in candidates.iter().filter_map(|path| normalize_path(path)) {
            let denied = match writes {
                true => {
                    !self.writable.iter().any(|dir| candidate.starts_with(dir))
                        && (exists(&candidate) || candidate.parent().is_some_and(exists))
                }
                false => exists(&candidate),
            };
            if denied {
                // Only directories can be preopened: the grant is for the
                // directory that holds a file.
                let granted = match candidate.is_dir() {
                    true => candidate.as_path(),
                    false => candidate.parent().unwrap_or(&candidate),
                };
                if let Some(denial) = Denial::path(granted, writes) {
                    self.denials.record(denial);
                }
                return;
            }
        }
    }
}
