//! The docker backend: the same bottle as on native, as three containers.
//!
//! - The sidecar (role `sidecar`) runs `bottle __sidecar` on the host network, as the
//!   launcher's user, and serves the proxy and the gate on unix sockets in a private
//!   directory of the state. Its configuration, with the token values and the CA key,
//!   arrives on its standard input through the attach API.
//! - The bridge (role `bridge`) has no network but loopback. It owns the bottle's
//!   network namespace and forwards 127.0.0.1:3128 and 127.0.0.1:9419 to the sockets.
//! - The agent (role `agent`) joins the bridge's network namespace, so its only
//!   interface is that loopback, and runs the command as uid 1000 without capabilities.
//!
//! The launch runs on a single-threaded async runtime of its own.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bottle_docker::{ContainerCreateBody, Engine, HostConfig, LogOutput};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::state::BottleDirs;
use super::{
    GATE_PORT, LaunchOptions, LaunchPlan, PROXY_PORT, PrepareFor, Prepared, SIDECAR_PATH, phase,
    supervise,
};
use crate::commands::sidecar::{GATE_SOCKET, PROXY_SOCKET};
use crate::exit::Exit;
use images::{Images, agent_runtime, ensure_images};
pub use images::{describe_runtime, remove_stale_sidecar_images};

mod images;

/// The path of the `bottle` binary in the sidecar image.
const BOTTLE_IN_IMAGE: &str = "/usr/local/bin/bottle";

/// The directory, inside the sidecar's container, in which it creates its sockets.
const SOCKET_DIR: &str = "/run/bottle-sock";

/// The agent's uid and gid inside the container and on the host.
const AGENT_ID: u32 = 1000;

/// The bridge's uid and gid (65534, the user `nobody`).
const BRIDGE_ID: u32 = 65534;

/// How long the sidecar and the bridge may take to report that they serve.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopped agent may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long the sidecar and the bridge may take to exit before they are killed.
const SERVICE_STOP_GRACE: Duration = Duration::from_secs(2);

const AGENT_PIDS_LIMIT: i64 = 1024;
const SIDECAR_PIDS_LIMIT: i64 = 512;
const BRIDGE_PIDS_LIMIT: i64 = 16;

/// The names of a bottle's containers.
#[derive(Debug, Clone)]
struct Names {
    sidecar: String,
    bridge: String,
    agent: String,
}

impl Names {
    fn new(slug: &str) -> Names {
        Names {
            sidecar: format!("bottle-{slug}-sidecar"),
            bridge: format!("bottle-{slug}-bridge"),
            agent: format!("bottle-{slug}-agent"),
        }
    }

    fn all(&self) -> Vec<String> {
        vec![
            self.sidecar.clone(),
            self.bridge.clone(),
            self.agent.clone(),
        ]
    }
}

/// Launches the bottle on the Docker engine and returns the exit status of the agent.
pub fn launch(
    plan: &LaunchPlan,
    options: &LaunchOptions,
    slug: &str,
    dirs: &BottleDirs,
    signals: &supervise::Signals,
) -> Result<Exit> {
    let names = Names::new(slug);
    let is_root = rustix::process::geteuid().is_root();
    let prepared = super::prepare(
        plan,
        options,
        slug,
        dirs,
        &PrepareFor {
            containers: &names.all(),
            hook_program: PathBuf::from(BOTTLE_IN_IMAGE),
            workspace_owner: is_root.then_some(AGENT_ID),
        },
    )?;
    if options.workspace.is_none() && !is_root {
        // The agent's uid differs from the launcher's; the directory around the
        // workspace (the state directory) stays private to the launcher.
        std::fs::set_permissions(&prepared.workspace, std::fs::Permissions::from_mode(0o777))
            .context("cannot open the workspace to the agent")?;
    }
    let (interrupt, terminate) = signals.pipes()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let engine = Engine::connect().await?;
        let mut bottle = Bottle {
            engine,
            names,
            state_dir: dirs.state.clone(),
            created: Vec::new(),
        };
        let result = bottle
            .run(plan, options, slug, dirs, prepared, interrupt, terminate)
            .await;
        let teardown = bottle.teardown().await;
        match (result, teardown) {
            (Ok(exit), Ok(())) => Ok(exit),
            (Ok(_), Err(err)) => Err(err),
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(teardown_err)) => {
                eprintln!("bottle: {teardown_err:#}");
                Err(err)
            }
        }
    });
    // A read of the terminal may still wait in a blocking thread; it is abandoned.
    runtime.shutdown_background();
    result
}

