//! Network escapes that concern the sandbox rather than the proxy: UDP and QUIC, DNS to a
//! resolver of the agent's choice (UDP and TCP), IPv6, SCTP, raw and packet sockets, and
//! the capabilities to reconfigure the network. One probe script tries every attempt from
//! inside a real native bottle (launched as root) and, as the positive control, the same
//! attempts from the host against the same loopback sinks, where they must succeed.
//!
//! Bypassing the proxy over TCP with the proxy variables unset is covered by the
//! `scenario_as_root` test in `native_run.rs`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::{HostUser, Sandbox, bottle_command, run};

/// A marker the probe puts in every datagram and DNS name, so the sinks can tell its
/// traffic from anything else.
const MARKER: &str = "bottle-escape-canary-3f9a1c";

/// The probe: it writes a JSON object mapping each attempt's name to `ok` when the
/// escape worked or `blocked <error>` when it failed. Attempts that only send (UDP)
/// report `ok` when the send call succeeds, so the sink's count decides whether anything
/// arrived.
const PROBE: &str = r#"
import errno, json, socket, struct, sys

udp_port, tcp_port, v6_port = (int(arg) for arg in sys.argv[1:4])
marker, out = sys.argv[4], sys.argv[5]
results = {}

def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except Exception as err:
        results[name] = "blocked " + repr(err)

def udp_datagram():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(("datagram " + marker).encode(), ("127.0.0.1", udp_port))

def dns_query():
    labels = (marker + ".evil.example").split(".")
    name = b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(query, ("127.0.0.1", udp_port))

def quic_initial():
    # A QUIC long-header Initial packet shape, to the UDP sink.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\xc0\x00\x00\x00\x01" + marker.encode(), ("127.0.0.1", udp_port))

def dns_tcp():
    socket.create_connection(("127.0.0.1", tcp_port), timeout=5).sendall(marker.encode())

def ipv6_tcp():
    socket.create_connection(("::1", v6_port), timeout=5).sendall(marker.encode())

def sctp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.settimeout(5)
    s.connect(("127.0.0.1", tcp_port))

def raw_icmp():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()

def packet_socket():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()

def set_mark():
    # SO_MARK (36) needs CAP_NET_ADMIN; policy routing and firewall rules key on it.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, 36, 1)

def capabilities():
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
    if not effective & ((1 << 12) | (1 << 13)):
        raise PermissionError("no CAP_NET_ADMIN or CAP_NET_RAW in CapEff")

def default_route():
    routes = open("/proc/net/route").read().splitlines()[1:]
    v4 = [r for r in routes if r.split()[1] == "00000000"]
    v6 = [r for r in open("/proc/net/ipv6_route").read().splitlines()
          if r.split()[0] == "0" * 32 and r.split()[1] == "00" and r.split()[9] != "lo"]
    if not v4 and not v6:
        raise OSError("no default route")

for name, action in [
    ("udp_datagram", udp_datagram), ("dns_udp", dns_query), ("quic_initial", quic_initial),
    ("dns_tcp", dns_tcp), ("ipv6_tcp", ipv6_tcp), ("sctp", sctp), ("raw_icmp", raw_icmp),
    ("packet_socket", packet_socket), ("set_mark", set_mark), ("capabilities", capabilities),
    ("default_route", default_route),
]:
    attempt(name, action)
json.dump(results, open(out, "w"))
"#;

/// Which host sink an attempt aims at, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Udp,
    Tcp,
    Tcp6,
    None,
}

/// One attempt: its probe name, the attack it stands for, and its sink.
struct Attempt {
    name: &'static str,
    attack: &'static str,
    sink: Sink,
    /// Whether the host control can run it: SCTP needs the `sctp` kernel module, which a
    /// host may lack, so only the refusal inside the bottle is asserted for it.
    control: bool,
}

const ATTEMPTS: &[Attempt] = &[
    Attempt {
        name: "udp_datagram",
        attack: "UDP datagram to a host-side listener",
        sink: Sink::Udp,
        control: true,
    },
    Attempt {
        name: "dns_udp",
        attack: "DNS query over UDP to a resolver of the agent's choice",
        sink: Sink::Udp,
        control: true,
    },
    Attempt {
        name: "quic_initial",
        attack: "QUIC Initial packet over UDP",
        sink: Sink::Udp,
        control: true,
    },
    Attempt {
        name: "dns_tcp",
        attack: "DNS over TCP to a resolver of the agent's choice",
        sink: Sink::Tcp,
        control: true,
    },
    Attempt {
        name: "ipv6_tcp",
        attack: "TCP over IPv6 to a host-side listener",
        sink: Sink::Tcp6,
        control: true,
    },
    Attempt {
        name: "sctp",
        attack: "SCTP association",
        sink: Sink::None,
        control: false,
    },
    Attempt {
        name: "raw_icmp",
        attack: "raw ICMP socket (CAP_NET_RAW)",
        sink: Sink::None,
        control: true,
    },
    Attempt {
        name: "packet_socket",
        attack: "AF_PACKET socket (CAP_NET_RAW)",
        sink: Sink::None,
        control: true,
    },
    Attempt {
        name: "set_mark",
        attack: "SO_MARK for policy routing (CAP_NET_ADMIN)",
        sink: Sink::None,
        control: true,
    },
    Attempt {
        name: "capabilities",
        attack: "CAP_NET_ADMIN or CAP_NET_RAW held",
        sink: Sink::None,
        control: true,
    },
    Attempt {
        name: "default_route",
        attack: "a default route out of the namespace",
        sink: Sink::None,
        control: false,
    },
];

