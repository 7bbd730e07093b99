//! Pushes that try to get past the gate: binary and oversized content, timeouts, several
//! refs at once, rewritten history, `.git` look-alikes, hostile `.gitmodules` and symlinks.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{Client, GateHandle, World, fake_github_token, stderr, upstream_ref, upstream_refs};

/// Runs git with `input` on stdin and returns its trimmed stdout.
fn git_with_input(client: &Client, work: &Path, args: &[&str], input: &[u8]) -> String {
    let mut child = client
        .command(work)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Builds a commit on top of `HEAD` whose root tree contains one directory `dir_name` with
/// one file `config`; returns the commit id.
fn commit_with_directory(client: &Client, work: &Path, dir_name: &str) -> String {
    let blob = git_with_input(
        client,
        work,
        &["hash-object", "-w", "--stdin"],
        b"[core]\n\thooksPath = /tmp\n",
    );
    let inner = git_with_input(
        client,
        work,
        &["mktree"],
        format!("100644 blob {blob}\tconfig\n").as_bytes(),
    );
    commit_root_tree(client, work, &format!("040000 tree {inner}\t{dir_name}\n"))
}

/// Builds a commit on top of `HEAD` whose root tree is made by `git mktree` from
/// `entries`; returns the commit id.
fn commit_root_tree(client: &Client, work: &Path, entries: &str) -> String {
    let root = git_with_input(client, work, &["mktree"], entries.as_bytes());
    let parent = client.head(work);
    git_with_input(
        client,
        work,
        &["commit-tree", &root, "-p", &parent, "-m", "Add a tree"],
        b"",
    )
}

/// Deterministic bytes that do not compress, so a pack of them is as large as they are.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn binary_file_with_token_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let mut bytes = vec![0u8, 1, 2, 0xff, 0xfe, 0x89, b'P', b'N', b'G', 0];
    bytes.extend_from_slice(fake_github_token().as_bytes());
    bytes.extend_from_slice(&[0, 0xff, 0x00, 0x10]);
    std::fs::write(work.join("image.bin"), &bytes).unwrap();
    client.git_ok(&work, &["add", "image.bin"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Add an image"]);
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("file image.bin"), "{text}");
    assert!(text.contains("rule github-pat"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: the same binary without the token goes through.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    std::fs::write(work.join("image.bin"), [0u8, 1, 2, 0xff, 0xfe, 0]).unwrap();
    client.git_ok(&work, &["add", "image.bin"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Add an image"]);
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(client.head(&work))
    );
}

#[test]
fn object_over_size_limit_rejected() {
    let world = World::new();
    let repo = world.repo();
    let mut config = world.config("state", repo.clone(), vec![]);
    config.limits.max_object_bytes = 4096;
    let gate = GateHandle::start(config);
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    // Positive control: a file under the limit goes through.
    let small = client.commit_file(&work, "small.txt", &"a".repeat(1000), "Add small");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(small.clone())
    );

    client.commit_file(&work, "large.txt", &"b".repeat(10_000), "Add large");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("large.txt"), "{text}");
    assert!(text.contains("more than the 4096 bytes"), "{text}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(small)
    );
}

#[test]
fn pack_over_input_limit_rejected() {
    let world = World::new();
    let repo = world.repo();
    let mut config = world.config("state", repo.clone(), vec![]);
    config.limits.max_input_bytes = 64 * 1024;
    let gate = GateHandle::start(config);
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    let small = client.commit_file(&work, "small.txt", "small\n", "Add small");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(small.clone())
    );

    std::fs::write(work.join("noise.bin"), incompressible(512 * 1024)).unwrap();
    client.git_ok(&work, &["add", "noise.bin"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Add noise"]);
    let output = client.git(&work, &["push", "origin", "main"]);
    assert!(!output.status.success(), "{}", stderr(&output));
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(small)
    );
}

#[test]
fn pre_receive_timeout_rejects() {
    let world = World::new();
    let repo = world.repo();
    let mut config = world.config("state", repo.clone(), vec![]);
    config.limits.pre_receive_timeout_secs = 0;
    let gate = GateHandle::start(config);
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    client.commit_file(&work, "a.txt", "clean\n", "Add a");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("the check did not finish within 0 s"),
        "{text}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
}

#[test]
fn multi_ref_push_scans_every_ref() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let refs_before = upstream_refs(&world.upstream);

    let clean = client.commit_file(&work, "clean.txt", "clean\n", "Add clean");
    client.git_ok(&work, &["checkout", "--quiet", "-b", "second", "HEAD~1"]);
    let dirty = client.commit_file(
        &work,
        "second.env",
        &format!("TOKEN={}\n", fake_github_token()),
        "Add settings",
    );
    let output = client.git(&work, &["push", "origin", "main", "second"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("commit {dirty}, file second.env")),
        "{text}"
    );
    assert_eq!(
        upstream_refs(&world.upstream),
        refs_before,
        "neither ref reached the upstream"
    );

    // Positive control: both refs clean go through together.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let second = client.commit_file(&work, "second.env", "TOKEN=\n", "Add settings");
    client.git_ok(&work, &["push", "--quiet", "origin", "main", "second"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(clean)
    );
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/second"),
        Some(second)
    );
}

#[test]
fn force_push_scans_rewritten_history() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.force = true;
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let dirty = client.commit_file(
        &work,
        "key.txt",
        &format!("{}\n", fake_github_token()),
        "Rewrite",
    );
    let output = client.git(&work, &["push", "--force", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("commit {dirty}, file key.txt")),
        "{text}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: the clean rewrite is forwarded.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let clean = client.commit_file(&work, "key.txt", "no key\n", "Rewrite");
    client.git_ok(&work, &["push", "--quiet", "--force", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(clean)
    );
}

#[test]
fn dotgit_look_alikes_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let refs_before = upstream_refs(&world.upstream);

    // git's fsck (`hasDotgit`) rejects most of these itself. It checks only the short
    // name `git~1`, so `GIT~2` reaches the gate's own check.
    let cases = [
        (".GIT", "hasDotgit"),
        (".git.", "hasDotgit"),
        ("git~1", "hasDotgit"),
        (".Git ", "hasDotgit"),
        (".g\u{200c}it", "hasDotgit"),
        (".git::$INDEX_ALLOCATION", "hasDotgit"),
        ("GIT~2", "look-alike of the .git directory"),
    ];
    for (name, expected) in cases {
        let commit = commit_with_directory(&client, &work, name);
        let refspec = format!("{commit}:refs/heads/hostile");
        let output = client.git(&work, &["push", "origin", &refspec]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{name:?}: {text}");
        assert!(text.contains(expected), "{name:?}: {text}");
    }
    assert_eq!(upstream_refs(&world.upstream), refs_before);

    // Positive control: the same tree under an ordinary name goes through.
    let commit = commit_with_directory(&client, &work, ".github");
    let refspec = format!("{commit}:refs/heads/ordinary");
    client.git_ok(&work, &["push", "--quiet", "origin", &refspec]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/ordinary"),
        Some(commit)
    );
}

#[test]
fn hostile_gitmodules_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let cases = [
        ("path = ../../escape", "submodule path '../../escape'"),
        ("path = /etc/cron.d", "submodule path '/etc/cron.d'"),
        // git's fsck rejects these two itself.
        ("path = -oProxyCommand=x", "disallowed submodule path"),
        ("path = lib\n\tupdate = !touch /tmp/x", "update"),
    ];
    for (setting, expected) in cases {
        let contents = format!("[submodule \"lib\"]\n\t{setting}\n\turl = ./lib.git\n");
        client.commit_file(&work, ".gitmodules", &contents, "Add a submodule");
        let output = client.git(&work, &["push", "origin", "main"]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{setting}: {text}");
        assert!(text.contains(expected), "{setting}: {text}");
        assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
        client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    }

    // A symlink named .gitmodules, which `git add` refuses to create.
    let target = git_with_input(
        &client,
        &work,
        &["hash-object", "-w", "--stdin"],
        b"/etc/passwd",
    );
    let commit = commit_root_tree(
        &client,
        &work,
        &format!("120000 blob {target}\t.gitmodules\n"),
    );
    let refspec = format!("{commit}:refs/heads/main");
    let output = client.git(&work, &["push", "origin", &refspec]);
    assert!(!output.status.success(), "{}", stderr(&output));
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: an ordinary submodule entry goes through.
    let contents = "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ./lib.git\n";
    let clean = client.commit_file(&work, ".gitmodules", contents, "Add a submodule");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(clean)
    );
}

#[test]
fn symlinks_are_not_followed() {
    let world = World::new();
    let repo = world.repo();
    let known = format!("canary-{}", "Hs82kQpZ1x");
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![known.clone()]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    // A host file outside every repository that contains a known secret.
    let host_file = world.path().join("host-secret.txt");
    std::fs::write(&host_file, format!("{known}\n")).unwrap();
    std::os::unix::fs::symlink(&host_file, work.join("leak")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", work.join("random")).unwrap();
    std::os::unix::fs::symlink("../../../..", work.join("up")).unwrap();
    client.git_ok(&work, &["add", "leak", "random", "up"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Add links"]);
    let links = client.head(&work);
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(links.clone()),
        "the gate scanned the link targets' names, not the files they point at"
    );

    // Positive control: the same bytes as a file in the repository are caught.
    client.commit_file(&work, "copy.txt", &format!("{known}\n"), "Copy");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("rule known-secret"), "{text}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(links)
    );
}

#[test]
fn tag_push_scans_tagged_commits() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.tags = true;
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let refs_before = upstream_refs(&world.upstream);

    // The commit is on no pushed branch: only the tag brings it.
    let dirty = client.commit_file(
        &work,
        "deploy.env",
        &format!("TOKEN={}\n", fake_github_token()),
        "Add settings",
    );
    client.git_ok(&work, &["tag", "-a", "v9", "-m", "Release"]);
    client.git_ok(&work, &["tag", "light"]);
    for tag in ["v9", "light"] {
        let output = client.git(&work, &["push", "origin", tag]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{tag}: {text}");
        assert!(
            text.contains(&format!("commit {dirty}, file deploy.env")),
            "{tag}: {text}"
        );
    }
    assert_eq!(upstream_refs(&world.upstream), refs_before);

    // Positive control: a tag of a clean commit goes through.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    client.commit_file(&work, "deploy.env", "TOKEN=\n", "Add settings");
    client.git_ok(&work, &["tag", "-a", "v10", "-m", "Release"]);
    client.git_ok(&work, &["push", "--quiet", "origin", "v10"]);
    assert!(upstream_ref(&world.upstream, "refs/tags/v10").is_some());
}

#[test]
fn push_options_are_refused() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    client.commit_file(
        &work,
        "key.txt",
        &format!("{}\n", fake_github_token()),
        "Add key",
    );
    let output = client.git(&work, &["push", "-o", "skip-scan", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("push options"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
}

#[test]
fn archive_members_are_scanned() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    // Archives made by git itself from a scratch repository that is never pushed.
    let scratch = client.home.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    client.git_ok(&scratch, &["init", "--quiet"]);
    let padding = "# settings of the deployment\n".repeat(40);
    let secret = format!("{padding}TOKEN={}\n", fake_github_token());
    client.commit_file(&scratch, "secret.env", &secret, "Add settings");
    client.git_ok(
        &scratch,
        &["archive", "--format=zip", "-o", "../a.zip", "HEAD"],
    );
    client.git_ok(
        &scratch,
        &["archive", "--format=tar.gz", "-o", "../a.tar.gz", "HEAD"],
    );
    client.git_ok(&scratch, &["rm", "--quiet", "secret.env"]);
    client.commit_file(&scratch, "clean.env", &padding, "Clean");
    client.git_ok(
        &scratch,
        &["archive", "--format=zip", "-o", "../clean.zip", "HEAD"],
    );

    for (archive, member) in [
        ("a.zip", "a.zip!secret.env"),
        ("a.tar.gz", "a.tar.gz!<gzip>"),
    ] {
        let compressed = std::fs::read(client.home.join(archive)).unwrap();
        let needle = fake_github_token();
        assert!(
            !compressed
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{archive} must hide the token from a raw scan for this test to mean anything"
        );
        std::fs::write(work.join(archive), &compressed).unwrap();
        client.git_ok(&work, &["add", archive]);
        client.git_ok(&work, &["commit", "--quiet", "-m", "Add an archive"]);
        let output = client.git(&work, &["push", "origin", "main"]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{archive}: {text}");
        assert!(
            text.contains(&format!("file {member}")),
            "{archive}: {text}"
        );
        assert!(text.contains("rule github-pat"), "{archive}: {text}");
        assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
        client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    }

    // Positive control: an archive without the token goes through.
    std::fs::copy(client.home.join("clean.zip"), work.join("clean.zip")).unwrap();
    client.git_ok(&work, &["add", "clean.zip"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Add an archive"]);
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(client.head(&work))
    );
}

#[test]
fn merge_only_secret_names_merge() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    client.git_ok(&work, &["checkout", "--quiet", "-b", "side"]);
    client.commit_file(&work, "side.txt", "side\n", "Side work");
    client.git_ok(&work, &["checkout", "--quiet", "main"]);
    client.commit_file(&work, "main.txt", "main\n", "Main work");
    // An "evil merge": the token appears in neither parent, only in the merge itself.
    client.git_ok(
        &work,
        &["merge", "--quiet", "--no-commit", "--no-ff", "side"],
    );
    std::fs::write(
        work.join("merged.env"),
        format!("TOKEN={}\n", fake_github_token()),
    )
    .unwrap();
    client.git_ok(&work, &["add", "merged.env"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Merge side"]);
    let merge = client.head(&work);

    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("commit {merge}, file merged.env")),
        "{text}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
}
