//! End-to-end tests of the git gate on loopback, with real git and a real sshd.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, GateHandle, World, fake_github_token, stderr, upstream_ref, upstream_refs};

#[test]
fn clone_and_push_reach_upstream() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);

    let work = client.clone(&world.url(), "work");
    assert!(work.join("README.md").exists());
    assert!(work.join("src/main.rs").exists());
    let origin = client.git_ok(&work, &["config", "remote.origin.url"]);
    assert_eq!(
        origin.trim(),
        world.url(),
        "the agent keeps the ordinary upstream URL"
    );

    let commit = client.commit_file(&work, "notes.txt", "plain notes\n", "Add notes");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(commit.clone())
    );

    let branch_commit = client.commit_file(&work, "more.txt", "more\n", "Add more");
    client.git_ok(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/feature/x"],
    );
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/feature/x"),
        Some(branch_commit)
    );

    // Protocol version 0 uses the other advertisement format.
    let v0 = client.home.join("v0");
    client.git_ok(
        &client.home,
        &[
            "-c",
            "protocol.version=0",
            "clone",
            "--quiet",
            &world.url(),
            "v0",
        ],
    );
    assert_eq!(client.head(&v0), commit);
}

#[test]
fn fetch_sees_new_upstream_commits() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    let upstream_commit = world.commit_directly("upstream.txt", "Upstream change");

    client.git_ok(&work, &["fetch", "--quiet", "origin"]);
    let fetched = client.git_ok(&work, &["rev-parse", "origin/main"]);
    assert_eq!(
        fetched.trim(),
        upstream_commit,
        "the gate refreshed its mirror before serving"
    );
}

#[test]
fn push_with_token_is_rejected() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let token = fake_github_token();
    let contents = format!("# settings\nGITHUB_TOKEN={token}\n");
    let commit = client.commit_file(&work, "config/app.env", &contents, "Add settings");
    let output = client.git(&work, &["push", "origin", "main"]);
    let message = stderr(&output);

    assert!(!output.status.success(), "the push must fail:\n{message}");
    assert!(message.contains(&format!("commit {commit}")), "{message}");
    assert!(message.contains("file config/app.env"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("rule github-pat"), "{message}");
    assert!(
        !message.contains(&token),
        "the rejection must not echo the token:\n{message}"
    );
    assert!(
        !message.contains(&token[4..]),
        "not even without its prefix:\n{message}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: the same push without the token goes through.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let clean = client.commit_file(&work, "config/app.env", "# settings\n", "Add settings");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(clean)
    );
}

#[test]
fn secret_added_then_removed_is_caught() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let adding = client.commit_file(
        &work,
        "token.txt",
        &format!("{}\n", fake_github_token()),
        "Add token",
    );
    client.git_ok(&work, &["rm", "--quiet", "token.txt"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Remove token"]);
    let output = client.git(&work, &["push", "origin", "main"]);
    let message = stderr(&output);

    assert!(!output.status.success(), "the push must fail:\n{message}");
    assert!(
        message.contains(&format!("commit {adding}, file token.txt, line 1")),
        "{message}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
}

#[test]
fn secret_in_message_and_name_is_caught() {
    let world = World::new();
    let repo = world.repo();
    let known = format!("canary-{}", "q8Wz3Lr5Tx9");
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![known.clone()]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    // A commit message carrying a token.
    let message_text = format!("Deploy with {}", fake_github_token());
    client.git_ok(
        &work,
        &["commit", "--quiet", "--allow-empty", "-m", &message_text],
    );
    let commit = client.head(&work);
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("commit {commit}, commit message or author")),
        "{text}"
    );
    assert!(text.contains("rule github-pat"), "{text}");
    assert!(!text.contains(&fake_github_token()), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // A file named after a known secret.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let file_name = format!("{known}.txt");
    let commit = client.commit_file(&work, &file_name, "harmless\n", "Add a file");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "commit {commit}, file name [REDACTED:known-secret].txt"
        )),
        "{text}"
    );
    assert!(text.contains("rule known-secret"), "{text}");
    assert!(!text.contains(&known), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // An author name that is a known secret.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let mut commit_command = client.command(&work);
    commit_command.env("GIT_AUTHOR_NAME", &known).args([
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "Empty",
    ]);
    common::run(&mut commit_command);
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("commit message or author"), "{text}");
    assert!(!text.contains(&known), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // The gate keeps known secrets in memory: no file of its state contains one.
    for file in common::files_under(&world.path().join("state")) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let found = bytes
            .windows(known.len())
            .any(|window| window == known.as_bytes());
        assert!(!found, "{} contains a known secret", file.display());
    }
}

