//! Bottle files as written: every key optional, each value with its source file.

use std::path::PathBuf;

use crate::decode::Cx;
use crate::env::{EnvValue, decode_env};
use crate::gitgate::{PartialGitUser, Repo, decode_repos, decode_user};
use crate::host::HostPattern;
use crate::names::is_plain_name;
use crate::paths::resolve_path;
use crate::route::{Route, check_variable_name, decode_route};
use crate::sourced::Sourced;
use crate::yaml::Node;

/// The top-level keys of a bottle file.
pub(crate) const BOTTLE_KEYS: &[&str] = &[
    "extends",
    "env",
    "agent_provider",
    "dockerfile",
    "git-gate",
    "egress",
];

/// One bottle file's settings, before `extends` is folded in.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PartialBottle {
    /// Parent bottle names with the line each is written on.
    pub extends: Vec<(String, u64)>,
    pub env: Vec<(String, Sourced<EnvValue>)>,
    pub provider: PartialProvider,
    pub dockerfile: Option<Sourced<PathBuf>>,
    pub git_user: PartialGitUser,
    pub repos: Vec<(String, Sourced<Repo>)>,
    pub routes: Vec<Sourced<Route>>,
    pub egress_log: Option<Sourced<u8>>,
    /// The Markdown body, a description of the bottle.
    pub body: String,
}

/// `agent_provider` as written; each field is a last-wins scalar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartialProvider {
    pub template: Option<Sourced<String>>,
    pub auth_token: Option<Sourced<String>>,
    pub forward_host_credentials: Option<Sourced<bool>>,
}

impl PartialBottle {
    /// Overlays `later` on `self` with the merge rules of `extends`: env by name and
    /// repos by name, later wins; routes by host and port, a later route replacing an
    /// earlier one whole; `git-gate.user` and `agent_provider` field by field; other
    /// scalars last-wins. A replaced entry keeps its earlier position, which makes the
    /// overlay associative. `extends` and the body are not merged.
    pub fn overlay(&mut self, later: &PartialBottle) {
        overlay_keyed(&mut self.env, &later.env, |(name, _)| name.clone());
        overlay_option(&mut self.provider.template, &later.provider.template);
        overlay_option(&mut self.provider.auth_token, &later.provider.auth_token);
        overlay_option(
            &mut self.provider.forward_host_credentials,
            &later.provider.forward_host_credentials,
        );
        overlay_option(&mut self.dockerfile, &later.dockerfile);
        self.git_user.merge(&later.git_user);
        overlay_keyed(&mut self.repos, &later.repos, |(name, _)| name.clone());
        overlay_keyed(&mut self.routes, &later.routes, route_key);
        overlay_option(&mut self.egress_log, &later.egress_log);
    }
}

/// The identity of a route for merging: its host and port.
pub(crate) fn route_key(route: &Sourced<Route>) -> (HostPattern, u16) {
    (route.value.host.clone(), route.value.port)
}

fn overlay_option<T: Clone>(earlier: &mut Option<T>, later: &Option<T>) {
    if later.is_some() {
        earlier.clone_from(later);
    }
}

fn overlay_keyed<T: Clone, K: PartialEq>(earlier: &mut Vec<T>, later: &[T], key: impl Fn(&T) -> K) {
    for item in later {
        let item_key = key(item);
        match earlier
            .iter_mut()
            .find(|existing| key(existing) == item_key)
        {
            Some(existing) => *existing = item.clone(),
            None => earlier.push(item.clone()),
        }
    }
}

