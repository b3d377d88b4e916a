//! The HTTP listener: accepts connections and serves the router on each, with the
//! limits that keep one client (or a crowd of idle sockets) from taking the node
//! down before authentication has a say:
//!
//! - a request head must arrive whole within [`ServeConfig::header_timeout`] of
//!   the connection opening or of its first byte (slowloris, silent sockets);
//! - a keep-alive connection idle between requests is closed after
//!   [`ServeConfig::keep_alive_timeout`];
//! - at most [`ServeConfig::max_connections_per_ip`] connections per client (an
//!   IPv4 address or an IPv6 /64), answered `429` beyond it;
//! - at most [`ServeConfig::max_connections`] in all, below the process's
//!   descriptor limit, answered `503` beyond it, so the node keeps descriptors
//!   for its own files and its probes keep answering;
//! - shutdown lets requests in flight finish for
//!   [`ServeConfig::shutdown_timeout`], then closes whatever is left.
//!
//! WebSocket connections count against both caps for their whole life; the
//! timeouts here stop at the upgrade (the WebSocket server has its own).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use caas_core::ids::CorrelationId;
use caas_core::time::{Clock, SystemClock};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::problem::ApiError;

/// Limits of the HTTP listener. The defaults suit a public node; tests and load
/// generators on loopback raise the per-client cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Longest time a client may take to send a whole request head, counted from
    /// the connection opening or from the head's first byte (default 10 s).
    pub header_timeout: Duration,
    /// Longest time a keep-alive connection may sit idle between requests
    /// (default 60 s).
    pub keep_alive_timeout: Duration,
    /// Open connections per client: an IPv4 address or an IPv6 /64 (default 256).
    pub max_connections_per_ip: usize,
    /// Open connections in all; `None` (the default) derives it from the
    /// process's descriptor limit ([`descriptor_cap`]).
    pub max_connections: Option<usize>,
    /// How long shutdown waits for requests in flight before closing what is
    /// left (default 10 s).
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections_per_ip: 256,
            max_connections: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// The connection cap in force: the configured one, never above
    /// [`descriptor_cap`].
    pub fn connection_cap(&self) -> usize {
        let derived = descriptor_cap();
        self.max_connections.map_or(derived, |c| c.min(derived))
    }
}

/// The most connections the process's open-file limit leaves room for, keeping
/// an eighth of it (at least 64, at most 4 096) for the node's own files, the
/// listener and the sockets that answer refused connections.
pub fn descriptor_cap() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let reserve = (limit / 8).clamp(64, 4096);
    limit.saturating_sub(reserve).max(1)
}

/// Raises the process's soft open-file limit to its hard limit, for a process
/// that owns its limits (the platform binary; a library embedding the gateway
/// should leave that to its host). Returns the limit now in force.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Connections refused at once get their answer from a small pool of tasks;
/// past it they are closed without one rather than holding more descriptors.
const REFUSAL_WRITERS: usize = 64;
/// How long a refused connection may take to receive its answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish for `config.shutdown_timeout` and
/// closes what is left.
///
/// Requests carry the client's address as `ConnectInfo<SocketAddr>` (for the
/// edge limit). Sockets get `TCP_NODELAY`: a small frame (an ack) written while a
/// large one is still unacknowledged would otherwise wait for the peer's delayed
/// ACK (about 40 ms) under Nagle's algorithm. For WebSocket clients, have
/// `shutdown` call [`crate::WsHub::shutdown`] first, so they are told to
/// reconnect.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = Arc::new(config);
    let limits = Arc::new(Limits::new(
        config.connection_cap(),
        config.max_connections_per_ip.max(1),
    ));
    let refusals = Arc::new(Semaphore::new(REFUSAL_WRITERS));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            // Reap finished connections as they end, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        match limits.admit(peer.ip()) {
            Ok(guard) => {
                connections.spawn(connection(
                    Tracked::new(tcp, guard),
                    peer,
                    router.clone(),
                    config.clone(),
                    closing_rx.clone(),
                ));
            }
            Err(refusal) => refuse(tcp, peer, refusal, &refusals),
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "shutdown deadline reached: closing the connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Accept errors are about one connection (reset before accept) or about the
/// process (out of descriptors): the first are skipped, the second get a short
/// pause so the loop does not spin while descriptors free up.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One HTTP/1 connection until it ends, is upgraded, or shutdown closes it.
async fn connection(
    io: Tracked,
    peer: SocketAddr,
    router: Router,
    config: Arc<ServeConfig>,
    mut closing: watch::Receiver<bool>,
) {
    let phase = io.phase.clone();
    let io = TokioIo::new(io.with_timeouts(&config));
    let service = ConnService {
        router,
        peer,
        phase,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => log_end(r),
        _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
            // Idle connections close at once; one serving a request closes
            // after its response (the shutdown deadline bounds the wait).
            conn.as_mut().graceful_shutdown();
            log_end(conn.await);
        }
    }
}

