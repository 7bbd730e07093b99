//! The bottle's processes die with the helper, and bottles do not share namespaces.

use std::path::Path;

use bottle_sandbox::BottleExit;

use crate::common;

/// Host PIDs of the live processes whose pid namespace link reads `namespace`. Zombies,
/// and processes whose link this user cannot read (such as the bottle's non-dumpable
/// init), are not listed.
fn processes_in(namespace: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|link| link == Path::new(namespace))
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    // The state follows the command name, which is in parentheses and may contain spaces.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("read the helper's children")
        .split_whitespace()
        .map(|p| p.parse().expect("a PID"))
        .collect()
}

#[test]
fn killing_helper_kills_bottle() {
    let workspace = common::workspace();
    let ready = common::fifo(workspace.path(), "ready");
    let script = "sleep 1000 & sleep 1000 &\n\
                  readlink /proc/self/ns/pid > /workspace/ready\n\
                  wait";
    let mut spec = common::spec(workspace.path(), script);
    spec.command = common::capture(script);
    let mut launched = common::launch(&spec);
    let namespace = common::read_fifo(&ready);

    let helper = launched.child.id();
    let init = *children_of(helper)
        .first()
        .expect("the helper has the init as child");
    let init_pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(i32::try_from(init).expect("pid")).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("open a pidfd of the init");
    let before = processes_in(&namespace);
    assert!(
        before.len() >= 3,
        "positive control: sh and two sleeps, found {before:?}"
    );

    launched.signal(libc::SIGKILL).expect("kill the helper");
    let exit = launched.wait().expect("wait for the helper");
    assert!(matches!(exit, BottleExit::HelperEnded(_)), "{exit:?}");

    // A pidfd becomes readable once the process is gone, and the init goes only after
    // the kernel has killed and reaped the rest of its pid namespace.
    let mut poll = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&init_pidfd),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one initialized pollfd; -1 waits without a timeout.
    let ready = unsafe { libc::poll(poll.as_mut_ptr(), 1, -1) };
    assert_eq!(ready, 1, "poll the init's pidfd");
    assert_eq!(
        processes_in(&namespace),
        Vec::<u32>::new(),
        "processes left in the bottle"
    );
}

#[test]
fn two_bottles_have_separate_namespaces() {
    let kinds = ["pid", "net", "mnt", "uts", "ipc", "user"];
    let script: String = kinds
        .iter()
        .map(|kind| format!("readlink /proc/self/ns/{kind}\n"))
        .chain(["exec sleep 1000\n".to_owned()])
        .collect();
    let mut bottles = Vec::new();
    for _ in 0..2 {
        let workspace = common::workspace();
        let ready = common::fifo(workspace.path(), "ready");
        let mut spec = common::spec(workspace.path(), "");
        spec.command = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("exec > /workspace/ready\n{script}"),
        ];
        let launched = common::launch(&spec);
        bottles.push((workspace, ready, launched));
    }
    // Both bottles are running now; read what each printed.
    let mut namespaces = Vec::new();
    for (_, ready, _) in &bottles {
        let file = std::fs::File::open(ready).expect("open the fifo");
        let mut lines = std::io::BufReader::new(file);
        let mut values = Vec::new();
        for _ in kinds {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut lines, &mut line).expect("read a namespace");
            values.push(line.trim().to_owned());
        }
        namespaces.push(values);
    }
    for (index, kind) in kinds.iter().enumerate() {
        let own = std::fs::read_link(format!("/proc/self/ns/{kind}")).expect("own namespace");
        assert_ne!(
            namespaces[0][index], namespaces[1][index],
            "{kind} shared by two bottles"
        );
        for bottle in &namespaces {
            assert!(bottle[index].starts_with(kind), "{bottle:?}");
            assert_ne!(
                Path::new(&bottle[index]),
                own,
                "{kind} shared with the host"
            );
        }
    }
    for (_, _, mut launched) in bottles {
        launched.signal(libc::SIGKILL).expect("kill the bottle");
        launched.wait().expect("wait for the bottle");
    }
}
