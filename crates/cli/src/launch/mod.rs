//! `bottle run` without `--dry-run`: launch a bottle, wait for it, tear it down.
//!
//! The launcher is a plain single-threaded process: it starts the sandbox helper and
//! the sidecar as child processes and waits on their pidfds, so that neither child
//! can outlive the other and a dying launcher takes both with it.

mod deploy_keys;
mod docker;
mod environment;
mod slug;
mod state;
mod supervise;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

pub use deploy_keys::check as check_revocation;
pub use docker::describe_runtime as describe_docker_runtime;
pub use docker::remove_stale_sidecar_images;
pub use environment::EnvSource;
use state::{BottleDirs, Meta};
use supervise::Outcome;
pub use supervise::READY_LINE;

use crate::exit::Exit;

/// Port of the egress proxy on the bottle's loopback interface.
const PROXY_PORT: u16 = 3128;

/// Seconds a request held for an operator's approval waits before it is denied. Most
/// clients give up on a silent request after 30 to 60 seconds.
const HOLD_TIMEOUT_SECS: u64 = 60;

/// Path of the workspace inside the bottle.
const WORKSPACE_MOUNT: &str = "/workspace";

/// Port of the git gate on the bottle's loopback interface.
const GATE_PORT: u16 = 9419;

/// `PATH` of the sidecar, which runs git and ssh for the git gate.
const SIDECAR_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Everything the sidecar runs, sent to it on standard input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SidecarSpec {
    /// The egress proxy; it serves the first listener.
    pub proxy: bottle_proxy::SidecarConfig,
    /// The git gate, when the bottle declares repositories; it serves the second.
    pub gate: Option<bottle_gitgate::GateConfig>,
}

/// The parts of the resolved plan that a launch uses.
#[derive(Debug)]
pub struct LaunchPlan {
    /// The agent's name; `None` for the default bottle.
    pub agent: Option<String>,
    /// The bottles folded into the plan, in order.
    pub bottles: Vec<String>,
    pub env: BTreeMap<String, EnvSource>,
    pub routes: Vec<bottle_policy::Route>,
    pub egress_log: u8,
    /// The command to run; empty for an interactive shell.
    pub command: Vec<String>,
    /// Repositories served by the git gate.
    pub repos: Vec<PlannedRepo>,
    /// The commit identity inside the bottle.
    pub git_user: Option<bottle_gitgate::GitUser>,
    /// Token values of this launch, such as a forwarded host login, for the sidecar only.
    /// They are merged over the host environment when token refs are resolved.
    pub provisioned: bottle_providers::ProvisionedEnv,
    /// Files the provider's CLI needs in the agent's home.
    pub home_files: Vec<bottle_providers::HomeFile>,
    /// The installed agent CLI, bound read-only into the bottle.
    pub agent_install: Option<PathBuf>,
    /// The custom agent image's Dockerfile (docker backend).
    pub dockerfile: Option<PathBuf>,
}

/// A repository of the git gate, with the forge settings when its deploy key is
/// created at launch (its identity is then filled in by the launcher).
#[derive(Debug, Clone)]
pub struct PlannedRepo {
    pub gate: bottle_gitgate::GateRepo,
    pub provision: Option<bottle_forge::ProvisionSettings>,
}

/// Options of one launch that do not come from the plan.
#[derive(Debug)]
pub struct LaunchOptions {
    pub backend: BackendKind,
    pub config_dir: PathBuf,
    pub workspace: Option<PathBuf>,
    pub label: Option<String>,
}

/// The backends that can launch a bottle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Native,
    Docker,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Docker => "docker",
        }
    }
}

