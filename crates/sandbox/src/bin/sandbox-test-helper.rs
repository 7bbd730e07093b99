//! Test helper of `bottle-sandbox`. `sandbox-test-helper __sandbox-init` runs the sandbox
//! helper as `bottle __sandbox-init` does. `sandbox-test-helper probe ...` runs one of the
//! probes the tests start inside a bottle, and on the host as positive control. A probe
//! prints `ok`, or `errno=N` for a failed system call, and exits 0.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [init] if *init == bottle_sandbox::INIT_ARG => return bottle_sandbox::init_main(),
        ["probe", "socket", family, kind] => socket(family, kind),
        ["probe", "connect", port] => connect(port, None),
        ["probe", "send", port, text] => connect(port, Some(text)),
        // SAFETY: unshare takes no pointer.
        ["probe", "unshare-user"] => check(unsafe_call(|| unsafe {
            libc::unshare(libc::CLONE_NEWUSER)
        })),
        // An unknown file system type on a missing directory: on the host the call fails
        // with ENODEV or ENOENT and mounts nothing; in a bottle the filter returns EPERM.
        // SAFETY: all pointers are NUL-terminated literals or null.
        ["probe", "mount"] => check(unsafe_call(|| unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/nonexistent-bottle-probe".as_ptr(),
                c"bottle-probe-none".as_ptr(),
                0,
                std::ptr::null(),
            )
        })),
        ["probe", "io-uring"] => check(syscall(libc::SYS_io_uring_setup, 1, 0)),
        ["probe", "clone3"] => check(syscall(libc::SYS_clone3, 0, 0)),
        ["probe", "ptrace"] => check(syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME as usize, 0)),
        ["probe", "personality"] => check(syscall(libc::SYS_personality, 0x0040000, 0)),
        ["probe", "tiocsti"] => tiocsti(),
        _ => {
            eprintln!("usage: sandbox-test-helper __sandbox-init | probe NAME [ARGS]");
            return ExitCode::from(2);
        }
    };
    println!("{result}");
    ExitCode::SUCCESS
}

fn unsafe_call(call: impl FnOnce() -> libc::c_int) -> libc::c_long {
    libc::c_long::from(call())
}

fn syscall(number: libc::c_long, first: usize, second: usize) -> libc::c_long {
    // SAFETY: the probes pass null or small integer arguments; the kernel validates them
    // and a null pointer makes a call fail with EFAULT at worst.
    unsafe { libc::syscall(number, first, second, 0usize, 0usize) }
}

fn check(result: libc::c_long) -> String {
    if result == -1 {
        format!(
            "errno={}",
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        )
    } else {
        "ok".to_owned()
    }
}

fn socket(family: &str, kind: &str) -> String {
    let family = match family {
        "unix" => libc::AF_UNIX,
        "inet" => libc::AF_INET,
        "inet6" => libc::AF_INET6,
        "netlink" => libc::AF_NETLINK,
        "packet" => libc::AF_PACKET,
        "vsock" => libc::AF_VSOCK,
        "alg" => libc::AF_ALG,
        other => panic!("unknown family {other}"),
    };
    let kind = match kind {
        "stream" => libc::SOCK_STREAM,
        "dgram" => libc::SOCK_DGRAM,
        "raw" => libc::SOCK_RAW,
        "seqpacket" => libc::SOCK_SEQPACKET,
        other => panic!("unknown type {other}"),
    };
    // SAFETY: socket takes no pointer; the descriptor leaks until the probe exits.
    check(unsafe_call(|| unsafe {
        libc::socket(family, kind | libc::SOCK_CLOEXEC, 0)
    }))
}

fn connect(port: &str, text: Option<&str>) -> String {
    let port: u16 = port.parse().expect("a port number");
    match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
        Ok(mut stream) => {
            if let Some(text) = text {
                stream
                    .write_all(text.as_bytes())
                    .expect("write to the listener");
                stream
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shut down the write half");
                let mut reply = String::new();
                stream.read_to_string(&mut reply).expect("read the reply");
                return format!("ok {reply}");
            }
            "ok".to_owned()
        }
        Err(error) => format!("errno={}", error.raw_os_error().unwrap_or(0)),
    }
}

fn tiocsti() -> String {
    // /dev/null is no terminal: without the filter the call fails with ENOTTY, with it
    // EPERM, and it can never inject input into a real terminal.
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    let byte: libc::c_char = 0;
    // SAFETY: TIOCSTI reads one byte from the pointer, which points to a live byte.
    check(unsafe_call(|| unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&null),
            libc::TIOCSTI,
            &raw const byte,
        )
    }))
}
