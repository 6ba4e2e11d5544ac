//! Cgroups: the process and memory limits of a build script's whole process tree.
//!
//! Resource limits of `setrlimit` fall short here: the kernel does not apply
//! `RLIMIT_NPROC` to the real user id 0 (root), not even in a user namespace,
//! and `RLIMIT_AS` limits each process on its own. So for each run the runner
//! creates cgroups and names them in the spec, and the helper moves itself into
//! them ([`join`]) first thing after reading it, before it starts any process;
//! init, the script and everything they start inherit them:
//!
//! * `pids`: `pids.max` is the process limit, counting every process and thread
//!   of the tree, the helper and init included. It is used whenever a writable
//!   `pids` cgroup exists, and required when Cargo runs as root.
//! * `memory`: `memory.limit_in_bytes` (v1) or `memory.max` (v2) is
//!   `limits.memory`, with swap included (`memory.memsw.limit_in_bytes`,
//!   `memory.swap.max`) where the kernel accounts for it. It is required when
//!   the policy sets `limits.memory`; `RLIMIT_AS` is then not set, so that
//!   exceeding the limit is an OOM kill the runner can report.
//!
//! A run's cgroups are children of Cargo's own cgroup, so that whatever limits
//! Cargo stays in force: `<mount>/<own path>/build-sandbox-<pid>-<n>`. The
//! hierarchy of each controller is found from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`: cgroup v1 when a `cgroup` mount has the controller,
//! cgroup v2 otherwise, where the controller must be in the own cgroup's
//! `cgroup.controllers` and enabled in its `cgroup.subtree_control`. The probe
//! enables it if needed, which cgroup v2 allows only in a cgroup without
//! processes of its own (or the root): Cargo's own cgroup usually has Cargo in
//! it, and then the controller is unavailable. The probe runs once per process
//! and creates and removes one cgroup per controller.
//!
//! The helper moves itself rather than being moved by the runner because of
//! what a move costs: moving a whole process (writing its id to `cgroup.procs`)
//! takes the kernel's global `cgroup_threadgroup_rwsem` for writing, which waits
//! for an RCU grace period, 7 to 16 ms on a 2-core machine. A thread that moves
//! itself (`0` to the v1 `tasks` file) skips that lock, in a fraction of a
//! millisecond; the helper is single-threaded (`unshare(CLONE_NEWUSER)`
//! requires it), so its only thread is the whole process. cgroup v2 moves only
//! whole processes between domain cgroups, so there the helper writes `0` to
//! `cgroup.procs` and pays for the lock. A helper that cannot move itself
//! reports the error and starts nothing.
//!
//! Without a usable cgroup, [`Plan::new`] refuses what cannot be enforced
//! otherwise (fail closed) unless the user allowed a [`Weakening`].
//!
//! After the run, the runner asks [`RunCgroups::exceeded`] whether the kernel
//! stopped the script: `oom_kill` in `memory.oom_control` (v1) or
//! `memory.events` (v2), and `max` in `pids.events` (both versions), a count of
//! the forks the limit refused. Dropping [`RunCgroups`] has a thread of the
//! process remove the cgroups, retrying while they are busy: init reports the
//! script's status before it exits, and once init is gone the kernel kills
//! the rest of the PID namespace, but the processes may take a moment to exit.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Weakening;
use crate::policy::display_size;
use crate::runner::{LimitKind, Refusal, Remedy};

/// How long dropping [`RunCgroups`] waits for a cgroup to become empty.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it sleeps between attempts.
const REMOVE_INTERVAL: Duration = Duration::from_millis(10);

/// A cgroup controller the runner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controller {
    Pids,
    Memory,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Pids => "pids",
            Controller::Memory => "memory",
        }
    }

    /// The file that sets the limit, present in every cgroup of the controller.
    fn limit_file(self, version: Version) -> &'static str {
        match (self, version) {
            (Controller::Pids, _) => "pids.max",
            (Controller::Memory, Version::V1) => "memory.limit_in_bytes",
            (Controller::Memory, Version::V2) => "memory.max",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Cargo's own cgroup for a controller: each run gets a child of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hierarchy {
    version: Version,
    own: PathBuf,
}