/// The containers of one bottle, and what was created so far.
struct Bottle {
    engine: Engine,
    names: Names,
    state_dir: PathBuf,
    /// Containers created by this launch, in order, removed at teardown.
    created: Vec<String>,
}

impl Bottle {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        plan: &LaunchPlan,
        options: &LaunchOptions,
        slug: &str,
        dirs: &BottleDirs,
        prepared: Prepared,
        interrupt: std::os::unix::net::UnixStream,
        terminate: std::os::unix::net::UnixStream,
    ) -> Result<Exit> {
        phase(slug, "preparing the images");
        let images = ensure_images(&self.engine, plan, &options.config_dir).await?;
        let runtime = agent_runtime(&self.engine).await?;

        phase(slug, "starting the sidecar");
        let socket_dir = dirs.state.join("sock");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&socket_dir)
            .with_context(|| format!("cannot create {}", socket_dir.display()))?;
        self.start_sidecar(slug, dirs, &prepared, &images, &socket_dir)
            .await?;
        let has_gate = prepared.sidecar.gate.is_some();
        wait_for_socket(&socket_dir.join(PROXY_SOCKET)).await?;
        if has_gate {
            wait_for_socket(&socket_dir.join(GATE_SOCKET)).await?;
        }

        phase(slug, "starting the bridge");
        self.start_bridge(slug, &images, &socket_dir, has_gate)
            .await?;

        phase(slug, "starting the agent");
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
        let (output, _raw_terminal) = match self
            .start_agent(slug, plan, &prepared, &images, runtime.as_deref(), tty)
            .await?
        {
            AgentStart::Running(output, raw) => (output, raw),
            AgentStart::NotExecutable(exit) => return Ok(exit),
        };

        phase(slug, "running");
        self.supervise(output, interrupt, terminate).await
    }

    /// Creates a container and records it for teardown.
    async fn create(&mut self, name: &str, body: ContainerCreateBody) -> Result<()> {
        self.engine.create(name, body).await.map_err(|err| {
            anyhow!(
                "{err}; if a bottle of the same name is left over, `bottle gc` removes its \
                 containers"
            )
        })?;
        self.created.push(name.to_owned());
        Ok(())
    }

    async fn start_sidecar(
        &mut self,
        slug: &str,
        dirs: &BottleDirs,
        prepared: &Prepared,
        images: &Images,
        socket_dir: &Path,
    ) -> Result<()> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        // ssh refuses to run as a uid without a passwd entry.
        let passwd = dirs.state.join("passwd");
        let user = if uid == 0 { "root" } else { "bottle" };
        let entry = format!(
            "{user}:x:{uid}:{gid}:bottle sidecar:{}:/bin/sh\n",
            dirs.state.display()
        );
        std::fs::write(&passwd, entry).context("cannot write the sidecar's passwd file")?;
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644))
            .context("cannot write the sidecar's passwd file")?;

        let mut binds = vec![
            same_path(&dirs.state, false),
            same_path(&dirs.logs, false),
            format!("{}:{SOCKET_DIR}", socket_dir.display()),
            format!("{}:/etc/passwd:ro", passwd.display()),
        ];
        for path in sidecar_host_files(prepared) {
            if !path.starts_with(&dirs.state) {
                binds.push(same_path(&path, true));
            }
        }
        binds.sort();
        binds.dedup();

        let body = ContainerCreateBody {
            image: Some(images.sidecar.clone()),
            cmd: Some(vec![
                BOTTLE_IN_IMAGE.to_owned(),
                "__sidecar".to_owned(),
                "--unix-dir".to_owned(),
                SOCKET_DIR.to_owned(),
            ]),
            user: Some(format!("{uid}:{gid}")),
            env: Some(vec![
                format!("PATH={SIDECAR_PATH}"),
                format!("HOME={}", dirs.state.display()),
            ]),
            labels: Some(labels(slug, "sidecar", &dirs.state)),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            host_config: Some(HostConfig {
                // The sidecar is the bottle's only way out, like the native sidecar,
                // which is a process on the host's network.
                network_mode: Some("host".to_owned()),
                binds: Some(binds),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_owned(),
                    "rw,nosuid,nodev,mode=1777".to_owned(),
                )])),
                pids_limit: Some(SIDECAR_PIDS_LIMIT),
                ..hardened()
            }),
            ..Default::default()
        };
        let name = self.names.sidecar.clone();
        self.create(&name, body).await?;

        let attached = self.engine.attach(&name, true).await?;
        self.engine.start(&name).await?;
        let mut config =
            serde_json::to_vec(&prepared.sidecar).context("cannot encode the sidecar spec")?;
        let mut input = attached.input;
        let written = async {
            input.write_all(&config).await?;
            input.flush().await?;
            input.shutdown().await
        }
        .await;
        config.fill(0);
        written.context("cannot send the sidecar its configuration")?;
        drop(input);

        let mut output = attached.output;
        wait_ready(&mut output, "the sidecar").await?;
        tokio::spawn(forward_logs(output));
        Ok(())
    }

    async fn start_bridge(
        &mut self,
        slug: &str,
        images: &Images,
        socket_dir: &Path,
        has_gate: bool,
    ) -> Result<()> {
        let mut cmd = vec![
            BOTTLE_IN_IMAGE.to_owned(),
            "__bridge".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{PROXY_PORT}={SOCKET_DIR}/{PROXY_SOCKET}"),
        ];
        // Only the socket files are mounted: the bridge runs as another user than the
        // sidecar and cannot enter the private directory that contains them.
        let mut binds = vec![format!(
            "{}:{SOCKET_DIR}/{PROXY_SOCKET}:ro",
            socket_dir.join(PROXY_SOCKET).display()
        )];
        if has_gate {
            cmd.push("--listen".to_owned());
            cmd.push(format!("127.0.0.1:{GATE_PORT}={SOCKET_DIR}/{GATE_SOCKET}"));
            binds.push(format!(
                "{}:{SOCKET_DIR}/{GATE_SOCKET}:ro",
                socket_dir.join(GATE_SOCKET).display()
            ));
        }
        let body = ContainerCreateBody {
            image: Some(images.sidecar.clone()),
            cmd: Some(cmd),
            user: Some(format!("{BRIDGE_ID}:{BRIDGE_ID}")),
            env: Some(vec![format!("PATH={SIDECAR_PATH}")]),
            hostname: Some(slug.to_owned()),
            labels: Some(labels(slug, "bridge", &self.state_dir)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                // Loopback only: no route out and no embedded DNS server.
                network_mode: Some("none".to_owned()),
                binds: Some(binds),
                pids_limit: Some(BRIDGE_PIDS_LIMIT),
                ..hardened()
            }),
            ..Default::default()
        };
        let name = self.names.bridge.clone();
        self.create(&name, body).await?;
        let attached = self.engine.attach(&name, false).await?;
        self.engine.start(&name).await?;
        let mut output = attached.output;
        wait_ready(&mut output, "the bridge").await?;
        tokio::spawn(forward_logs(output));
        Ok(())
    }

    async fn start_agent(
        &mut self,
        slug: &str,
        plan: &LaunchPlan,
        prepared: &Prepared,
        images: &Images,
        runtime: Option<&str>,
        tty: bool,
    ) -> Result<AgentStart> {
        let mut binds = vec![format!("{}:/workspace", prepared.workspace.display())];
        for mount in &prepared.mounts {
            binds.push(format!(
                "{}:{}{}",
                mount.source.display(),
                mount.target.display(),
                if mount.read_only { ":ro" } else { "" }
            ));
        }
        let mut command = if plan.command.is_empty() {
            vec!["/bin/bash".to_owned(), "-l".to_owned()]
        } else {
            plan.command.clone()
        };
        // The bottle's own `env` entries may hold values copied from the host or
        // prompted. The engine stores a container's configuration on disk, so they are
        // delivered after the start instead, and the launcher's fixed variables stay in
        // the configuration.
        let (delivered, configured): (Vec<_>, Vec<_>) = prepared
            .env
            .iter()
            .partition(|(name, _)| plan.env.contains_key(name) && is_shell_name(name));
        if !delivered.is_empty() {
            let mut wrapped = vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                ENV_PROLOGUE.to_owned(),
                "bottle-agent".to_owned(),
            ];
            wrapped.append(&mut command);
            command = wrapped;
        }
        let body = ContainerCreateBody {
            image: Some(images.agent.clone()),
            cmd: Some(command),
            user: Some(format!("{AGENT_ID}:{AGENT_ID}")),
            env: Some(
                configured
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect(),
            ),
            working_dir: Some("/workspace".to_owned()),
            labels: Some(labels(slug, "agent", &self.state_dir)),
            tty: Some(tty),
            open_stdin: Some(tty),
            attach_stdin: Some(tty),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", self.names.bridge)),
                binds: Some(binds),
                // TODO(resources): no memory or CPU limit, and the tmpfs mounts have the
                // default size of half the host's memory.
                tmpfs: Some(HashMap::from([
                    ("/tmp".to_owned(), "rw,nosuid,nodev,mode=1777".to_owned()),
                    (
                        "/home/agent".to_owned(),
                        format!("rw,nosuid,nodev,uid={AGENT_ID},gid={AGENT_ID},mode=0700"),
                    ),
                ])),
                pids_limit: Some(AGENT_PIDS_LIMIT),
                runtime: runtime.map(str::to_owned),
                ..hardened()
            }),
            ..Default::default()
        };
        let name = self.names.agent.clone();
        self.create(&name, body).await?;
        let attached = self.engine.attach(&name, tty).await?;
        if let Err(err) = self.engine.start(&name).await {
            let message = err.to_string();
            if let Some(exit) = exec_failure(&message) {
                eprintln!("bottle: cannot execute the command: {message}");
                return Ok(AgentStart::NotExecutable(exit));
            }
            return Err(err.into());
        }
        if !delivered.is_empty() {
            self.deliver_env(&name, &delivered).await?;
        }
        // TODO(tty): window size changes after the start (SIGWINCH) are not passed on.
        let raw = if tty {
            if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdout()) {
                let _ = self
                    .engine
                    .resize_tty(&name, size.ws_row, size.ws_col)
                    .await;
            }
            let mut input = attached.input;
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut input).await;
            });
            RawTerminal::enter()
        } else {
            None
        };
        Ok(AgentStart::Running(attached.output, raw))
    }
}

