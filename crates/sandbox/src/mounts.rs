//! The bottle's file system: a fresh tmpfs root with read-only binds of the host's system
//! directories and a curated `/etc`, the workspace, private tmpfs for home and `/tmp`, a
//! fresh `/proc`, a minimal `/dev`, and the spec's extra binds. The bottle then pivots
//! into it and detaches the host's tree.
//!
//! Every mount is attached through file descriptors (`open_tree`, `fsmount`,
//! `move_mount`), and every target is resolved with `RESOLVE_IN_ROOT`, so a symbolic link
//! in a bound host directory cannot send a mount outside the new root.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

use crate::SandboxSpec;
use crate::step::{Context, StepError};
use crate::sys;

/// The directory on which the new root is assembled before `pivot_root`. Only this process's mount
/// namespace sees the tmpfs over it; the bind sources were opened before it was covered.
const ASSEMBLY_POINT: &str = "/tmp";

/// Host directories bound read-only at the same path, when they exist. A symbolic link
/// (such as `/bin -> usr/bin` on merged-`/usr` systems) is recreated as the same link.
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Entries of the host's `/etc` bound read-only, when they exist. Deliberately absent:
/// `shadow`, `gshadow`, `sudoers`, `ssh` (host keys), `environment`, `resolv.conf`, and
/// package-manager configuration that may carry registry credentials. `passwd`, `group`,
/// `hosts` and `hostname` are generated.
const ETC_ENTRIES: &[&str] = &[
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "pki/tls/certs",
    "pki/ca-trust",
    "crypto-policies",
    "alternatives",
    "localtime",
    "timezone",
    "gitconfig",
    "profile",
    "profile.d",
    "bash.bashrc",
    "bashrc",
    "inputrc",
    "protocols",
    "services",
    "shells",
    "mime.types",
    "os-release",
    "lsb-release",
    "debian_version",
    "terminfo",
    "locale.alias",
    "locale.conf",
    "default/locale",
    "gai.conf",
    "host.conf",
    "perl",
    "vim",
];

/// Host device nodes bound into the bottle's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The workspace and the extra bind sources, opened before the helper switches to the
/// agent's user. A launcher running as root may keep them under root-only directories,
/// which the agent's host user could not traverse.
pub(crate) struct Sources {
    workspace: OwnedFd,
    extra: Vec<OwnedFd>,
}

