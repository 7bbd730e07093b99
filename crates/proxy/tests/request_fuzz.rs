//! A bounded property test of request parsing: raw request bytes, assembled from valid and
//! hostile pieces and then mutated, go into the real proxy listener (or inside a TLS
//! tunnel it terminated). Whatever the bytes, the proxy must not panic, must keep
//! serving, must forward only what a route allows, must never forward the canary, and
//! must never echo a header value back to the agent.

mod common;
#[path = "common/escape.rs"]
mod escape;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Fixture, KNOWN_SECRET, prefix_rule};
use escape::{Agent, Exchange, RawSink, contains};
use proptest::prelude::*;

const PLAIN: &str = "plain.allowed.example";
const API: &str = "api.allowed.example";

/// A marker put into header values; no reply may contain it.
const ECHO_MARKER: &str = "echo-probe-61c0";

/// Counts panics anywhere in the process, spawned proxy tasks included.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts the responses the agent received, to show that the inputs were answered.
static RESPONSES: AtomicUsize = AtomicUsize::new(0);

fn method() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "GET", "POST", "PUT", "get", "CONNECT", "OPTIONS", "PRI", "G\tT",
    ])
    .prop_map(str::to_owned)
}

fn target() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "http://plain.allowed.example/ok",
        "http://plain.allowed.example/admin",
        "http://plain.allowed.example/ok/../admin",
        "http://plain.allowed.example/%2e%2e/admin",
        "http://evil.example/ok",
        "http://plain.allowed.example:8080/ok",
        "http://PLAIN.allowed.example./ok",
        "http://plain.allowed.example\\@evil.example/ok",
        "http://user@plain.allowed.example/ok",
        "http://127.0.0.1/ok",
        "http://[::ffff:127.0.0.1]/ok",
        "https://plain.allowed.example/ok",
        "/ok",
        "*",
        "plain.allowed.example:80",
        "api.allowed.example:443",
        "http://bottle.internal/",
    ])
    .prop_map(str::to_owned)
}

fn header() -> impl Strategy<Value = String> {
    let value = prop::sample::select(vec![
        format!("{ECHO_MARKER}"),
        format!("Bearer {ECHO_MARKER}"),
        format!("{ECHO_MARKER}-{KNOWN_SECRET}"),
        format!("a\r\n {ECHO_MARKER}"),
    ]);
    let name = prop::sample::select(vec![
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "X-Trace",
        "Upgrade",
        "Connection",
        "Content-Encoding",
        "Transfer-Encoding ",
        "X Bad",
    ]);
    let framing = prop::sample::select(vec![
        "Host: plain.allowed.example",
        "Host: evil.example",
        "Content-Length: 0",
        "Content-Length: 5",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        "Upgrade: h2c",
        "Connection: close",
        "Content-Encoding: gzip",
    ]);
    prop_oneof![
        (name, value).prop_map(|(name, value)| format!("{name}: {value}")),
        framing.prop_map(str::to_owned),
    ]
}

