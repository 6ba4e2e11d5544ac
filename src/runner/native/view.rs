//! The build script's filesystem view: only what its spec lets it use.
//!
//! init, PID 1 of the script's namespaces and root of a new mount namespace
//! owned by the script's user namespace, replaces the host's tree with a view
//! that holds the spec's paths and nothing else, much as bubblewrap does:
//!
//! 1. every mount becomes private, so nothing here propagates to the host;
//! 2. a `tmpfs` mounted on `/tmp` becomes the root (`pivot_root`), with the
//!    host's tree under `/.host` for the moment;
//! 3. each path of the spec is bound from the host's tree to the same place in
//!    the view, outer paths first: recursively, `nosuid`, `nodev` (but for
//!    device nodes such as `/dev/null`), and read-only unless the spec lets
//!    the script write it. Symbolic links on the way (`/lib` → `usr/lib`) are
//!    made again as links, so a path works under the name the script knows and
//!    lands on the same file;
//!    `OUT_DIR` and the temporary directory are bound from a size-limited
//!    `tmpfs` instead, always (the module `disk`);
//! 4. a fresh `proc` is mounted at `/proc`: it shows the processes of the
//!    script's PID namespace only (the kernel lets a user namespace mount one
//!    only while a full `proc` is visible, hence before step 5);
//! 5. the host's tree is detached and the root made read-only.
//!
//! Landlock and seccomp, applied next, stay the second layer. What the view
//! adds is what landlock does not cover: a path outside the spec does not
//! exist, so `stat`, `readlink`, `chmod`, `utimensat`, `setxattr`, inotify
//! watches and unix sockets found by path cannot reach it, and a path the
//! script may only read is on a read-only mount, which refuses those metadata
//! changes too (`EROFS`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

use super::disk::Disk;
use super::spec::{ConfinementSpec, PathAccess};
use super::sys::check;

/// Where the `tmpfs` of the view is mounted before it becomes the root.
const STAGING: &str = "/tmp";
/// Where the host's tree is, in the view, until it is detached.
const HOST: &str = "/.host";

/// Replaces the calling process's filesystem with the view of `spec`; its
/// working directory is `/` afterwards. Returns the disk of `OUT_DIR` and the
/// temporary directory, to copy back once the script is done.
pub(super) fn enter(spec: &ConfinementSpec) -> anyhow::Result<Disk> {
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .context("failed to make the mounts private")?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        Some(Path::new("tmpfs")),
        Path::new(STAGING),
        Some("tmpfs"),
        flags,
        Some("mode=0755"),
    )
    .context("failed to mount the root of the view")?;
    std::env::set_current_dir(STAGING).context("failed to enter the root of the view")?;
    fs::create_dir(&HOST[1..]).context("failed to create the mount point of the host's tree")?;
    // SAFETY: both paths are NUL-terminated strings.
    let pivot = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".host".as_ptr()) };
    check(pivot as libc::c_int).context("failed to make the view the root")?;
    std::env::set_current_dir("/").context("failed to enter the view")?;

    // Where each path lands, in order, so that a path is bound after those
    // that contain it; a path the spec names twice gets the wider access.
    let mut binds = BTreeMap::<PathBuf, PathAccess>::new();
    for (path, access) in &spec.paths {
        let resolved = recreate_links(path)
            .with_context(|| format!("failed to add `{}` to the view", path.display()))?;
        if let Some(resolved) = resolved {
            let entry = binds.entry(resolved).or_insert(*access);
            entry.write |= access.write;
            entry.execute |= access.execute;
        }
    }
    // `OUT_DIR` and the temporary directory come from the disk's `tmpfs`.
    let limit = &spec.disk;
    let [out_dir, temp_dir] = [&limit.out_dir, &limit.temp_dir].map(|dir| {
        recreate_links(dir)
            .with_context(|| format!("failed to add `{}` to the view", dir.display()))?
            .with_context(|| format!("`{}` does not exist", dir.display()))
    });
    let (out_dir, temp_dir) = (out_dir?, temp_dir?);
    let [disk_out, disk_temp] = limit.mount(&host_path(&out_dir))?;
    let source = |path: &Path| {
        for (dir, disk_dir) in [(&out_dir, disk_out), (&temp_dir, disk_temp)] {
            if let Ok(rest) = path.strip_prefix(dir) {
                return (disk_dir.join(rest), true);
            }
        }
        (host_path(path), false)
    };
    for (path, access) in &binds {
        let (source, on_disk) = source(path);
        // A path inside a bound one with as much access is there already.
        let covered = (binds.iter()).any(|(outer, outer_access)| {
            outer != path
                && path.starts_with(outer)
                && (outer_access.write || !access.write)
                && (outer_access.execute || !access.execute)
        });
        if !covered || on_disk && (path == &out_dir || path == &temp_dir) {
            bind(&source, path, *access)
                .with_context(|| format!("failed to add `{}` to the view", path.display()))?;
        }
    }
    let disk = limit.detach(&host_path(&out_dir))?;
    fs::create_dir_all("/proc").context("failed to create `/proc`")?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        Some(Path::new("proc")),
        Path::new("/proc"),
        Some("proc"),
        flags,
        None,
    )
    .context("failed to mount the build script's own `/proc`")?;

    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::umount2(c"/.host".as_ptr(), libc::MNT_DETACH) })
        .context("failed to detach the host's tree")?;
    fs::remove_dir(HOST).context("failed to remove the mount point of the host's tree")?;
    let root = Attributes {
        read_only: true,
        devices: false,
        recursive: false,
    };
    root.apply(Path::new("/"))
        .context("failed to make the root of the view read-only")?;
    Ok(disk)
}