/// Where the cgroups of each controller go, or why there are none.
struct Support {
    pids: Result<Hierarchy, String>,
    memory: Result<Hierarchy, String>,
}

/// Probes, once per process, which controllers can be used.
fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let files = ["/proc/self/mountinfo", "/proc/self/cgroup"].map(|file| {
            fs::read_to_string(file).map_err(|e| format!("failed to read `{file}`: {e}"))
        });
        let probe = |controller| {
            let [mountinfo, cgroups] = &files;
            let hierarchy = locate(controller, mountinfo.as_ref()?, cgroups.as_ref()?)?;
            hierarchy.probe(controller)?;
            Ok(hierarchy)
        };
        Support {
            pids: probe(Controller::Pids),
            memory: probe(Controller::Memory),
        }
    })
}

/// Finds Cargo's own cgroup for `controller` from the text of
/// `/proc/self/mountinfo` and `/proc/self/cgroup`.
fn locate(controller: Controller, mountinfo: &str, cgroups: &str) -> Result<Hierarchy, String> {
    let name = controller.name();
    // `<hierarchy id>:<controllers>:<path>`; cgroup v2 is `0::<path>`.
    let cgroups = cgroups.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let _id = fields.next()?;
        Some((fields.next()?, fields.next()?))
    });
    let mut v2_path = None;
    for (controllers, path) in cgroups {
        if controllers.is_empty() {
            v2_path = Some(path);
        } else if controllers.split(',').any(|c| c == name) {
            return mount_dir(mountinfo, path, |fstype, options| {
                fstype == "cgroup" && options.split(',').any(|option| option == name)
            })
            .map(|own| Hierarchy {
                version: Version::V1,
                own,
            })
            .ok_or_else(|| format!("the `{name}` cgroup `{path}` of this process is not mounted"));
        }
    }
    let Some(path) = v2_path else {
        return Err(format!("no cgroup hierarchy has the `{name}` controller"));
    };
    mount_dir(mountinfo, path, |fstype, _| fstype == "cgroup2")
        .map(|own| Hierarchy {
            version: Version::V2,
            own,
        })
        .ok_or_else(|| {
            format!("no cgroup v1 hierarchy has the `{name}` controller and the cgroup v2 `{path}` of this process is not mounted")
        })
}

/// The directory of the cgroup `path` in the first mount that `matches` (by
/// file system type and super options) and shows it.
fn mount_dir(mountinfo: &str, path: &str, matches: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // `<id> <parent> <dev> <root> <mount point> <options> [optional...] - <type> <source> <super options>`
        let (mount, fs) = line.split_once(" - ")?;
        let mut mount = mount.split(' ').skip(3);
        let (root, point) = (unescape(mount.next()?), unescape(mount.next()?));
        let mut fs = fs.split(' ');
        let (fstype, options) = (fs.next()?, fs.nth(1)?);
        if !matches(fstype, options) {
            return None;
        }
        let relative = Path::new(path).strip_prefix(&root).ok()?;
        if !relative
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
        {
            return None;
        }
        let mut dir = PathBuf::from(point);
        dir.extend(relative.components());
        Some(dir)
    })
}

