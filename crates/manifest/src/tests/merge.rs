//! The merge rules of `extends`, agents and `--bottle`, and their algebra.

use std::path::PathBuf;

use proptest::prelude::*;

use super::Fixture;
use crate::bottle::PartialBottle;
use crate::env::EnvValue;
use crate::host::HostPattern;
use crate::plan::Plan;
use crate::route::{Dlp, Route};
use crate::sourced::Sourced;

fn env_of(plan: &Plan) -> Vec<(String, String, PathBuf)> {
    plan.env
        .iter()
        .map(|var| {
            let value = match &var.value {
                EnvValue::Literal { value } => value.clone(),
                other => format!("{other:?}"),
            };
            (var.name.clone(), value, var.source.clone().unwrap())
        })
        .collect()
}

fn bottle_names(plan: &Plan) -> Vec<&str> {
    plan.bottles
        .iter()
        .map(|bottle| bottle.name.as_str())
        .collect()
}

#[test]
fn env_merges_by_name_later_wins() {
    let fixture = Fixture::new();
    let base = fixture.bottle("base", "env: {A: base-a, B: base-b}\n");
    let child = fixture.bottle("child", "extends: base\nenv: {B: child-b, C: child-c}\n");
    let plan = crate::resolve(&fixture.sources, None, &["child".into()]).unwrap();
    assert_eq!(
        env_of(&plan),
        [
            ("A".into(), "base-a".into(), base),
            ("B".into(), "child-b".into(), child.clone()),
            ("C".into(), "child-c".into(), child),
        ]
    );
    assert_eq!(bottle_names(&plan), ["base", "child"]);
}

#[test]
fn git_user_merges_field_by_field_and_agent_overrides() {
    let fixture = Fixture::new();
    let base = fixture.bottle(
        "base",
        "git-gate:\n  user: {name: base, email: base@example.org}\n",
    );
    fixture.bottle("child", "extends: base\ngit-gate:\n  user: {name: child}\n");
    let agent = fixture.agent(
        "a",
        "bottle: child\ngit-gate:\n  user: {email: agent@example.org}\n",
        "",
    );
    let plan = crate::resolve(&fixture.sources, Some("a"), &[]).unwrap();
    assert_eq!(plan.git_user.name.as_ref().unwrap().value, "child");
    assert_eq!(
        plan.git_user.email,
        Some(Sourced::new("agent@example.org".to_string(), &agent))
    );

    let plan = crate::resolve(&fixture.sources, None, &["child".into()]).unwrap();
    assert_eq!(
        plan.git_user.email,
        Some(Sourced::new("base@example.org".to_string(), &base))
    );
}

#[test]
fn repos_merge_by_name_and_replace_whole() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQzVK80EvAY6oH+ocpNWO8I9EQJ47Eotz7cRxpJRYXr";
    let fixture = Fixture::new();
    fixture.bottle(
        "base",
        &format!(
            "git-gate:\n  repos:\n    w:\n      url: git@a.example:w\n      host_key: {key}\n      \
             identity: /k\n      push: {{force: true}}\n    v:\n      url: git@a.example:v\n      \
             host_key: {key}\n      identity: /k\n"
        ),
    );
    let child = fixture.bottle(
        "child",
        &format!(
            "extends: base\ngit-gate:\n  repos:\n    w:\n      url: git@b.example:w\n      \
             host_key: {key}\n      identity: /k2\n"
        ),
    );
    let plan = crate::resolve(&fixture.sources, None, &["child".into()]).unwrap();
    let names: Vec<_> = plan.repos.iter().map(|repo| repo.name.as_str()).collect();
    assert_eq!(names, ["w", "v"]);
    assert_eq!(plan.repos[0].value.url.host, "b.example");
    assert!(
        !plan.repos[0].value.push.force,
        "the later repo replaces the earlier one whole"
    );
    assert_eq!(plan.repos[0].source, Some(child));
}

#[test]
fn routes_merge_by_host_and_port() {
    let fixture = Fixture::new();
    fixture.bottle(
        "base",
        "egress:\n  routes:\n    - {host: a.example, websocket: true}\n    - {host: a.example, port: 80}\n    \
         - {host: b.example}\n",
    );
    let child = fixture.bottle(
        "child",
        "extends: base\negress:\n  routes:\n    - {host: A.example.}\n    - {host: c.example}\n",
    );
    let plan = crate::resolve(&fixture.sources, None, &["child".into()]).unwrap();
    let routes: Vec<_> = plan
        .routes
        .iter()
        .map(|route| (route.value.host.to_string(), route.value.port))
        .collect();
    assert_eq!(
        routes,
        [
            ("a.example".into(), 443),
            ("a.example".into(), 80),
            ("b.example".into(), 443),
            ("c.example".into(), 443)
        ]
    );
    assert!(
        !plan.routes[0].value.websocket,
        "the later route replaces the earlier one whole"
    );
    assert_eq!(plan.routes[0].source, Some(child));
}

