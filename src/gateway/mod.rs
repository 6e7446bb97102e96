//! The model gateway: a small HTTP server in the bridge's process that the harness calls instead
//! of an OpenAI-compatible model server, forwarding every request to it and streaming every
//! event back as it arrives, so that:
//!
//! - a broken answer never passes as complete: a stream that ends before its end marker, or
//!   carries a chunk that is not JSON, is cut off (the connection to the harness is aborted,
//!   never closed cleanly), so the turn fails with a typed error instead of keeping half a reply;
//! - what is safe to retry is retried: connection failures, 408/409/429/5xx answers and streams
//!   that failed before their first event was forwarded, with backoff and jitter, honouring
//!   `Retry-After` ([`ModelRetry`]); nothing is retried once an event reached the harness;
//! - secrets stay where they were: it listens on loopback only, every route starts with a
//!   per-bridge random secret (an unknown path is a bare 404), headers and bodies pass through
//!   untouched and are never logged.
//!
//! Each agent gets its own route (`/<secret>/<agent id>`), so the retries a turn needed and the
//! server's `Retry-After` can be reported with the turn.

mod retry;
mod sse;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Weak,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, StatusCode, body::Frame};
use parking_lot::Mutex;
use tracing::Instrument;

pub use retry::ModelRetry;
use sse::{EventCheck, StreamFault};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// The largest request body the gateway forwards (a request carries the whole conversation).
const MAX_REQUEST: usize = 64 << 20;

/// What a turn's model calls went through at the gateway, taken at the end of the turn.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallReport {
    /// Attempts repeated after a transient failure.
    pub(crate) retries: u32,
    /// The last `Retry-After` the model server sent with a 429 that reached the harness.
    pub(crate) quota_retry_after: Option<Duration>,
}

/// One agent's route to its model server.
#[derive(Debug)]
pub(crate) struct Route {
    upstream: String,
    /// The upstream base ends in `/v1`, and so does the route's (the harness adds `/v1` to a
    /// base URL without it).
    ends_in_v1: bool,
    retry: ModelRetry,
    retries: AtomicU32,
    quota_retry_after: Mutex<Option<Duration>>,
    /// The span of the agent's turn in progress: the parent of its model calls' spans.
    turn_span: Mutex<Option<tracing::Span>>,
    /// The model, as spans name it.
    model: String,
}

impl Route {
    /// Sets (or clears) the span of the turn in progress.
    pub(crate) fn set_turn_span(&self, span: Option<tracing::Span>) {
        *self.turn_span.lock() = span;
    }

    /// A span for one model call, the child of the turn's span; disabled outside a turn.
    fn call_span(&self) -> tracing::Span {
        let Some(turn) = self.turn_span.lock().clone() else {
            return tracing::Span::none();
        };
        tracing::info_span!(
            parent: &turn,
            "model_call",
            otel.name = %format_args!("chat {}", self.model),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = %self.model,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            agy.retries = tracing::field::Empty,
        )
    }

    /// What the calls since the last report went through.
    pub(crate) fn take_report(&self) -> CallReport {
        CallReport {
            retries: self.retries.swap(0, Ordering::Relaxed),
            quota_retry_after: self.quota_retry_after.lock().take(),
        }
    }
}

/// An agent's registration; the route goes when it is dropped.
#[derive(Debug)]
pub(crate) struct RouteGuard {
    gateway: Weak<Gateway>,
    id: String,
    route: Arc<Route>,
}

impl RouteGuard {
    /// The route, for its reports.
    pub(crate) const fn route(&self) -> &Arc<Route> {
        &self.route
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.upgrade() {
            gateway.routes.lock().remove(&self.id);
        }
    }
}

/// The gateway of one bridge.
pub(crate) struct Gateway {
    addr: SocketAddr,
    secret: String,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Gateway {
    /// Starts the gateway on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound or the HTTP client cannot be built.
    pub(crate) async fn start() -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let secret = {
            let a = uuid::Uuid::new_v4().simple().to_string();
            let b = uuid::Uuid::new_v4().simple().to_string();
            a + &b
        };
        Ok(Arc::new_cyclic(|me: &Weak<Self>| {
            let me = me.clone();
            let server = tokio::spawn(serve(listener, me));
            Self {
                addr,
                secret,
                routes: Mutex::new(HashMap::new()),
                client,
                server,
            }
        }))
    }

