//! Resolving an agent and its bottles, with `extends`, into a [`Plan`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::agent::PartialAgent;
use crate::bottle::PartialBottle;
use crate::error::{Diagnostic, Error};
use crate::file::{parse_agent, parse_bottle, read_text};
use crate::plan::{AgentSummary, BottleRef, Plan, git_user};
use crate::sourced::Sourced;
use crate::sources::Sources;

/// The deepest `extends` chain followed.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// Resolves the plan for `bottle run` and `bottle info`.
///
/// With no agent and no bottles this is [`Plan::default_bottle`]. `bottles` (from
/// `--bottle`) replaces the agent's own `bottle` list when it is not empty.
pub fn resolve(sources: &Sources, agent: Option<&str>, bottles: &[String]) -> Result<Plan, Error> {
    let mut resolver = Resolver::new(sources);
    let Some(agent_name) = agent else {
        if bottles.is_empty() {
            return Ok(Plan::default_bottle());
        }
        let requested = bottles
            .iter()
            .map(|name| (name.clone(), 0))
            .collect::<Vec<_>>();
        return resolver.plan_for_bottles(&requested, "--bottle");
    };

    let location = sources.find_agent(agent_name)?;
    let text = read_text(&location.file)?;
    let partial = parse_agent(&location.file, &text)?;
    let summary = AgentSummary {
        name: agent_name.to_string(),
        file: location.file,
        from_repository: location.from_repository,
        shadowed: location.shadowed,
    };
    resolver.plan_for_agent(summary, partial, bottles)
}

/// Loads bottle files once each and folds them.
pub(crate) struct Resolver<'s> {
    sources: &'s Sources,
    loaded: HashMap<String, (PathBuf, PartialBottle)>,
}

impl<'s> Resolver<'s> {
    pub fn new(sources: &'s Sources) -> Resolver<'s> {
        Resolver {
            sources,
            loaded: HashMap::new(),
        }
    }

    /// Builds the plan of an agent whose file has been parsed.
    pub fn plan_for_agent(
        &mut self,
        summary: AgentSummary,
        agent: PartialAgent,
        override_bottles: &[String],
    ) -> Result<Plan, Error> {
        let (requested, requester) = if override_bottles.is_empty() {
            let names = agent
                .bottle
                .as_ref()
                .map(|bottle| bottle.value.clone())
                .unwrap_or_default();
            (names, format!("agent {}", summary.name))
        } else {
            let names = override_bottles
                .iter()
                .map(|name| (name.clone(), 0))
                .collect();
            (names, "--bottle".to_string())
        };

        let mut plan = self.plan_for_bottles(&requested, &requester)?;
        let mut user = crate::gitgate::PartialGitUser {
            name: plan.git_user.name.take(),
            email: plan.git_user.email.take(),
        };
        user.merge(&agent.git_user);
        plan.git_user = git_user(user);
        plan.command = agent.command;
        plan.skills = agent.skills;
        let prompt = agent.body.trim();
        if !prompt.is_empty() {
            plan.system_prompt = Some(Sourced::new(prompt.to_string(), &summary.file));
        }
        plan.agent = Some(summary);
        Ok(plan)
    }

    /// Folds `names` (and their parents) left to right into a plan.
    pub fn plan_for_bottles(
        &mut self,
        names: &[(String, u64)],
        requester: &str,
    ) -> Result<Plan, Error> {
        let mut order = Vec::new();
        let mut chain = vec![requester.to_string()];
        let mut stack = Vec::new();
        for (name, _) in names {
            self.visit(name, &mut chain, &mut stack, &mut order)?;
        }
        self.fold(&order)
    }

    /// Resolves a bottle file given by path, whose parents come from the config
    /// directory. Used by `bottle check PATH`.
    pub fn plan_for_bottle_file(
        &mut self,
        name: &str,
        file: &Path,
        partial: PartialBottle,
    ) -> Result<Plan, Error> {
        let mut order = Vec::new();
        let mut chain = vec![format!("bottle {name}")];
        let mut stack = vec![name.to_string()];
        for (parent, _) in &partial.extends {
            self.visit(parent, &mut chain, &mut stack, &mut order)?;
        }
        // The checked file may differ from the config directory's file of the same name.
        let key = format!("\0{name}");
        self.loaded
            .insert(key.clone(), (file.to_path_buf(), partial));
        order.push(key);
        let mut plan = self.fold(&order)?;
        if let Some(last) = plan.bottles.last_mut() {
            last.name = name.to_string();
        }
        Ok(plan)
    }

    /// Appends `name` and its parents to `order` in post-order, each once.
    fn visit(
        &mut self,
        name: &str,
        chain: &mut Vec<String>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), Error> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if stack.iter().any(|open| open == name) {
            let mut cycle = chain.clone();
            cycle.push(format!("bottle {name}"));
            return Err(Error::Cycle {
                name: name.to_string(),
                chain: cycle,
            });
        }
        if stack.len() >= MAX_EXTENDS_DEPTH {
            let mut deep = chain.clone();
            deep.push(format!("bottle {name}"));
            return Err(Error::TooDeep {
                max: MAX_EXTENDS_DEPTH,
                chain: deep,
            });
        }

        let parents = self.load(name, chain)?;
        chain.push(format!("bottle {name}"));
        stack.push(name.to_string());
        for parent in &parents {
            self.visit(parent, chain, stack, order)?;
        }
        stack.pop();
        chain.pop();
        order.push(name.to_string());
        Ok(())
    }