/// Launches the bottle and returns the exit status `bottle run` should have.
pub fn run(plan: &LaunchPlan, options: &LaunchOptions) -> Exit {
    let slug = match slug::new_slug(plan.agent.as_deref(), options.label.as_deref()) {
        Ok(slug) => slug,
        Err(message) => {
            eprintln!("bottle: {message}");
            return Exit::Launcher;
        }
    };

    let dirs = match BottleDirs::create(&options.config_dir, &slug) {
        Ok(dirs) => dirs,
        Err(err) => {
            eprintln!("bottle: cannot create the state of bottle {slug}: {err}");
            return Exit::Launcher;
        }
    };

    // The handlers stay installed through teardown, so that a signal cannot cut the
    // revocation of deploy keys short.
    let signals = supervise::Signals::install();
    let result = match &signals {
        Ok(signals) => match options.backend {
            BackendKind::Native => launch(plan, options, &slug, &dirs, signals),
            BackendKind::Docker => docker::launch(plan, options, &slug, &dirs, signals),
        },
        Err(err) => Err(anyhow!("{err:#}")),
    };

    // Deploy keys are revoked after the agent and the sidecar have stopped. A key that
    // cannot be revoked keeps the state directory, whose journal `bottle gc` reads.
    if let Err(err) = deploy_keys::revoke(&dirs.state) {
        if let Err(launch_err) = &result {
            eprintln!("bottle: {launch_err:#}");
        }
        eprintln!("bottle: teardown failed: {err:#}");
        return Exit::Launcher;
    }

    let removed = dirs.remove_state();
    match (result, removed) {
        (Ok(exit), Ok(())) => exit,
        (Ok(_), Err(err)) => {
            eprintln!(
                "bottle: teardown failed: cannot remove {}: {err}",
                dirs.state.display()
            );
            Exit::Launcher
        }
        (Err(err), removed) => {
            eprintln!("bottle: {err:#}");
            if let Err(remove_err) = removed {
                eprintln!(
                    "bottle: cannot remove {}: {remove_err}",
                    dirs.state.display()
                );
            }
            Exit::Launcher
        }
    }
}

/// Prints a launch phase. Phases go to stderr so that the agent's stdout stays its own.
fn phase(slug: &str, text: &str) {
    eprintln!("bottle: [{slug}] {text}");
}

/// What every backend runs, prepared before anything starts: the sidecar's
/// configuration, the agent's environment, its workspace and read-only mounts.
struct Prepared {
    sidecar: SidecarSpec,
    env: Vec<(String, String)>,
    /// The host directory mounted at /workspace.
    workspace: PathBuf,
    /// Read-only files and directories the agent sees (CA, git configuration, home
    /// files, the agent's CLI).
    mounts: Vec<bottle_sandbox::BindMount>,
    /// Ports the bottle listens on: the proxy's, and the gate's when it runs.
    listen_ports: Vec<u16>,
}

/// The backend-specific inputs of the shared preparation.
struct PrepareFor<'a> {
    /// The containers recorded in the metadata (docker backend).
    containers: &'a [String],
    /// The executable the gate's pre-receive hook runs, as the sidecar sees it.
    hook_program: PathBuf,
    /// The host uid to give a fresh workspace.
    workspace_owner: Option<u32>,
}

fn launch(
    plan: &LaunchPlan,
    options: &LaunchOptions,
    slug: &str,
    dirs: &BottleDirs,
    signals: &supervise::Signals,
) -> Result<Exit> {
    let exe = std::env::current_exe().context("cannot find the bottle executable")?;
    let prepared = prepare(
        plan,
        options,
        slug,
        dirs,
        &PrepareFor {
            containers: &[],
            hook_program: exe.clone(),
            workspace_owner: fresh_workspace_owner(),
        },
    )?;

    let spec = bottle_sandbox::SandboxSpec {
        command: plan.command.clone(),
        env: prepared.env,
        workspace: prepared.workspace,
        hostname: slug.to_owned(),
        mounts: prepared.mounts,
        listen_ports: prepared.listen_ports,
        limits: bottle_sandbox::Limits::default(),
    };

    phase(slug, "starting the sandbox");
    let mut launched = bottle_sandbox::launch(&exe, &spec).context("cannot start the sandbox")?;

    phase(slug, "starting the sidecar");
    let listeners: Vec<OwnedFd> = std::mem::take(&mut launched.listeners)
        .into_iter()
        .map(OwnedFd::from)
        .collect();
    let sidecar = match start_sidecar(&exe, &prepared.sidecar, &dirs.state, listeners) {
        Ok(sidecar) => sidecar,
        Err(err) => {
            launched.kill();
            return Err(err);
        }
    };

    phase(slug, "running");
    let outcome = supervise::wait(launched, sidecar, signals)?;
    match outcome {
        Outcome::Bottle(ended) => Ok(supervise::exit_of(&ended)),
        Outcome::SidecarDied(status) => {
            bail!("the sidecar exited ({status}); the bottle was stopped")
        }
    }
}

