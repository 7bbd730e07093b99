//! `bottle init` and `bottle completions`.

use std::io::Write;
use std::path::Path;

use bottle_manifest::Sources;
use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::exit::Exit;

/// The example bottle: one API host with an injected token, and PyPI without one.
const EXAMPLE_BOTTLE: &str = "---
# Which hosts the agent may reach. Everything else is refused with a 403.
egress:
  routes:
    - host: api.example.org
      # The proxy injects `Authorization: Bearer $EXAMPLE_API_TOKEN` (a host
      # variable); the agent never holds the value.
      auth: {token_ref: EXAMPLE_API_TOKEN}
      matches:
        - paths: [{type: prefix, value: /v1/}]
          methods: [GET, POST]
    - host: pypi.org
    - host: files.pythonhosted.org
---
An example bottle written by `bottle init`. Edit the routes, then run
`bottle check` and `bottle info example`.
";

/// The example agent, which runs in the example bottle.
const EXAMPLE_AGENT: &str = "---
bottle: example
# The command the agent runs; without it, `bottle run example` opens a shell.
command: [sh, -c, 'echo hello from the bottle']
---
The agent's system prompt goes here.
";

pub fn init() -> Exit {
    let config = match std::env::current_dir()
        .map_err(|err| format!("cannot read the current directory: {err}"))
        .and_then(|cwd| Sources::discover(&cwd).map_err(|err| err.to_string()))
    {
        Ok(sources) => sources.config_dir,
        Err(message) => {
            eprintln!("bottle: {message}");
            return Exit::Failure;
        }
    };

    let files = [
        (config.join("bottles").join("example.md"), EXAMPLE_BOTTLE),
        (config.join("agents").join("example.md"), EXAMPLE_AGENT),
    ];
    // Both files or neither: a second `init` must not leave half an example behind.
    if let Some((path, _)) = files.iter().find(|(path, _)| path.exists()) {
        eprintln!(
            "bottle: {} exists, and init never overwrites your files; rename or remove it to \
             write the example again",
            path.display()
        );
        return Exit::Failure;
    }
    for (path, contents) in &files {
        if let Err(err) = write_new(path, contents) {
            eprintln!("bottle: cannot write {}: {err}", path.display());
            return Exit::Failure;
        }
        println!("wrote {}", path.display());
    }
    println!(
        "try: bottle info example, then EXAMPLE_API_TOKEN=<your token> bottle run example \
         (the launch stops while the token is unset)"
    );
    Exit::Success
}

/// Writes a file that must not exist yet, so that `init` never overwrites the user's.
fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

pub fn completions(shell: Shell) -> Exit {
    let mut command = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "bottle", &mut std::io::stdout());
    Exit::Success
}