    /// Loads bottle `name` if needed and returns its parents.
    fn load(&mut self, name: &str, chain: &[String]) -> Result<Vec<String>, Error> {
        if let Some((_, bottle)) = self.loaded.get(name) {
            return Ok(bottle
                .extends
                .iter()
                .map(|(parent, _)| parent.clone())
                .collect());
        }
        let file = self.sources.bottle_file(name)?;
        if !file.is_file() {
            return Err(Error::BottleNotFound {
                name: name.to_string(),
                file,
                chain: chain.to_vec(),
            });
        }
        let text = read_text(&file)?;
        let bottle = parse_bottle(&file, &text)?;
        let parents = bottle
            .extends
            .iter()
            .map(|(parent, _)| parent.clone())
            .collect();
        self.loaded.insert(name.to_string(), (file, bottle));
        Ok(parents)
    }

    fn fold(&self, order: &[String]) -> Result<Plan, Error> {
        let mut merged = PartialBottle::default();
        let mut refs = Vec::new();
        for name in order {
            let (file, bottle) = self
                .loaded
                .get(name)
                .expect("visit loads every bottle it orders");
            merged.overlay(bottle);
            refs.push(BottleRef {
                name: name.clone(),
                file: file.clone(),
            });
        }
        check_merged(&merged)?;
        Ok(Plan::from_bottle(refs, merged))
    }
}

/// Checks rules that span files, on the merged settings.
fn check_merged(merged: &PartialBottle) -> Result<(), Error> {
    if merged.provider.template.is_some() {
        return Ok(());
    }
    let orphan = merged
        .provider
        .auth_token
        .as_ref()
        .map(|value| ("auth_token", value.source.clone()))
        .or_else(|| {
            merged
                .provider
                .forward_host_credentials
                .as_ref()
                .map(|value| ("forward_host_credentials", value.source.clone()))
        });
    match orphan {
        None => Ok(()),
        Some((key, source)) => Err(Error::Invalid {
            diagnostics: vec![Diagnostic {
                file: source.unwrap_or_default(),
                line: None,
                key: Some(format!("agent_provider.{key}")),
                message: "no bottle in the chain sets `agent_provider.template`; set it to \
                          `claude`, `codex` or a plugin name"
                    .to_string(),
            }],
        }),
    }
}
