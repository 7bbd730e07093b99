//! The network namespace and the seccomp filter, each probe checked against the host as
//! positive control.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};

use bottle_sandbox::BottleExit;

use crate::common::{self, PROBE};

const EPERM: &str = "errno=1";

/// Runs each probe in one bottle and returns their results in order.
fn probe_in_bottle(probes: &[&[&str]]) -> Vec<String> {
    let script: String = probes
        .iter()
        .map(|args| format!("{PROBE} probe {}\n", args.join(" ")))
        .collect();
    let (exit, output) = common::run(&script);
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    let results: Vec<String> = output.lines().map(str::to_owned).collect();
    assert_eq!(results.len(), probes.len(), "{output}");
    results
}

#[test]
fn non_ip_and_raw_sockets_refused() {
    let refused: [&[&str]; 6] = [
        &["socket", "netlink", "raw"],
        &["socket", "packet", "raw"],
        &["socket", "vsock", "stream"],
        &["socket", "alg", "seqpacket"],
        &["socket", "inet", "raw"],
        &["socket", "inet6", "raw"],
    ];
    let allowed: [&[&str]; 4] = [
        &["socket", "unix", "stream"],
        &["socket", "inet", "stream"],
        &["socket", "inet6", "dgram"],
        &["socket", "unix", "dgram"],
    ];
    let probes: Vec<&[&str]> = refused.iter().chain(&allowed).copied().collect();
    let results = probe_in_bottle(&probes);
    for (args, result) in refused.iter().zip(&results) {
        assert_eq!(result, EPERM, "{args:?}");
    }
    for (args, result) in allowed.iter().zip(&results[refused.len()..]) {
        assert_eq!(result, "ok", "{args:?}");
    }
    // Positive control: any user may open a netlink socket on the host.
    assert_eq!(common::probe_on_host(&["socket", "netlink", "raw"]), "ok");
}

#[test]
fn dangerous_syscalls_refused() {
    let cases: [(&[&str], &str); 7] = [
        (&["unshare-user"], EPERM),
        (&["mount"], EPERM),
        (&["io-uring"], EPERM),
        (&["ptrace"], EPERM),
        (&["personality"], EPERM),
        (&["tiocsti"], EPERM),
        (&["clone3"], "errno=38"),
    ];
    let probes: Vec<&[&str]> = cases.iter().map(|(args, _)| *args).collect();
    let results = probe_in_bottle(&probes);
    for ((args, expected), result) in cases.iter().zip(&results) {
        assert_eq!(result, expected, "{args:?} in the bottle");
        let host = common::probe_on_host(args);
        assert_ne!(
            &host, expected,
            "positive control: {args:?} on the host gave {host}"
        );
    }
}

#[test]
fn host_loopback_unreachable() {
    let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen on the host");
    let port = server
        .local_addr()
        .expect("local address")
        .port()
        .to_string();
    assert_eq!(
        common::probe_on_host(&["connect", &port]),
        "ok",
        "positive control"
    );
    let results = probe_in_bottle(&[&["connect", &port]]);
    assert_eq!(
        results[0], "errno=111",
        "connection refused inside the bottle"
    );
}

#[test]
fn listeners_accept_bottle_connections() {
    let workspace = common::workspace();
    let mut spec = common::spec(workspace.path(), "");
    spec.listen_ports = vec![3128, 8080];
    spec.command = common::capture(&format!(
        "{PROBE} probe send 3128 ping; {PROBE} probe send 8080 second"
    ));
    let mut launched = common::launch(&spec);
    assert_eq!(launched.listeners.len(), 2);
    for listener in &launched.listeners {
        let address = listener.local_addr().expect("local address");
        assert!(address.ip().is_loopback(), "{address}");
    }

    let listeners = std::mem::take(&mut launched.listeners);
    let server = std::thread::spawn(move || {
        listeners
            .into_iter()
            .map(|listener| {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut request = String::new();
                stream
                    .read_to_string(&mut request)
                    .expect("read the request");
                stream.write_all(b"pong").expect("reply");
                request
            })
            .collect::<Vec<_>>()
    });
    let exit = launched.wait().expect("wait for the bottle");
    let requests = server.join().expect("the server thread");
    assert_eq!(
        exit,
        BottleExit::Exited(0),
        "{}",
        common::captured(workspace.path())
    );
    assert_eq!(requests, ["ping", "second"]);
    assert_eq!(
        common::captured(workspace.path())
            .lines()
            .collect::<Vec<_>>(),
        ["ok pong", "ok pong"]
    );
}
