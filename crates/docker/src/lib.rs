//! The Docker Engine API as the `docker` backend uses it: image lookup and build from
//! an in-memory context, containers created, started, attached, waited for, stopped
//! and removed by name or label, and the runtimes the daemon offers.
//!
//! Only the local unix socket is spoken; the client negotiates the API version, so an
//! older engine (API 1.41) works.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    AttachContainerOptions, BuildImageOptions, CreateContainerOptions, ListContainersOptions,
    ListImagesOptions, RemoveContainerOptions, RemoveImageOptions, ResizeContainerTTYOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

pub use bollard::container::{AttachContainerResults, LogOutput};
pub use bollard::models::{ContainerCreateBody, HostConfig};

/// The label every container of a bottle carries, with the bottle's slug as value.
pub const SLUG_LABEL: &str = "bot-bottle.slug";

/// The label naming a container's role in its bottle (`sidecar`, `bridge`, `agent`).
pub const ROLE_LABEL: &str = "bot-bottle.role";

/// The label holding the host path of the bottle's state directory, whose metadata
/// names the launcher; `bottle gc` removes containers whose launcher is gone.
pub const STATE_LABEL: &str = "bot-bottle.state";

/// The label of every image `bottle` builds, so that `bottle gc` can find the untagged
/// ones (an image loses its tag when a concurrent build of the same tag finishes later).
pub const IMAGE_LABEL: &str = "bot-bottle.image";

/// The runtime used for the agent when the daemon offers it.
pub const GVISOR_RUNTIME: &str = "runsc";

/// How long one API call (other than waits, attaches and builds) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine at {socket}: {source}; start dockerd (scripts/test \
         installs and starts it) or set DOCKER_HOST to its unix socket"
    )]
    Connect {
        socket: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the Docker engine failed to {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("building image {tag} failed: {message}")]
    Build { tag: String, message: String },
    #[error("cannot write the build context of image {tag}: {source}")]
    Context {
        tag: String,
        #[source]
        source: std::io::Error,
    },
}

fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let action = action.into();
    move |source| DockerError::Api { action, source }
}

/// A container of a bottle, as listed by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BottleContainer {
    /// The container's name, without the leading slash.
    pub name: String,
    pub slug: String,
    pub role: Option<String>,
    /// The bottle's state directory, from its label.
    pub state_dir: Option<std::path::PathBuf>,
    /// Whether it is running.
    pub running: bool,
}

/// A file of an in-memory build context.
#[derive(Debug)]
pub struct ContextFile<'a> {
    pub path: &'a str,
    pub contents: &'a [u8],
    pub mode: u32,
}

