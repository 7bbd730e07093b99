//! Scanning the objects of a push for secrets.
//!
//! The objects are listed with `git rev-list --objects <new tips> --not --all` and read
//! with `git cat-file --batch`, both inside the push's quarantine, so git itself resolves
//! the pushed objects. The mirror's refs are the upstream's refs as of the last refresh
//! plus pushes that were forwarded after their own scan, so everything the upstream may
//! not have yet is scanned. Commit and tag objects are scanned whole (author, committer,
//! tagger and message), trees entry by entry (file names), blobs whole (file content).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;

use bottle_scanner::Scanner;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::archive::expand;
use crate::git::{local_git, run_bounded, sanitize_text};
use crate::mirror::Mirror;
use crate::suppress::{IgnoreFiles, is_ignore_file, line_marker};
use crate::tree_check::{EntryVerdict, check_entry, check_gitmodules};

/// Location of the pushed objects: the quarantine directory, with the mirror's own object
/// directory as its alternate. A push of deletions alone has no quarantine.
#[derive(Clone, Debug)]
pub(crate) struct Quarantine {
    pub object_directory: Option<PathBuf>,
    pub mirror_objects: PathBuf,
}

impl Quarantine {
    /// Returns a local git command that reads the quarantined objects. Setting
    /// `GIT_QUARANTINE_PATH` also makes git reject any ref update from these commands.
    pub fn git(&self, mirror: &Mirror) -> Command {
        let mut command = local_git(&mirror.dir, &mirror.home);
        self.apply(&mut command);
        command
    }

    pub fn apply(&self, command: &mut Command) {
        if let Some(object_directory) = &self.object_directory {
            command
                .env("GIT_OBJECT_DIRECTORY", object_directory)
                .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &self.mirror_objects)
                .env("GIT_QUARANTINE_PATH", object_directory);
        }
    }
}

/// Location of a finding in a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Content of a file at this path.
    File(String),
    /// The name of a file or directory at this path.
    FileName(String),
    /// The commit's author, committer or message.
    CommitText,
    /// An annotated tag's tagger or message.
    TagText,
}

/// One secret found in a push. It contains no matched text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushFinding {
    /// The commit that brought the object in, or the tag object, when known.
    pub commit: Option<String>,
    pub place: Place,
    pub line: usize,
    pub rule: String,
    /// The suppression marker on the finding's line, or the path of an ignore file of the
    /// push that covers it. Such a finding makes the push wait for an operator's decision.
    pub suppressed_by: Option<String>,
}

impl PushFinding {
    /// Returns the place without the commit: `file <path>`, `file name <path>`, `commit
    /// message or author` or `tag message or tagger`.
    pub fn place_text(&self) -> String {
        match &self.place {
            Place::File(path) => format!("file {path}"),
            Place::FileName(path) => format!("file name {path}"),
            Place::CommitText => "commit message or author".to_owned(),
            Place::TagText => "tag message or tagger".to_owned(),
        }
    }
}

impl fmt::Display for PushFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = match (&self.place, &self.commit) {
            (Place::TagText, Some(tag)) => format!("tag object {tag}"),
            (_, Some(commit)) => format!("commit {commit}"),
            (_, None) => "a commit of this push".to_owned(),
        };
        let place = self.place_text();
        let rule = &self.rule;
        match &self.place {
            Place::FileName(_) => write!(f, "{object}, {place}: rule {rule}"),
            _ => write!(f, "{object}, {place}, line {}: rule {rule}", self.line),
        }?;
        if let Some(marker) = &self.suppressed_by {
            write!(f, " (suppressed by {marker})")?;
        }
        Ok(())
    }
}