#[test]
fn scalars_are_last_wins() {
    let fixture = Fixture::new();
    fixture.bottle(
        "base",
        "agent_provider: {template: claude, auth_token: T}\ndockerfile: /a\negress: {log: 2}\n",
    );
    let child = fixture.bottle(
        "child",
        "extends: base\nagent_provider: {template: codex}\ndockerfile: /b\negress: {log: 0}\n",
    );
    let plan = crate::resolve(&fixture.sources, None, &["child".into()]).unwrap();
    let provider = plan.provider.unwrap();
    assert_eq!(provider.template, Sourced::new("codex".to_string(), &child));
    assert_eq!(provider.auth_token.unwrap().value, "T");
    assert_eq!(
        provider.forward_host_credentials,
        Sourced::default_value(false)
    );
    assert_eq!(plan.dockerfile.unwrap().value, PathBuf::from("/b"));
    assert_eq!(plan.egress_log, Sourced::new(0, &child));
}

#[test]
fn diamond_counts_each_parent_once() {
    let fixture = Fixture::new();
    fixture.bottle("root", "env: {X: root, Y: root}\n");
    fixture.bottle("left", "extends: root\nenv: {X: left}\n");
    fixture.bottle("right", "extends: root\nenv: {Z: right}\n");
    fixture.bottle("top", "extends: [left, right]\n");
    let plan = crate::resolve(&fixture.sources, None, &["top".into()]).unwrap();
    assert_eq!(bottle_names(&plan), ["root", "left", "right", "top"]);
    let values: Vec<_> = env_of(&plan)
        .into_iter()
        .map(|(name, value, _)| (name, value))
        .collect();
    assert_eq!(
        values,
        [
            ("X".into(), "left".into()),
            ("Y".into(), "root".into()),
            ("Z".into(), "right".into())
        ],
        "root is applied once, before left, so left's X stands"
    );
}

#[test]
fn bottle_flags_fold_left_to_right() {
    let fixture = Fixture::new();
    fixture.bottle("one", "env: {A: one, B: one}\n");
    fixture.bottle("two", "env: {B: two}\n");
    fixture.bottle("agentbottle", "env: {C: agent}\n");
    fixture.agent("a", "bottle: agentbottle\n", "");
    let plan = crate::resolve(&fixture.sources, Some("a"), &["one".into(), "two".into()]).unwrap();
    assert_eq!(
        bottle_names(&plan),
        ["one", "two"],
        "--bottle replaces the agent's bottle"
    );
    let values: Vec<_> = env_of(&plan)
        .into_iter()
        .map(|(name, value, _)| (name, value))
        .collect();
    assert_eq!(
        values,
        [("A".into(), "one".into()), ("B".into(), "two".into())]
    );
}

#[test]
fn cycles_show_the_chain() {
    let fixture = Fixture::new();
    fixture.bottle("a", "extends: b\n");
    fixture.bottle("b", "extends: c\n");
    fixture.bottle("c", "extends: a\n");
    fixture.agent("x", "bottle: a\n", "");
    let error = crate::resolve(&fixture.sources, Some("x"), &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bottle `a` extends itself: agent x -> bottle a -> bottle b -> bottle c -> bottle a"
    );
}

#[test]
fn self_reference_is_a_cycle() {
    let fixture = Fixture::new();
    fixture.bottle("a", "extends: a\n");
    let error = crate::resolve(&fixture.sources, None, &["a".into()]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bottle `a` extends itself: --bottle -> bottle a -> bottle a"
    );
}

#[test]
fn missing_parent_shows_the_chain() {
    let fixture = Fixture::new();
    fixture.bottle("a", "extends: [b]\n");
    fixture.bottle("b", "extends: gone\n");
    fixture.agent("x", "bottle: a\n", "");
    let error = crate::resolve(&fixture.sources, Some("x"), &[]).unwrap_err();
    let file = fixture.sources.bottles_dir().join("gone.md");
    assert_eq!(
        error.to_string(),
        format!(
            "bottle `gone` not found: {} does not exist (needed by agent x -> bottle a -> bottle b)",
            file.display()
        )
    );
}

#[test]
fn depth_is_capped() {
    let fixture = Fixture::new();
    for level in 0..20 {
        fixture.bottle(&format!("b{level}"), &format!("extends: b{}\n", level + 1));
    }
    fixture.bottle("b20", "");
    let error = crate::resolve(&fixture.sources, None, &["b0".into()]).unwrap_err();
    let message = error.to_string();
    assert!(
        message
            .starts_with("`extends` is nested more than 16 levels deep: --bottle -> bottle b0 -> "),
        "{message}"
    );
    assert!(message.ends_with("-> bottle b16"), "{message}");

    fixture.bottle("b14", "");
    assert!(
        crate::resolve(&fixture.sources, None, &["b0".into()]).is_ok(),
        "15 levels are fine"
    );
}