/// Binds `source` (the host's `path`, which has no links on the way, or a
/// directory of the disk) to `path` in the view.
fn bind(source: &Path, path: &Path, access: PathAccess) -> anyhow::Result<()> {
    let metadata = fs::metadata(source)?;
    if metadata.is_dir() {
        fs::create_dir_all(path)?;
    } else if fs::symlink_metadata(path).is_err() {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::File::create(path)?;
    }
    mount(Some(source), path, None, libc::MS_BIND | libc::MS_REC, None)?;
    let file_type = metadata.file_type();
    Attributes {
        read_only: !access.write,
        // `/dev/null` and the like are device nodes, which `nodev` would make unusable.
        devices: file_type.is_char_device() || file_type.is_block_device(),
        recursive: true,
    }
    .apply(path)
}

/// Makes again, in the view, the symbolic links that `path` goes through in
/// the host's tree, and returns where it lands. `None` when it leads nowhere.
fn recreate_links(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut resolved = PathBuf::from("/");
    // The components still to walk, the next one last.
    let mut pending: Vec<PathBuf> = path.iter().rev().map(PathBuf::from).collect();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        match component.components().next() {
            Some(Component::RootDir) => resolved = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::Normal(name)) => {
                let next = resolved.join(name);
                match fs::symlink_metadata(host_path(&next)) {
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_LINKS {
                            bail!("too many levels of symbolic links");
                        }
                        let link = fs::read_link(host_path(&next))?;
                        if fs::symlink_metadata(&next).is_err() {
                            fs::create_dir_all(&resolved)?;
                            symlink(&link, &next)?;
                        }
                        pending.extend(link.iter().rev().map(PathBuf::from));
                    }
                    Ok(_) => resolved = next,
                    Err(_) => return Ok(None),
                }
            }
            _ => {}
        }
    }
    Ok(Some(resolved))
}

/// As many links as the kernel follows in one path lookup.
const MAX_LINKS: usize = 40;

/// Where `path` of the host is, in the view, until the host's tree is detached.
fn host_path(path: &Path) -> PathBuf {
    Path::new(HOST).join(path.strip_prefix("/").unwrap_or(path))
}

/// The attributes of a mount in the view: always `nosuid`.
struct Attributes {
    read_only: bool,
    /// Whether device nodes on it may be opened (`nodev` otherwise).
    devices: bool,
    /// Whether the mounts below it get them too.
    recursive: bool,
}

impl Attributes {
    fn apply(&self, path: &Path) -> anyhow::Result<()> {
        let mut attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_NOSUID,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        if self.read_only {
            attr.attr_set |= libc::MOUNT_ATTR_RDONLY;
        }
        if !self.devices {
            attr.attr_set |= libc::MOUNT_ATTR_NODEV;
        }
        let mut flags = libc::AT_SYMLINK_NOFOLLOW;
        if self.recursive {
            flags |= libc::AT_RECURSIVE;
        }
        let path = c_path(path)?;
        // SAFETY: a NUL-terminated path and a `mount_attr` of the size passed.
        let result = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                flags,
                &mut attr as *mut libc::mount_attr,
                size_of::<libc::mount_attr>(),
            )
        };
        check(result as libc::c_int).context("failed to set the attributes of a mount")?;
        Ok(())
    }
}

pub(super) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    options: Option<&str>,
) -> anyhow::Result<()> {
    let source = source.map(c_path).transpose()?;
    let target = c_path(target)?;
    let fstype = fstype.map(CString::new).transpose()?;
    let options = options.map(CString::new).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    check(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&options).cast(),
        )
    })?;
    Ok(())
}

pub(super) fn c_path(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))
}
