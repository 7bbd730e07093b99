//! Compressed and encoded content pushed through the gate with real git. Bzip2, xz, zstd
//! and raw zlib blobs, PNG chunks and jar members are decoded and scanned, and
//! undecodable ones are rejected. Base64 of base64 is decoded, and a gzip bomb posted to
//! the smart HTTP endpoint gets a 4xx.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::{Client, GateHandle, World, fake_github_token, stderr, upstream_ref};

/// Commits `contents` at `path`, pushes, and returns the push's output. The commit is
/// dropped again when the push fails, so the next case starts from the same tip.
fn push_file(client: &Client, work: &Path, path: &str, contents: &[u8]) -> std::process::Output {
    std::fs::write(work.join(path), contents).unwrap();
    client.git_ok(work, &["add", "--", path]);
    client.git_ok(work, &["commit", "--quiet", "-m", "Add a file"]);
    let output = client.git(work, &["push", "origin", "main"]);
    if !output.status.success() {
        client.git_ok(work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    }
    output
}

/// Compresses `data` with a command-line tool that writes to stdout.
fn compress_with(tool: &str, package: &str, data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(tool)
        .args(["-c", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {tool} ({error}); install {package}"));
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{tool} failed");
    output.stdout
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    compress_with("bzip2", "bzip2", data)
}

fn xz(data: &[u8]) -> Vec<u8> {
    compress_with("xz", "xz-utils", data)
}

fn zstd(data: &[u8]) -> Vec<u8> {
    compress_with("zstd", "zstd", data)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Varied text with a token on its last line, so that the compressors code the token's
/// characters rather than store them.
fn secret_text() -> Vec<u8> {
    let mut text = clean_text();
    text.extend_from_slice(format!("TOKEN={}\n", fake_github_token()).as_bytes());
    text
}

fn clean_text() -> Vec<u8> {
    (0..200)
        .map(|index| format!("setting_{index} = {}\n", index * 7919 % 1000))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn compressed_blobs_are_scanned() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let token = fake_github_token();

    type Compress = fn(&[u8]) -> Vec<u8>;
    let formats: [(&str, &str, Compress); 4] = [
        ("settings.env.bz2", "<bzip2>", bzip2),
        ("settings.env.xz", "<xz>", xz),
        ("settings.env.zst", "<zstd>", zstd),
        ("settings.zlib", "<zlib>", zlib),
    ];
    for (name, member, compress) in formats {
        let compressed = compress(&secret_text());
        assert!(
            !compressed
                .windows(token.len())
                .any(|window| window == token.as_bytes()),
            "{name} must hide the token from a raw scan for this test to mean anything"
        );
        let before = upstream_ref(&world.upstream, "refs/heads/main");
        let output = push_file(&client, &work, name, &compressed);
        let text = stderr(&output);
        assert!(!output.status.success(), "{name}: {text}");
        assert!(
            text.contains(&format!("file {name}!{member}")),
            "{name}: {text}"
        );
        assert!(text.contains("rule github-pat"), "{name}: {text}");
        assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

        // Positive control: the same format without the token goes through.
        let output = push_file(&client, &work, name, &compress(&clean_text()));
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(
            upstream_ref(&world.upstream, "refs/heads/main"),
            Some(client.head(&work)),
            "{name}"
        );
    }
}

#[test]
fn undecodable_compressed_blobs_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    type Compress = fn(&[u8]) -> Vec<u8>;
    let formats: [(&str, &str, Compress); 4] = [
        ("broken.bz2", "bzip2 data", bzip2),
        ("broken.xz", "xz data", xz),
        ("broken.zst", "zstd data", zstd),
        ("broken.zlib", "zlib data", zlib),
    ];
    for (name, reason, compress) in formats {
        // A stream cut in half: the start decodes, the rest cannot.
        let mut broken = compress(&clean_text());
        broken.truncate(broken.len() / 2);
        let output = push_file(&client, &work, name, &broken);
        let text = stderr(&output);
        assert!(!output.status.success(), "{name}: {text}");
        assert!(text.contains(reason), "{name}: {text}");
        assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
    }

    // Positive control: text that starts like a zlib header (`x^`) is plain text.
    let output = push_file(&client, &work, "notes.txt", b"x^2 + y^2 = r^2\n");
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn nested_base64_is_decoded() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let once = base64(format!("TOKEN={}\n", fake_github_token()).as_bytes());
    let twice = base64(once.as_bytes());
    let output = push_file(
        &client,
        &work,
        "blob.txt",
        format!("data: {twice}\n").as_bytes(),
    );
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("file blob.txt, line 1: rule github-pat"),
        "{text}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: base64 of base64 of ordinary text goes through.
    let clean = base64(base64(b"just some ordinary configuration text\n").as_bytes());
    let output = push_file(
        &client,
        &work,
        "blob.txt",
        format!("data: {clean}\n").as_bytes(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let value = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[(value >> (18 - 6 * index)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends one HTTP/1.1 POST to the gate and returns the status code and the body.
fn post(gate: &GateHandle, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let address = gate.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The gate may respond before it has read the whole body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_bomb_request_gets_4xx() {
    let world = World::new();
    let repo = world.repo();
    let mut config = world.config("state", repo.clone(), vec![]);
    config.limits.max_input_bytes = 1 << 20;
    let gate = GateHandle::start(config);

    let headers = [
        ("Content-Type", "application/x-git-receive-pack-request"),
        ("Content-Encoding", "gzip"),
    ];
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let (status, body) = post(&gate, "/widgets.git/git-receive-pack", &headers, &bomb);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("expands to more than 1048576 bytes"),
        "{body}"
    );

    let (status, body) = post(
        &gate,
        "/widgets.git/git-upload-pack",
        &[
            ("Content-Type", "application/x-git-upload-pack-request"),
            ("Content-Encoding", "gzip"),
        ],
        b"\x1f\x8b\x08\x00not gzip at all",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not valid gzip"), "{body}");

    // Positive control: a small gzip body reaches git, and the status is 200.
    let flush = gzip(b"0000");
    let (status, body) = post(&gate, "/widgets.git/git-receive-pack", &headers, &flush);
    assert_eq!(status, 200, "{body}");
}

/// Builds a PNG image of one grey pixel with the given extra chunks before the image data.
fn png(chunks: &[(&[u8; 4], Vec<u8>)], pixel_row: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let width = u32::try_from(pixel_row.len()).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&1u32.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    for (kind, data) in chunks {
        chunk(&mut out, kind, data);
    }
    // One scanline: filter type 0, then the grey values.
    let mut scanline = vec![0u8];
    scanline.extend_from_slice(pixel_row);
    chunk(&mut out, b"IDAT", &zlib(&scanline));
    chunk(&mut out, b"IEND", b"");
    out
}

fn ztxt(text: &[u8]) -> Vec<u8> {
    let mut data = b"Comment\0\0".to_vec();
    data.extend_from_slice(&zlib(text));
    data
}

fn itxt(text: &[u8]) -> Vec<u8> {
    let mut data = b"Description\0\x01\0en\0\0".to_vec();
    data.extend_from_slice(&zlib(text));
    data
}

/// Returns a row of grey pixels whose values spell a token between runs of black, so
/// that deflate codes the row rather than stores it.
fn pixels_with_token() -> Vec<u8> {
    let mut row = vec![0u8; 200];
    row.extend_from_slice(format!("TOKEN={}", fake_github_token()).as_bytes());
    row.extend_from_slice(&[0u8; 200]);
    row
}

#[test]
fn png_chunks_are_scanned() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");
    let secret = secret_text();
    let grey = [128u8; 4];

    let cases: [(&str, Vec<u8>); 3] = [
        ("<png zTXt>", png(&[(b"zTXt", ztxt(&secret))], &grey)),
        ("<png iTXt>", png(&[(b"iTXt", itxt(&secret))], &grey)),
        ("<png IDAT>", png(&[], &pixels_with_token())),
    ];
    for (member, image) in cases {
        let token = fake_github_token();
        assert!(
            !image.windows(token.len()).any(|w| w == token.as_bytes()),
            "{member}: the image must hide the token from a raw scan"
        );
        let output = push_file(&client, &work, "logo.png", &image);
        let text = stderr(&output);
        assert!(!output.status.success(), "{member}: {text}");
        assert!(
            text.contains(&format!("file logo.png!{member}")),
            "{member}: {text}"
        );
        assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
    }

    // A PNG whose chunks run past its end cannot be read, so it is rejected.
    let mut truncated = png(&[(b"zTXt", ztxt(&clean_text()))], &grey);
    truncated.truncate(truncated.len() - 30);
    let output = push_file(&client, &work, "cut.png", &truncated);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("png image is malformed"), "{text}");

    // Positive control: the same chunks without the token go through.
    let clean = png(
        &[
            (b"zTXt", ztxt(&clean_text())),
            (b"iTXt", itxt(&clean_text())),
        ],
        &grey,
    );
    let output = push_file(&client, &work, "logo.png", &clean);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn private_key_in_jar_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    // A jar made by git from a scratch repository that is never pushed.
    let scratch = client.home.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    client.git_ok(&scratch, &["init", "--quiet"]);
    common::keygen(&client.home.join("deploy_key"));
    let key = std::fs::read_to_string(client.home.join("deploy_key")).unwrap();
    client.commit_file(&scratch, "META-INF/keys/deploy.pem", &key, "Add a key");
    client.git_ok(
        &scratch,
        &["archive", "--format=zip", "-o", "../lib.jar", "HEAD"],
    );
    client.git_ok(&scratch, &["rm", "--quiet", "-r", "META-INF"]);
    client.commit_file(
        &scratch,
        "META-INF/MANIFEST.MF",
        "Manifest-Version: 1.0\n",
        "Manifest",
    );
    client.git_ok(
        &scratch,
        &["archive", "--format=zip", "-o", "../clean.jar", "HEAD"],
    );

    let jar = std::fs::read(client.home.join("lib.jar")).unwrap();
    let output = push_file(&client, &work, "lib.jar", &jar);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("file lib.jar!META-INF/keys/deploy.pem"),
        "{text}"
    );
    assert!(text.contains("private-key"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: a jar without the key goes through.
    let clean = std::fs::read(client.home.join("clean.jar")).unwrap();
    let output = push_file(&client, &work, "lib.jar", &clean);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn padded_large_file_scanned_to_end() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    // 6 MB of zero bytes, past the 5 MB at which some scanners skip a file, then a token.
    let mut padded = vec![0u8; 6 << 20];
    padded.extend_from_slice(format!("\nTOKEN={}\n", fake_github_token()).as_bytes());
    let output = push_file(&client, &work, "padded.key", &padded);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("file padded.key"), "{text}");
    assert!(text.contains("rule github-pat"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: the padding alone goes through.
    let output = push_file(&client, &work, "padded.key", &vec![0u8; 6 << 20]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn encoded_and_generic_secrets_rejected() {
    let world = World::new();
    let repo = world.repo();
    let known = format!("deploy-{}", "Hq4Vt8Np2Ks6Wb9Z");
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![known.clone()]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");
    let token = fake_github_token();
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let (head, tail) = known.split_at(known.len() / 2);

    let cases = [
        (
            "base64",
            format!("value: {}\n", base64(token.as_bytes())),
            "github-pat",
        ),
        ("hex", format!("value = \"{hex}\"\n"), "github-pat"),
        (
            "json password",
            "{\"Password\": \"rT7vKq2Wx9LmZ4pN8sYb\"}\n".to_owned(),
            "generic",
        ),
        (
            "split literal",
            format!("let key = \"{head}\" + \"{tail}\";\n"),
            "known-secret",
        ),
    ];
    for (name, contents, rule) in cases {
        let output = push_file(&client, &work, "settings.txt", contents.as_bytes());
        let text = stderr(&output);
        assert!(!output.status.success(), "{name}: {text}");
        assert!(text.contains(&format!("rule {rule}")), "{name}: {text}");
        assert!(!text.contains(&known), "{name}: {text}");
        assert_eq!(
            upstream_ref(&world.upstream, "refs/heads/main"),
            before,
            "{name}"
        );
    }

    // Positive control: ordinary settings go through.
    let output = push_file(&client, &work, "settings.txt", b"{\"Password\": \"\"}\n");
    assert!(output.status.success(), "{}", stderr(&output));
}