#[test]
fn force_delete_and_tags_rejected_by_default() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let refs_before = upstream_refs(&world.upstream);

    // Force-push of an older commit.
    let output = client.git(&work, &["push", "--force", "origin", "HEAD~1:main"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("non-fast-forward (force) pushes are not allowed"),
        "{}",
        stderr(&output)
    );

    // Force-push of an unrelated history.
    client.git_ok(&work, &["checkout", "--quiet", "--orphan", "orphan"]);
    client.git_ok(&work, &["commit", "--quiet", "-m", "Unrelated"]);
    let output = client.git(&work, &["push", "--force", "origin", "orphan:main"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("non-fast-forward"),
        "{}",
        stderr(&output)
    );
    client.git_ok(&work, &["checkout", "--quiet", "main"]);

    // Deletion.
    let output = client.git(&work, &["push", "origin", ":main"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("deleting a branch is not allowed"),
        "{}",
        stderr(&output)
    );

    // Tags, lightweight and annotated.
    client.git_ok(&work, &["tag", "v1"]);
    let output = client.git(&work, &["push", "origin", "v1"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pushing tags is not allowed"),
        "{}",
        stderr(&output)
    );
    client.git_ok(&work, &["tag", "-a", "v2", "-m", "Release"]);
    let output = client.git(&work, &["push", "origin", "v2"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pushing tags is not allowed"),
        "{}",
        stderr(&output)
    );

    // Refs outside refs/heads and refs/tags.
    let output = client.git(&work, &["push", "origin", "HEAD:refs/notes/x"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("only refs under refs/heads/ and refs/tags/"),
        "{}",
        stderr(&output)
    );

    assert_eq!(
        upstream_refs(&world.upstream),
        refs_before,
        "nothing reached the upstream"
    );
}

#[test]
fn permissive_policy_allows_force_delete_tags() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.force = true;
    repo.push.delete = true;
    repo.push.tags = true;
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    let older = client
        .git_ok(&work, &["rev-parse", "HEAD~1"])
        .trim()
        .to_owned();
    client.git_ok(
        &work,
        &["push", "--quiet", "--force", "origin", "HEAD~1:main"],
    );
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(older)
    );

    client.git_ok(&work, &["tag", "-a", "v1", "-m", "Release"]);
    client.git_ok(&work, &["push", "--quiet", "origin", "v1"]);
    assert!(upstream_ref(&world.upstream, "refs/tags/v1").is_some());

    client.git_ok(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/temp"],
    );
    client.git_ok(&work, &["push", "--quiet", "origin", ":temp"]);
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/temp"), None);
}

#[test]
fn branch_glob_limits_pushes() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.branches = vec!["bot/*".to_owned()];
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let main_before = upstream_ref(&world.upstream, "refs/heads/main");

    let commit = client.commit_file(&work, "a.txt", "a\n", "Add a");
    let output = client.git(&work, &["push", "origin", "main"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("branch 'main' is not allowed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        main_before
    );

    client.git_ok(&work, &["push", "--quiet", "origin", "HEAD:bot/task"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/bot/task"),
        Some(commit)
    );
}

#[test]
fn wrong_host_key_rejects_fetch_and_push() {
    let world = World::new();
    let good_repo = world.repo();
    let mut bad_repo = world.repo();
    bad_repo.host_keys = vec![common::keygen(&world.path().join("unrelated_host_key"))];

    // Positive control: with the pinned key right, clone works.
    let good_gate = GateHandle::start(world.config("good", good_repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &good_gate, &[good_repo]);
    let work = client.clone(&world.url(), "work");
    let refs_before = upstream_refs(&world.upstream);

    let bad_gate = GateHandle::start(world.config("bad", bad_repo.clone(), vec![]));
    client.point_at(&bad_gate, &[bad_repo]);

    let output = client.git(&client.home, &["clone", &world.url(), "second"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("fatal: remote error: git gate: cannot refresh repo 'widgets'"),
        "{text}"
    );
    assert!(
        text.contains("host key does not match the pinned host key"),
        "{text}"
    );
    assert!(!client.home.join("second/README.md").exists());

    client.commit_file(&work, "x.txt", "x\n", "Add x");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("host key does not match"), "{text}");
    assert_eq!(
        upstream_refs(&world.upstream),
        refs_before,
        "nothing reached the upstream"
    );
}

#[test]
fn missing_identity_gives_one_clear_error() {
    let world = World::new();
    let mut repo = world.repo();
    let identity = world.path().join("moved_key");
    std::fs::copy(&world.identity, &identity).unwrap();
    repo.identity = identity.clone();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    // The gate checked the key at start-up; it disappears afterwards.
    client.git_ok(&client.home, &["ls-remote", &world.url()]);
    std::fs::remove_file(&identity).unwrap();

    let output = client.git(&client.home, &["clone", &world.url(), "work"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("fatal:"))
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("repo 'widgets'"), "{text}");
    assert!(
        errors[0].contains("identity file configured for this repo is missing"),
        "{text}"
    );
}

#[test]
fn unreachable_upstream_gives_one_clear_error() {
    let world = World::new();
    let mut repo = world.repo();
    let closed_port = common::free_port();
    repo.url = format!(
        "ssh://git@127.0.0.1:{closed_port}{}",
        world.upstream.display()
    );
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo.clone()]);

    let output = client.git(&client.home, &["clone", &repo.url, "work"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("fatal:"))
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("repo 'widgets'"), "{text}");
    assert!(
        errors[0].contains("cannot connect to the upstream"),
        "{text}"
    );
}

#[test]
fn unknown_repo_is_not_found() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);

    let url = format!("{}/other.git", gate.base_url);
    let output = client.git(&client.home, &["ls-remote", &url]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));
}

#[test]
fn upstream_rejection_reaches_agent() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let hook = world.upstream.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'upstream policy: pushes are frozen' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    client.commit_file(&work, "frozen.txt", "x\n", "Add frozen");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("upstream policy: pushes are frozen"),
        "{text}"
    );
    assert!(
        text.contains("the upstream did not accept the push"),
        "{text}"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    let mirror = world.path().join("state/mirrors/widgets.git");
    assert_eq!(
        upstream_ref(&mirror, "refs/heads/main"),
        before,
        "the mirror did not move"
    );
}