/// The agent's output stream.
type Output = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

/// The result of starting the agent.
enum AgentStart {
    /// The agent runs; with a tty, the launcher's terminal is in raw mode until the
    /// guard is dropped.
    Running(Output, Option<RawTerminal>),
    /// The command does not exist or is not executable; `bottle run` exits with this.
    NotExecutable(Exit),
}

impl Bottle {
    /// Streams the agent's output until it exits, stopping it on SIGINT, SIGTERM or
    /// SIGHUP and killing it when the sidecar dies.
    async fn supervise(
        &mut self,
        output: Output,
        interrupt: std::os::unix::net::UnixStream,
        terminate: std::os::unix::net::UnixStream,
    ) -> Result<Exit> {
        let interrupt =
            tokio::net::UnixStream::from_std(interrupt).context("cannot watch for signals")?;
        let terminate =
            tokio::net::UnixStream::from_std(terminate).context("cannot watch for signals")?;
        let printer = tokio::spawn(print_output(output));
        let engine = self.engine.clone();
        let agent = self.names.agent.clone();
        let sidecar = self.names.sidecar.clone();
        let agent_wait = engine.wait(&agent);
        let sidecar_wait = engine.wait(&sidecar);
        tokio::pin!(agent_wait, sidecar_wait);
        let mut stopping = false;

        let code = loop {
            tokio::select! {
                code = &mut agent_wait => break code?,
                code = &mut sidecar_wait, if !stopping => {
                    let status = match code {
                        Ok(code) => format!("exit code {code}"),
                        Err(err) => err.to_string(),
                    };
                    let _ = self.engine.stop(&agent, Duration::ZERO).await;
                    bail!("the sidecar exited ({status}); the bottle was stopped");
                }
                ready = interrupt.readable(), if !stopping => {
                    ready.context("cannot watch for signals")?;
                    if drain(&interrupt) > 0 {
                        stopping = true;
                    }
                }
                ready = terminate.readable(), if !stopping => {
                    ready.context("cannot watch for signals")?;
                    if drain(&terminate) > 0 {
                        stopping = true;
                    }
                }
            }
            if stopping {
                eprintln!("bottle: stopping the bottle");
                self.engine.stop(&agent, STOP_GRACE).await?;
            }
        };
        // The output ends with the container; a bounded wait keeps a stuck stream from
        // holding the launcher.
        let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;
        Ok(Exit::Agent(
            u8::try_from(code & 0xff).expect("masked to a byte"),
        ))
    }

