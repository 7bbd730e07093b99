//! A fake forge for tests: the repository deploy-key endpoints of Gitea, GitHub or GitLab
//! with real state on 127.0.0.1. It writes every registered key into an `sshd` authorized-keys file, so a
//! key registered through it really opens SSH access and a deleted key closes it again.
//!
//! Built only with the `fake-forge` feature.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::forge::Provider;

/// One key registered with the fake forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKey {
    pub repo: String,
    pub id: u64,
    pub title: String,
    pub key: String,
    pub read_only: bool,
}

#[derive(Debug)]
struct State {
    provider: Provider,
    token: String,
    authorized_keys: PathBuf,
    /// Lines of the authorized-keys file that were there before the fake started.
    base_lines: String,
    keys: Vec<FakeKey>,
    next_id: u64,
    delete_failure: Option<u16>,
    requests: Vec<String>,
}

/// The fake forge on its own thread; stopped on drop.
#[derive(Debug)]
pub struct FakeForge {
    /// The `api_url` to give the client: `http://127.0.0.1:<port>`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitea {
    /// Starts a fake Gitea; see [`FakeForge::start_for`].
    pub fn start(token: &str, authorized_keys: PathBuf) -> FakeForge {
        FakeForge::start_for(Provider::Gitea, token, authorized_keys)
    }

    /// Starts a fake of `provider`. Requests must carry the token the way that forge
    /// expects it: `Authorization: token <token>` (Gitea), `Authorization: Bearer <token>`
    /// (GitHub) or `PRIVATE-TOKEN: <token>` (GitLab). Registered keys are appended to the
    /// current contents of `authorized_keys`.
    pub fn start_for(provider: Provider, token: &str, authorized_keys: PathBuf) -> FakeForge {
        let base_lines = std::fs::read_to_string(&authorized_keys).unwrap_or_default();
        let state = Arc::new(Mutex::new(State {
            provider,
            token: token.to_owned(),
            authorized_keys,
            base_lines,
            keys: Vec::new(),
            next_id: 1,
            delete_failure: None,
            requests: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake forge");
        listener
            .set_nonblocking(true)
            .expect("set the listener non-blocking");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the fake forge's runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("register the listener");
                tokio::select! {
                    () = accept_loop(listener, served) => {}
                    _ = stopped => {}
                }
            });
        });
        FakeForge {
            base_url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Returns the registered keys.
    pub fn keys(&self) -> Vec<FakeKey> {
        self.state.lock().expect("fake forge state").keys.clone()
    }

    /// Makes every later delete return `status` (with the key kept), or restores normal
    /// deletes with `None`.
    pub fn fail_deletes_with(&self, status: Option<u16>) {
        self.state.lock().expect("fake forge state").delete_failure = status;
    }

    /// Returns `<method> <path>` of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("fake forge state")
            .requests
            .clone()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(handle(state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Deserialize)]
struct CreateKey {
    title: String,
    key: String,
    /// Gitea and GitHub.
    #[serde(default)]
    read_only: bool,
    /// GitLab.
    #[serde(default)]
    can_push: Option<bool>,
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "message": text }))
}

fn key_json(key: &FakeKey) -> serde_json::Value {
    serde_json::json!({
        "id": key.id, "title": key.title, "key": key.key, "read_only": key.read_only,
    })
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, private_token) = (header("authorization"), header("private-token"));
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return message(StatusCode::BAD_REQUEST, "unreadable body"),
    };

    let mut state = state.lock().expect("fake forge state");
    state.requests.push(format!("{method} {path}"));
    let authorized = match state.provider {
        Provider::Gitea => authorization == Some(format!("token {}", state.token)),
        Provider::Github => authorization == Some(format!("Bearer {}", state.token)),
        Provider::Gitlab => private_token.as_deref() == Some(state.token.as_str()),
    };
    if !authorized {
        return message(StatusCode::UNAUTHORIZED, "token is required");
    }
    let Some((repo, id)) = route(state.provider, &path) else {
        return message(StatusCode::NOT_FOUND, "not found");
    };

    match (method, id) {
        (Method::POST, None) => {
            let Ok(create) = serde_json::from_slice::<CreateKey>(&body) else {
                return message(StatusCode::UNPROCESSABLE_ENTITY, "invalid body");
            };
            if !create.key.starts_with("ssh-") || create.key.contains('\n') {
                return message(StatusCode::UNPROCESSABLE_ENTITY, "invalid key");
            }
            let id = state.next_id;
            state.next_id += 1;
            let key = FakeKey {
                repo,
                id,
                title: create.title,
                key: create.key,
                read_only: create.can_push.map_or(create.read_only, |push| !push),
            };
            let body = key_json(&key);
            state.keys.push(key);
            write_authorized_keys(&state);
            reply(StatusCode::CREATED, body)
        }
        (Method::GET, None) => {
            let keys: Vec<serde_json::Value> = state
                .keys
                .iter()
                .filter(|key| key.repo == repo)
                .map(key_json)
                .collect();
            reply(StatusCode::OK, serde_json::Value::Array(keys))
        }
        (Method::DELETE, Some(id)) => {
            if let Some(status) = state.delete_failure {
                let status = StatusCode::from_u16(status).expect("a valid status");
                return message(status, "the forge failed");
            }
            let before = state.keys.len();
            state.keys.retain(|key| !(key.repo == repo && key.id == id));
            if state.keys.len() == before {
                return message(StatusCode::NOT_FOUND, "key not found");
            }
            write_authorized_keys(&state);
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()))
                .expect("a valid response")
        }
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// Splits a deploy-key path into the repo and the key id:
/// `/api/v1/repos/<owner>/<repo>/keys[/<id>]` (Gitea), `/repos/<owner>/<repo>/keys[/<id>]`
/// (GitHub) or `/api/v4/projects/<url-encoded path>/deploy_keys[/<id>]` (GitLab).
fn route(provider: Provider, path: &str) -> Option<(String, Option<u64>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (repo, rest) = match (provider, parts.as_slice()) {
        (Provider::Gitea, ["api", "v1", "repos", owner, name, "keys", rest @ ..])
        | (Provider::Github, ["repos", owner, name, "keys", rest @ ..]) => {
            (format!("{owner}/{name}"), rest)
        }
        (Provider::Gitlab, ["api", "v4", "projects", project, "deploy_keys", rest @ ..]) => {
            (project.replace("%2F", "/").replace("%2f", "/"), rest)
        }
        _ => return None,
    };
    match rest {
        [] => Some((repo, None)),
        [id] => id.parse().ok().map(|id| (repo, Some(id))),
        _ => None,
    }
}

/// Rewrites the authorized-keys file: the original lines, then one line per key. The
/// file is replaced by a rename, so `sshd` never reads half of it.
fn write_authorized_keys(state: &State) {
    let mut text = state.base_lines.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for key in &state.keys {
        text.push_str(&key.key);
        text.push('\n');
    }
    let temporary = state.authorized_keys.with_extension("fake-forge.tmp");
    std::fs::write(&temporary, text).expect("write the authorized-keys file");
    std::fs::rename(&temporary, &state.authorized_keys).expect("replace the authorized-keys file");
}

/// The fake Gitea that earlier tests start with [`FakeForge::start`].
pub type FakeGitea = FakeForge;