fn log_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// The router as the connection's hyper service: marks the connection busy
/// while a request is served and hands requests the client's address.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    phase: Arc<Phase>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.phase.enter(Phase::BUSY);
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        let phase = self.phase.clone();
        Box::pin(async move {
            let res = tower_service::Service::call(&mut router, req).await;
            if let Ok(r) = &res {
                phase.enter(if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                    Phase::UPGRADED
                } else {
                    Phase::IDLE
                });
            }
            res
        })
    }
}

/// What a connection is doing, for its timeouts: the phase in the low two bits,
/// and above them a count of phase changes, so a new idle period is told apart
/// from the last one.
#[derive(Debug)]
struct Phase(AtomicU64);

impl Phase {
    /// Waiting for a request head to complete (header timeout).
    const HEAD: u64 = 0;
    /// Between requests (keep-alive timeout).
    const IDLE: u64 = 1;
    /// Serving a request (the gateway's request timeout applies).
    const BUSY: u64 = 2;
    /// Handed over to the WebSocket server (no timeout from here).
    const UPGRADED: u64 = 3;

    fn new() -> Self {
        Self(AtomicU64::new(Self::HEAD))
    }

    fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn enter(&self, phase: u64) {
        let current = self.load();
        self.0.store(
            ((current >> 2).wrapping_add(1) << 2) | phase,
            Ordering::Release,
        );
    }
}

/// A connection's socket, its place in the connection caps (released when the
/// socket closes, even after an upgrade), and the timer of its current phase.
struct Tracked {
    tcp: TcpStream,
    phase: Arc<Phase>,
    _guard: ConnGuard,
    timeouts: [Duration; 2],
    timer: Option<Pin<Box<Sleep>>>,
    /// The phase value the timer was set for.
    armed: Option<u64>,
}

impl Tracked {
    fn new(tcp: TcpStream, guard: ConnGuard) -> Self {
        Self {
            tcp,
            phase: Arc::new(Phase::new()),
            _guard: guard,
            timeouts: [Duration::MAX; 2],
            timer: None,
            armed: None,
        }
    }

    fn with_timeouts(mut self, config: &ServeConfig) -> Self {
        self.timeouts = [config.header_timeout, config.keep_alive_timeout];
        self
    }