/// A connection to the local Docker engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects to the engine's unix socket (`DOCKER_HOST` when it names one, else
    /// /var/run/docker.sock), negotiates the API version and checks that it responds.
    pub async fn connect() -> Result<Engine, DockerError> {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(host) if host.starts_with("unix://") => host,
            _ => "unix:///var/run/docker.sock".to_owned(),
        };
        let connect_error = |source| DockerError::Connect {
            socket: socket.clone(),
            source,
        };
        let docker = Docker::connect_with_unix(
            &socket,
            CALL_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(connect_error)?;
        let docker = docker.negotiate_version().await.map_err(connect_error)?;
        docker.ping().await.map_err(connect_error)?;
        Ok(Engine { docker })
    }

    /// Returns the underlying client, for calls this crate does not wrap.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Returns whether an image with this tag exists locally.
    pub async fn image_exists(&self, tag: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(api(format!("inspect image {tag}"))(source)),
        }
    }

    /// Builds `tag` from a context made of `files`, with `Dockerfile` as the build file.
    /// The build may not pull: the base image must exist locally.
    pub async fn build_image(
        &self,
        tag: &str,
        files: &[ContextFile<'_>],
    ) -> Result<(), DockerError> {
        let context = context_tar(files).map_err(|source| DockerError::Context {
            tag: tag.to_owned(),
            source,
        })?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_owned(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            pull: None,
            labels: Some(HashMap::from([(IMAGE_LABEL.to_owned(), tag.to_owned())])),
            ..Default::default()
        };
        let body = bollard::body_full(context.into());
        let mut stream = self.docker.build_image(options, None, Some(body));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(DockerError::Build {
                            tag: tag.to_owned(),
                            message: detail.message.unwrap_or_default(),
                        });
                    }
                    if let Some(text) = info.stream {
                        log.push_str(&text);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(DockerError::Build {
                        tag: tag.to_owned(),
                        message: error,
                    });
                }
                Err(source) => return Err(api(format!("build image {tag}"))(source)),
            }
        }
        tracing::debug!(%tag, "image built: {log}");
        if !self.image_exists(tag).await? {
            return Err(DockerError::Build {
                tag: tag.to_owned(),
                message: format!("the engine reported no error, but the image is missing: {log}"),
            });
        }
        Ok(())
    }

    /// Returns the tags of the local images of `repository` (such as `bot-bottle/sidecar`).
    pub async fn image_tags(&self, repository: &str) -> Result<Vec<String>, DockerError> {
        let options = ListImagesOptions {
            filters: Some(HashMap::from([(
                "reference".to_owned(),
                vec![format!("{repository}:*")],
            )])),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(api(format!("list the images of {repository}")))?;
        let mut tags: Vec<String> = images
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter(|tag| tag.starts_with(&format!("{repository}:")))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Removes the untagged images that carry [`IMAGE_LABEL`], except those a container
    /// uses. Returns the ids of the removed images.
    pub async fn remove_untagged_images(&self) -> Result<Vec<String>, DockerError> {
        let options = ListImagesOptions {
            filters: Some(HashMap::from([
                ("dangling".to_owned(), vec!["true".to_owned()]),
                ("label".to_owned(), vec![IMAGE_LABEL.to_owned()]),
            ])),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(api("list the untagged images"))?;
        let mut removed = Vec::new();
        for image in images {
            if self.remove_image(&image.id).await? {
                removed.push(image.id);
            }
        }
        Ok(removed)
    }

    /// Removes an image tag unless a container uses the image. Returns whether it was
    /// removed; a missing tag counts as removed.
    pub async fn remove_image(&self, tag: &str) -> Result<bool, DockerError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            platforms: None,
        };
        match self.docker.remove_image(tag, Some(options), None).await {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(false),
            Err(source) => Err(api(format!("remove image {tag}"))(source)),
        }
    }

    /// Returns the names of the runtimes the daemon offers.
    pub async fn runtimes(&self) -> Result<Vec<String>, DockerError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(api("read the engine's information"))?;
        let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        names.sort();
        Ok(names)
    }

    /// Creates a container named `name`.
    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<(), DockerError> {
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(api(format!("create container {name}")))?;
        Ok(())
    }

    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(api(format!("start container {name}")))
    }

    /// Attaches to a created container's streams; `stdin` also opens its input.
    pub async fn attach(
        &self,
        name: &str,
        stdin: bool,
    ) -> Result<AttachContainerResults, DockerError> {
        let options = AttachContainerOptions {
            stream: true,
            stdin,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        self.docker
            .attach_container(name, Some(options))
            .await
            .map_err(api(format!("attach to container {name}")))
    }

    /// Runs `cmd` in a running container as `user`, writes `input` to its standard
    /// input and closes it, and returns its exit code and output. The input travels on
    /// the attached stream only, so the engine stores none of it.
    pub async fn exec_with_input(
        &self,
        name: &str,
        user: &str,
        cmd: Vec<String>,
        input: &[u8],
    ) -> Result<(i64, String), DockerError> {
        use tokio::io::AsyncWriteExt;

        let action = || format!("run a command in container {name}");
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            user: Some(user.to_owned()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(name, config)
            .await
            .map_err(api(action()))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(api(action()))?;
        let bollard::exec::StartExecResults::Attached {
            mut output,
            input: mut writer,
        } = started
        else {
            return Err(DockerError::Api {
                action: action(),
                source: bollard::errors::Error::IOError {
                    err: std::io::Error::other("the exec started detached"),
                },
            });
        };
        let io_error = |err| DockerError::Api {
            action: action(),
            source: bollard::errors::Error::IOError { err },
        };
        writer.write_all(input).await.map_err(io_error)?;
        writer.shutdown().await.map_err(io_error)?;
        drop(writer);
        let mut text = String::new();
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message }) => {
                    text.push_str(&String::from_utf8_lossy(&message));
                }
                Ok(_) => {}
                Err(source) => return Err(api(action())(source)),
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(api(action()))?;
        Ok((inspected.exit_code.unwrap_or(-1), text))
    }

    /// Sets the size of a running container's tty, in rows and columns.
    pub async fn resize_tty(&self, name: &str, rows: u16, columns: u16) -> Result<(), DockerError> {
        let options = ResizeContainerTTYOptions {
            h: i32::from(rows),
            w: i32::from(columns),
        };
        self.docker
            .resize_container_tty(name, options)
            .await
            .map_err(api(format!("resize the tty of container {name}")))
    }

    /// Waits until the container stops and returns its exit code.
    pub async fn wait(&self, name: &str) -> Result<i64, DockerError> {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let mut stream = self.docker.wait_container(name, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(source)) => Err(api(format!("wait for container {name}"))(source)),
            None => Err(DockerError::Api {
                action: format!("wait for container {name}"),
                source: bollard::errors::Error::IOError {
                    err: std::io::Error::other("the wait ended without a status"),
                },
            }),
        }
    }

    /// Returns whether the container is running; a missing container is not.
    pub async fn running(&self, name: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_container(name, None).await {
            Ok(info) => Ok(info.state.and_then(|state| state.running).unwrap_or(false)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(api(format!("inspect container {name}"))(source)),
        }
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace`. A missing or stopped
    /// container counts as stopped.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<(), DockerError> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(source) => Err(api(format!("stop container {name}"))(source)),
        }
    }

    /// Removes a container and its anonymous volumes, killing it if it still runs. A
    /// missing container counts as removed.
    pub async fn remove(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // A removal already in progress finishes on its own.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(source) => Err(api(format!("remove container {name}"))(source)),
        }
    }

    /// Lists every container (running or not) that carries the slug label, or only
    /// those of one slug.
    pub async fn bottle_containers(
        &self,
        slug: Option<&str>,
    ) -> Result<Vec<BottleContainer>, DockerError> {
        let label = match slug {
            Some(slug) => format!("{SLUG_LABEL}={slug}"),
            None => SLUG_LABEL.to_owned(),
        };
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), vec![label])])),
            ..Default::default()
        };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("list the bottles' containers"))?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| {
                let labels = summary.labels.unwrap_or_default();
                let name = summary.names?.first()?.trim_start_matches('/').to_owned();
                Some(BottleContainer {
                    name,
                    slug: labels.get(SLUG_LABEL)?.clone(),
                    role: labels.get(ROLE_LABEL).cloned(),
                    state_dir: labels.get(STATE_LABEL).map(std::path::PathBuf::from),
                    running: summary.state
                        == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect())
    }
}

/// Returns the labels of a bottle's container.
pub fn labels(slug: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (SLUG_LABEL.to_owned(), slug.to_owned()),
        (ROLE_LABEL.to_owned(), role.to_owned()),
    ])
}

/// Writes an uncompressed tar archive of `files`, owned by root.
pub fn context_tar(files: &[ContextFile<'_>]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.contents.len() as u64);
        header.set_mode(file.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, file.path, file.contents)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_tar_holds_the_files() {
        let tar = context_tar(&[
            ContextFile {
                path: "Dockerfile",
                contents: b"FROM scratch\n",
                mode: 0o644,
            },
            ContextFile {
                path: "bin/tool",
                contents: b"#!/bin/sh\n",
                mode: 0o755,
            },
        ])
        .expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let entry = entry.expect("entry");
                (
                    entry.path().expect("path").display().to_string(),
                    entry.header().mode().expect("mode"),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("Dockerfile".to_owned(), 0o644),
                ("bin/tool".to_owned(), 0o755)
            ]
        );
    }
}
