//! Every agent key: its type and errors, and the keys an agent may not set.

use super::{agent, agent_errors};
use crate::agent::AgentCommand;

#[test]
fn agent_all_keys() {
    let parsed = agent(
        "bottle: [a, b]\ncommand: [my-harness, --fast]\nskills: [code-review, rust]\n\
         git-gate:\n  user: {name: reviewer-bot}\n",
        "The prompt.\n",
    );
    let names: Vec<_> = parsed
        .bottle
        .unwrap()
        .value
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        parsed.command.unwrap().value,
        AgentCommand::Argv(vec!["my-harness".into(), "--fast".into()])
    );
    assert_eq!(parsed.skills.unwrap().value, ["code-review", "rust"]);
    assert_eq!(parsed.git_user.name.unwrap().value, "reviewer-bot");
    assert_eq!(parsed.git_user.email, None);
    assert_eq!(parsed.body, "The prompt.\n");
}

#[test]
fn agent_command_string_and_bottle_name() {
    let parsed = agent("bottle: base\ncommand: \"run --x\"\n", "");
    assert_eq!(
        parsed.command.unwrap().value,
        AgentCommand::Line("run --x".into())
    );
    assert_eq!(parsed.bottle.unwrap().value, [("base".to_string(), 1)]);
}

#[test]
fn agent_rejects_bottle_keys() {
    assert_eq!(
        agent_errors("egress: {routes: []}\n"),
        [
            "a.md:2: egress: `egress` is a bottle key, and an agent file cannot set it because \
          agents may come from a repository; set it in a bottle under the config directory's \
          `bottles`"
        ]
    );
    assert_eq!(
        agent_errors("env: {A: b}\n"),
        [
            "a.md:2: env: `env` is a bottle key, and an agent file cannot set it because agents \
          may come from a repository; set it in a bottle under the config directory's `bottles`"
        ]
    );
    assert_eq!(
        agent_errors("git-gate:\n  repos: {}\n"),
        [
            "a.md:3: git-gate.repos: an agent may set only `git-gate.user`; repos are set in a bottle"
        ]
    );
    assert_eq!(
        agent_errors("skils: [a]\n"),
        ["a.md:2: skils: unknown key `skils`; did you mean `skills`?"]
    );
}

#[test]
fn agent_skill_names() {
    for bad in ["../x", "a/b", "\"\"", ".."] {
        let errors = agent_errors(&format!("skills: [{bad}]\n"));
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(
            errors[0].starts_with("a.md:2: skills[0]: invalid skill name"),
            "{}",
            errors[0]
        );
    }
    assert_eq!(
        agent_errors("skills: [ok, ../up]\n"),
        [
            "a.md:2: skills[1]: invalid skill name \"../up\"; a skill is a folder name in the host's \
          skills directory: no `/`, no `..`, not empty"
        ]
    );
    assert_eq!(
        agent_errors("skills: code\n"),
        ["a.md:2: skills: expected a list, found a string"]
    );
}

#[test]
fn agent_command_errors() {
    assert_eq!(
        agent_errors("command: []\n"),
        ["a.md:2: command: the command list is empty"]
    );
    assert_eq!(
        agent_errors("command: \"  \"\n"),
        ["a.md:2: command: the command is empty"]
    );
    assert_eq!(
        agent_errors("command: {a: b}\n"),
        ["a.md:2: command: expected a string or a list of strings, found a map"]
    );
    assert_eq!(
        agent_errors("command: [a, 1]\n"),
        ["a.md:2: command[1]: expected a string, found an integer"]
    );
}

#[test]
fn agent_bottle_errors() {
    assert_eq!(
        agent_errors("bottle: /etc/passwd\n"),
        [
            "a.md:2: bottle: invalid bottle name \"/etc/passwd\"; a bottle is named by its file name \
          in the config directory's `bottles`, without `.md`"
        ]
    );
}

#[test]
fn agent_git_user_email() {
    let parsed = agent("git-gate:\n  user: {email: r@example.org}\n", "");
    assert_eq!(parsed.git_user.email.unwrap().value, "r@example.org");
    assert_eq!(
        agent_errors("git-gate:\n  user: {email: \"\"}\n"),
        ["a.md:3: git-gate.user.email: the value is empty"]
    );
}
