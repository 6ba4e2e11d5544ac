//! `limits.disk`: `OUT_DIR` and the temporary directory on one size-limited `tmpfs`.
//!
//! The kernel enforces the limit: while the view is built (see the module
//! `view`), init mounts a `tmpfs` of the limit's size, copies the host's
//! `OUT_DIR` into it (a script sees what its last run left, as without a
//! sandbox), and binds one directory of it in place of `OUT_DIR` and another
//! in place of the temporary directory. A write past the limit fails with
//! `ENOSPC` (`ENOSPC` too once the files number the limit divided by 4 KiB,
//! the smallest a file's data takes). The `tmpfs` itself is then unmounted
//! from the view; only the two binds remain, so the script cannot see where
//! they come from.
//!
//! When the script has exited, init kills what is left of its processes, so
//! that nothing changes the files any more, and copies the `tmpfs`'s `OUT_DIR`
//! back over the host's: directories, regular files and symbolic links with
//! their permissions (never the set-user-ID bits) and times, hard links
//! between them kept. Named pipes, sockets and device nodes are left out. The
//! temporary directory is dropped with the `tmpfs`.
//!
//! Nothing is followed while copying: links are copied as links, and every
//! file is checked to be what it was listed as. The host's `OUT_DIR` is
//! reached through a descriptor opened before the host's tree was detached.
//!
//! The `tmpfs` lives in memory: its pages count towards `limits.memory` of the
//! script's cgroup as well.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Where the `tmpfs` is mounted in the view while it is filled.
const MOUNT_POINT: &str = "/.disk";
/// Its directory bound in place of `OUT_DIR`.
const OUT: &str = "/.disk/out";
/// Its directory bound in place of the temporary directory.
const TEMP: &str = "/.disk/tmp";
/// What a file's data takes at least, for the number of files allowed.
const BLOCK: u64 = 4096;
/// Free space below which the `tmpfs` counts as full: less than the smallest
/// write most programs retry after a short one.
const FULL_BELOW: u64 = 64 << 10;

/// The disk limit of a run, and the directories it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DiskLimit {
    /// The size of the `tmpfs`, in bytes.
    pub bytes: u64,
    /// `OUT_DIR`, copied in and back.
    pub out_dir: PathBuf,
    /// The temporary directory, empty at the start.
    pub temp_dir: PathBuf,
}

/// The `tmpfs` of a run, once mounted and filled.
pub(super) struct Disk {
    /// Its root, after it is unmounted from the view.
    root: OwnedFd,
    /// The host's `OUT_DIR`.
    host_out: OwnedFd,
}

impl DiskLimit {
    /// Mounts the `tmpfs` and copies `host_out_dir` (the host's `OUT_DIR`, as
    /// reached in the view) into it. Returns the sources to bind in place of
    /// `OUT_DIR` and of the temporary directory.
    pub(super) fn mount(&self, host_out_dir: &Path) -> anyhow::Result<[&'static Path; 2]> {
        fs::create_dir(MOUNT_POINT).context("failed to create the mount point of the disk")?;
        let inodes = (self.bytes / BLOCK).max(64);
        let options = format!("size={},nr_inodes={inodes},mode=0700", self.bytes);
        super::view::mount(
            Some(Path::new("tmpfs")),
            Path::new(MOUNT_POINT),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&options),
        )
        .context("failed to mount the build script's disk")?;
        fs::create_dir(TEMP).context("failed to create the temporary directory")?;
        fs::create_dir(OUT).context("failed to create `OUT_DIR`")?;
        copy_tree(host_out_dir, Path::new(OUT)).context("failed to copy `OUT_DIR` in")?;
        Ok([Path::new(OUT), Path::new(TEMP)])
    }

    /// Takes the `tmpfs` out of the view once its directories are bound,
    /// keeping what copying back needs.
    pub(super) fn detach(&self, host_out_dir: &Path) -> anyhow::Result<Disk> {
        let disk = Disk {
            root: open_dir(Path::new(MOUNT_POINT))?,
            host_out: open_dir(host_out_dir)
                .with_context(|| format!("failed to open `{}`", self.out_dir.display()))?,
        };
        // SAFETY: a NUL-terminated path.
        super::sys::check(unsafe { libc::umount2(c"/.disk".as_ptr(), libc::MNT_DETACH) })
            .context("failed to unmount the build script's disk from the view")?;
        fs::remove_dir(MOUNT_POINT).context("failed to remove the mount point of the disk")?;
        Ok(disk)
    }
}

impl Disk {
    /// Whether the `tmpfs` is (almost) full, of data or of files.
    pub(super) fn is_full(&self) -> bool {
        // SAFETY: a descriptor this process owns and a `statvfs` to fill.
        let mut stat = unsafe { std::mem::zeroed::<libc::statvfs>() };
        if unsafe { libc::fstatvfs(self.root.as_raw_fd(), &mut stat) } != 0 {
            return false;
        }
        (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64) < FULL_BELOW
            || stat.f_favail == 0
    }

    /// Replaces the host's `OUT_DIR`'s contents with the `tmpfs`'s.
    pub(super) fn copy_back(&self) -> anyhow::Result<()> {
        let host_out = fd_path(&self.host_out);
        for entry in fs::read_dir(&host_out).context("failed to list the old `OUT_DIR`")? {
            let path = entry?.path();
            if fs::symlink_metadata(&path)?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .with_context(|| format!("failed to remove `{}`", path.display()))?;
        }
        copy_tree(&fd_path(&self.root).join("out"), &host_out)
            .context("failed to copy `OUT_DIR` back")
    }
}

/// Copies what is in the directory `from` into the empty directory `to`.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    copy_entries(from, to, &mut HashMap::new())?;
    let metadata = fs::symlink_metadata(from)?;
    set_times_and_mode(to, &metadata)
}

fn copy_entries(
    from: &Path,
    to: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let metadata = fs::symlink_metadata(&source)?;
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            fs::create_dir(&target)?;
            copy_entries(&source, &target, links)?;
        } else if file_type.is_symlink() {
            symlink(fs::read_link(&source)?, &target)?;
        } else if file_type.is_file() {
            let id = (metadata.dev(), metadata.ino());
            if metadata.nlink() > 1 {
                if let Some(first) = links.get(&id) {
                    fs::hard_link(first, &target)?;
                    continue;
                }
                links.insert(id, target.clone());
            }
            copy_file(&source, &target)?;
        } else {
            continue;
        }
        set_times_and_mode(&target, &metadata)?;
    }
    Ok(())
}

/// Copies a regular file's bytes, refusing anything that is no longer one.
fn copy_file(source: &Path, target: &Path) -> io::Result<()> {
    let mut from = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)?;
    if !from.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "`{}` is no longer a regular file",
            source.display()
        )));
    }
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)?;
    io::copy(&mut from, &mut to)?;
    Ok(())
}

/// Gives `path` the times and permissions (without set-user-ID, set-group-ID
/// and sticky bits) of `metadata`; a link keeps its own permissions.
fn set_times_and_mode(path: &Path, metadata: &fs::Metadata) -> io::Result<()> {
    if !metadata.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(metadata.mode() & 0o777))?;
    }
    let times = [
        libc::timespec {
            tv_sec: metadata.atime() as libc::time_t,
            tv_nsec: metadata.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: metadata.mtime() as libc::time_t,
            tv_nsec: metadata.mtime_nsec() as _,
        },
    ];
    let path = super::view::c_path(path).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path and two timestamps.
    let result = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    super::sys::check(result)
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    Ok(dir.into())
}

/// The path of an open directory, which works when no other path reaches it.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