#[test]
fn gzip_request_bodies_are_decoded() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    // Enough local commits that the fetch negotiation sends more than 1 KiB of "have"
    // lines, which git compresses with gzip, and an upstream commit to fetch.
    world.commit_directly("upstream.txt", "Upstream change");
    for index in 0..60 {
        client.git_ok(
            &work,
            &[
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                &format!("Local {index}"),
            ],
        );
    }
    let output = client
        .command(&work)
        .env("GIT_TRACE_CURL", "1")
        .args(["fetch", "origin"])
        .output()
        .unwrap();
    let trace = stderr(&output);
    assert!(output.status.success(), "{trace}");
    assert!(
        trace.contains("Content-Encoding: gzip"),
        "the fetch did not send a gzip body"
    );
}

#[test]
fn tag_message_secret_is_caught() {
    let world = World::new();
    let mut repo = world.repo();
    repo.push.tags = true;
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    let message = format!("Release\n\ntoken {}\n", fake_github_token());
    client.git_ok(&work, &["tag", "-a", "v1", "-m", &message]);
    let tag = client.git_ok(&work, &["rev-parse", "v1"]).trim().to_owned();
    let output = client.git(&work, &["push", "origin", "v1"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("tag object {tag}, tag message or tagger")),
        "{text}"
    );
    assert!(text.contains("rule github-pat"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/tags/v1"), None);

    // Positive control: a clean annotated tag goes through.
    client.git_ok(&work, &["tag", "-a", "v2", "-m", "Release"]);
    client.git_ok(&work, &["push", "--quiet", "origin", "v2"]);
    assert!(upstream_ref(&world.upstream, "refs/tags/v2").is_some());
}

#[test]
fn empty_upstream_accepts_first_push() {
    let world = World::new();
    let empty = world.path().join("empty.git");
    common::run(
        std::process::Command::new("git")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(&empty),
    );
    let mut repo = world.repo();
    repo.url = world.sshd.url(&empty);
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo.clone()]);

    let work = client.clone(&repo.url, "work");
    let commit = client.commit_file(&work, "README.md", "# new\n", "Start the project");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(upstream_ref(&empty, "refs/heads/main"), Some(commit));
}

