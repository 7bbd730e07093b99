//! Throughput of the outbound DLP scan: 1 MiB bodies of text, JSON, random base64 and
//! random binary through [`Scanner::scan`] with every detector on and a bottle's worth of
//! known secrets, reported in bytes per second.

use std::hint::black_box;

use bottle_scanner::{Detector, Scanner};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MIB: usize = 1024 * 1024;

/// Synthetic known secrets, as a launcher passes a bottle's env values and token values.
const KNOWN: &[&str] = &[
    "bench-known-secret-4f9a2c71e0",
    "another-bench-value-8b3d5e19",
    "canary-token-7f3a9c2e51aa",
    "prompted-secret-5b8e0d44c1",
    "Zq8vN3kLp0Xa7Rt2Wm5Yc1Hb6Jd9",
    "sk-test-0000000000000000000000",
];

/// A deterministic pseudo-random generator (xorshift), so every run scans the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).expect("small list");
        items[usize::try_from(self.next() % len).expect("index fits")]
    }
}

const WORDS: &[&str] = &[
    "the",
    "request",
    "proxy",
    "agent",
    "value",
    "returns",
    "configuration",
    "with",
    "and",
    "for",
    "upstream",
    "bottle",
    "connection",
    "reads",
    "a",
    "of",
    "token",
    "password",
    "data",
    "is",
    "secret",
    "keeps",
    "scan",
    "body",
    "to",
    "in",
    "line",
    "file",
    "error",
    "build",
];

/// Builds English-like prose with punctuation and line breaks.
fn text(size: usize) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        out.extend_from_slice(rng.pick(WORDS).as_bytes());
        out.push(match rng.next() % 16 {
            0 => b'\n',
            1 => b'.',
            2 => b',',
            _ => b' ',
        });
    }
    out.truncate(size);
    out
}

/// Builds a JSON array of records such as an API request carries.
fn json(size: usize) -> Vec<u8> {
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let mut out = b"[".to_vec();
    let mut id = 0u64;
    while out.len() < size {
        id += 1;
        let record = format!(
            "{{\"id\":{id},\"name\":\"{} {}\",\"enabled\":{},\"score\":{}.{},\"tags\":[\"{}\",\"{}\"],\"note\":\"{} {} {}\"}},",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.next().is_multiple_of(2),
            rng.next() % 1000,
            rng.next() % 100,
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS),
        );
        out.extend_from_slice(record.as_bytes());
    }
    out.truncate(size - 1);
    out.push(b']');
    out
}

/// Builds random bytes.
fn binary(size: usize) -> Vec<u8> {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Builds random bytes in base64, wrapped at 76 characters as MIME does.
fn base64(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        let byte = u8::try_from(rng.next() % 64).expect("below 64");
        out.push(ALPHABET[usize::from(byte)]);
        if out.len() % 77 == 76 {
            out.push(b'\n');
        }
    }
    out.truncate(size);
    out
}

fn bench_outbound_scan(c: &mut Criterion) {
    let scanner = Scanner::new(KNOWN);
    let bodies = [
        ("text", text(MIB)),
        ("json", json(MIB)),
        ("base64", base64(MIB)),
        ("binary", binary(MIB)),
    ];
    let mut group = c.benchmark_group("dlp_outbound_1mib");
    group.throughput(Throughput::Bytes(u64::try_from(MIB).expect("fits")));
    group.sample_size(20);
    for (name, body) in &bodies {
        // Every body is clean; a finding would mean the generator made a secret.
        assert!(
            scanner.scan_with(body, &Detector::ALL).is_empty(),
            "the {name} body has findings"
        );
        group.bench_function(*name, |b| {
            b.iter(|| scanner.scan_with(black_box(body), &Detector::ALL));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_outbound_scan);
criterion_main!(benches);