    /// Stops the agent, then the bridge and the sidecar, and removes every container
    /// this launch created. Every step is tried; the first error is returned.
    async fn teardown(&mut self) -> Result<()> {
        let mut first_error: Option<anyhow::Error> = None;
        let mut keep = |result: Result<(), bottle_docker::DockerError>| {
            if let Err(err) = result {
                eprintln!("bottle: teardown: {err}");
                first_error.get_or_insert_with(|| err.into());
            }
        };
        let created = std::mem::take(&mut self.created);
        if created.contains(&self.names.agent) {
            keep(self.engine.stop(&self.names.agent, STOP_GRACE).await);
        }
        // The bridge and the sidecar stop at the same time, then every container goes.
        let services = [&self.names.bridge, &self.names.sidecar]
            .into_iter()
            .filter(|name| created.contains(name))
            .map(|name| self.engine.stop(name, SERVICE_STOP_GRACE));
        for result in futures_util::future::join_all(services).await {
            keep(result);
        }
        let removals = created.iter().map(|name| self.engine.remove(name));
        for result in futures_util::future::join_all(removals).await {
            keep(result);
        }
        match first_error {
            Some(err) => Err(err.context("cannot remove the bottle's containers")),
            None => Ok(()),
        }
    }
}

/// The path, in the agent container, of the FIFO its environment arrives through.
const ENV_FIFO: &str = "/tmp/.bottle-env";

