//! Checking a YAML node tree against the schema, collecting every problem with its
//! file, line and key path.

use std::path::{Path, PathBuf};

use crate::error::Diagnostic;
use crate::sourced::Sourced;
use crate::yaml::{Key, Node, Value};

enum Segment {
    Key(String),
    Index(usize),
}

/// The decoding context of one file.
pub(crate) struct Cx {
    file: PathBuf,
    /// Lines of the file before the YAML text.
    line_offset: u64,
    path: Vec<Segment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The entries of a YAML map whose keys were checked against the schema.
pub(crate) struct Fields<'n> {
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    /// Returns the value of `key`, treating an explicit null as absent.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(candidate, _)| candidate.name == key)
            .map(|(_, node)| node)
            .filter(|node| node.value != Value::Null)
    }

    /// Returns whether `key` is present with a non-null value.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl Cx {
    pub fn new(file: &Path, line_offset: u64) -> Cx {
        Cx {
            file: file.to_path_buf(),
            line_offset,
            path: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Wraps a value with this file as its source.
    pub fn sourced<T>(&self, value: T) -> Sourced<T> {
        Sourced::new(value, &self.file)
    }

    /// Converts a line of the YAML text to a line of the file.
    pub fn file_line(&self, yaml_line: u64) -> u64 {
        yaml_line + self.line_offset
    }

    /// Records a problem with the value at the current key path.
    pub fn error(&mut self, node: &Node, message: impl Into<String>) {
        self.error_at_line(node.line, message);
    }

    /// Records a problem at a line of the YAML text, at the current key path.
    pub fn error_at_line(&mut self, yaml_line: u64, message: impl Into<String>) {
        let key = self.key_path();
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: Some(self.file_line(yaml_line)),
            key,
            message: message.into(),
        });
    }

    /// The current key path, such as `egress.routes[0].host`.
    pub fn key_path(&self) -> Option<String> {
        if self.path.is_empty() {
            return None;
        }
        let mut rendered = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !rendered.is_empty() {
                        rendered.push('.');
                    }
                    rendered.push_str(key);
                }
                Segment::Index(index) => rendered.push_str(&format!("[{index}]")),
            }
        }
        Some(rendered)
    }

    /// Runs `decode` with `key` appended to the key path.
    pub fn at_key<R>(&mut self, key: &str, decode: impl FnOnce(&mut Cx) -> R) -> R {
        self.path.push(Segment::Key(key.to_string()));
        let result = decode(self);
        self.path.pop();
        result
    }

    /// Runs `decode` with a list index appended to the key path.
    pub fn at_index<R>(&mut self, index: usize, decode: impl FnOnce(&mut Cx) -> R) -> R {
        self.path.push(Segment::Index(index));
        let result = decode(self);
        self.path.pop();
        result
    }

    /// Checks that `node` is a map whose keys are all in `allowed`. Unknown keys are
    /// reported with the closest allowed key. A null node counts as an empty map.
    pub fn fields<'n>(&mut self, node: &'n Node, allowed: &[&str]) -> Option<Fields<'n>> {
        self.fields_hinted(node, allowed, &|_| None)
    }

    /// Like [`Cx::fields`], but `hint` may give the message for an unknown key.
    pub fn fields_hinted<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        hint: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Fields<'n>> {
        let entries: &'n [(Key, Node)] = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            other => {
                self.error(node, format!("expected a map, found {}", other.kind()));
                return None;
            }
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let message =
                    hint(&key.name).unwrap_or_else(|| unknown_key_message(&key.name, allowed));
                self.at_key(&key.name, |cx| cx.error_at_line(key.line, message));
            }
        }
        Some(Fields { entries })
    }

    /// Returns the entries of a map whose keys are free-form names (such as `env`).
    pub fn entries<'n>(&mut self, node: &'n Node) -> Option<&'n [(Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            Value::Null => Some(&[]),
            other => {
                self.error(node, format!("expected a map, found {}", other.kind()));
                None
            }
        }
    }

    /// Returns the string value of `node`.
    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Str(text) => Some(text.clone()),
            other => {
                self.error(node, format!("expected a string, found {}", other.kind()));
                None
            }
        }
    }

    /// Returns the boolean value of `node`; only `true` and `false` are booleans.
    pub fn bool(&mut self, node: &Node) -> Option<bool> {
        match &node.value {
            Value::Bool(flag) => Some(*flag),
            Value::Str(text) => {
                self.error(
                    node,
                    format!("expected true or false, found the string \"{text}\""),
                );
                None
            }
            other => {
                self.error(
                    node,
                    format!("expected true or false, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// Returns the integer value of `node` if it lies in `min..=max`.
    pub fn integer(&mut self, node: &Node, min: i128, max: i128) -> Option<i128> {
        match &node.value {
            Value::Int(number) if (min..=max).contains(number) => Some(*number),
            Value::Int(number) => {
                self.error(
                    node,
                    format!("{number} is out of range; expected {min} to {max}"),
                );
                None
            }
            other => {
                self.error(node, format!("expected an integer, found {}", other.kind()));
                None
            }
        }
    }

    /// Returns the items of a list.
    pub fn list<'n>(&mut self, node: &'n Node) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            other => {
                self.error(node, format!("expected a list, found {}", other.kind()));
                None
            }
        }
    }

    /// Returns a list of strings; a single string counts as a list of one, as for
    /// `extends` and an agent's `bottle`.
    pub fn string_or_list(&mut self, node: &Node) -> Option<Vec<(String, u64)>> {
        match &node.value {
            Value::Str(text) => Some(vec![(text.clone(), node.line)]),
            Value::Seq(items) => {
                let mut strings = Vec::new();
                let mut valid = true;
                for (index, item) in items.iter().enumerate() {
                    match self.at_index(index, |cx| cx.string(item)) {
                        Some(text) => strings.push((text, item.line)),
                        None => valid = false,
                    }
                }
                valid.then_some(strings)
            }
            other => {
                self.error(
                    node,
                    format!("expected a name or a list of names, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// Returns a list of strings.
    pub fn string_list(&mut self, node: &Node) -> Option<Vec<(String, u64)>> {
        let items = self.list(node)?;
        let mut strings = Vec::new();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            match self.at_index(index, |cx| cx.string(item)) {
                Some(text) => strings.push((text, item.line)),
                None => valid = false,
            }
        }
        valid.then_some(strings)
    }

    /// Decodes the value of an optional key with `decode`, at that key's path.
    pub fn optional<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        decode: impl FnOnce(&mut Cx, &Node) -> Option<T>,
    ) -> Option<T> {
        let node = fields.get(key)?;
        self.at_key(key, |cx| decode(cx, node))
    }

    /// Decodes the value of a required key, reporting its absence on `parent`'s line.
    pub fn required<T>(
        &mut self,
        parent: &Node,
        fields: &Fields<'_>,
        key: &str,
        decode: impl FnOnce(&mut Cx, &Node) -> Option<T>,
    ) -> Option<T> {
        match fields.get(key) {
            Some(node) => self.at_key(key, |cx| decode(cx, node)),
            None => {
                self.error(parent, format!("missing required key `{key}`"));
                None
            }
        }
    }
}

/// Builds the message for an unknown key, with a suggestion when one is close.
pub(crate) fn unknown_key_message(key: &str, allowed: &[&str]) -> String {
    match closest(key, allowed) {
        Some(suggestion) => format!("unknown key `{key}`; did you mean `{suggestion}`?"),
        None if allowed.is_empty() => format!("unknown key `{key}`; no keys are allowed here"),
        None => format!(
            "unknown key `{key}`; expected one of {}",
            backticked(allowed)
        ),
    }
}

/// Returns the candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lowered = word.to_ascii_lowercase().replace('_', "-");
    candidates
        .iter()
        .map(|candidate| {
            let normalized = candidate.replace('_', "-");
            (
                strsim::damerau_levenshtein(&lowered, &normalized),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Formats names as "`a`, `b`, `c`".
pub(crate) fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_typos() {
        let keys = [
            "extends",
            "env",
            "agent_provider",
            "dockerfile",
            "git-gate",
            "egress",
        ];
        assert_eq!(closest("extend", &keys), Some("extends"));
        assert_eq!(closest("git_gate", &keys), Some("git-gate"));
        assert_eq!(closest("gitgate", &keys), Some("git-gate"));
        assert_eq!(closest("agent-provider", &keys), Some("agent_provider"));
        assert_eq!(closest("Egress", &keys), Some("egress"));
        assert_eq!(closest("routes", &keys), None);
    }

    #[test]
    fn unknown_key_message_without_suggestion() {
        assert_eq!(
            unknown_key_message("zzz", &["a", "b"]),
            "unknown key `zzz`; expected one of `a`, `b`"
        );
    }
}