    /// Routes `agent_id`'s model calls to `upstream` (a base URL such as
    /// `http://host:port/v1`); returns the base URL the harness is to call instead, and the
    /// guard that keeps the route.
    pub(crate) fn route(
        self: &Arc<Self>,
        agent_id: &str,
        (upstream, model): (&str, &str),
        retry: ModelRetry,
    ) -> (String, RouteGuard) {
        let upstream = upstream.trim_end_matches('/');
        let ends_in_v1 = upstream.ends_with("/v1");
        let route = Arc::new(Route {
            upstream: upstream.to_owned(),
            ends_in_v1,
            retry,
            retries: AtomicU32::new(0),
            quota_retry_after: Mutex::new(None),
            turn_span: Mutex::new(None),
            model: model.to_owned(),
        });
        self.routes
            .lock()
            .insert(agent_id.to_owned(), Arc::clone(&route));
        let v1 = if ends_in_v1 { "/v1" } else { "" };
        let base = format!("http://{}/{}/{agent_id}{v1}", self.addr, self.secret);
        let guard = RouteGuard {
            gateway: Arc::downgrade(self),
            id: agent_id.to_owned(),
            route,
        };
        (base, guard)
    }

    /// Where it listens (loopback).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The route a request path names, and the rest of the path, when the secret matches.
    fn find(&self, path: &str) -> Option<(Arc<Route>, String)> {
        let path = path.strip_prefix('/')?;
        let (secret, rest) = path.split_once('/')?;
        if !constant_time_eq(secret.as_bytes(), self.secret.as_bytes()) {
            return None;
        }
        let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let route = self.routes.lock().get(id).cloned()?;
        Some((route, rest.to_owned()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn serve(listener: tokio::net::TcpListener, gateway: Weak<Gateway>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            // An `Err` makes hyper close the connection without an answer: what the harness
            // gets when the model server could not be reached at all.
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.upgrade();
                async move {
                    match gateway {
                        Some(gateway) => handle(&gateway, req).await,
                        None => Ok(status(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the bridge is gone",
                        )),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = code;
    response
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Headers that belong to one connection, or that the gateway sets itself.
fn forwarded(name: &hyper::header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-connection"
            // The stream is read as it passes: ask for it uncompressed.
            | "accept-encoding"
    )
}

async fn handle(
    gateway: &Gateway,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let Some((route, rest)) = gateway.find(req.uri().path()) else {
        return Ok(status(StatusCode::NOT_FOUND, ""));
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    // The harness appended to our base what it would have appended to the model server's.
    let rest = if route.ends_in_v1 {
        rest.strip_prefix("v1")
            .map_or(rest.as_str(), |r| r.trim_start_matches('/'))
    } else {
        rest.as_str()
    };
    let url = format!("{}/{rest}{query}", route.upstream);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(status(StatusCode::PAYLOAD_TOO_LARGE, "request too large")),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &parts.headers {
        if forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let span = route.call_span();
    let answer = forward(gateway, &route, &url, (&parts, headers), body)
        .instrument(span.clone())
        .await;
    match &answer {
        Ok(response) => {
            span.record("http.response.status_code", response.status().as_u16());
            if !response.status().is_success() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", response.status().as_str());
            }
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "unreachable");
        }
    }
    // The call's span lasts as long as its answer streams.
    Ok(answer?.map(|body| InSpan { body, _span: span }.boxed()))
}

/// A response body that keeps its model call's span open until it has been read (or dropped).
struct InSpan {
    body: Body,
    _span: tracing::Span,
}

impl hyper::body::Body for InSpan {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Sends the request upstream, retrying what is safe to retry, and returns what the harness
/// gets.
async fn forward(
    gateway: &Gateway,
    route: &Route,
    url: &str,
    (parts, headers): (&hyper::http::request::Parts, reqwest::header::HeaderMap),
    body: Bytes,
) -> Result<Response<Body>, std::io::Error> {
    let mut retry = 0;
    loop {
        let attempt = gateway
            .client
            .request(parts.method.clone(), url)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        let failed = match attempt {
            Ok(upstream) => match answer(upstream).await {
                Attempt::Ready(response) => {
                    let ok = response.status().is_success();
                    crate::metrics::model_call(if ok { "ok" } else { "failed" });
                    return Ok(response);
                }
                Attempt::Failed(failure) => failure,
            },
            Err(e) => Failure {
                reason: format!("the model server could not be reached ({})", error_kind(&e)),
                retry_after: None,
                response: None,
            },
        };
        retry += 1;
        let pause = (retry <= route.retry.max_retries)
            .then(|| route.retry.pause(retry, failed.retry_after))
            .flatten();
        let Some(pause) = pause else {
            return give_up(route, failed);
        };
        route.retries.fetch_add(1, Ordering::Relaxed);
        tracing::Span::current().record("agy.retries", retry);
        crate::metrics::model_call("retried");
        tracing::info!(
            retry,
            of = route.retry.max_retries,
            pause_ms = pause.as_millis() as u64,
            "model call failed ({}); retrying",
            failed.reason
        );
        tokio::time::sleep(pause).await;
    }
}

/// Why an attempt failed before anything reached the harness, and what to answer if it is the
/// last.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
    /// The upstream's own answer (status, headers, body), when it gave one.
    response: Option<Response<Body>>,
}

enum Attempt {
    /// Committed: this goes to the harness (a success, or an answer not worth retrying).
    Ready(Response<Body>),
    /// Transient: may be retried.
    Failed(Failure),
}

/// The last failure, as the harness sees it: the model server's own answer, or, when it gave
/// none, the connection closed without an answer (as the server itself would have left it).
fn give_up(route: &Route, failed: Failure) -> Result<Response<Body>, std::io::Error> {
    tracing::warn!("model call failed ({}); not retrying", failed.reason);
    crate::metrics::model_call("failed");
    match failed.response {
        Some(response) => {
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                *route.quota_retry_after.lock() = failed.retry_after;
            }
            Ok(response)
        }
        None => Err(std::io::Error::other(failed.reason)),
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "connection dropped"
    }
}

fn head(upstream: &reqwest::Response) -> hyper::http::response::Builder {
    let mut builder = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if forwarded(name) {
            builder = builder.header(name, value);
        }
    }
    builder
}

/// Reads an upstream answer as far as needed to know whether it can go to the harness.
async fn answer(upstream: reqwest::Response) -> Attempt {
    let code = upstream.status().as_u16();
    let is_stream = upstream
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if code == 200 && is_stream {
        return stream(upstream).await;
    }
    let builder = head(&upstream);
    let retry_after = retry::retry_after(upstream.headers());
    let body = match upstream.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return Attempt::Failed(Failure {
                reason: format!("the model server's answer broke off ({})", error_kind(&e)),
                retry_after: None,
                response: None,
            });
        }
    };
    let response = builder
        .body(full(body))
        .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY, "unreadable answer"));
    if retry::retryable_status(code) {
        Attempt::Failed(Failure {
            reason: format!("HTTP {code}"),
            retry_after,
            response: Some(response),
        })
    } else {
        Attempt::Ready(response)
    }
}