/// The agent container's first step when values are delivered after the start: create
/// the FIFO, read the `export` lines the launcher writes into it, then run the command.
const ENV_PROLOGUE: &str = "f=/tmp/.bottle-env; mkfifo -m 600 \"$f\" || exit 125; . \"$f\"; \
                            rm -f \"$f\"; exec \"$@\"";

/// The command the launcher runs in the agent container to write the environment into
/// the FIFO once the agent has created it (for at most about 10 s).
const ENV_WRITER: &str = "f=/tmp/.bottle-env; i=0; while [ ! -p \"$f\" ]; do i=$((i+1)); \
                          [ $i -gt 1000 ] && exit 1; sleep 0.01; done; cat > \"$f\"";

impl Bottle {
    /// Sends the agent its delivered variables through the FIFO. The values travel on
    /// the exec's attached standard input only, never in the engine's configuration.
    async fn deliver_env(&self, name: &str, vars: &[&(String, String)]) -> Result<()> {
        let mut script = String::new();
        for (var, value) in vars {
            script.push_str(&format!("export {var}={}\n", shell_quote(value)));
        }
        let (code, output) = self
            .engine
            .exec_with_input(
                name,
                &format!("{AGENT_ID}:{AGENT_ID}"),
                vec!["/bin/sh".to_owned(), "-c".to_owned(), ENV_WRITER.to_owned()],
                script.as_bytes(),
            )
            .await?;
        let mut script = script.into_bytes();
        script.fill(0);
        if code != 0 {
            bail!(
                "cannot deliver the agent's environment through {ENV_FIFO} (exit code {code}): \
                 {}; the agent image needs /bin/sh, mkfifo, cat and sleep",
                output.trim()
            );
        }
        Ok(())
    }
}

/// Returns whether `name` can be exported by a POSIX shell.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Quotes a value for a POSIX shell: single quotes, with each `'` written as `'\''`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The launcher's terminal in raw mode, so that keys such as Ctrl-C reach the agent's
/// tty as bytes. Dropping it restores the saved mode.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Puts standard input's terminal in raw mode; `None` when that fails.
    fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Reads every byte of a non-blocking signal pipe and returns how many arrived.
fn drain(pipe: &tokio::net::UnixStream) -> usize {
    let mut buffer = [0u8; 32];
    let mut count = 0;
    while let Ok(read) = pipe.try_read(&mut buffer) {
        if read == 0 {
            break;
        }
        count += read;
    }
    count
}

/// Returns the host config every container shares: no capabilities, no new privileges, a
/// read-only root file system and an init process that forwards signals and reaps.
fn hardened() -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        readonly_rootfs: Some(true),
        init: Some(true),
        ..Default::default()
    }
}