/// Writes the metadata and prepares what every backend runs: tokens, the bottle CA,
/// deploy keys, the gate's configuration, the workspace, the git configuration, the
/// agent's environment and read-only mounts.
fn prepare(
    plan: &LaunchPlan,
    options: &LaunchOptions,
    slug: &str,
    dirs: &BottleDirs,
    backend: &PrepareFor<'_>,
) -> Result<Prepared> {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    dirs.write_meta(&Meta {
        slug,
        backend: options.backend.name(),
        containers: backend.containers,
        agent: plan.agent.as_deref(),
        bottles: &plan.bottles,
        label: options.label.as_deref(),
        started_unix,
        launcher_pid: std::process::id(),
    })
    .context("cannot write the bottle's metadata")?;

    phase(slug, "resolving tokens and environment");
    let tokens = bottle_providers::resolve_tokens(&plan.routes, &plan.provisioned.0, &|name| {
        std::env::var(name).ok()
    })?;
    let agent_env = environment::build(slug, &plan.env, &|name| std::env::var(name).ok(), &prompt)
        .map_err(|message| anyhow!(message))?;

    phase(slug, "minting the bottle CA");
    let ca =
        bottle_proxy::CertificateAuthority::generate(slug).context("cannot mint the bottle CA")?;
    let ca_path = dirs
        .write_public_file("ca.pem", ca.cert_pem().as_bytes())
        .context("cannot write the CA certificate")?;

    // Values copied from the host or prompted are in the agent's hands, so the proxy
    // and the gate watch for them leaving, like the token values.
    let mut known_secrets: Vec<String> = tokens.values().cloned().collect();
    known_secrets.extend(agent_env.known_secrets.iter().cloned());

    let mut sidecar_config = bottle_proxy::SidecarConfig {
        slug: slug.to_owned(),
        routes: plan.routes.clone(),
        tokens,
        ca_cert_pem: ca.cert_pem().to_owned(),
        ca_key_pem: ca.key_pem(),
        audit_log: dirs.logs.join("egress.jsonl"),
        log_level: plan.egress_log,
        known_secrets: Vec::new(),
        hold_timeout_secs: HOLD_TIMEOUT_SECS,
    };
    sidecar_config.validate().context("invalid egress policy")?;

    let mut repos = plan.repos.clone();
    let mut key_secrets = deploy_keys::provision(&mut repos, &dirs.state, slug, &|name| {
        std::env::var(name).ok()
    })?;
    key_secrets.extend(identity_material(&repos));
    known_secrets.extend(key_secrets);
    sidecar_config.known_secrets = known_secrets.clone();

    let gate_config = if repos.is_empty() {
        None
    } else {
        let config = bottle_gitgate::GateConfig {
            slug: slug.to_owned(),
            state_dir: dirs.state.join("gate"),
            repos: repos.into_iter().map(|repo| repo.gate).collect(),
            known_secrets,
            hook_program: backend.hook_program.clone(),
            hook_args: vec![crate::PRE_RECEIVE_ARG.to_owned()],
            limits: bottle_gitgate::GateLimits::default(),
            queue_dir: Some(bottle_queue::bottle_queue_dir(&options.config_dir, slug)),
            audit_log: Some(dirs.logs.join("git.jsonl")),
        };
        config
            .validate()
            .context("invalid git-gate configuration")?;
        Some(config)
    };

    let (workspace, workspace_mounts) = match &options.workspace {
        Some(dir) => {
            let workspace = existing_workspace(dir, &options.config_dir)?;
            let mounts = protect_git_dir(&workspace)?;
            (workspace, mounts)
        }
        None => (
            dirs.fresh_workspace(backend.workspace_owner)
                .context("cannot create the workspace")?,
            Vec::new(),
        ),
    };

    let mut mounts = workspace_mounts;
    mounts.push(bind_read_only(&ca_path, environment::CA_PATH));
    mounts.push(bind_read_only(&ca_path, environment::SYSTEM_BUNDLE_PATH));
    let mut listen_ports = vec![PROXY_PORT];
    let gate_url = format!("http://127.0.0.1:{GATE_PORT}");
    let gate_repos = gate_config
        .as_ref()
        .map_or(&[][..], |gate| gate.repos.as_slice());
    if !gate_repos.is_empty() {
        listen_ports.push(GATE_PORT);
    }
    let gitconfig = bottle_gitgate::insteadof_config(gate_repos, &gate_url, plan.git_user.as_ref());
    let gitconfig_path = dirs
        .write_public_file("gitconfig", gitconfig.as_bytes())
        .context("cannot write the bottle's git configuration")?;
    mounts.push(bind_read_only(&gitconfig_path, environment::GITCONFIG_PATH));
    if let Some(install) = &plan.agent_install {
        mounts.push(bind_read_only(install, bottle_providers::AGENT_MOUNT));
    }
    if !plan.home_files.is_empty() {
        let home_files = write_home_files(&dirs.state, &plan.home_files)
            .context("cannot write the agent's home files")?;
        mounts.push(bind_read_only(
            &home_files,
            bottle_providers::HOME_FILES_MOUNT,
        ));
    }

    Ok(Prepared {
        sidecar: SidecarSpec {
            proxy: sidecar_config,
            gate: gate_config,
        },
        env: agent_env.vars,
        workspace,
        mounts,
        listen_ports,
    })
}