/// Undoes the octal escapes of `/proc/self/mountinfo` (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Hierarchy {
    /// Checks that runs can get a cgroup with `controller` here, by creating one.
    fn probe(&self, controller: Controller) -> Result<(), String> {
        let name = controller.name();
        let own = self.own.display();
        if self.version == Version::V2 {
            let listed = |file: &str| {
                fs::read_to_string(self.own.join(file))
                    .map(|text| text.split_whitespace().any(|c| c == name))
                    .map_err(|e| format!("failed to read `{own}/{file}`: {e}"))
            };
            if !listed("cgroup.controllers")? {
                return Err(format!(
                    "the `{name}` controller is not available in the cgroup `{own}`"
                ));
            }
            if !listed("cgroup.subtree_control")? {
                fs::write(self.own.join("cgroup.subtree_control"), format!("+{name}")).map_err(
                    |e| {
                        format!(
                            "the cgroup `{own}` cannot enable the `{name}` controller for its \
                             children ({e}); cgroup v2 allows it only in a cgroup without \
                             processes of its own"
                        )
                    },
                )?;
            }
        }
        let dir = create_child(&self.own)
            .map_err(|e| format!("failed to create a cgroup in `{own}`: {e}"))?;
        let has_limit = dir.join(controller.limit_file(self.version)).exists();
        let _ = fs::remove_dir(&dir);
        if !has_limit {
            return Err(format!(
                "the cgroups in `{own}` have no `{name}` controller"
            ));
        }
        Ok(())
    }
}

/// Creates a new cgroup below `parent`, named after this process.
fn create_child(parent: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("build-sandbox-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            // Left behind by an earlier process with the same id.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            result => return result.map(|()| dir),
        }
    }
}

/// The cgroups runs use, decided against what the system offers.
#[derive(Debug)]
pub(super) struct Plan {
    /// The `pids` hierarchy, and the limit.
    pids: Option<(Hierarchy, u64)>,
    /// The `memory` hierarchy, and the limit.
    memory: Option<(Hierarchy, u64)>,
}

impl Plan {
    /// Puts the process limit and `memory` (if any) in cgroups; refuses a limit
    /// that cannot be enforced otherwise, unless `allow_weaker` allows going
    /// without.
    pub fn new(
        processes: u64,
        memory: Option<u64>,
        allow_weaker: &BTreeSet<Weakening>,
    ) -> anyhow::Result<Plan> {
        // SAFETY: `getuid` has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        decide(support(), root, processes, memory, allow_weaker)
    }

    /// Whether a cgroup limits the memory (otherwise `RLIMIT_AS` has to).
    pub fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Creates the cgroups of one run.
    pub fn create(&self) -> anyhow::Result<RunCgroups> {
        let mut cgroups = RunCgroups {
            dirs: Vec::new(),
            pids: None,
            memory: None,
        };
        for (controller, planned) in [
            (Controller::Pids, &self.pids),
            (Controller::Memory, &self.memory),
        ] {
            let Some((hierarchy, limit)) = planned else {
                continue;
            };
            // cgroup v2 has one cgroup for both controllers.
            let existing = cgroups
                .dirs
                .iter()
                .map(|(_, dir)| dir)
                .find(|dir| dir.parent() == Some(&hierarchy.own))
                .cloned();
            let dir = match existing {
                Some(dir) => dir,
                None => {
                    let dir = create_child(&hierarchy.own).with_context(|| {
                        format!("failed to create a cgroup in `{}`", hierarchy.own.display())
                    })?;
                    cgroups.dirs.push((hierarchy.version, dir.clone()));
                    dir
                }
            };
            let limit_file = controller.limit_file(hierarchy.version);
            write(&dir, limit_file, *limit)?;
            match controller {
                Controller::Pids => cgroups.pids = Some((dir, *limit)),
                Controller::Memory => {
                    // Swap counts too, where the kernel accounts for it.
                    match hierarchy.version {
                        Version::V1 if dir.join("memory.memsw.limit_in_bytes").exists() => {
                            write(&dir, "memory.memsw.limit_in_bytes", *limit)?
                        }
                        Version::V2 if dir.join("memory.swap.max").exists() => {
                            write(&dir, "memory.swap.max", 0)?
                        }
                        _ => {}
                    }
                    cgroups.memory = Some((hierarchy.version, dir, *limit));
                }
            }
        }
        Ok(cgroups)
    }
}