/// The host-side sinks, all on loopback.
struct Sinks {
    udp: UdpSocket,
    tcp: TcpListener,
    tcp6: TcpListener,
}

impl Sinks {
    fn start() -> Sinks {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind the UDP sink");
        udp.set_nonblocking(true).expect("nonblocking");
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind the TCP sink");
        tcp.set_nonblocking(true).expect("nonblocking");
        let tcp6 = TcpListener::bind("[::1]:0")
            .expect("bind an IPv6 loopback listener; enable IPv6 on lo to run this test");
        tcp6.set_nonblocking(true).expect("nonblocking");
        Sinks { udp, tcp, tcp6 }
    }

    fn ports(&self) -> [String; 3] {
        [
            &self.udp.local_addr(),
            &self.tcp.local_addr(),
            &self.tcp6.local_addr(),
        ]
        .map(|address| address.as_ref().expect("address").port().to_string())
    }

    /// Returns how many datagrams with the marker arrived, and how many connections
    /// each TCP sink accepted, since the last call.
    fn drain(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::from([("udp", 0), ("tcp", 0), ("tcp6", 0)]);
        let mut buffer = [0u8; 2048];
        loop {
            match self.udp.recv(&mut buffer) {
                Ok(length) => {
                    if buffer[..length]
                        .windows(MARKER.len())
                        .any(|w| w == MARKER.as_bytes())
                    {
                        *counts.get_mut("udp").expect("key") += 1;
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) => panic!("reading the UDP sink failed: {err}"),
            }
        }
        for (key, listener) in [("tcp", &self.tcp), ("tcp6", &self.tcp6)] {
            while listener.accept().is_ok() {
                *counts.get_mut(key).expect("key") += 1;
            }
        }
        counts
    }
}

fn results(path: &std::path::Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("the probe wrote no results to {}: {err}", path.display()));
    serde_json::from_str(&text).expect("probe results are JSON")
}

#[test]
fn network_escapes_blocked_inside_bottle() {
    let sandbox = Sandbox::new();
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let probe = sandbox.workspace().join("probe.py");
    fs::write(&probe, PROBE).expect("write the probe");
    let sinks = Sinks::start();
    let [udp_port, tcp_port, v6_port] = sinks.ports();
    let workspace = sandbox.workspace().display().to_string();

    let output = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &[
            "run",
            "--label",
            "net",
            "--workspace",
            &workspace,
            "--",
            "python3",
            "/workspace/probe.py",
            &udp_port,
            &tcp_port,
            &v6_port,
            MARKER,
            "/workspace/inside.json",
        ],
    ));
    assert_eq!(
        output.status.code(),
        Some(0),
        "the probe failed inside the bottle"
    );
    let inside = results(&sandbox.workspace().join("inside.json"));
    // Datagrams are delivered asynchronously, but loopback delivery is complete once
    // the sending process has exited, which `bottle run` waited for.
    let inside_counts = sinks.drain();

    let outside_path = sandbox.path("outside.json");
    let status = Command::new("/usr/bin/python3")
        .arg(&probe)
        .args([&udp_port, &tcp_port, &v6_port, MARKER])
        .arg(&outside_path)
        .status()
        .expect("run the probe on the host; install python3 if it is missing");
    assert!(status.success(), "the probe failed on the host");
    let outside = results(&outside_path);
    let outside_counts = sinks.drain();

    let mut failures = Vec::new();
    for attempt in ATTEMPTS {
        let sink_key = match attempt.sink {
            Sink::Udp => Some("udp"),
            Sink::Tcp => Some("tcp"),
            Sink::Tcp6 => Some("tcp6"),
            Sink::None => None,
        };
        let inside_result = inside.get(attempt.name).map_or("missing", String::as_str);
        let outside_result = outside.get(attempt.name).map_or("missing", String::as_str);
        // An attempt that only sends a datagram may "succeed" inside the bottle's own
        // loopback; what counts is that no datagram reached the host.
        let only_sends = attempt.sink == Sink::Udp;
        if !only_sends && !inside_result.starts_with("blocked") {
            failures.push(format!(
                "{} worked inside the bottle: {inside_result}",
                attempt.attack
            ));
        }
        if attempt.control && outside_result != "ok" {
            failures.push(format!(
                "positive control: {} failed on the host: {outside_result}",
                attempt.attack
            ));
        }
        if let Some(key) = sink_key {
            if inside_counts[key] != 0 {
                failures.push(format!(
                    "{} reached the host sink from inside",
                    attempt.attack
                ));
            }
            if attempt.control && outside_counts[key] == 0 {
                failures.push(format!(
                    "positive control: {} did not reach the host sink",
                    attempt.attack
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
