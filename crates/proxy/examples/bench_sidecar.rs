//! Serves the egress proxy with one TLS route on a loopback port, for `scripts/bench-proxy`.
//!
//! It runs the sidecar's own entry point ([`bottle_proxy::run_sidecar`]) with a freshly
//! minted bottle CA and the route's default DLP settings (every outbound detector, the
//! prompt-injection scan, `supervise` on a finding), and two synthetic known secrets.
//!
//! ```text
//! bench_sidecar LISTEN HOST:PORT CONNECT UPSTREAM_CA OUT_DIR
//! ```
//!
//! `LISTEN` is the proxy's `address:port`, `HOST:PORT` the route's host and port, `CONNECT` the upstream
//! `address:port` to dial for it, `UPSTREAM_CA` the PEM file the upstream's certificate
//! chains to. The bottle CA certificate (for the client's trust store) and the audit log
//! are written to `OUT_DIR`. The line `ready` is printed once the proxy serves.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use bottle_policy::Route;
use bottle_proxy::{CertificateAuthority, SidecarConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, route_host, connect, upstream_ca, out_dir] = args.as_slice() else {
        eprintln!("usage: bench_sidecar LISTEN HOST:PORT CONNECT UPSTREAM_CA OUT_DIR");
        std::process::exit(2);
    };
    let Some((host, port)) = route_host
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
    else {
        eprintln!("bench_sidecar: {route_host} is not HOST:PORT");
        std::process::exit(2);
    };
    let out_dir = PathBuf::from(out_dir);
    let ca = CertificateAuthority::generate("bottle bench CA").expect("mint the bottle CA");
    std::fs::write(out_dir.join("bottle-ca.pem"), ca.cert_pem()).expect("write the bottle CA");

    let route = Route {
        host,
        port,
        auth: None,
        matches: Vec::new(),
        websocket: false,
        passthrough: false,
        connect: Some(connect.clone()),
        upstream_ca: Some(PathBuf::from(upstream_ca)),
        dlp: Default::default(),
    };
    let config = SidecarConfig {
        slug: "bench".to_owned(),
        routes: vec![route],
        tokens: BTreeMap::new(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        ca_key_pem: ca.key_pem(),
        audit_log: out_dir.join("egress.jsonl"),
        log_level: 1,
        known_secrets: vec![
            "bench-known-secret-4f9a2c71e0".to_owned(),
            "another-bench-value-8b3d5e19".to_owned(),
        ],
        hold_timeout_secs: 1,
    };
    let listener = std::net::TcpListener::bind(listen).expect("bind the proxy port");
    let result = bottle_proxy::run_sidecar(config, vec![listener], || {
        println!("ready");
        let _ = std::io::stdout().flush();
    });
    if let Err(err) = result {
        eprintln!("bench_sidecar: {err}");
        std::process::exit(1);
    }
}