/// Decides on a [`Plan`]; `root` is whether Cargo runs as the real user id 0.
fn decide(
    support: &Support,
    root: bool,
    processes: u64,
    memory: Option<u64>,
    allow_weaker: &BTreeSet<Weakening>,
) -> anyhow::Result<Plan> {
    let pids = match &support.pids {
        Ok(hierarchy) => Some((hierarchy.clone(), processes)),
        Err(why) if root && !allow_weaker.contains(&Weakening::ProcessLimit) => {
            return Err(Refusal {
                message: format!(
                    "cannot limit the number of processes: Cargo runs as root and no writable \
                     `pids` cgroup was found\n\
                     note: {why}\n\
                     note: the kernel does not apply `RLIMIT_NPROC` to root, not even in a user \
                     namespace\n\
                     help: run Cargo as another user, or in a cgroup where it can create `pids` \
                     cgroups"
                ),
                remedies: vec![Remedy::AllowWeaker {
                    weakening: Weakening::ProcessLimit,
                    purpose: "to run build scripts without a process limit",
                }],
            }
            .into());
        }
        // `RLIMIT_NPROC` limits processes, or the user allowed going without.
        Err(_) => None,
    };
    let memory = match (memory, &support.memory) {
        (None, _) => None,
        (Some(limit), Ok(hierarchy)) => Some((hierarchy.clone(), limit)),
        (Some(_), Err(_)) if allow_weaker.contains(&Weakening::MemoryLimit) => None,
        (Some(limit), Err(why)) => {
            return Err(Refusal {
                message: format!(
                    "cannot limit the memory of build scripts to {}: no writable `memory` cgroup \
                     was found\n\
                     note: {why}\n\
                     note: `limits.memory` is for the whole process tree of the script\n\
                     help: run Cargo in a cgroup where it can create `memory` cgroups",
                    display_size(limit),
                ),
                remedies: vec![Remedy::AllowWeaker {
                    weakening: Weakening::MemoryLimit,
                    purpose: "to limit the address space of each process instead",
                }],
            }
            .into());
        }
    };
    Ok(Plan { pids, memory })
}

/// Writes `value` to the file `name` of the cgroup `dir`.
fn write(dir: &Path, name: &str, value: u64) -> anyhow::Result<()> {
    let file = dir.join(name);
    fs::write(&file, value.to_string())
        .with_context(|| format!("failed to write {value} to `{}`", file.display()))
}

/// The cgroups of one run; dropping them removes them.
#[derive(Debug)]
pub(super) struct RunCgroups {
    /// Every cgroup created, in order, with its version.
    dirs: Vec<(Version, PathBuf)>,
    /// The `pids` cgroup and its limit.
    pids: Option<(PathBuf, u64)>,
    /// The `memory` cgroup, its version and its limit.
    memory: Option<(Version, PathBuf, u64)>,
}

impl RunCgroups {
    /// The files through which the helper moves itself into the cgroups of
    /// the run ([`join`]): `tasks` in cgroup v1, `cgroup.procs` in v2.
    pub fn join_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(version, dir)| match version {
                Version::V1 => dir.join("tasks"),
                Version::V2 => dir.join("cgroup.procs"),
            })
            .collect()
    }

    /// The limit the kernel enforced by stopping a process, if any: an OOM
    /// kill, or a fork refused by the process limit.
    pub fn exceeded(&self) -> Option<(LimitKind, String)> {
        if let Some((version, dir, limit)) = &self.memory {
            let events = match version {
                Version::V1 => "memory.oom_control",
                Version::V2 => "memory.events",
            };
            if read_counter(&dir.join(events), "oom_kill") > 0 {
                return Some((LimitKind::Memory, display_size(*limit)));
            }
        }
        if let Some((dir, limit)) = &self.pids
            && read_counter(&dir.join("pids.events"), "max") > 0
        {
            return Some((LimitKind::Processes, limit.to_string()));
        }
        None
    }
}

impl Drop for RunCgroups {
    fn drop(&mut self) {
        let dirs = self.dirs.drain(..).map(|(_, dir)| dir).collect();
        remove_later(dirs);
    }
}

