//! Parsing front matter into a tree of YAML nodes that remember their lines.
//!
//! serde-saphyr parses with strict options (no YAML 1.1 booleans, no `<<` merge keys,
//! no unknown tags, no aliases, duplicate keys rejected, resource budgets on). The
//! schema is then checked by hand over this tree, so that every error can name the
//! key path and line, and suggest the key that was probably meant.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use serde_saphyr::budget::BudgetBreach;

use crate::frontmatter::MAX_FRONT_MATTER_BYTES;

/// The deepest nesting of maps and lists accepted. The schema needs six levels.
const MAX_DEPTH: usize = 24;

/// A YAML value with the line it starts on (1-based, relative to the YAML text).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub line: u64,
}

/// A key of a YAML map with the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// An integer; `i128` holds every value YAML integers take in practice.
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// Names the kind of value for error messages ("found a list").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// A YAML syntax or budget error, with the line (relative to the YAML text) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: Option<u64>,
    pub message: String,
}

/// Parses YAML text into a node tree. Empty text yields an empty map.
pub(crate) fn parse(yaml: &str) -> Result<Node, YamlError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_aliases: 0,
            max_depth: MAX_DEPTH,
            max_documents: 1,
            max_nodes: 20_000,
            max_total_scalar_bytes: MAX_FRONT_MATTER_BYTES,
        },
        strict_booleans: true,
        merge_keys: serde_saphyr::MergeKeyPolicy::Error,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        reject_unsupported_tags: true,
        with_snippet: false,
    };

    let parsed: Result<Option<Spanned<Tree>>, _> =
        serde_saphyr::from_str_with_options(yaml, options);
    match parsed {
        Ok(Some(spanned)) => Ok(spanned_node(spanned)),
        Ok(None) => Ok(Node {
            value: Value::Map(Vec::new()),
            line: 1,
        }),
        Err(error) => Err(describe(&error)),
    }
}

/// Turns a serde-saphyr error into a message in the project's words.
fn describe(error: &serde_saphyr::Error) -> YamlError {
    use serde_saphyr::Error as E;

    let line = error
        .location()
        .map(|location| location.line())
        .filter(|line| *line > 0);
    let message = match error.without_snippet() {
        E::Budget {
            breach: BudgetBreach::Aliases { .. },
            ..
        } => "YAML aliases (`*name`) are not allowed; write the value out".to_string(),
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => {
            format!("the YAML is nested more than {MAX_DEPTH} levels deep")
        }
        E::Budget { breach, .. } => format!("the YAML exceeds a size limit ({breach:?})"),
        E::MergeKeyNotAllowed { .. } => {
            "YAML merge keys (`<<`) are not allowed; use `extends` to share settings".to_string()
        }
        E::UnsupportedTag { tag, .. } | E::TaggedStructFieldName { tag, .. } => {
            format!("the YAML tag `{tag}` is not allowed; remove it")
        }
        E::DuplicateMappingKey { key: Some(key), .. } => format!("duplicate key `{key}`"),
        E::DuplicateMappingKey { key: None, .. } => "duplicate key".to_string(),
        E::MultipleDocuments { .. } => "the front matter holds more than one YAML document".into(),
        E::Message { msg, .. } => msg.clone(),
        other => {
            let text = other.to_string();
            if text.contains("recursion limit exceeded") {
                format!("the YAML is nested more than {MAX_DEPTH} levels deep")
            } else {
                format!("invalid YAML: {}", strip_location(&text))
            }
        }
    };
    YamlError { line, message }
}

/// Removes a trailing " at line X column Y" that serde-saphyr appends, since the
/// caller reports the line itself.
fn strip_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    }
}

fn spanned_node(spanned: Spanned<Tree>) -> Node {
    Node {
        value: spanned.value.0,
        line: spanned.referenced.line(),
    }
}

