//! The restrictions the bottle's init applies to itself before it starts the agent, which
//! inherits them: resource limits, no new privileges, Landlock, an empty capability set,
//! and the seccomp filter.

use landlock::{
    ABI, Access, AccessFs, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};
use rustix::process::{Resource, Rlimit};

use crate::step::{Context, StepError};
use crate::{LandlockStatus, SandboxSpec, seccomp, sys};

/// The Landlock ABI this policy was written and tested against. Newer kernels enforce all
/// of it; older ones enforce the subset they know (best effort).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Applies every restriction, in the order the kernel requires: limits, no new
/// privileges, Landlock, capabilities, and last the seccomp filter, because it rejects
/// the system calls of the earlier steps.
pub(crate) fn apply(spec: &SandboxSpec) -> Result<LandlockStatus, StepError> {
    set_limits(spec)?;
    rustix::thread::set_no_new_privs(true).step("set no_new_privs")?;
    // The agent cannot read the init's memory or descriptors through /proc/1 while the
    // init is not dumpable, not even though both run as the same user.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .step("mark the init as not dumpable")?;
    let landlock = apply_landlock(spec)?;
    drop_capabilities()?;
    seccomp::apply().map_err(|error| StepError::new("install the seccomp filter", error))?;
    Ok(landlock)
}

fn set_limits(spec: &SandboxSpec) -> Result<(), StepError> {
    let set = |resource: Resource, value: Option<u64>, name: &str| -> Result<(), StepError> {
        let Some(value) = value else { return Ok(()) };
        let current = rustix::process::getrlimit(resource);
        // An unprivileged process cannot raise its hard limit, so stay below it.
        let value = current.maximum.map_or(value, |hard| value.min(hard));
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .step(&format!("set {name} to {value}"))
    };
    set(Resource::Core, Some(0), "RLIMIT_CORE")?;
    set(Resource::Nofile, spec.limits.open_files, "RLIMIT_NOFILE")?;
    set(Resource::Nproc, spec.limits.processes, "RLIMIT_NPROC")?;
    set(Resource::As, spec.limits.address_space, "RLIMIT_AS")?;
    Ok(())
}

/// Restricts file access to the bottle's own layout. The mount namespace already hides
/// the host; Landlock is defense in depth against a mistake in the mount layout, so a
/// kernel without Landlock does not stop the launch: the status is reported instead.
fn apply_landlock(spec: &SandboxSpec) -> Result<LandlockStatus, StepError> {
    let step = "apply the Landlock policy";
    let landlock = |error: landlock::RulesetError| StepError::new(step, error);
    let abi = LANDLOCK_ABI;
    let read_exec = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;

    let system = [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ];
    let writable = ["/workspace", "/home/agent", "/tmp", "/dev/shm"];
    let devices = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ];
    let read_only_mounts = spec
        .mounts
        .iter()
        .filter(|m| m.read_only)
        .map(|m| m.target.clone());
    let writable_mounts = spec
        .mounts
        .iter()
        .filter(|m| !m.read_only)
        .map(|m| m.target.clone());

    let status: RestrictionStatus = Ruleset::default()
        .handle_access(all)
        .map_err(landlock)?
        .scope(Scope::from_all(abi))
        .map_err(landlock)?
        .create()
        .map_err(landlock)?
        .add_rules(path_beneath_rules(["/"], AccessFs::ReadDir))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(system, read_exec))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(
            ["/proc"],
            read_exec | AccessFs::WriteFile,
        ))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(devices, device))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(["/dev/pts"], device | AccessFs::ReadDir))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(writable, all))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(read_only_mounts, read_exec))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(writable_mounts, all))
        .map_err(landlock)?
        .restrict_self()
        .map_err(landlock)?;

    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::FullyEnforced,
        RulesetStatus::PartiallyEnforced => LandlockStatus::PartiallyEnforced,
        RulesetStatus::NotEnforced => LandlockStatus::NotEnforced,
    })
}

/// Empties the bounding, ambient, inheritable, permitted and effective capability sets.
/// The agent runs as uid 1000 and no id maps to root inside the bottle, so `execve`
/// grants nothing back.
fn drop_capabilities() -> Result<(), StepError> {
    for capability in 0..64 {
        if !sys::drop_bounding_capability(capability)
            .step("drop capabilities from the bounding set")?
        {
            break;
        }
    }
    rustix::thread::clear_ambient_capability_set().step("clear the ambient capability set")?;
    let empty = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: empty,
            permitted: empty,
            inheritable: empty,
        },
    )
    .step("clear the capability sets")
}