#[test]
fn secret_in_ref_name_is_caught() {
    let world = World::new();
    let repo = world.repo();
    let known = format!("canary-{}", "r4Xv9Kp2Ld7");
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![known.clone()]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    client.commit_file(&work, "a.txt", "a\n", "Add a");

    // Positive control: the same commit under a plain name reaches the upstream.
    client.git_ok(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/agent/plain"],
    );
    assert!(upstream_ref(&world.upstream, "refs/heads/agent/plain").is_some());

    for secret in [fake_github_token(), known] {
        let name = format!("refs/heads/agent/{secret}");
        let output = client.git(&work, &["push", "origin", &format!("HEAD:{name}")]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{text}");
        assert!(
            text.contains("possible secrets found in ref names"),
            "{text}"
        );
        // git's own summary repeats the name the agent typed; the gate's lines must not.
        let gate_lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("remote:"))
            .collect();
        assert!(
            gate_lines.iter().all(|line| !line.contains(&secret)),
            "the rejection shows the secret: {text}"
        );
        assert_eq!(upstream_ref(&world.upstream, &name), None);

        // The push audit log records the rejection with the ref name redacted.
        let log = std::fs::read_to_string(world.path().join("logs/git.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["decision"], "rejected");
        assert!(
            last["refs"][0]["name"]
                .as_str()
                .unwrap()
                .contains("[REDACTED:")
        );
        assert!(
            !log.contains(&secret),
            "the audit log shows the secret: {log}"
        );
    }
}

/// Returns how many SSH sessions the upstream's sshd has accepted.
fn ssh_sessions(world: &World) -> usize {
    world
        .sshd
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("Accepted publickey"))
        .count()
}

#[test]
fn unchanged_upstream_skips_fetch() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");

    // The mirror matches the upstream: the refresh lists the refs and fetches nothing.
    let before = ssh_sessions(&world);
    client.git_ok(&work, &["fetch", "--quiet", "origin"]);
    assert_eq!(
        ssh_sessions(&world) - before,
        1,
        "one SSH session for ls-remote"
    );

    // Positive control: a new upstream commit costs a second session, for the fetch.
    let upstream_commit = world.commit_directly("upstream.txt", "Upstream change");
    let before = ssh_sessions(&world);
    client.git_ok(&work, &["fetch", "--quiet", "origin"]);
    assert_eq!(ssh_sessions(&world) - before, 2, "ls-remote and fetch");
    let fetched = client.git_ok(&work, &["rev-parse", "origin/main"]);
    assert_eq!(fetched.trim(), upstream_commit);

    // After a forwarded push, the mirror's ref already has the upstream's value.
    client.git_ok(&work, &["merge", "--quiet", "--ff-only", "origin/main"]);
    let pushed = client.commit_file(&work, "notes.txt", "plain notes\n", "Add notes");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    let before = ssh_sessions(&world);
    client.git_ok(&work, &["fetch", "--quiet", "origin"]);
    assert_eq!(ssh_sessions(&world) - before, 1, "no fetch after a push");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(pushed)
    );
}
