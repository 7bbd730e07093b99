//! Hostile packs and ref names sent to the gate's receive-pack endpoint by hand, as a
//! client other than git could send them. The cases are a pack with a bad trailer
//! checksum, a delta that claims a 4 GiB result, and refs whose names contain `PACK`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Client, GateHandle, World, stderr, upstream_ref};

/// Sends one HTTP/1.1 request to the gate and returns the whole response as text (the
/// binary parts lossily).
fn http(
    gate: &GateHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let address = gate.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a receive-pack exchange that updates `refs/heads/main` from `old` to `new` with
/// `pack`, after the advertisement that refreshes the mirror; returns the response.
fn receive_pack(gate: &GateHandle, old: &str, new: &str, pack: &[u8]) -> String {
    let advertisement = http(
        gate,
        "GET",
        "/widgets.git/info/refs?service=git-receive-pack",
        &[],
        b"",
    );
    assert!(advertisement.contains("200 OK"), "{advertisement}");

    let command = format!("{old} {new} refs/heads/main\0report-status\n");
    let mut body = format!("{:04x}{command}0000", command.len() + 4).into_bytes();
    body.extend_from_slice(pack);
    http(
        gate,
        "POST",
        "/widgets.git/git-receive-pack",
        &[("Content-Type", "application/x-git-receive-pack-request")],
        &body,
    )
}

/// Returns the pack of the objects in `HEAD` that `base` lacks, made by git.
fn pack_since(client: &Client, work: &Path, base: &str) -> Vec<u8> {
    let mut child = client
        .command(work)
        .args(["pack-objects", "--stdout", "--revs", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("HEAD\n^{base}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

/// Returns the SHA-1 of `data`, computed by `sha1sum`.
fn sha1(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run sha1sum ({error}); install coreutils"));
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    let hex = String::from_utf8(output.stdout).unwrap();
    (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Builds a pack with one ref-delta object against `base` (a blob of `base_size` bytes)
/// whose header claims a result of `result_size` bytes, while its one instruction inserts
/// a single byte.
fn delta_pack(base: &str, base_size: u64, result_size: u64) -> Vec<u8> {
    let mut delta = Vec::new();
    varint(base_size, &mut delta);
    varint(result_size, &mut delta);
    delta.extend_from_slice(&[1, b'x']);

    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&1u32.to_be_bytes());
    // Object header: type 7 (ref delta) and the delta's size, four bits then seven.
    let size = delta.len() as u64;
    let mut first = (7 << 4) | (size & 0x0f) as u8;
    if size >> 4 != 0 {
        first |= 0x80;
    }
    pack.push(first);
    if size >> 4 != 0 {
        varint(size >> 4, &mut pack);
    }
    pack.extend((0..20).map(|i| u8::from_str_radix(&base[2 * i..2 * i + 2], 16).unwrap()));
    pack.extend_from_slice(&zlib(&delta));
    let trailer = sha1(&pack);
    pack.extend_from_slice(&trailer);
    pack
}

#[test]
fn bad_pack_checksum_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let old = upstream_ref(&world.upstream, "refs/heads/main").unwrap();
    let new = client.commit_file(&work, "notes.txt", "plain notes\n", "Add notes");
    let pack = pack_since(&client, &work, &old);

    let mut corrupt = pack.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let response = receive_pack(&gate, &old, &new, &corrupt);
    assert!(!response.contains("unpack ok"), "{response}");
    assert!(response.contains("unpack "), "{response}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(old.clone())
    );

    // Positive control: the same exchange with the pack intact goes through.
    let response = receive_pack(&gate, &old, &new, &pack);
    assert!(response.contains("unpack ok"), "{response}");
    assert!(response.contains("ok refs/heads/main"), "{response}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), Some(new));
}

#[test]
fn oversized_delta_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let old = upstream_ref(&world.upstream, "refs/heads/main").unwrap();
    let base = client.git_ok(&work, &["rev-parse", "HEAD:README.md"]);
    let base = base.trim();
    let base_size: u64 = client
        .git_ok(&work, &["cat-file", "-s", base])
        .trim()
        .parse()
        .unwrap();

    // The object the delta claims to make is never made, so the update names a made-up id.
    let response = receive_pack(
        &gate,
        &old,
        &"1".repeat(40),
        &delta_pack(base, base_size, 4 << 30),
    );
    assert!(!response.contains("unpack ok"), "{response}");
    assert!(response.contains("unpack "), "{response}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(old.clone())
    );

    // Positive control: the gate still serves, and an ordinary push goes through.
    let new = client.commit_file(&work, "notes.txt", "plain notes\n", "Add notes");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), Some(new));
}

#[test]
fn refs_named_pack_are_ordinary_refs() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.delete = true;
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    let commit = client.commit_file(&work, "notes.txt", "plain notes\n", "Add notes");
    for name in ["refs/heads/agent/PACK", "refs/heads/JDK-PACK"] {
        client.git_ok(
            &work,
            &["push", "--quiet", "origin", &format!("HEAD:{name}")],
        );
        assert_eq!(
            upstream_ref(&world.upstream, name),
            Some(commit.clone()),
            "{name}"
        );
    }

    // A delete-only push sends no pack at all; it still goes through the policy.
    let output = client.git(&work, &["push", "origin", ":refs/heads/agent/PACK"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/agent/PACK"), None);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/JDK-PACK"),
        Some(commit),
        "the other ref is untouched"
    );
}

#[test]
fn lfs_endpoints_not_served() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));

    // git-lfs derives these from the remote URL, which the agent's git sends to the gate;
    // the gate serves none of them, so LFS objects cannot leave through it unscanned.
    let batch = br#"{"operation":"upload","objects":[{"oid":"aa","size":1}]}"#;
    for (method, path, body) in [
        ("POST", "/widgets.git/info/lfs/objects/batch", &batch[..]),
        ("POST", "/widgets.git/info/lfs/locks", b"{}"),
        ("PUT", "/widgets.git/info/lfs/objects/aa", b"x"),
    ] {
        let response = http(
            &gate,
            method,
            path,
            &[("Content-Type", "application/vnd.git-lfs+json")],
            body,
        );
        assert!(
            response.starts_with("HTTP/1.1 404"),
            "{method} {path}: {response}"
        );
    }

    // Positive control: the same server serves the smart HTTP advertisement.
    let response = http(
        &gate,
        "GET",
        "/widgets.git/info/refs?service=git-upload-pack",
        &[],
        b"",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