/// A streamed answer: waits for its first complete event (until then a failure may be
/// retried), then streams the rest through the check, aborting on a fault.
async fn stream(upstream: reqwest::Response) -> Attempt {
    let builder = head(&upstream);
    let mut chunks = upstream.bytes_stream();
    let mut check = EventCheck::default();
    let first = loop {
        let failure = |reason: String| {
            Attempt::Failed(Failure {
                reason,
                retry_after: None,
                response: None,
            })
        };
        match chunks.next().await {
            Some(Ok(bytes)) => match check.feed(&bytes) {
                Ok(out) if !out.is_empty() => break Bytes::from(out),
                Ok(_) => {}
                Err(fault) => return failure(fault.to_string()),
            },
            Some(Err(e)) => {
                return failure(format!(
                    "the stream broke off before its first event ({})",
                    error_kind(&e)
                ));
            }
            None => {
                if check.finish().is_ok() && check.events() > 0 {
                    break Bytes::new();
                }
                return failure(StreamFault::Truncated.to_string());
            }
        }
    };
    let rest = futures::stream::unfold(Some((chunks, check)), |state| async move {
        let (mut chunks, mut check) = state?;
        loop {
            match chunks.next().await {
                Some(Ok(bytes)) => match check.feed(&bytes) {
                    Ok(out) if out.is_empty() => {}
                    Ok(out) => {
                        return Some((Ok(Frame::data(Bytes::from(out))), Some((chunks, check))));
                    }
                    Err(fault) => return Some((Err(abort(fault.to_string())), None)),
                },
                Some(Err(e)) => {
                    return Some((
                        Err(abort(format!("the stream broke off ({})", error_kind(&e)))),
                        None,
                    ));
                }
                None => {
                    return match check.finish() {
                        Ok(()) => None,
                        Err(fault) => Some((Err(abort(fault.to_string())), None)),
                    };
                }
            }
        }
    });
    let body = futures::stream::once(async move { Ok(Frame::data(first)) }).chain(rest);
    let body = BodyExt::boxed(StreamBody::new(body));
    Attempt::Ready(
        builder
            .body(body)
            .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY, "unreadable answer")),
    )
}

/// Ends a stream to the harness with an error: hyper then drops the connection without the
/// chunked terminator, so the harness sees a broken answer, not a complete one.
fn abort(reason: String) -> BoxError {
    tracing::warn!("model stream refused: {reason}");
    crate::metrics::model_call("cut");
    reason.into()
}