/// The deserialization target: a value whose children carry their spans.
struct Tree(Value);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a YAML value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Tree, E> {
        Ok(Tree(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Tree, E> {
        Ok(Tree(Value::Int(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Tree, E> {
        Ok(Tree(Value::Int(value.into())))
    }

    fn visit_i128<E>(self, value: i128) -> Result<Tree, E> {
        Ok(Tree(Value::Int(value)))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Tree, E> {
        i128::try_from(value)
            .map(|value| Tree(Value::Int(value)))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Tree, E> {
        Ok(Tree(Value::Float(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Tree, E> {
        Ok(Tree(Value::Str(value.to_string())))
    }

    fn visit_string<E>(self, value: String) -> Result<Tree, E> {
        Ok(Tree(Value::Str(value)))
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
        Tree::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Tree>>()? {
            items.push(spanned_node(item));
        }
        Ok(Tree(Value::Seq(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Tree>>()? {
            let line = key.referenced.line();
            let name = match key.value.0 {
                Value::Str(name) => name,
                Value::Int(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "map keys must be strings, found {}",
                        other.kind()
                    )));
                }
            };
            if entries.iter().any(|(existing, _)| existing.name == name) {
                return Err(de::Error::custom(format!("duplicate key `{name}`")));
            }
            let value = map.next_value::<Spanned<Tree>>()?;
            entries.push((Key { name, line }, spanned_node(value)));
        }
        Ok(Tree(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("expected a map, found {other:?}"),
        }
    }

    #[test]
    fn parse_scalars_with_lines() {
        let node = parse("a: 1\nb: \"2\"\nc: true\nd: x\ne:\nf: 1.5\n").unwrap();
        let entries = map(&node);
        let values: Vec<_> = entries
            .iter()
            .map(|(k, v)| (k.name.as_str(), &v.value))
            .collect();
        assert_eq!(
            values,
            vec![
                ("a", &Value::Int(1)),
                ("b", &Value::Str("2".into())),
                ("c", &Value::Bool(true)),
                ("d", &Value::Str("x".into())),
                ("e", &Value::Null),
                ("f", &Value::Float(1.5)),
            ]
        );
        assert_eq!(entries[3].0.line, 4);
        assert_eq!(entries[3].1.line, 4);
    }

    #[test]
    fn parse_nested_lines() {
        let node = parse("a:\n  - x\n  - y: 1\n").unwrap();
        let Value::Seq(items) = &map(&node)[0].1.value else {
            panic!("not a list")
        };
        assert_eq!(items[0].line, 2);
        assert_eq!(items[1].line, 3);
    }

    #[test]
    fn parse_empty_is_empty_map() {
        assert_eq!(parse("").unwrap().value, Value::Map(Vec::new()));
        assert_eq!(
            parse("# only a comment\n").unwrap().value,
            Value::Map(Vec::new())
        );
    }

    #[test]
    fn parse_yaml11_booleans_are_strings() {
        let node = parse("a: yes\nb: on\nc: True\n").unwrap();
        let entries = map(&node);
        assert_eq!(entries[0].1.value, Value::Str("yes".into()));
        assert_eq!(entries[1].1.value, Value::Str("on".into()));
    }

    #[test]
    fn parse_rejects_aliases() {
        let error = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert_eq!(
            error.message,
            "YAML aliases (`*name`) are not allowed; write the value out"
        );
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn parse_rejects_merge_keys() {
        let error = parse("a: {x: 1}\nb:\n  <<: {x: 1}\n").unwrap_err();
        assert_eq!(
            error.message,
            "YAML merge keys (`<<`) are not allowed; use `extends` to share settings"
        );
    }

    #[test]
    fn parse_rejects_unknown_tags() {
        let error = parse("a: !evil 1\n").unwrap_err();
        assert_eq!(
            error.message,
            "the YAML tag `!evil` is not allowed; remove it"
        );
    }

    #[test]
    fn parse_rejects_duplicate_keys() {
        let error = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(error.message, "duplicate key `a`");
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn parse_rejects_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let error = parse(&deep).unwrap_err();
        assert_eq!(
            error.message,
            format!("the YAML is nested more than {MAX_DEPTH} levels deep")
        );
    }

    #[test]
    fn parse_rejects_billion_laughs() {
        let text = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b]\n";
        let error = parse(text).unwrap_err();
        assert!(error.message.contains("aliases"), "{}", error.message);
    }

    #[test]
    fn parse_rejects_second_document() {
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