    /// Ready when the current phase's time is up.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, state: u64) -> Poll<()> {
        let phase = state & 3;
        if phase == Phase::BUSY || phase == Phase::UPGRADED {
            if phase == Phase::UPGRADED {
                self.timer = None;
            }
            return Poll::Pending;
        }
        if self.armed != Some(state) {
            let limit = self.timeouts[usize::from(phase == Phase::IDLE)];
            let deadline = Instant::now()
                .checked_add(limit)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = Some(state);
        }
        match &mut self.timer {
            Some(t) => t.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let state = this.phase.load();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // The first byte of the next request starts its header timeout.
                if buf.filled().len() > before && state & 3 == Phase::IDLE {
                    this.phase.enter(Phase::HEAD);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx, state) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if state & 3 == Phase::IDLE {
                        "keep-alive timeout"
                    } else {
                        "request head timeout"
                    },
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Tracked {
    /// Starts the keep-alive timer as the response goes out. hyper does not read
    /// again after a response while its last read is still pending (that read
    /// began while the request was being served, with no timer), so the timer's
    /// wake-up is what makes it read, and meet the timeout, at all.
    fn arm_after_response(&mut self, cx: &mut Context<'_>) {
        let state = self.phase.load();
        if state & 3 == Phase::IDLE && self.armed != Some(state) {
            let _ = self.poll_deadline(cx, state);
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arm_after_response(cx);
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arm_after_response(cx);
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Who a client is for per-client limits: an IPv4 address, or the /64 network of
/// an IPv6 one (one IPv6 host usually holds a whole /64 and can pick a fresh
/// address in it for every connection, so per-address limits would not hold it
/// back). IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(std::net::Ipv4Addr),
    V6Net([u16; 4]),
}

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => {
                    let s = v6.segments();
                    ClientKey::V6Net([s[0], s[1], s[2], s[3]])
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(s) => {
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                write!(f, "{net}/64")
            }
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The node holds as many connections as its descriptors allow.
    Full,
    /// The client holds as many connections as one client may.
    PerClient,
}

/// The open-connection counts behind both caps.
#[derive(Debug)]
struct Limits {
    max_total: usize,
    max_per_client: usize,
    total: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

impl Limits {
    fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let key = ClientKey::of(ip);
        // A poisoned map only means a panic elsewhere while counting; the counts
        // themselves are still whole.
        let mut per = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.total.load(Ordering::Acquire) >= self.max_total {
            return Err(Refusal::Full);
        }
        let n = per.entry(key).or_insert(0);
        if *n >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        Ok(ConnGuard {
            limits: self.clone(),
            key,
        })
    }

    fn release(&self, key: ClientKey) {
        let mut per = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&key);
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place in the caps, given back when the socket closes.
#[derive(Debug)]
struct ConnGuard {
    limits: Arc<Limits>,
    key: ClientKey,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

/// Answers a refused connection (`503` when the node is full, `429` over the
/// per-client cap) without reading its request, then closes it. Bounded: past
/// [`REFUSAL_WRITERS`] answers in flight, refused sockets are closed unanswered.
fn refuse(tcp: TcpStream, peer: SocketAddr, refusal: Refusal, writers: &Arc<Semaphore>) {
    let Ok(permit) = writers.clone().try_acquire_owned() else {
        return;
    };
    let error = match refusal {
        Refusal::Full => {
            metrics::counter!("caas_http_connections_refused_total", "reason" => "full")
                .increment(1);
            ApiError::unavailable("the node holds all the connections it can; retry shortly")
        }
        Refusal::PerClient => {
            metrics::counter!("caas_http_connections_refused_total", "reason" => "per_client")
                .increment(1);
            ApiError::rate_limited(
                format!(
                    "too many open connections from {}",
                    ClientKey::of(peer.ip())
                ),
                Duration::from_secs(1),
            )
        }
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer(tcp, &error)).await;
    });
}

/// Writes `error` as a whole `Connection: close` response, then reads (and
/// drops) what the client sent until it closes, so closing does not reset the
/// connection under the answer before the client has read it.
async fn answer(mut tcp: TcpStream, error: &ApiError) -> io::Result<()> {
    let body = error.body_json();
    let correlation = CorrelationId::generate(SystemClock::new().now());
    let status = error.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\nx-correlation-id: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        correlation.as_str(),
    );
    if let Some(secs) = error.retry_after_secs() {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    tcp.shutdown().await?;
    let mut sink = [0u8; 1024];
    while tcp.read(&mut sink).await? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(a, b, "one /64, one budget");
        assert_ne!(a, other);
        assert_eq!(
            ClientKey::of("::ffff:192.0.2.7".parse().unwrap()).to_string(),
            "192.0.2.7"
        );
        assert_eq!(
            ClientKey::of("192.0.2.7".parse().unwrap()).to_string(),
            "192.0.2.7"
        );
    }

    #[test]
    fn caps_count_open_connections_and_give_them_back() {
        let limits = Arc::new(Limits::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerClient);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Full);
        drop(a1);
        let _b2 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::Full);
    }

    #[test]
    fn the_descriptor_cap_leaves_room_below_the_limit() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let cap = descriptor_cap() as u64;
        assert!(cap < soft, "{cap} < {soft}");
        assert!(soft - cap >= 64);
        let c = ServeConfig {
            max_connections: Some(usize::MAX),
            ..ServeConfig::default()
        };
        assert_eq!(c.connection_cap(), descriptor_cap());
    }
}
