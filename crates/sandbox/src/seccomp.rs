//! The bottle's seccomp filter: system calls that let a process leave or widen its
//! sandbox fail with `EPERM`, and everything else is allowed. The namespaces, the empty
//! capability set and Landlock stay the main boundary. This filter removes kernel attack
//! surface and the non-IP socket families that would bypass the network namespace.

use std::collections::BTreeMap;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch, sock_filter,
};

/// Namespace flags of `clone` and `unshare`. `CLONE_NEWTIME` shares its bit with the exit
/// signal byte of `clone`, so it is checked for `unshare` only (`clone` rejects it).
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
const CLONE_NEWTIME: u64 = 0x80;

/// Socket types other than `SOCK_STREAM` and `SOCK_DGRAM`, rejected for `AF_INET` and
/// `AF_INET6`: raw IP, RDM, SCTP's `SOCK_SEQPACKET`, DCCP and the obsolete `SOCK_PACKET`.
const REJECTED_INET_TYPES: [u64; 5] = [3, 4, 5, 6, 10];

/// The low four bits of `socket`'s type argument; the rest are `SOCK_CLOEXEC` and
/// `SOCK_NONBLOCK`.
const SOCKET_TYPE_MASK: u64 = 0xf;

/// `ioctl` requests that inject input into, or reconfigure, the terminal the agent shares
/// with the user's shell.
const REJECTED_IOCTLS: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

/// `personality` values allowed: the default, 32-bit compatibility, `UNAME26` and the
/// query value `0xffffffff`. The rest (such as `ADDR_NO_RANDOMIZE`) weaken hardening.
const ALLOWED_PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// System calls rejected whatever their arguments.
fn rejected_syscalls() -> Vec<libc::c_long> {
    let mut syscalls = vec![
        libc::SYS_ptrace,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_open_by_handle_at,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_lookup_dcookie,
    ];
    #[cfg(target_arch = "x86_64")]
    syscalls.push(libc::SYS_uselib);
    syscalls
}

#[cfg(target_arch = "x86_64")]
const TARGET: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET: TargetArch = TargetArch::aarch64;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Installs the filter on the calling thread; children and `execve` inherit it.
pub(crate) fn apply() -> Result<(), seccompiler::Error> {
    let program = build()?;
    seccompiler::apply_filter(&program)
}

/// Compiles the filter.
pub(crate) fn build() -> Result<BpfProgram, seccompiler::Error> {
    let filter = SeccompFilter::new(
        rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TARGET,
    )?;
    let main: BpfProgram = filter.try_into()?;
    let mut program = prefix();
    program.extend(main);
    Ok(program)
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(arg, len, op, value)
}

fn rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    use SeccompCmpArgLen::{Dword, Qword};
    use SeccompCmpOp::{Eq, MaskedEq, Ne};

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for syscall in rejected_syscalls() {
        // An empty rule list matches every call.
        rules.insert(syscall, vec![]);
    }

    let unix = libc::AF_UNIX as u64;
    let inet = libc::AF_INET as u64;
    let inet6 = libc::AF_INET6 as u64;
    let mut socket = vec![SeccompRule::new(vec![
        condition(0, Dword, Ne, unix)?,
        condition(0, Dword, Ne, inet)?,
        condition(0, Dword, Ne, inet6)?,
    ])?];
    for family in [inet, inet6] {
        for socket_type in REJECTED_INET_TYPES {
            socket.push(SeccompRule::new(vec![
                condition(0, Dword, Eq, family)?,
                condition(1, Dword, MaskedEq(SOCKET_TYPE_MASK), socket_type)?,
            ])?);
        }
    }
    rules.insert(libc::SYS_socket, socket);
    rules.insert(
        libc::SYS_socketpair,
        vec![SeccompRule::new(vec![condition(0, Dword, Ne, unix)?])?],
    );

    let namespace_rules = |len: SeccompCmpArgLen, flags: &[u64]| {
        flags
            .iter()
            .map(|&flag| SeccompRule::new(vec![condition(0, len.clone(), MaskedEq(flag), flag)?]))
            .collect::<Result<Vec<_>, _>>()
    };
    rules.insert(libc::SYS_clone, namespace_rules(Qword, &NAMESPACE_FLAGS)?);
    let mut unshare_flags = NAMESPACE_FLAGS.to_vec();
    unshare_flags.push(CLONE_NEWTIME);
    rules.insert(libc::SYS_unshare, namespace_rules(Dword, &unshare_flags)?);

    // The kernel truncates the request to 32 bits, so compare only those.
    rules.insert(
        libc::SYS_ioctl,
        REJECTED_IOCTLS
            .iter()
            .map(|&request| SeccompRule::new(vec![condition(1, Dword, Eq, request)?]))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(
            ALLOWED_PERSONALITIES
                .iter()
                .map(|&value| condition(0, Dword, Ne, value))
                .collect::<Result<_, _>>()?,
        )?],
    );
    Ok(rules)
}

/// Builds the instructions that run before seccompiler's program. `clone3` fails with
/// `ENOSYS`, because its flags sit in memory the filter cannot read, and libc then falls
/// back to `clone`. System call numbers with bit 30 set fail with `EPERM`: on x86_64 they
/// are the x32 ABI, which would otherwise reach the same calls under other numbers.
/// Another architecture jumps straight to seccompiler's program, which kills the process.
fn prefix() -> Vec<sock_filter> {
    // Instruction codes from <linux/filter.h>: BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ
    // | BPF_K, BPF_JMP | BPF_JGE | BPF_K, BPF_JMP | BPF_JA, and BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JMP_JEQ_K: u16 = 0x15;
    const JMP_JGE_K: u16 = 0x35;
    const JMP_JA: u16 = 0x05;
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const NR_OFFSET: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;

    let statement = |code, k| sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    let clone3 = u32::try_from(libc::SYS_clone3).expect("system call numbers fit u32");
    vec![
        /* 0 */ statement(LD_W_ABS, ARCH_OFFSET),
        /* 1 */ jump(JMP_JEQ_K, AUDIT_ARCH, 0, 6), // other architecture: to 8
        /* 2 */ statement(LD_W_ABS, NR_OFFSET),
        /* 3 */ jump(JMP_JGE_K, X32_SYSCALL_BIT, 2, 0), // to 6
        /* 4 */ jump(JMP_JEQ_K, clone3, 2, 0), // to 7
        /* 5 */ statement(JMP_JA, 2), // to 8
        /* 6 */ statement(RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        /* 7 */
        statement(RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        // 8: seccompiler's program, which checks the architecture again.
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles() {
        let program = build().expect("the filter compiles");
        assert!(program.len() > 8);
        assert!(
            program.len() < 4096,
            "a BPF program has at most 4096 instructions"
        );
    }
}