/// Returns the host uid to give a fresh workspace: the agent's own when the launcher
/// runs as root (the agent is then another, unprivileged host user), else none.
fn fresh_workspace_owner() -> Option<u32> {
    let (agent_uid, _) = bottle_sandbox::agent_host_ids();
    rustix::process::geteuid().is_root().then_some(agent_uid)
}

/// Returns the contents of the private key files the gate pushes with, so that the
/// proxy and the gate treat their material as secrets. An unreadable file is skipped
/// here; the gate's own validation reports it.
fn identity_material(repos: &[PlannedRepo]) -> Vec<String> {
    repos
        .iter()
        .filter(|repo| repo.provision.is_none())
        .filter_map(|repo| std::fs::read_to_string(&repo.gate.identity).ok())
        .collect()
}

fn bind_read_only(source: &Path, target: &str) -> bottle_sandbox::BindMount {
    bottle_sandbox::BindMount {
        source: source.to_path_buf(),
        target: PathBuf::from(target),
        read_only: true,
    }
}

/// Returns the mounts that keep a `--workspace` repository's hooks and configuration out
/// of the agent's hands. Git on the host runs `.git/hooks/*` and obeys `.git/config`
/// (`core.hooksPath`, `core.fsmonitor`, `core.sshCommand`), so an agent that could write
/// them would run code on the host after the bottle is gone. The `.git` directory itself
/// becomes a mount point, which the agent can neither rename nor remove, so it cannot
/// swap in a repository of its own. Objects and refs stay writable for commits.
// TODO(security): other files that host tools run later (editor tasks, agent settings,
// `.envrc`) stay writable, and nothing reports them at the end of a session.
fn protect_git_dir(workspace: &Path) -> Result<Vec<bottle_sandbox::BindMount>> {
    let git = workspace.join(".git");
    let target = Path::new(WORKSPACE_MOUNT).join(".git");
    let metadata = match std::fs::symlink_metadata(&git) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => bail!("cannot inspect {}: {err}", git.display()),
    };
    if metadata.file_type().is_symlink() {
        bail!(
            "invalid --workspace {}: its .git is a symbolic link, whose target the bottle \
             could not protect; use the repository's own directory as the workspace",
            workspace.display()
        );
    }
    if metadata.is_file() {
        // A worktree's or submodule's `.git` file names the git directory to use.
        return Ok(vec![bind_read_only(&git, &target.to_string_lossy())]);
    }

    let hooks = git.join("hooks");
    match std::fs::symlink_metadata(&hooks) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => bail!(
            "invalid --workspace {}: {} is not a directory; remove it or make it one",
            workspace.display(),
            hooks.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&hooks)
            .with_context(|| format!("cannot create {}", hooks.display()))?,
        Err(err) => bail!("cannot inspect {}: {err}", hooks.display()),
    }
    let mut mounts = vec![
        bottle_sandbox::BindMount {
            source: git.clone(),
            target: target.clone(),
            read_only: false,
        },
        bind_read_only(&hooks, &target.join("hooks").to_string_lossy()),
    ];
    let config = git.join("config");
    match std::fs::symlink_metadata(&config) {
        Ok(metadata) if metadata.is_file() => {
            mounts.push(bind_read_only(
                &config,
                &target.join("config").to_string_lossy(),
            ));
        }
        Ok(_) => bail!(
            "invalid --workspace {}: {} is not a regular file; replace it with the \
             repository's own configuration file",
            workspace.display(),
            config.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => bail!("cannot inspect {}: {err}", config.display()),
    }
    Ok(mounts)
}