/// Removes `dirs` on a thread of the process's own, so that no run waits
/// for the last processes of the one before to exit: init reports the
/// script's status before it exits itself.
fn remove_later(dirs: Vec<PathBuf>) {
    static REMOVER: OnceLock<Option<mpsc::Sender<Vec<PathBuf>>>> = OnceLock::new();
    let remover = REMOVER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("build-sandbox-cgroups".into())
            .spawn(move || {
                receiver
                    .into_iter()
                    .for_each(|dirs: Vec<PathBuf>| remove(&dirs))
            });
        spawned.ok().map(|_| sender)
    });
    match remover {
        Some(remover) => {
            if let Err(mpsc::SendError(dirs)) = remover.send(dirs) {
                remove(&dirs);
            }
        }
        None => remove(&dirs),
    }
}

/// Removes `dirs`, retrying while they are busy: the processes of the PID
/// namespace may still be exiting. A cgroup that stays busy is left behind:
/// it is empty once they are gone.
fn remove(dirs: &[PathBuf]) {
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    for dir in dirs {
        while let Err(e) = fs::remove_dir(dir) {
            if e.raw_os_error() != Some(libc::EBUSY) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(REMOVE_INTERVAL);
        }
    }
}

/// Moves the calling process, the helper, into the cgroups of its run, given
/// by [`RunCgroups::join_files`].
///
/// The process must be single-threaded: in cgroup v1 this moves only the
/// calling thread, which then skips the lock that a move of a whole process
/// takes (see the module documentation).
pub(super) fn join(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        fs::write(file, "0").with_context(|| {
            let dir = file.parent().unwrap_or(file);
            format!("failed to move into the cgroup `{}`", dir.display())
        })?;
    }
    Ok(())
}

/// The counter `key` of a file of `<key> <value>` lines; 0 if it cannot be read.
fn read_counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|text| counter(&text, key))
        .unwrap_or(0)
}

fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/mountinfo` of a system with cgroup v1 controllers and an
    /// unused cgroup v2 hierarchy.
    const HYBRID_MOUNTINFO: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:20 - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/8722
2:net_cls,net_prio:/
0::/
";

    #[test]
    fn cgroup_v1_is_found_per_controller() {
        let pids = locate(Controller::Pids, HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
        assert_eq!(pids.version, Version::V1);
        assert_eq!(pids.own, Path::new("/sys/fs/cgroup/pids"));
        let memory = locate(Controller::Memory, HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
        assert_eq!(memory.version, Version::V1);
        assert_eq!(
            memory.own,
            Path::new("/sys/fs/cgroup/memory/process_api/8722")
        );
    }

    #[test]
    fn cgroup_v2_is_the_fallback() {
        let mountinfo = "\
24 18 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let cgroup = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/cargo.scope\n";
        let hierarchy = locate(Controller::Pids, mountinfo, cgroup).unwrap();
        assert_eq!(hierarchy.version, Version::V2);
        assert_eq!(
            hierarchy.own,
            Path::new(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/cargo.scope"
            )
        );
        // A controller bound to no v1 hierarchy is looked for in v2.
        let hierarchy = locate(Controller::Pids, HYBRID_MOUNTINFO, "4:memory:/\n0::/a\n").unwrap();
        assert_eq!(hierarchy.own, Path::new("/sys/fs/cgroup/unified/a"));
    }

    #[test]
    fn the_mount_root_is_stripped() {
        // A container's view: its cgroup is the root of the bind mount.
        let mountinfo = "\
900 800 0:36 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
901 800 0:38 /docker/my\\040dir /mnt/cg rw - cgroup2 cgroup2 rw
";
        let hierarchy = locate(Controller::Pids, mountinfo, "8:pids:/docker/abc/build\n").unwrap();
        assert_eq!(hierarchy.own, Path::new("/sys/fs/cgroup/pids/build"));
        let hierarchy = locate(Controller::Memory, mountinfo, "0::/docker/my dir\n").unwrap();
        assert_eq!(hierarchy.own, Path::new("/mnt/cg"));

        let err = locate(Controller::Pids, mountinfo, "8:pids:/other\n").unwrap_err();
        assert_eq!(
            err,
            "the `pids` cgroup `/other` of this process is not mounted"
        );
        let err = locate(Controller::Pids, mountinfo, "8:pids:/docker/abc/../x\n").unwrap_err();
        assert_eq!(
            err,
            "the `pids` cgroup `/docker/abc/../x` of this process is not mounted"
        );
        let err = locate(Controller::Pids, "", "4:memory:/\n").unwrap_err();
        assert_eq!(err, "no cgroup hierarchy has the `pids` controller");
        let err = locate(Controller::Pids, "", "0::/a\n").unwrap_err();
        assert_eq!(
            err,
            "no cgroup v1 hierarchy has the `pids` controller and the cgroup v2 `/a` of this process \
             is not mounted"
        );
    }

    #[test]
    fn event_counters_are_read() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(counter(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), Some(1));
        assert_eq!(counter(v2, "max"), Some(12));
        assert_eq!(counter("max 0\n", "max"), Some(0));
        assert_eq!(counter("", "max"), None);
    }

    fn hierarchy(own: &str) -> Hierarchy {
        Hierarchy {
            version: Version::V1,
            own: own.into(),
        }
    }

    #[test]
    fn limits_without_cgroups_are_refused() {
        let none = Support {
            pids: Err("failed to create a cgroup in `/sys/fs/cgroup/pids`: \
                       Read-only file system (os error 30)"
                .into()),
            memory: Err("no cgroup hierarchy has the `memory` controller".into()),
        };
        let allow = |weakenings: &[Weakening]| weakenings.iter().copied().collect();

        let err = decide(&none, true, 512, None, &allow(&[])).unwrap_err();
        assert_eq!(
            err.downcast_ref::<Refusal>(),
            Some(&Refusal {
                message: "cannot limit the number of processes: Cargo runs as root and no \
                          writable `pids` cgroup was found\n\
                          note: failed to create a cgroup in `/sys/fs/cgroup/pids`: Read-only \
                          file system (os error 30)\n\
                          note: the kernel does not apply `RLIMIT_NPROC` to root, not even in \
                          a user namespace\n\
                          help: run Cargo as another user, or in a cgroup where it can create \
                          `pids` cgroups"
                    .to_owned(),
                remedies: vec![Remedy::AllowWeaker {
                    weakening: Weakening::ProcessLimit,
                    purpose: "to run build scripts without a process limit",
                }],
            })
        );
        let plan = decide(&none, true, 512, None, &allow(&[Weakening::ProcessLimit])).unwrap();
        assert!(plan.pids.is_none());
        // Not root: `RLIMIT_NPROC` limits processes.
        let plan = decide(&none, false, 512, None, &allow(&[])).unwrap();
        assert!(plan.pids.is_none() && !plan.limits_memory());

        let err = decide(&none, false, 512, Some(64 << 20), &allow(&[])).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "cannot limit the memory of build scripts to 64MiB: no writable `memory` cgroup \
                 was found\nnote: no cgroup hierarchy has the `memory` controller\n"
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with("`memory` cgroups"), "{err}");
        assert_eq!(
            err.downcast_ref::<Refusal>().unwrap().remedies,
            [Remedy::AllowWeaker {
                weakening: Weakening::MemoryLimit,
                purpose: "to limit the address space of each process instead",
            }]
        );
        let plan = decide(
            &none,
            false,
            512,
            Some(64 << 20),
            &allow(&[Weakening::MemoryLimit]),
        );
        assert!(!plan.unwrap().limits_memory());

        let all = Support {
            pids: Ok(hierarchy("/sys/fs/cgroup/pids")),
            memory: Ok(hierarchy("/sys/fs/cgroup/memory")),
        };
        let plan = decide(&all, true, 512, Some(64 << 20), &allow(&[])).unwrap();
        assert_eq!(plan.pids, Some((hierarchy("/sys/fs/cgroup/pids"), 512)));
        assert!(plan.limits_memory());
        let plan = decide(&all, true, 512, None, &allow(&[])).unwrap();
        assert!(!plan.limits_memory());
    }
}
