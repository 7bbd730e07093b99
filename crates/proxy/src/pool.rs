//! Reuse of upstream connections: idle HTTP/1.1 connections and shared HTTP/2 connections,
//! kept per [`PoolKey`] for a bounded time.
//!
//! The key contains everything that decides who the upstream is and how it is trusted: the
//! route (which fixes its `connect` target and `upstream_ca`, or the system roots), the
//! host (the SNI and the name the certificate is verified against), the port, TLS or
//! plain, and the ALPN protocols offered. A connection is only ever handed out for the
//! key it was dialled for. Its address was resolved and checked when it was dialled and
//! stays fixed for its lifetime, so reuse never skips the address check and a later DNS
//! answer cannot move it. One sidecar serves one bottle, and each proxy has its own pool,
//! so a connection is never shared between bottles. Tokens are injected per request, so a
//! pooled connection carries no credential of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bottle_policy::Host;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};

use crate::upstream::UpstreamSender;

/// Settings of upstream connection reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Whether connections are reused at all. Without reuse every request dials and
    /// handshakes anew.
    pub enabled: bool,
    /// Idle HTTP/1.1 connections kept per key; more are closed once their response ends.
    pub max_idle_per_key: usize,
    /// Idle HTTP/1.1 connections kept in all.
    pub max_idle_total: usize,
    /// Time an unused connection is kept before it is closed.
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            enabled: true,
            max_idle_per_key: 64,
            max_idle_total: 512,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What decides an upstream connection's identity and trust. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    /// Route index: fixes the `connect` target and the trusted roots.
    pub(crate) route: usize,
    /// The SNI and verified name (or the plain-HTTP host).
    pub(crate) host: Host,
    /// The upstream port.
    pub(crate) port: u16,
    /// TLS with ALPN `h2`, `http/1.1` (true) or plain HTTP/1.1 (false).
    pub(crate) tls: bool,
}

struct IdleHttp1 {
    sender: http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

struct SharedHttp2 {
    sender: http2::SendRequest<Full<Bytes>>,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    http1: HashMap<PoolKey, Vec<IdleHttp1>>,
    http2: HashMap<PoolKey, SharedHttp2>,
    idle_http1: usize,
    reaper_started: bool,
}

/// The upstream connection pool of one proxy.
pub(crate) struct Pool {
    settings: PoolSettings,
    state: Mutex<State>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(settings: PoolSettings) -> Arc<Pool> {
        Arc::new(Pool {
            settings,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("pool lock is never poisoned")
    }

    /// Returns a ready connection for `key`, if one is pooled.
    pub(crate) fn checkout(&self, key: &PoolKey) -> Option<UpstreamSender> {
        if !self.settings.enabled {
            return None;
        }
        let timeout = self.settings.idle_timeout;
        let mut state = self.lock();
        if let Some(shared) = state.http2.get_mut(key) {
            if shared.sender.is_ready() && shared.last_used.elapsed() < timeout {
                shared.last_used = Instant::now();
                return Some(UpstreamSender::Http2(shared.sender.clone()));
            }
            state.http2.remove(key);
        }
        let mut taken = None;
        let mut dropped = 0;
        if let Some(idle) = state.http1.get_mut(key) {
            // The most recently used connection first: it is the least likely to have been
            // closed by the upstream meanwhile.
            while let Some(entry) = idle.pop() {
                if entry.sender.is_ready() && entry.since.elapsed() < timeout {
                    taken = Some(entry.sender);
                    break;
                }
                dropped += 1;
            }
            if idle.is_empty() {
                state.http1.remove(key);
            }
        }
        state.idle_http1 -= dropped + usize::from(taken.is_some());
        taken.map(UpstreamSender::Http1)
    }

    /// Keeps a freshly dialled HTTP/2 connection for later requests to `key`, unless a
    /// live one is pooled already.
    pub(crate) fn share_http2(
        self: &Arc<Self>,
        key: &PoolKey,
        sender: &http2::SendRequest<Full<Bytes>>,
    ) {
        if !self.settings.enabled {
            return;
        }
        let mut state = self.lock();
        let live = state
            .http2
            .get(key)
            .is_some_and(|shared| shared.sender.is_ready());
        if !live {
            state.http2.insert(
                key.clone(),
                SharedHttp2 {
                    sender: sender.clone(),
                    last_used: Instant::now(),
                },
            );
        }
        self.start_reaper(&mut state);
    }

    /// Puts an HTTP/1.1 connection back in the pool once its response has been read to the
    /// end. A connection that closes instead (the upstream sent `Connection: close`, or
    /// the agent dropped the response) is not kept.
    pub(crate) fn checkin_when_idle(
        self: &Arc<Self>,
        key: PoolKey,
        mut sender: http1::SendRequest<Full<Bytes>>,
    ) {
        if !self.settings.enabled {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            if let Some(pool) = pool.upgrade() {
                pool.keep_idle(key, sender);
            }
        });
    }

    fn keep_idle(self: &Arc<Self>, key: PoolKey, sender: http1::SendRequest<Full<Bytes>>) {
        let mut state = self.lock();
        if state.idle_http1 >= self.settings.max_idle_total {
            return;
        }
        let idle = state.http1.entry(key).or_default();
        if idle.len() >= self.settings.max_idle_per_key {
            return;
        }
        idle.push(IdleHttp1 {
            sender,
            since: Instant::now(),
        });
        state.idle_http1 += 1;
        self.start_reaper(&mut state);
    }

    /// Starts the task that closes connections idle for longer than the timeout. It keeps
    /// a weak reference to the pool and ends with it.
    fn start_reaper(self: &Arc<Self>, state: &mut State) {
        if state.reaper_started {
            return;
        }
        state.reaper_started = true;
        let pool: Weak<Pool> = Arc::downgrade(self);
        let period = (self.settings.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.reap();
            }
        });
    }

    /// Closes idle connections past the timeout and connections the upstream closed.
    fn reap(&self) {
        let timeout = self.settings.idle_timeout;
        let mut state = self.lock();
        let mut kept = 0;
        state.http1.retain(|_, idle| {
            idle.retain(|entry| entry.since.elapsed() < timeout && !entry.sender.is_closed());
            kept += idle.len();
            !idle.is_empty()
        });
        state.idle_http1 = kept;
        state
            .http2
            .retain(|_, shared| shared.last_used.elapsed() < timeout && !shared.sender.is_closed());
    }

    /// Returns the number of pooled connections (idle HTTP/1.1 plus shared HTTP/2).
    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        let state = self.lock();
        state.idle_http1 + state.http2.len()
    }
}

/// Returns true for methods that a retry cannot turn into a second effect (RFC 9110,
/// section 9.2.2).
pub(crate) fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        assert!(is_idempotent(&http::Method::GET));
        assert!(is_idempotent(&http::Method::PUT));
        assert!(!is_idempotent(&http::Method::POST));
        assert!(!is_idempotent(&http::Method::PATCH));
    }

    #[test]
    fn disabled_pool_hands_out_nothing() {
        let pool = Pool::new(PoolSettings {
            enabled: false,
            ..PoolSettings::default()
        });
        let key = PoolKey {
            route: 0,
            host: Host::parse("api.example.org").expect("valid host"),
            port: 443,
            tls: true,
        };
        assert!(pool.checkout(&key).is_none());
        assert_eq!(pool.pooled(), 0);
    }
}