/// An object found by the scan before its commit is known.
struct RawFinding {
    object: String,
    kind: ObjectKind,
    place: Place,
    line: usize,
    rule: String,
    /// The path of the file or tree entry as pushed, not redacted, to look up ignore files.
    path: Option<String>,
    suppressed_by: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectKind {
    Commit,
    Tree,
    Blob,
    Tag,
}

/// Scans every object reachable from `tips` and not from the mirror's refs. Returns the
/// findings, or an error that rejects the push (a failed git command, an object over
/// `max_object_bytes`): the scan never skips what it cannot read.
pub(crate) async fn scan_push(
    mirror: &Mirror,
    quarantine: &Quarantine,
    scanner: &Scanner,
    tips: &[String],
    max_object_bytes: u64,
) -> Result<Vec<PushFinding>, String> {
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let started = std::time::Instant::now();
    let objects = list_new_objects(mirror, quarantine, tips).await?;
    let scanned = scan_objects(mirror, quarantine, scanner, &objects, max_object_bytes).await?;
    tracing::info!(
        repo = %mirror.repo.name,
        objects = objects.len(),
        bytes = scanned.bytes,
        elapsed_ms = started.elapsed().as_millis(),
        "scanned the pushed objects"
    );
    let mut raw = scanned.findings;
    for found in &mut raw {
        if found.suppressed_by.is_none()
            && let Some(path) = &found.path
        {
            found.suppressed_by = scanned
                .ignore_files
                .covering(path)
                .map(|ignore_file| display_path(scanner, ignore_file));
        }
    }

    let commit_of = if raw
        .iter()
        .any(|found| matches!(found.kind, ObjectKind::Tree | ObjectKind::Blob))
    {
        first_commits(mirror, quarantine, tips).await
    } else {
        HashMap::new()
    };
    let findings = raw
        .into_iter()
        .map(|found| {
            let commit = match found.kind {
                ObjectKind::Commit | ObjectKind::Tag => Some(found.object),
                ObjectKind::Tree | ObjectKind::Blob => commit_of.get(&found.object).cloned(),
            };
            PushFinding {
                commit,
                place: found.place,
                line: found.line,
                rule: found.rule,
                suppressed_by: found.suppressed_by,
            }
        })
        .collect();
    Ok(findings)
}

/// Lists `(object id, path)` for every object the upstream may not have, in
/// `rev-list` order. Commits and tags have an empty path.
async fn list_new_objects(
    mirror: &Mirror,
    quarantine: &Quarantine,
    tips: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut command = quarantine.git(mirror);
    command
        .args(["rev-list", "--objects"])
        .args(tips)
        .args(["--not", "--all"]);
    let output = run_bounded(command, mirror.upstream_timeout)
        .await
        .map_err(|error| format!("listing the pushed objects failed: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "listing the pushed objects failed: {}",
            sanitize_text(&output.stderr, 300)
        ));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    Ok(listing
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(' ') {
            Some((id, path)) => (id.to_owned(), path.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect())
}

/// Reads each object with `git cat-file --batch` and scans it.
async fn scan_objects(
    mirror: &Mirror,
    quarantine: &Quarantine,
    scanner: &Scanner,
    objects: &[(String, String)],
    max_object_bytes: u64,
) -> Result<ObjectScan, String> {
    let mut command = quarantine.git(mirror);
    command.args(["cat-file", "--batch"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run git cat-file: {error}"))?;

    let mut stdin = child.stdin.take().expect("stdin was piped");
    let ids: Vec<u8> = objects
        .iter()
        .flat_map(|(id, _)| format!("{id}\n").into_bytes())
        .collect();
    let writer = tokio::spawn(async move {
        let result = stdin.write_all(&ids).await;
        drop(stdin);
        result
    });

    let mut reader = BufReader::new(child.stdout.take().expect("stdout was piped"));
    let mut found = ObjectScan::default();
    for (id, path) in objects {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .await
            .map_err(|error| format!("reading object {id} failed: {error}"))?;
        let mut fields = header.split_ascii_whitespace();
        let (Some(_), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("object {id} cannot be read"));
        };
        let size: u64 = size
            .parse()
            .map_err(|_| format!("object {id} has an invalid size"))?;
        if size > max_object_bytes {
            let _ = child.start_kill();
            let name = if path.is_empty() {
                id.clone()
            } else {
                format!("{path} ({id})")
            };
            return Err(format!(
                "object {name} is {size} bytes, more than the {max_object_bytes} bytes the \
                 scanner reads; large files are rejected rather than pushed unscanned"
            ));
        }
        found.bytes += size;
        let mut contents = vec![0u8; usize::try_from(size).expect("size is below the limit")];
        reader
            .read_exact(&mut contents)
            .await
            .map_err(|error| format!("reading object {id} failed: {error}"))?;
        let mut newline = [0u8; 1];
        reader
            .read_exact(&mut newline)
            .await
            .map_err(|error| format!("reading object {id} failed: {error}"))?;

        let kind = match kind {
            "commit" => ObjectKind::Commit,
            "tree" => ObjectKind::Tree,
            "blob" => ObjectKind::Blob,
            "tag" => ObjectKind::Tag,
            other => return Err(format!("object {id} has an unknown type {other}")),
        };
        scan_object(
            scanner,
            id,
            path,
            kind,
            &contents,
            max_object_bytes,
            &mut found,
        )?;
    }

    writer
        .await
        .map_err(|error| format!("git cat-file input task failed: {error}"))?
        .map_err(|error| format!("writing to git cat-file failed: {error}"))?;
    let status = child
        .wait()
        .await
        .map_err(|error| format!("git cat-file failed: {error}"))?;
    if !status.success() {
        return Err(format!("git cat-file exited with {status}"));
    }

    // A new tree may name an old blob `.gitmodules`, so these are checked by id whether or
    // not the push brought the blob.
    found.gitmodules.sort();
    found.gitmodules.dedup();
    for blob in &found.gitmodules {
        check_gitmodules(mirror, quarantine, blob).await?;
    }
    Ok(found)
}

/// Findings and `.gitmodules` blobs collected by the scan of the objects.
#[derive(Default)]
struct ObjectScan {
    findings: Vec<RawFinding>,
    /// Ids of the blobs that new trees name `.gitmodules`.
    gitmodules: Vec<String>,
    /// Secret scanners' ignore files among the pushed blobs.
    ignore_files: IgnoreFiles,
    /// Bytes of the objects read, before any expansion.
    bytes: u64,
}

fn scan_object(
    scanner: &Scanner,
    id: &str,
    path: &str,
    kind: ObjectKind,
    contents: &[u8],
    max_object_bytes: u64,
    out: &mut ObjectScan,
) -> Result<(), String> {
    let findings = &mut out.findings;
    let gitmodules = &mut out.gitmodules;
    // Each finding's line in `text` is searched for a suppression marker. File names
    // have no line, so only an ignore file can cover them (below, for trees).
    let mut add = |place: Place, text: &[u8], raw_path: Option<&str>| {
        for finding in scanner.scan(text) {
            findings.push(RawFinding {
                object: id.to_owned(),
                kind,
                place: place.clone(),
                line: finding.line,
                rule: finding.rule.to_string(),
                path: raw_path.map(str::to_owned),
                suppressed_by: line_marker(text, finding.start, finding.end).map(str::to_owned),
            });
        }
    };
    match kind {
        ObjectKind::Commit => add(Place::CommitText, contents, None),
        ObjectKind::Tag => add(Place::TagText, contents, None),
        ObjectKind::Blob => {
            if is_ignore_file(path) {
                out.ignore_files.add(path, contents);
            }
            let display_name = display_path(scanner, path);
            add(Place::File(display_name.clone()), contents, Some(path));
            let members = expand(contents, max_object_bytes)
                .map_err(|reason| format!("file {display_name} ({id}): {reason}"))?;
            for member in members {
                let place = Place::File(format!(
                    "{display_name}!{}",
                    display_path(scanner, &member.name)
                ));
                add(place, &member.data, Some(path));
            }
        }
        ObjectKind::Tree => {
            let hash_len = id.len() / 2;
            for entry in
                tree_entries(contents, hash_len).ok_or_else(|| format!("tree {id} is malformed"))?
            {
                let name = entry.name;
                let full = if path.is_empty() {
                    String::from_utf8_lossy(name).into_owned()
                } else {
                    format!("{path}/{}", String::from_utf8_lossy(name))
                };
                let verdict = check_entry(entry.mode, name).map_err(|reason| {
                    format!(
                        "{reason} (in tree {id} at '{}')",
                        display_path(scanner, path)
                    )
                })?;
                if verdict == EntryVerdict::Gitmodules {
                    gitmodules.push(hex(entry.id));
                }
                for finding in scanner.scan(name) {
                    findings.push(RawFinding {
                        object: id.to_owned(),
                        kind,
                        place: Place::FileName(display_path(scanner, &full)),
                        line: finding.line,
                        rule: finding.rule.to_string(),
                        path: Some(full.clone()),
                        suppressed_by: None,
                    });
                }
            }
        }
    }
    Ok(())
}

/// One entry of a raw tree object.
struct TreeEntry<'a> {
    mode: &'a [u8],
    name: &'a [u8],
    id: &'a [u8],
}

/// Parses a raw tree object (`<mode> <name>\0<hash>` entries); `None` if it is truncated.
fn tree_entries(mut tree: &[u8], hash_len: usize) -> Option<Vec<TreeEntry<'_>>> {
    let mut entries = Vec::new();
    while !tree.is_empty() {
        let space = tree.iter().position(|&b| b == b' ')?;
        let nul = space + tree[space..].iter().position(|&b| b == 0)?;
        entries.push(TreeEntry {
            mode: &tree[..space],
            name: &tree[space + 1..nul],
            id: tree.get(nul + 1..nul + 1 + hash_len)?,
        });
        tree = tree.get(nul + 1 + hash_len..)?;
    }
    Some(entries)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns a path as shown to the pusher, with every span the scanner flags in it replaced
/// by a `[REDACTED:<rule>]` marker, so a file named after a secret does not echo the secret.
fn display_path(scanner: &Scanner, path: &str) -> String {
    let findings = scanner.scan(path.as_bytes());
    sanitize_text(&bottle_scanner::redact(path.as_bytes(), &findings), 200)
}

/// Maps every tree and blob that a commit of the push adds, and every commit's root
/// tree, to the oldest commit that adds it. A finding in a file name is looked up by the
/// tree that contains the name, a finding in a file by its blob. A merge is compared
/// with its first parent, so content that only the merge itself adds maps to the merge.
async fn first_commits(
    mirror: &Mirror,
    quarantine: &Quarantine,
    tips: &[String],
) -> HashMap<String, String> {
    let mut command = quarantine.git(mirror);
    command
        .args([
            "log",
            "--reverse",
            "--raw",
            "-t",
            "--no-renames",
            "--no-abbrev",
            "--diff-merges=first-parent",
        ])
        .arg("--format=commit %H %T")
        .args(tips)
        .args(["--not", "--all"]);
    let mut first = HashMap::new();
    let Ok(output) = run_bounded(command, mirror.upstream_timeout).await else {
        return first;
    };
    let mut current = String::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(ids) = line.strip_prefix("commit ") {
            let mut ids = ids.split(' ');
            current = ids.next().unwrap_or_default().to_owned();
            if let Some(tree) = ids.next() {
                first
                    .entry(tree.to_owned())
                    .or_insert_with(|| current.clone());
            }
        } else if let Some(raw) = line.strip_prefix(':') {
            // `:<old mode> <new mode> <old id> <new id> <status>\t<path>`
            let fields: Vec<&str> = raw
                .split('\t')
                .next()
                .unwrap_or_default()
                .split(' ')
                .collect();
            if let Some(new_id) = fields.get(3).filter(|id| !id.bytes().all(|b| b == b'0')) {
                first
                    .entry((*new_id).to_owned())
                    .or_insert_with(|| current.clone());
            }
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{GateRepo, PushPolicy};
    use crate::git::SshTarget;

    /// Runs git in `dir` with `input` on stdin and returns its trimmed stdout.
    fn git(dir: &Path, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "A")
            .env("GIT_AUTHOR_EMAIL", "a@example.org")
            .env("GIT_COMMITTER_NAME", "A")
            .env("GIT_COMMITTER_EMAIL", "a@example.org")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run git");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "git {args:?} failed");
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Creates a bare repository that stands in for a mirror, with no quarantine.
    fn bare_mirror(dir: &Path) -> (Mirror, Quarantine) {
        git(dir, &["init", "--quiet", "--bare", "m.git"], b"");
        let mirror_dir = dir.join("m.git");
        let mirror = Mirror {
            repo: GateRepo {
                name: "m".into(),
                url: "git@forge.example.org:team/m.git".into(),
                host_keys: vec![],
                identity: "/nonexistent".into(),
                push: PushPolicy::default(),
            },
            dir: mirror_dir.clone(),
            home: dir.to_owned(),
            ssh: SshTarget {
                identity: "/nonexistent".into(),
                known_hosts: "/nonexistent".into(),
                connect_timeout: Duration::from_secs(1),
            },
            upstream_timeout: Duration::from_secs(60),
            lock: tokio::sync::Mutex::new(()),
        };
        let quarantine = Quarantine {
            object_directory: None,
            mirror_objects: mirror_dir.join("objects"),
        };
        (mirror, quarantine)
    }

    #[tokio::test]
    async fn missing_objects_fail_closed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (mirror, quarantine) = bare_mirror(dir.path());
        let scanner = Scanner::new::<&str>(&[]);

        // Positive control: a commit whose tree and blob exist scans clean.
        let blob = git(&mirror.dir, &["hash-object", "-w", "--stdin"], b"plain\n");
        let tree = git(
            &mirror.dir,
            &["mktree"],
            format!("100644 blob {blob}\ta.txt\n").as_bytes(),
        );
        let commit = git(&mirror.dir, &["commit-tree", &tree, "-m", "ok"], b"");
        let findings = scan_push(&mirror, &quarantine, &scanner, &[commit], 1 << 20)
            .await
            .expect("a complete commit scans");
        assert!(findings.is_empty());

        // A tip that does not exist.
        let absent = "1".repeat(40);
        let error = scan_push(&mirror, &quarantine, &scanner, &[absent], 1 << 20).await;
        assert!(error.is_err(), "{error:?}");

        // A commit whose tree is missing.
        let broken = format!(
            "tree {}\nauthor A <a@example.org> 0 +0000\ncommitter A <a@example.org> 0 +0000\n\nx\n",
            "2".repeat(40)
        );
        let commit = git(
            &mirror.dir,
            &[
                "hash-object",
                "-w",
                "-t",
                "commit",
                "--literally",
                "--stdin",
            ],
            broken.as_bytes(),
        );
        let error = scan_push(&mirror, &quarantine, &scanner, &[commit], 1 << 20).await;
        assert!(error.is_err(), "{error:?}");
    }

    #[tokio::test]
    async fn malformed_tree_fails_closed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (mirror, quarantine) = bare_mirror(dir.path());
        let scanner = Scanner::new::<&str>(&[]);
        // A tree object whose entry is cut off before its object id ends.
        let tree = git(
            &mirror.dir,
            &["hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
            b"100644 a.txt\0short",
        );
        let objects = vec![(tree, String::new())];
        let error = scan_objects(&mirror, &quarantine, &scanner, &objects, 1 << 20).await;
        let error = error.err().expect("a malformed tree is an error");
        assert!(error.contains("is malformed"), "{error}");
    }

    #[test]
    fn tree_names_parse() {
        let mut tree = Vec::new();
        tree.extend_from_slice(b"100644 a.txt\0");
        tree.extend_from_slice(&[1u8; 20]);
        tree.extend_from_slice(b"40000 dir\0");
        tree.extend_from_slice(&[2u8; 20]);
        let entries = tree_entries(&tree, 20).expect("valid tree");
        let names: Vec<&[u8]> = entries.iter().map(|entry| entry.name).collect();
        assert_eq!(names, vec![&b"a.txt"[..], &b"dir"[..]]);
        assert_eq!(entries[1].mode, b"40000");
        assert_eq!(entries[1].id, &[2u8; 20]);
    }

    #[test]
    fn truncated_tree_is_malformed() {
        let mut tree = Vec::new();
        tree.extend_from_slice(b"100644 a.txt\0");
        tree.extend_from_slice(&[1u8; 10]);
        assert!(tree_entries(&tree, 20).is_none());
    }
}
