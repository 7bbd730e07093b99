//! Agent files: which bottles, what command, which skills, and the system prompt.
//!
//! An agent file may come from the repository the agent works in, so it can set no
//! policy: no environment, credentials, routes or repositories. Those live in bottles,
//! which are read only from the user's config directory.

use serde::Serialize;

use crate::bottle::{BOTTLE_KEYS, decode_names};
use crate::decode::Cx;
use crate::gitgate::{PartialGitUser, decode_user};
use crate::names::is_plain_name;
use crate::sourced::Sourced;
use crate::yaml::{Node, Value};

const AGENT_KEYS: &[&str] = &["bottle", "command", "skills", "git-gate"];

/// The command an agent runs instead of its provider's CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AgentCommand {
    /// A command line, as written.
    // TODO(launch): decide whether the launcher runs this with `sh -c` or splits it.
    Line(String),
    /// A program and its arguments.
    Argv(Vec<String>),
}

/// An agent file as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PartialAgent {
    /// Bottle names with their lines.
    pub bottle: Option<Sourced<Vec<(String, u64)>>>,
    pub command: Option<Sourced<AgentCommand>>,
    pub skills: Option<Sourced<Vec<String>>>,
    pub git_user: PartialGitUser,
    /// The Markdown body: the agent's system prompt.
    pub body: String,
}

/// Decodes the front matter of an agent file.
pub(crate) fn decode_agent(cx: &mut Cx, node: &Node, body: &str) -> PartialAgent {
    let mut agent = PartialAgent {
        body: body.to_string(),
        ..PartialAgent::default()
    };
    let hint = |key: &str| {
        BOTTLE_KEYS.contains(&key).then(|| {
            format!(
                "`{key}` is a bottle key, and an agent file cannot set it because agents may \
                 come from a repository; set it in a bottle under the config directory's \
                 `bottles`"
            )
        })
    };
    let Some(fields) = cx.fields_hinted(node, AGENT_KEYS, &hint) else {
        return agent;
    };

    agent.bottle = cx
        .optional(&fields, "bottle", decode_names)
        .map(|names| cx.sourced(names));
    agent.command = cx
        .optional(&fields, "command", decode_command)
        .map(|command| cx.sourced(command));
    agent.skills = cx
        .optional(&fields, "skills", decode_skills)
        .map(|skills| cx.sourced(skills));
    cx.optional(&fields, "git-gate", |cx, node| {
        let hint = |key: &str| {
            (key == "repos").then(|| {
                "an agent may set only `git-gate.user`; repos are set in a bottle".to_string()
            })
        };
        let fields = cx.fields_hinted(node, &["user"], &hint)?;
        if let Some(user) = cx.optional(&fields, "user", decode_user) {
            agent.git_user = user;
        }
        Some(())
    });
    agent
}

fn decode_command(cx: &mut Cx, node: &Node) -> Option<AgentCommand> {
    let command = match &node.value {
        Value::Str(line) => AgentCommand::Line(line.clone()),
        Value::Seq(_) => {
            let argv = cx.string_list(node)?;
            if argv.is_empty() {
                cx.error(node, "the command list is empty");
                return None;
            }
            AgentCommand::Argv(argv.into_iter().map(|(word, _)| word).collect())
        }
        other => {
            cx.error(
                node,
                format!(
                    "expected a string or a list of strings, found {}",
                    other.kind()
                ),
            );
            return None;
        }
    };
    let words: Vec<&str> = match &command {
        AgentCommand::Line(line) => vec![line.as_str()],
        AgentCommand::Argv(argv) => argv.iter().map(String::as_str).collect(),
    };
    if words.first().is_some_and(|first| first.trim().is_empty()) {
        cx.error(node, "the command is empty");
        return None;
    }
    if words.iter().any(|word| word.contains('\0')) {
        cx.error(node, "the command contains a NUL byte");
        return None;
    }
    Some(command)
}

fn decode_skills(cx: &mut Cx, node: &Node) -> Option<Vec<String>> {
    let names = cx.string_list(node)?;
    let mut skills = Vec::new();
    let mut valid = true;
    for (index, (name, line)) in names.into_iter().enumerate() {
        if is_plain_name(&name) {
            skills.push(name);
            continue;
        }
        valid = false;
        cx.at_index(index, |cx| {
            cx.error_at_line(
                line,
                format!(
                    "invalid skill name \"{}\"; a skill is a folder name in the host's skills \
                     directory: no `/`, no `..`, not empty",
                    name.escape_default()
                ),
            )
        });
    }
    valid.then_some(skills)
}