fn labels(slug: &str, role: &str, state_dir: &Path) -> HashMap<String, String> {
    let mut labels = bottle_docker::labels(slug, role);
    labels.insert(
        bottle_docker::STATE_LABEL.to_owned(),
        state_dir.display().to_string(),
    );
    labels
}

/// Formats a bind of a host path at the same path in the container.
fn same_path(path: &Path, read_only: bool) -> String {
    let path = path.display();
    if read_only {
        format!("{path}:{path}:ro")
    } else {
        format!("{path}:{path}")
    }
}

/// Host files the sidecar's configuration names besides its state and logs: the
/// routes' upstream CA files and the gate's identity files.
fn sidecar_host_files(prepared: &Prepared) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = prepared
        .sidecar
        .proxy
        .routes
        .iter()
        .filter_map(|route| route.upstream_ca.clone())
        .collect();
    if let Some(gate) = &prepared.sidecar.gate {
        files.extend(gate.repos.iter().map(|repo| repo.identity.clone()));
    }
    files
}

/// Reads a service's output until it prints its ready line, copying its standard
/// error to the launcher's.
async fn wait_ready(output: &mut Output, what: &str) -> Result<()> {
    let mut received = Vec::new();
    let read = async {
        while !received.ends_with(b"\n") {
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    received.extend_from_slice(&message);
                    if received.len() > 256 {
                        bail!("{what} sent an unexpected start-up message");
                    }
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    let _ = std::io::stderr().write_all(&message);
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(err)) => bail!("cannot read from {what}: {err}"),
                None => bail!("{what} exited before it was ready; its error is above"),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(READY_TIMEOUT, read).await {
        Ok(result) => result?,
        Err(_) => bail!(
            "{what} did not print its ready line within {} s",
            READY_TIMEOUT.as_secs()
        ),
    }
    if received.trim_ascii() != super::READY_LINE.as_bytes() {
        bail!("{what} sent an unexpected start-up message");
    }
    Ok(())
}

/// Copies a service's remaining output (its log lines) to the launcher's stderr.
async fn forward_logs(mut output: Output) {
    while let Some(Ok(item)) = output.next().await {
        match item {
            LogOutput::StdErr { message }
            | LogOutput::StdOut { message }
            | LogOutput::Console { message } => {
                let _ = std::io::stderr().write_all(&message);
            }
            LogOutput::StdIn { .. } => {}
        }
    }
}

/// Copies the agent's output to the launcher's stdout and stderr.
async fn print_output(mut output: Output) {
    while let Some(Ok(item)) = output.next().await {
        match item {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut stdout = std::io::stdout();
                let _ = stdout.write_all(&message);
                let _ = stdout.flush();
            }
            LogOutput::StdErr { message } => {
                let _ = std::io::stderr().write_all(&message);
            }
            LogOutput::StdIn { .. } => {}
        }
    }
}

/// Polls until a unix socket accepts connections, with a growing interval.
async fn wait_for_socket(path: &Path) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut interval = Duration::from_millis(2);
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() >= deadline => {
                bail!(
                    "the sidecar's socket {} did not accept connections within {} s: {err}",
                    path.display(),
                    READY_TIMEOUT.as_secs()
                );
            }
            Err(_) => {
                tokio::time::sleep(interval).await;
                interval = (interval * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// Maps the engine's refusal to start a command that cannot be executed to the exit
/// codes of a shell: 127 for a missing command, 126 for one that is not executable.
fn exec_failure(message: &str) -> Option<Exit> {
    if !message.contains("exec") {
        return None;
    }
    if message.contains("no such file or directory") || message.contains("not found") {
        Some(Exit::Agent(127))
    } else if message.contains("permission denied") {
        Some(Exit::Agent(126))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes_and_newlines() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("x\ny"), "'x\ny'");
        assert!(is_shell_name("FAKE_TOKEN"));
        assert!(!is_shell_name("1X"));
        assert!(!is_shell_name("A-B"));
    }

    #[test]
    fn exec_failures_map_to_shell_codes() {
        let missing = "OCI runtime create failed: exec: \"/nope\": stat /nope: no such file or \
                       directory";
        assert!(matches!(exec_failure(missing), Some(Exit::Agent(127))));
        let denied = "exec: \"/etc/hostname\": permission denied";
        assert!(matches!(exec_failure(denied), Some(Exit::Agent(126))));
        assert!(exec_failure("the engine is out of memory").is_none());
    }
}