/// Checks a `--workspace` directory. It must not contain the config directory or lie
/// inside it: the agent could otherwise write bottle files (policy) for later runs, or
/// the state and logs of other bottles.
fn existing_workspace(dir: &Path, config_dir: &Path) -> Result<PathBuf> {
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("invalid --workspace {}: cannot open it", dir.display()))?;
    if !canonical.is_dir() {
        bail!("invalid --workspace {}: not a directory", dir.display());
    }

    let config = config_dir
        .canonicalize()
        .with_context(|| format!("cannot open the config directory {}", config_dir.display()))?;
    if config.starts_with(&canonical) || canonical.starts_with(&config) {
        bail!(
            "invalid --workspace {}: it overlaps the config directory {}, whose bottles, state \
             and logs the agent must not reach; choose a directory outside it",
            dir.display(),
            config.display()
        );
    }
    Ok(canonical)
}

/// Writes the provider's home files under `<state>/home`, readable by the agent, for
/// the start-up step to copy into the bottle's home. They hold no credential.
fn write_home_files(state_dir: &Path, files: &[bottle_providers::HomeFile]) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let root = state_dir.join("home");
    for file in files {
        let path = root.join(&file.path);
        let parent = path.parent().expect("a home file path has a parent");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

/// Asks the operator for a value on the terminal without echoing it.
fn prompt(name: &str, message: Option<&str>) -> Result<String, String> {
    let text = match message {
        Some(message) => format!("bottle: {message} ({name}): "),
        None => format!("bottle: value for {name}: "),
    };
    rpassword::prompt_password(text).map_err(|err| {
        format!("env {name} asks for a value at launch, but no terminal can be read: {err}")
    })
}

/// Starts `bottle __sidecar` with the listeners as fds 3 and up and its configuration
/// on standard input, and waits until it reports that it is serving.
fn start_sidecar(
    exe: &Path,
    config: &SidecarSpec,
    state_dir: &Path,
    listeners: Vec<OwnedFd>,
) -> Result<supervise::Sidecar> {
    let mut command = Command::new(exe);
    command
        .arg("__sidecar")
        .arg("--listeners")
        .arg(listeners.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env_clear()
        // The git gate runs git and ssh; nothing else of the launcher's environment is
        // passed on.
        .env("PATH", SIDECAR_PATH)
        .env("HOME", state_dir)
        // Terminal signals such as Ctrl-C are for the agent, not for the sidecar.
        .process_group(0);
    bottle_sandbox::pass_fds(&mut command, listeners);
    bottle_sandbox::kill_with_parent(&mut command);

    let mut child = command.spawn().context("cannot start the sidecar")?;
    let config_json =
        serde_json::to_vec(config).context("cannot encode the sidecar configuration")?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(&config_json);
    drop(stdin);
    if let Err(err) = written {
        supervise::kill_and_reap(child);
        bail!("cannot send the sidecar its configuration: {err}");
    }

    let stdout = child.stdout.take().expect("stdout is piped");
    match supervise::wait_ready(stdout) {
        Ok(()) => Ok(supervise::Sidecar { child }),
        Err(err) => {
            supervise::kill_and_reap(child);
            Err(err)
        }
    }
}