/// Opens the workspace and the extra bind sources as `O_PATH` descriptors. Symbolic links
/// in the paths are followed with the launcher's rights, so the launcher must pass paths
/// that the agent cannot have replaced.
pub(crate) fn open_sources(spec: &SandboxSpec) -> Result<Sources, StepError> {
    let open = |path: &Path, flags: OFlags| {
        rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC | flags, Mode::empty())
    };
    let workspace = open(&spec.workspace, OFlags::DIRECTORY)
        .step(&format!("open the workspace {}", spec.workspace.display()))?;
    let extra = spec
        .mounts
        .iter()
        .map(|mount| {
            open(&mount.source, OFlags::empty())
                .step(&format!("open the mount source {}", mount.source.display()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Sources { workspace, extra })
}

/// Builds the bottle's root file system and pivots into it.
pub(crate) fn build_root(spec: &SandboxSpec, sources: Sources) -> Result<(), StepError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .step("make every mount private")?;

    let assembly_point = open_dir(ASSEMBLY_POINT).step("open the assembly point")?;
    let root_mount =
        fresh_mount("tmpfs", &[("mode", "0755")], nosuid_nodev()).step("create the root tmpfs")?;
    attach(&root_mount, assembly_point.as_fd()).step("mount the root tmpfs")?;
    let root = open_dir(ASSEMBLY_POINT).step("open the new root")?;

    for name in SYSTEM_DIRS {
        copy_host_entry(&root, &Path::new("/").join(name), Path::new(name))?;
    }
    build_etc(&root, spec)?;

    let workspace = make_dir(&root, "workspace")?;
    bind(sources.workspace.as_fd(), workspace.as_fd(), nosuid_nodev())
        .step("bind the workspace at /workspace")?;
    // TODO(resources): the tmpfs mounts have the kernel's default size (half of RAM each),
    // so a bottle can fill memory through them.
    mount_tmpfs(&root, "home/agent", "0700", nosuid_nodev())?;
    mount_tmpfs(&root, "tmp", "1777", nosuid_nodev())?;
    let proc_dir = make_dir(&root, "proc")?;
    let proc = fresh_mount(
        "proc",
        &[],
        nosuid_nodev() | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .step("create a proc file system for the bottle's pid namespace")?;
    attach(&proc, proc_dir.as_fd()).step("mount /proc")?;
    build_dev(&root)?;

    for (mount, source) in spec.mounts.iter().zip(&sources.extra) {
        let is_dir = rustix::fs::fstat(source)
            .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir())
            .step(&format!(
                "inspect the mount source {}",
                mount.source.display()
            ))?;
        let relative = mount.target.strip_prefix("/").unwrap_or(&mount.target);
        let target = if is_dir {
            make_dir(&root, relative)?
        } else {
            make_file(&root, relative)?
        };
        let mut attributes = nosuid_nodev();
        if mount.read_only {
            attributes |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
        bind(source.as_fd(), target.as_fd(), attributes).step(&format!(
            "bind {} at {}",
            mount.source.display(),
            mount.target.display()
        ))?;
    }

    sys::mount_setattr(
        root.as_fd(),
        false,
        MountAttrFlags::MOUNT_ATTR_RDONLY.bits().into(),
    )
    .step("make the root file system read-only")?;
    pivot_into(&root)
}

fn nosuid_nodev() -> MountAttrFlags {
    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV
}

fn open_dir(path: impl rustix::path::Arg) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Creates a detached mount of a new file system instance.
fn fresh_mount(
    fs_type: &str,
    options: &[(&str, &str)],
    attributes: MountAttrFlags,
) -> io::Result<OwnedFd> {
    let fs = rustix::mount::fsopen(fs_type, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (key, value) in options {
        rustix::mount::fsconfig_set_string(&fs, *key, *value)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        attributes,
    )?)
}

/// Attaches the detached mount `mount` on `target`.
fn attach(mount: &OwnedFd, target: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::mount::move_mount(
        mount,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?)
}

/// Binds the tree at `source` (with its submounts) on `target`, adding `attributes`. The
/// attributes can only be added: flags that the host locked on a mount stay.
fn bind(
    source: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attributes: MountAttrFlags,
) -> io::Result<()> {
    let tree = rustix::mount::open_tree(
        source,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )?;
    if !attributes.is_empty() {
        sys::mount_setattr(tree.as_fd(), true, attributes.bits().into())?;
    }
    attach(&tree, target)
}

fn mount_tmpfs(
    root: &OwnedFd,
    path: &str,
    mode: &str,
    attributes: MountAttrFlags,
) -> Result<OwnedFd, StepError> {
    let target = make_dir(root, path)?;
    let mount = fresh_mount("tmpfs", &[("mode", mode)], attributes)
        .step(&format!("create the tmpfs for /{path}"))?;
    attach(&mount, target.as_fd()).step(&format!("mount a tmpfs at /{path}"))?;
    // Reopen, so the descriptor names the tmpfs and not the directory below it.
    open_in_root(root, Path::new(path), OFlags::DIRECTORY).step(&format!("open /{path}"))
}

/// Opens `path` below `root` as `O_PATH`, resolving symbolic links as if `root` were `/`.
fn open_in_root(root: &OwnedFd, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    Ok(rustix::fs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::CLOEXEC | flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Creates the directory `path` below `root` and its missing parents; returns it opened.
fn make_dir(root: &OwnedFd, path: impl AsRef<Path>) -> Result<OwnedFd, StepError> {
    let path = path.as_ref();
    let step = || format!("create the directory /{}", path.display());
    let mut prefix = PathBuf::new();
    for component in path.components() {
        let parent = open_in_root(root, &prefix, OFlags::DIRECTORY).step(&step())?;
        prefix.push(component);
        match rustix::fs::mkdirat(&parent, component.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(error) => return Err(io::Error::from(error)).step(&step()),
        }
    }
    open_in_root(root, path, OFlags::DIRECTORY).step(&step())
}

/// Creates the empty file `path` below `root` (and its parents) unless it exists; returns
/// it opened.
fn make_file(root: &OwnedFd, path: &Path) -> Result<OwnedFd, StepError> {
    if let Ok(existing) = open_in_root(root, path, OFlags::empty()) {
        return Ok(existing);
    }
    let parent = make_dir(root, path.parent().unwrap_or(Path::new("")))?;
    let name = path.file_name().unwrap_or(path.as_os_str());
    rustix::fs::openat(
        &parent,
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .step(&format!("create the file /{}", path.display()))?;
    open_in_root(root, path, OFlags::empty()).step(&format!("open /{}", path.display()))
}

/// Writes a generated file of the bottle.
fn write_file(root: &OwnedFd, path: &str, content: &str) -> Result<(), StepError> {
    let path = Path::new(path);
    let parent = make_dir(root, path.parent().unwrap_or(Path::new("")))?;
    let name = path.file_name().unwrap_or(path.as_os_str());
    let fd = rustix::fs::openat(
        &parent,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .step(&format!("create /{}", path.display()))?;
    let mut file = std::fs::File::from(fd);
    io::Write::write_all(&mut file, content.as_bytes()).step(&format!("write /{}", path.display()))
}

/// Makes the host's `host` available at `inside` (relative to the new root): a symbolic
/// link is recreated, and a directory or file is bound read-only. A missing entry is
/// skipped.
fn copy_host_entry(root: &OwnedFd, host: &Path, inside: &Path) -> Result<(), StepError> {
    let metadata = match std::fs::symlink_metadata(host) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).step(&format!("inspect {}", host.display())),
    };
    let step = format!("bind {} read-only", host.display());
    if metadata.file_type().is_symlink() {
        let link = std::fs::read_link(host).step(&format!("read the link {}", host.display()))?;
        let parent = make_dir(root, inside.parent().unwrap_or(Path::new("")))?;
        let name = inside.file_name().unwrap_or(inside.as_os_str());
        return rustix::fs::symlinkat(link.as_path(), &parent, name)
            .map_err(io::Error::from)
            .step(&format!("recreate the link {}", host.display()));
    }
    let target = if metadata.is_dir() {
        make_dir(root, inside)?
    } else if metadata.is_file() {
        make_file(root, inside)?
    } else {
        return Ok(());
    };
    let source =
        rustix::fs::open(host, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).step(&step)?;
    bind(
        source.as_fd(),
        target.as_fd(),
        nosuid_nodev() | MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .step(&step)
}

fn build_etc(root: &OwnedFd, spec: &SandboxSpec) -> Result<(), StepError> {
    let shell = if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    write_file(
        root,
        "etc/passwd",
        &format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             agent:x:1000:1000:agent:/home/agent:{shell}\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    write_file(
        root,
        "etc/group",
        "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n",
    )?;
    write_file(
        root,
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             127.0.1.1\t{}\n",
            spec.hostname
        ),
    )?;
    write_file(root, "etc/hostname", &format!("{}\n", spec.hostname))?;
    for entry in ETC_ENTRIES {
        copy_host_entry(
            root,
            &Path::new("/etc").join(entry),
            &Path::new("etc").join(entry),
        )?;
    }
    Ok(())
}

/// Builds a tmpfs `/dev` with the host's harmless character devices bound in, a private
/// devpts instance, and `/dev/shm`.
fn build_dev(root: &OwnedFd) -> Result<(), StepError> {
    let dev = mount_tmpfs(
        root,
        "dev",
        "0755",
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = make_file(root, &Path::new("dev").join(name))?;
        let step = format!("bind {}", host.display());
        let source =
            rustix::fs::open(&host, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).step(&step)?;
        bind(
            source.as_fd(),
            target.as_fd(),
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )
        .step(&step)?;
    }

    let pts = make_dir(root, "dev/pts")?;
    let devpts = fresh_mount(
        "devpts",
        &[("ptmxmode", "0666"), ("mode", "0620")],
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .step("create a devpts instance")?;
    attach(&devpts, pts.as_fd()).step("mount /dev/pts")?;
    mount_tmpfs(
        root,
        "dev/shm",
        "1777",
        nosuid_nodev() | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )?;

    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(io::Error::from)
            .step(&format!("create the link /dev/{name}"))?;
    }
    sys::mount_setattr(
        dev.as_fd(),
        false,
        MountAttrFlags::MOUNT_ATTR_RDONLY.bits().into(),
    )
    .step("make /dev read-only")
}

/// Makes `root` the process's root directory and detaches the host's tree.
fn pivot_into(root: &OwnedFd) -> Result<(), StepError> {
    rustix::process::fchdir(root).step("enter the new root")?;
    rustix::process::pivot_root(".", ".").step("pivot_root into the new root")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).step("detach the host's file system tree")?;
    rustix::process::chdir("/").step("enter /")?;
    Ok(())
}
