//! Hostile input: YAML features that are rejected, and input that must never panic.

use std::path::Path;

use proptest::prelude::*;

use super::{Fixture, agent_errors, bottle_errors};
use crate::file::{parse_agent, parse_bottle};

#[test]
fn front_matter_errors_name_line_one() {
    let error = parse_bottle(Path::new("b.md"), "no front matter\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "b.md:1: the file does not start with a `---` line; a bottle or agent file starts with \
         YAML front matter between two `---` lines"
    );
    let error = parse_bottle(Path::new("b.md"), "---\nenv: {}\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "b.md:1: the front matter opened on line 1 is never closed; add a `---` line after the YAML"
    );
}

#[test]
fn yaml11_booleans_are_not_booleans() {
    for word in ["yes", "no", "on", "off", "y", "Yes", "ON"] {
        let errors = bottle_errors(&format!(
            "agent_provider:\n  forward_host_credentials: {word}\n"
        ));
        assert_eq!(
            errors,
            [format!(
                "b.md:3: agent_provider.forward_host_credentials: expected true or false, found \
                 the string \"{word}\""
            )],
            "{word}"
        );
    }
}

#[test]
fn merge_keys_are_rejected() {
    assert_eq!(
        bottle_errors("env: &base {A: x}\negress:\n  <<: {log: 1}\n"),
        ["b.md:4: YAML merge keys (`<<`) are not allowed; use `extends` to share settings"]
    );
}

#[test]
fn aliases_are_rejected() {
    assert_eq!(
        bottle_errors("env: &e {A: x}\ngit-gate: *e\n"),
        ["b.md:3: YAML aliases (`*name`) are not allowed; write the value out"]
    );
}

#[test]
fn unknown_tags_are_rejected() {
    assert_eq!(
        bottle_errors("env: {A: !!python/object x}\n"),
        ["b.md:2: the YAML tag `!!python/object` is not allowed; remove it"]
    );
    assert_eq!(
        agent_errors("skills: !custom [a]\n"),
        ["a.md:2: the YAML tag `!custom` is not allowed; remove it"]
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    assert_eq!(
        bottle_errors("env: {}\nenv: {}\n"),
        ["b.md:3: duplicate key `env`"]
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let deep = format!("env: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let errors = bottle_errors(&deep);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("the YAML is nested more than 24 levels deep"),
        "{}",
        errors[0]
    );
}

#[test]
fn oversized_file_is_rejected() {
    let fixture = Fixture::new();
    let body = "x".repeat(usize::try_from(crate::MAX_FILE_BYTES).unwrap() + 1);
    let file = fixture.agent("big", "", &body);
    let error = crate::resolve(&fixture.sources, Some("big"), &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}: the file is larger than 1048576 bytes", file.display())
    );
}

#[test]
fn not_utf8_is_rejected() {
    let fixture = Fixture::new();
    let file = fixture.sources.agents_dir().join("bin.md");
    std::fs::write(&file, b"---\n\xff\n---\n").unwrap();
    let error = crate::resolve(&fixture.sources, Some("bin"), &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the file is not valid UTF-8 (at byte 4)",
            file.display()
        )
    );
}

fn yaml_fragment() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("env:".to_string()),
        Just("egress:".to_string()),
        Just("routes:".to_string()),
        Just("- host: a.example".to_string()),
        Just("git-gate:".to_string()),
        Just("repos:".to_string()),
        Just("extends: [a, b]".to_string()),
        Just("&a".to_string()),
        Just("*a".to_string()),
        Just("<<:".to_string()),
        Just("!!binary".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just("\"".to_string()),
        Just("? ".to_string()),
        Just("  ".to_string()),
        Just("\n".to_string()),
        "[a-z:\\-\\[\\]{}, \n'\"&*!|>%@`#]{0,12}",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.join(""))
}

proptest! {
    #[test]
    fn parsing_never_panics(yaml in yaml_fragment(), body in ".{0,20}") {
        let text = format!("---\n{yaml}\n---\n{body}");
        let _ = parse_bottle(Path::new("b.md"), &text);
        let _ = parse_agent(Path::new("a.md"), &text);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = parse_bottle(Path::new("b.md"), &text);
        let _ = parse_agent(Path::new("a.md"), &format!("---\n{text}"));
        let _ = parse_bottle(Path::new("b.md"), &format!("---\n{text}\n---\n"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn loader_never_panics(
        bottles in proptest::collection::vec(yaml_fragment(), 1..4),
        agent_yaml in yaml_fragment(),
    ) {
        let fixture = Fixture::new();
        for (index, yaml) in bottles.iter().enumerate() {
            fixture.bottle(["a", "b", "c"][index % 3], &format!("{yaml}\n"));
        }
        fixture.repo_agent("x", &format!("bottle: [a, b]\n{agent_yaml}\n"), "");
        let _ = crate::resolve(&fixture.sources, Some("x"), &[]);
        let _ = crate::check_all(&fixture.sources);
    }
}