/// Decodes the front matter of a bottle file.
pub(crate) fn decode_bottle(cx: &mut Cx, node: &Node, body: &str) -> PartialBottle {
    let mut bottle = PartialBottle {
        body: body.to_string(),
        ..PartialBottle::default()
    };
    let Some(fields) = cx.fields(node, BOTTLE_KEYS) else {
        return bottle;
    };

    if let Some(extends) = cx.optional(&fields, "extends", decode_names) {
        bottle.extends = extends;
    }
    if let Some(env) = cx.optional(&fields, "env", decode_env) {
        bottle.env = env;
    }
    if let Some(provider) = cx.optional(&fields, "agent_provider", decode_provider) {
        bottle.provider = provider;
    }
    bottle.dockerfile = cx.optional(&fields, "dockerfile", |cx, node| {
        let text = cx.string(node)?;
        let path = resolve_path(cx.file(), &text)
            .map_err(|message| cx.error(node, message))
            .ok()?;
        Some(cx.sourced(path))
    });
    cx.optional(&fields, "git-gate", |cx, node| {
        let fields = cx.fields(node, &["user", "repos"])?;
        if let Some(user) = cx.optional(&fields, "user", decode_user) {
            bottle.git_user = user;
        }
        if let Some(repos) = cx.optional(&fields, "repos", decode_repos) {
            bottle.repos = repos;
        }
        Some(())
    });
    cx.optional(&fields, "egress", |cx, node| {
        let fields = cx.fields(node, &["routes", "log"])?;
        if let Some(routes) = cx.optional(&fields, "routes", decode_routes) {
            bottle.routes = routes;
        }
        bottle.egress_log = cx.optional(&fields, "log", |cx, node| {
            let level = cx.integer(node, 0, 2)?;
            Some(cx.sourced(u8::try_from(level).expect("the level was checked to be 0 to 2")))
        });
        Some(())
    });
    bottle
}

/// Decodes a name or a list of names, each a plain bottle name.
pub(crate) fn decode_names(cx: &mut Cx, node: &Node) -> Option<Vec<(String, u64)>> {
    let names = cx.string_or_list(node)?;
    let mut valid = true;
    for (name, line) in &names {
        if !is_plain_name(name) {
            cx.error_at_line(
                *line,
                format!(
                    "invalid bottle name \"{}\"; a bottle is named by its file name in the \
                     config directory's `bottles`, without `.md`",
                    name.escape_default()
                ),
            );
            valid = false;
        }
    }
    valid.then_some(names)
}

fn decode_provider(cx: &mut Cx, node: &Node) -> Option<PartialProvider> {
    let fields = cx.fields(
        node,
        &["template", "auth_token", "forward_host_credentials"],
    )?;
    let template = cx.optional(&fields, "template", |cx, node| {
        let template = cx.string(node)?;
        if !is_plain_name(&template) {
            cx.error(
                node,
                format!(
                    "invalid template \"{}\"; use `claude`, `codex` or a plugin name",
                    template.escape_default()
                ),
            );
            return None;
        }
        Some(cx.sourced(template))
    });
    let auth_token = cx.optional(&fields, "auth_token", |cx, node| {
        let name = cx.string(node)?;
        check_variable_name(cx, node, &name).then(|| cx.sourced(name))
    });
    let forward_host_credentials = cx
        .optional(&fields, "forward_host_credentials", Cx::bool)
        .map(|flag| cx.sourced(flag));
    Some(PartialProvider {
        template,
        auth_token,
        forward_host_credentials,
    })
}

fn decode_routes(cx: &mut Cx, node: &Node) -> Option<Vec<Sourced<Route>>> {
    let items = cx.list(node)?;
    let mut routes: Vec<(Sourced<Route>, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(route) = cx.at_index(index, |cx| decode_route(cx, item)) else {
            continue;
        };
        let route = cx.sourced(route);
        if let Some((_, first)) = routes
            .iter()
            .find(|(existing, _)| route_key(existing) == route_key(&route))
        {
            let message = format!(
                "a second route for {} port {}; merge it with routes[{first}]",
                route.value.host, route.value.port
            );
            cx.at_index(index, |cx| cx.error(item, message));
            continue;
        }
        routes.push((route, index));
    }
    Some(routes.into_iter().map(|(route, _)| route).collect())
}