#[test]
fn provider_token_needs_a_template() {
    let fixture = Fixture::new();
    let file = fixture.bottle("a", "agent_provider: {auth_token: T}\n");
    let error = crate::resolve(&fixture.sources, None, &["a".into()]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: agent_provider.auth_token: no bottle in the chain sets `agent_provider.template`; \
             set it to `claude`, `codex` or a plugin name",
            file.display()
        )
    );
}

fn file(index: u8) -> PathBuf {
    PathBuf::from(format!("f{index}.md"))
}

fn partial_strategy() -> impl Strategy<Value = PartialBottle> {
    let env = proptest::collection::vec((0..4u8, 0..3u8, 0..3u8), 0..4);
    let routes = proptest::collection::vec(
        (
            0..3u8,
            prop_oneof![Just(443u16), Just(80u16)],
            0..3u8,
            any::<bool>(),
        ),
        0..4,
    );
    let log = proptest::option::of((0..3u8, 0..3u8));
    let user = (
        proptest::option::of((0..3u8, 0..3u8)),
        proptest::option::of((0..3u8, 0..3u8)),
    );
    (env, routes, log, user).prop_map(|(env, routes, log, (name, email))| {
        let mut partial = PartialBottle::default();
        for (name, value, source) in env {
            let name = format!("V{name}");
            if partial.env.iter().all(|(existing, _)| *existing != name) {
                let value = EnvValue::Literal {
                    value: value.to_string(),
                };
                partial.env.push((name, Sourced::new(value, &file(source))));
            }
        }
        for (host, port, source, websocket) in routes {
            let route = Route {
                host: HostPattern::Exact(format!("h{host}.example")),
                port,
                auth: None,
                matches: Vec::new(),
                dlp: Dlp::default(),
                websocket,
                passthrough: false,
                connect: None,
                upstream_ca: None,
            };
            let route = Sourced::new(route, &file(source));
            let key = crate::bottle::route_key(&route);
            if partial
                .routes
                .iter()
                .all(|existing| crate::bottle::route_key(existing) != key)
            {
                partial.routes.push(route);
            }
        }
        partial.egress_log = log.map(|(level, source)| Sourced::new(level, &file(source)));
        partial.git_user.name =
            name.map(|(value, source)| Sourced::new(value.to_string(), &file(source)));
        partial.git_user.email =
            email.map(|(value, source)| Sourced::new(value.to_string(), &file(source)));
        partial
    })
}

fn overlaid(base: &PartialBottle, later: &PartialBottle) -> PartialBottle {
    let mut merged = base.clone();
    merged.overlay(later);
    merged
}

proptest! {
    #[test]
    fn overlay_is_associative(a in partial_strategy(), b in partial_strategy(), c in partial_strategy()) {
        let left = overlaid(&overlaid(&a, &b), &c);
        let right = overlaid(&a, &overlaid(&b, &c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn overlay_with_empty_is_identity(a in partial_strategy()) {
        let empty = PartialBottle::default();
        prop_assert_eq!(overlaid(&a, &empty), a.clone());
        prop_assert_eq!(overlaid(&empty, &a), a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Bottle `b{i}` extends some of `b0..b{i-1}`; resolving any set of them folds every
    /// reachable bottle exactly once, after all its parents, and the result equals
    /// the fold of that order.
    #[test]
    fn diamonds_fold_each_bottle_once_after_its_parents(
        parents in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), 1..7),
        values in proptest::collection::vec(0..3u8, 7),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..3),
    ) {
        let fixture = Fixture::new();
        let count = parents.len();
        let mut graph: Vec<Vec<usize>> = Vec::new();
        for (index, choices) in parents.iter().enumerate() {
            let mut own: Vec<usize> = if index == 0 { Vec::new() } else { choices.iter().map(|choice| choice.index(index)).collect() };
            own.dedup();
            let extends: Vec<String> = own.iter().map(|parent| format!("b{parent}")).collect();
            fixture.bottle(
                &format!("b{index}"),
                &format!("extends: [{}]\nenv: {{V: \"{}\", B{index}: x}}\n", extends.join(", "), values[index]),
            );
            graph.push(own);
        }
        let requested: Vec<String> = picks.iter().map(|pick| format!("b{}", pick.index(count))).collect();
        let plan = crate::resolve(&fixture.sources, None, &requested).unwrap();
        let order: Vec<usize> = plan.bottles.iter().map(|bottle| bottle.name[1..].parse().unwrap()).collect();

        let mut seen = std::collections::HashSet::new();
        for (position, bottle) in order.iter().enumerate() {
            prop_assert!(seen.insert(*bottle), "b{} folded twice", bottle);
            for parent in &graph[*bottle] {
                prop_assert!(order[..position].contains(parent), "b{} before its parent b{}", bottle, parent);
            }
        }
        let last = *order.last().unwrap();
        let v = plan.env.iter().find(|var| var.name == "V").unwrap();
        prop_assert_eq!(&v.value, &EnvValue::Literal { value: values[last].to_string() });
        let expected = fixture.sources.bottles_dir().join(format!("b{last}.md"));
        prop_assert_eq!(v.source.as_ref(), Some(&expected));
    }
}
