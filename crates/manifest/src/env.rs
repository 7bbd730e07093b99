//! The `env` key: the agent's environment.

use serde::Serialize;

use crate::decode::Cx;
use crate::route::{check_variable_name, is_variable_name};
use crate::sourced::Sourced;
use crate::yaml::{Node, Value};

/// The source of an agent environment variable's value. The plan never contains
/// a copied or prompted value, only where it will come from at launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvValue {
    /// A value written in the bottle file.
    Literal {
        /// The value.
        value: String,
    },
    /// `"${NAME}"`: the value of a host variable, copied at launch; a missing host
    /// variable is a launch error.
    Host {
        /// The host variable's name.
        variable: String,
    },
    /// `"?"` or `"?message"`: the operator types the value at launch.
    Prompt {
        /// The prompt shown, if the file gave one.
        message: Option<String>,
    },
}

/// Variables the launcher sets itself in every bottle: the proxy and CA trust settings,
/// the agent's identity and home, and the git configuration. A bottle cannot override
/// them, since that would only break the bottle's own tools.
pub const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TERM",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "NODE_USE_ENV_PROXY",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "GIT_CONFIG_SYSTEM",
    "CODEX_CA_CERTIFICATE",
    "BOT_BOTTLE_SLUG",
];

/// Decodes the `env` map in file order.
pub(crate) fn decode_env(cx: &mut Cx, node: &Node) -> Option<Vec<(String, Sourced<EnvValue>)>> {
    let entries = cx.entries(node)?;
    let mut env = Vec::new();
    for (key, value) in entries {
        cx.at_key(&key.name, |cx| {
            let key_node = Node {
                value: Value::Null,
                line: key.line,
            };
            if !check_variable_name(cx, &key_node, &key.name) {
                return;
            }
            if RESERVED_ENV.contains(&key.name.as_str()) {
                cx.error(
                    &key_node,
                    format!(
                        "`{}` is set by bottle in every bottle and cannot be overridden; remove \
                         it",
                        key.name
                    ),
                );
                return;
            }
            if let Some(parsed) = decode_env_value(cx, value) {
                env.push((key.name.clone(), cx.sourced(parsed)));
            }
        });
    }
    Some(env)
}

fn decode_env_value(cx: &mut Cx, node: &Node) -> Option<EnvValue> {
    let text = match &node.value {
        Value::Str(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        other => {
            cx.error(
                node,
                format!("expected a string, found {}; quote the value", other.kind()),
            );
            return None;
        }
    };
    if text.contains('\0') {
        cx.error(
            node,
            "the value contains a NUL byte, which no environment variable can hold",
        );
        return None;
    }
    if let Some(message) = text.strip_prefix('?') {
        let message = (!message.is_empty()).then(|| message.to_string());
        return Some(EnvValue::Prompt { message });
    }
    let whole_reference = text
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'));
    if let Some(name) = whole_reference.filter(|name| is_variable_name(name)) {
        return Some(EnvValue::Host {
            variable: name.to_string(),
        });
    }
    if text.contains("${") {
        cx.error(
            node,
            "only a whole value \"${NAME}\" copies a host variable; `${` inside a longer value \
             is not expanded",
        );
        return None;
    }
    Some(EnvValue::Literal { value: text })
}