/// A request head and body, then up to four byte-level mutations.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line_end = prop::sample::select(vec!["\r\n", "\n", "\r"]);
    let body = prop::sample::select(vec![
        String::new(),
        "0\r\n\r\n".to_owned(),
        format!("5\r\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nX-Trace: {ECHO_MARKER}\r\n\r\n"),
        format!("token={KNOWN_SECRET}"),
    ]);
    let mutation = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    (
        method(),
        target(),
        prop::collection::vec(header(), 0..6),
        line_end,
        body,
        // Half of the inputs keep their pieces intact, so they reach the route checks.
        prop_oneof![Just(Vec::new()), prop::collection::vec(mutation, 1..4)],
    )
        .prop_map(|(method, target, headers, eol, body, mutations)| {
            let mut text = format!("{method} {target} HTTP/1.1{eol}");
            for header in headers {
                text.push_str(&header);
                text.push_str(eol);
            }
            text.push_str(eol);
            text.push_str(&body);
            let mut bytes = text.into_bytes();
            for (index, byte, kind) in mutations {
                if bytes.is_empty() {
                    break;
                }
                let at = index.index(bytes.len());
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    fixture: Fixture,
    _raw: RawSink,
    agent: Agent,
}

impl Harness {
    fn start() -> Harness {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (fixture, raw, agent) = runtime.block_on(async {
            let fixture = Fixture::new().await;
            let raw = RawSink::start().await;
            let mut plain = fixture.plain_route(PLAIN);
            plain.matches = vec![prefix_rule("/ok", &[])];
            let mut api = fixture.route(API);
            api.matches = vec![prefix_rule("/ok", &[])];
            let proxy = fixture.start_proxy(vec![plain, api]).await;
            let agent = Agent {
                proxy,
                raw_sink: raw.addr(),
                trusting: fixture.agent_tls(&[b"http/1.1"]),
                distrusting: fixture.upstream_ca.client_config(&[b"http/1.1"]),
                half_close: true,
            };
            (fixture, raw, agent)
        });
        Harness {
            runtime,
            fixture,
            _raw: raw,
            agent,
        }
    }

    /// Sends `send` and checks every property; returns a description of the first
    /// violation.
    fn check(&self, send: &Exchange) -> Result<(), String> {
        let before = self.fixture.requests().len();
        let reply = self.runtime.block_on(self.agent.exchange(send))?;
        RESPONSES.fetch_add(reply.responses.len(), Ordering::SeqCst);
        if contains(&reply.raw, ECHO_MARKER.as_bytes()) {
            return Err(format!(
                "the reply echoes a header value: {:?}",
                reply.responses
            ));
        }
        for record in &self.fixture.requests()[before..] {
            let routed = record.host.as_deref().is_some_and(|host| {
                host.eq_ignore_ascii_case(PLAIN) || host.eq_ignore_ascii_case(API)
            });
            if !routed || !record.path.starts_with("/ok") {
                return Err(format!(
                    "the upstream received a request no route allows: {} {:?} {}",
                    record.method, record.host, record.path
                ));
            }
            if record.contains(KNOWN_SECRET) {
                return Err("the upstream received the canary".to_owned());
            }
        }
        if PANICS.load(Ordering::SeqCst) != 0 {
            return Err("the proxy panicked".to_owned());
        }
        Ok(())
    }

    /// Checks that the proxy still forwards an allowed request.
    fn still_serving(&self) -> bool {
        let before = self.fixture.requests().len();
        let request = format!(
            "GET http://{PLAIN}/ok/alive HTTP/1.1\r\nHost: {PLAIN}\r\nConnection: close\r\n\r\n"
        );
        let mut agent = self.agent.clone();
        agent.half_close = false;
        let reply = self
            .runtime
            .block_on(agent.exchange(&Exchange::Outer(request.into_bytes())));
        reply.is_ok_and(|reply| reply.responses.first().is_some_and(|r| r.status == 200))
            && self.fixture.requests().len() == before + 1
    }
}

#[test]
fn raw_requests_never_panic_leak_or_echo() {
    let harness = Arc::new(Harness::start());
    assert!(
        harness.still_serving(),
        "positive control: the allowed request is forwarded"
    );

    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (request_bytes(), any::<bool>());
    let result = runner.run(&strategy, |(bytes, in_tunnel)| {
        let send = if in_tunnel {
            Exchange::Tunnel {
                authority: format!("{API}:443"),
                sni: Some(API.to_owned()),
                bytes,
            }
        } else {
            Exchange::Outer(bytes)
        };
        harness.check(&send).map_err(TestCaseError::fail)
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    assert!(
        harness.still_serving(),
        "the proxy stopped forwarding allowed requests"
    );
    // The inputs must be answered, or the properties above hold vacuously.
    let responses = RESPONSES.load(Ordering::SeqCst);
    assert!(
        responses >= 150,
        "only {responses} of 300 inputs got a response"
    );
}
