//! The symmetric peer: one reader task that only frames and routes, one writer task, a pending
//! table for our requests, and one spawned task per inbound request.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{
    FutureExt,
    future::{AbortHandle, Abortable, BoxFuture},
};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

use super::{
    error::{CallError, CloseReason},
    framing::{Frame, LineDecoder, sniff_head},
    message::{self, DecodeError, Incoming, RpcError, codes},
};

/// Default limit for one message in either direction: 64 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

pub(crate) const CANCEL_METHOD: &str = "$/cancelRequest";
/// Asks the peer which of a list of request ids it has already answered (see
/// [`Peer::check_answered`]).
pub(crate) const ANSWERED_METHOD: &str = "$/answered";
const READ_CHUNK: usize = 256 * 1024;
/// Deadline of the lost-answer check after a corrupt frame.
const ANSWERED_TIMEOUT: Duration = Duration::from_secs(15);
/// Both peers write `"jsonrpc"` first: where a message starts inside a line that stray bytes
/// were merged into.
const MESSAGE_START: &[u8] = b"{\"jsonrpc\"";

/// Answers the peer's requests and notifications.
///
/// `request` is called on the reader task and must return quickly: the returned future is what
/// does the work, and it runs in its own task. `notification` runs inline, in arrival order,
/// and must not block.
pub trait Handler: Send + Sync + 'static {
    /// Starts handling one inbound request.
    fn request(&self, method: String, params: Value)
    -> BoxFuture<'static, Result<Value, RpcError>>;
    /// Handles one inbound notification.
    fn notification(&self, method: String, params: Value);
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Largest message accepted or sent, in bytes (newline excluded).
    pub max_message_size: usize,
    /// Capacity of the outgoing message queue.
    pub write_queue: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            write_queue: 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<Value, CallError>>;

#[derive(Default)]
struct State {
    pending: HashMap<u64, Reply>,
    inflight: HashMap<String, AbortHandle>,
    closed: Option<CloseReason>,
}

struct Inner {
    max: usize,
    next_id: AtomicU64,
    state: Mutex<State>,
    writer: mpsc::Sender<Vec<u8>>,
    handler: Arc<dyn Handler>,
    /// A lost-answer check is running; `recheck` asks it to run once more.
    checking: AtomicBool,
    recheck: AtomicBool,
}

/// A JSON-RPC 2.0 peer. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("max_message_size", &self.inner.max)
            .finish_non_exhaustive()
    }
}

/// Produces the reason pending requests fail with once the input ends.
pub type OnClose = Box<dyn FnOnce() -> BoxFuture<'static, CloseReason> + Send>;

/// The text of a panic payload.
#[must_use]
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

impl Peer {
    /// Starts the reader and writer tasks on the current tokio runtime.
    ///
    /// When the input ends, `on_close` is awaited for the reason to fail everything with (the
    /// worker layer uses it to collect the exit status and stderr tail).
    pub fn spawn<R, W>(
        reader: R,
        writer: W,
        handler: Arc<dyn Handler>,
        config: &PeerConfig,
        on_close: OnClose,
    ) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(config.write_queue.max(1));
        let peer = Self {
            inner: Arc::new(Inner {
                max: config.max_message_size,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                writer: tx,
                handler,
                checking: AtomicBool::new(false),
                recheck: AtomicBool::new(false),
            }),
        };
        tokio::spawn(write_loop(writer, rx));
        tokio::spawn(peer.clone().read_loop(reader, on_close));
        peer
    }

    /// The message size limit in force.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // the benchmarks
    pub fn max_message_size(&self) -> usize {
        self.inner.max
    }

    /// Whether the connection has been closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.state().closed.is_some()
    }

    /// Requests sent and not yet answered.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.state().pending.len()
    }

    fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    /// Sends a request and waits at most `timeout` for its answer; on expiry (or when the
    /// future is dropped) the request is cancelled at the peer with `$/cancelRequest`. No call
    /// waits forever.
    ///
    /// # Errors
    /// [`CallError::TooLarge`] without sending anything when the request is over the limit;
    /// [`CallError::Timeout`]; the remote error; [`CallError::Lost`]; or the connection's
    /// close reason.
    pub async fn call(
        &self,
        method: &str,
        params: impl Serialize,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        tokio::time::timeout(timeout, self.call_unbounded(method, params))
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout {
                    method: method.to_owned(),
                    timeout,
                })
            })
    }

    async fn call_unbounded(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<Value, CallError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = encode(Some(id), method, params)?;
        self.check_size(&line)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if let Some(reason) = &state.closed {
                return Err(CallError::Closed(Arc::clone(reason)));
            }
            state.pending.insert(id, tx);
        }
        let mut guard = CancelOnDrop {
            peer: self,
            id,
            armed: true,
        };
        if self.inner.writer.send(line).await.is_err() {
            guard.armed = false;
            self.state().pending.remove(&id);
            return Err(self.closed_error());
        }
        let result = rx.await;
        guard.armed = false;
        result.unwrap_or_else(|_| Err(self.closed_error()))
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// [`CallError::TooLarge`], or the close reason if the connection is gone.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // the benchmarks
    pub async fn notify(&self, method: &str, params: impl Serialize) -> Result<(), CallError> {
        let line = encode(None, method, params)?;
        self.check_size(&line)?;
        if let Some(reason) = &self.state().closed {
            return Err(CallError::Closed(Arc::clone(reason)));
        }
        self.inner
            .writer
            .send(line)
            .await
            .map_err(|_| self.closed_error())
    }

    /// Fails every pending request with `reason` and refuses new ones. Idempotent: the first
    /// reason wins.
    pub fn close(&self, reason: CloseReason) {
        let (pending, inflight) = {
            let mut state = self.state();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(Arc::clone(&reason));
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.inflight),
            )
        };
        for (_, reply) in pending {
            let _ = reply.send(Err(CallError::Closed(Arc::clone(&reason))));
        }
        for (_, task) in inflight {
            task.abort();
        }
    }

    fn closed_error(&self) -> CallError {
        let reason = self.state().closed.clone();
        CallError::Closed(reason.unwrap_or_else(|| Arc::new(ClosedLocally)))
    }

    fn check_size(&self, line: &[u8]) -> Result<(), CallError> {
        let size = line.len() - 1;
        if size > self.inner.max {
            return Err(CallError::TooLarge {
                size,
                limit: self.inner.max,
            });
        }
        Ok(())
    }

    fn send_now(&self, line: Vec<u8>) {
        if let Err(e) = self.inner.writer.try_send(line) {
            // Only control messages go this way; a full queue means the peer stopped reading.
            tracing::warn!("dropping a control message: {e}");
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(self, mut reader: R, on_close: OnClose) {
        let mut decoder = LineDecoder::new(self.inner.max);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut frames = Vec::new();
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => decoder.decode(&buf[..n], &mut frames),
                Err(e) => {
                    tracing::warn!("reading from the peer failed: {e}");
                    break;
                }
            }
            for frame in frames.drain(..) {
                self.on_frame(frame);
            }
        }
        decoder.decode_eof(&mut frames);
        for frame in frames.drain(..) {
            self.on_frame(frame);
        }
        let reason = on_close().await;
        self.close(reason);
    }

    fn on_frame(&self, frame: Frame) {
        match frame {
            Frame::Line(line) => match message::decode(&line) {
                Ok(msg) => self.on_message(msg),
                Err(DecodeError::NotJson) => self.on_stray_bytes(&line),
                Err(DecodeError::Invalid { id: Some(id) }) => {
                    let err = RpcError::new(codes::INVALID_REQUEST, "not a JSON-RPC 2.0 message");
                    self.send_now(message::encode_response(&id, &Err(err)));
                }
                Err(DecodeError::Invalid { id: None }) => {
                    tracing::warn!("ignoring a JSON line that is not a JSON-RPC message");
                }
            },
            Frame::Oversized { size, head } => self.on_oversized(size, &head),
        }
    }

    /// A line that is not JSON: stray output. If a message follows the stray bytes in the same
    /// line (they were written without a newline and merged with it), it is recovered; either
    /// way, answers may have been lost in the stretch, so the peer is asked which of our
    /// pending requests it has answered already.
    fn on_stray_bytes(&self, line: &[u8]) {
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
        tracing::warn!(line = %shown, "stray bytes on the protocol stream");
        let start = memchr::memmem::rfind(line, MESSAGE_START).filter(|at| *at > 0);
        if let Some(at) = start
            && let Ok(msg) = message::decode(&line[at..])
        {
            tracing::warn!(stray = at, "recovered a message merged with stray bytes");
            self.on_message(msg);
        }
        self.check_answered();
    }

    fn on_oversized(&self, size: usize, head: &[u8]) {
        let limit = self.inner.max;
        tracing::error!(size, limit, "discarded an oversized message from the peer");
        match sniff_head(head) {
            (Some(id), true) => {
                let err = RpcError::too_large(size, limit);
                self.send_now(message::encode_response(&id, &Err(err)));
            }
            (Some(Value::Number(n)), false) => {
                if let Some(reply) = n.as_u64().and_then(|id| self.state().pending.remove(&id)) {
                    let _ = reply.send(Err(CallError::TooLarge { size, limit }));
                }
            }
            // Not attributable to a request (its start is not a message): answers may be in it.
            _ => self.check_answered(),
        }
    }

    /// After a corrupt stretch of input, asks the peer (`$/answered`) which of our pending
    /// requests it has answered: those answers were lost, so their calls fail with
    /// [`CallError::Lost`] instead of waiting for their deadline. The peer answers in order
    /// after every answer it queued before, so an answer that is still on its way arrives (and
    /// is delivered) before this one. One check at a time; a corruption seen meanwhile runs it
    /// once more.
    fn check_answered(&self) {
        if self.inner.checking.swap(true, Ordering::SeqCst) {
            self.inner.recheck.store(true, Ordering::SeqCst);
            return;
        }
        let peer = self.clone();
        tokio::spawn(async move {
            loop {
                peer.inner.recheck.store(false, Ordering::SeqCst);
                peer.fail_lost_answers().await;
                if !peer.inner.recheck.load(Ordering::SeqCst) {
                    break;
                }
            }
            peer.inner.checking.store(false, Ordering::SeqCst);
        });
    }

    async fn fail_lost_answers(&self) {
        let ids: Vec<u64> = self.state().pending.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let answered = self
            .call(
                ANSWERED_METHOD,
                serde_json::json!({ "ids": ids }),
                ANSWERED_TIMEOUT,
            )
            .await;
        match answered {
            Ok(Value::Array(answered)) => {
                for id in answered.iter().filter_map(Value::as_u64) {
                    let reply = self.state().pending.remove(&id);
                    if let Some(reply) = reply {
                        tracing::error!(id, "the answer to a request was lost in corrupted output");
                        let _ = reply.send(Err(CallError::Lost { id }));
                    }
                }
            }
            Ok(other) => tracing::warn!(%other, "unexpected answer to {ANSWERED_METHOD}"),
            Err(e) => tracing::warn!("could not check for lost answers: {e}"),
        }
    }

    fn on_message(&self, msg: Incoming) {
        match msg {
            Incoming::Response { id, result } => {
                let reply = id.as_u64().and_then(|id| self.state().pending.remove(&id));
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result.map_err(call_error));
                    }
                    None => tracing::debug!(%id, "response to an unknown or abandoned request"),
                }
            }
            Incoming::Notification { method, params } if method == CANCEL_METHOD => {
                let key = params.get("id").map(Value::to_string).unwrap_or_default();
                if let Some(task) = self.state().inflight.remove(&key) {
                    task.abort();
                }
            }
            Incoming::Notification { method, params } => {
                self.inner.handler.notification(method, params);
            }
            Incoming::Request { id, method, params } => self.spawn_request(id, method, params),
        }
    }

    fn spawn_request(&self, id: Value, method: String, params: Value) {
        let mut work = self.inner.handler.request(method.clone(), params);
        // A handler that is ready at once (a ping, a refusal, a `nonblocking` tool that does
        // not wait) is answered here, without a task. One that waits goes on in a task, which
        // polls it again with its own waker straight away.
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.poll_unpin(&mut cx))) {
            Ok(std::task::Poll::Pending) => {}
            Ok(std::task::Poll::Ready(result)) => return self.answer_now(&id, &result),
            Err(panic) => return self.answer_now(&id, &Err(handler_panicked(&method, &*panic))),
        }
        let (abort, registration) = AbortHandle::new_pair();
        let key = id.to_string();
        self.state().inflight.insert(key.clone(), abort);
        let peer = self.clone();
        tokio::spawn(async move {
            let work = std::panic::AssertUnwindSafe(work).catch_unwind();
            let result = match Abortable::new(work, registration).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(handler_panicked(&method, &*panic)),
                Err(_) => Err(RpcError::new(
                    codes::REQUEST_CANCELLED,
                    format!("{method} was cancelled"),
                )),
            };
            peer.state().inflight.remove(&key);
            let _ = peer
                .inner
                .writer
                .send(peer.response_line(&id, &result))
                .await;
        });
    }

    /// The answer to request `id`, or a too-large error in its place.
    fn response_line(&self, id: &Value, result: &Result<Value, RpcError>) -> Vec<u8> {
        let line = message::encode_response(id, result);
        if line.len() - 1 > self.inner.max {
            let err = RpcError::too_large(line.len() - 1, self.inner.max);
            return message::encode_response(id, &Err(err));
        }
        line
    }

    /// Queues an answer from the reader, which cannot wait: when the queue is full, a task
    /// waits for room (answers may leave in any order).
    fn answer_now(&self, id: &Value, result: &Result<Value, RpcError>) {
        let line = self.response_line(id, result);
        if let Err(mpsc::error::TrySendError::Full(line)) = self.inner.writer.try_send(line) {
            let writer = self.inner.writer.clone();
            tokio::spawn(async move {
                let _ = writer.send(line).await;
            });
        }
    }
}

fn handler_panicked(method: &str, panic: &(dyn std::any::Any + Send)) -> RpcError {
    RpcError::new(
        codes::INTERNAL_ERROR,
        format!("the handler of {method} panicked: {}", panic_message(panic)),
    )
}

/// The close reason of a connection closed from this side before any reason was given.
#[derive(Debug, thiserror::Error)]
#[error("the connection was closed")]
struct ClosedLocally;

fn encode(id: Option<u64>, method: &str, params: impl Serialize) -> Result<Vec<u8>, CallError> {
    message::encode_request(id, method, params).map_err(|e| CallError::Encode {
        method: method.to_owned(),
        message: e.to_string(),
    })
}

/// Maps a remote JSON-RPC error onto the rpc layer's own cases.
fn call_error(e: RpcError) -> CallError {
    match e.code {
        codes::MESSAGE_TOO_LARGE => {
            let field = |k: &str| {
                e.data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(Value::as_u64)
                    .and_then(|v| usize::try_from(v).ok())
                    .unwrap_or(0)
            };
            CallError::TooLarge {
                size: field("size"),
                limit: field("limit"),
            }
        }
        codes::REQUEST_CANCELLED => CallError::Cancelled,
        _ => CallError::Remote(e),
    }
}

struct CancelOnDrop<'a> {
    peer: &'a Peer,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let was_pending = self.peer.state().pending.remove(&self.id).is_some();
        if was_pending && !self.peer.is_closed() {
            let params = serde_json::json!({ "id": self.id });
            if let Ok(line) = message::encode_request(None, CANCEL_METHOD, params) {
                self.peer.send_now(line);
            }
        }
    }
}

/// Writes queued messages in order; whatever is queued when the writer wakes leaves in one
/// write (one system call for a burst of concurrent answers or calls).
async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    const BATCH: usize = 64;
    let mut lines = Vec::with_capacity(BATCH);
    let mut batch = Vec::new();
    while rx.recv_many(&mut lines, BATCH).await > 0 {
        let data = if lines.len() == 1 {
            lines.pop().unwrap_or_default()
        } else {
            batch.clear();
            for line in lines.drain(..) {
                batch.extend_from_slice(&line);
            }
            std::mem::take(&mut batch)
        };
        if let Err(e) = writer.write_all(&data).await {
            tracing::debug!("writing to the peer failed: {e}");
            return;
        }
        if rx.is_empty()
            && let Err(e) = writer.flush().await
        {
            tracing::debug!("flushing to the peer failed: {e}");
            return;
        }
        if lines.len() <= 1 && data.capacity() <= 1 << 20 {
            batch = data; // keep the allocation for the next burst
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    /// Answers `echo` with its params, `slow` after `params` ms, `$/ping` with "pong".
    struct Echo;

    impl Handler for Echo {
        fn request(
            &self,
            method: String,
            params: Value,
        ) -> BoxFuture<'static, Result<Value, RpcError>> {
            async move {
                match method.as_str() {
                    "echo" => Ok(params),
                    "slow" => {
                        tokio::time::sleep(Duration::from_millis(params.as_u64().unwrap_or(0)))
                            .await;
                        Ok(json!("slow done"))
                    }
                    "$/ping" => Ok(json!("pong")),
                    "panic_now" => panic!("at once"),
                    "panic_later" => {
                        tokio::task::yield_now().await;
                        panic!("after waiting")
                    }
                    _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, method)),
                }
            }
            .boxed()
        }

        fn notification(&self, _method: String, _params: Value) {}
    }

    const T: Duration = Duration::from_secs(30);

    fn closed() -> OnClose {
        Box::new(|| {
            async { Arc::new(std::io::Error::other("exit code 9: last words")) as CloseReason }
                .boxed()
        })
    }

    fn pair(limit_a: usize, limit_b: usize) -> (Peer, Peer) {
        let (a_io, b_io) = tokio::io::duplex(1 << 20);
        let (ar, aw) = tokio::io::split(a_io);
        let (br, bw) = tokio::io::split(b_io);
        let cfg = |limit| PeerConfig {
            max_message_size: limit,
            ..PeerConfig::default()
        };
        let a = Peer::spawn(ar, aw, Arc::new(Echo), &cfg(limit_a), closed());
        let b = Peer::spawn(br, bw, Arc::new(Echo), &cfg(limit_b), closed());
        (a, b)
    }

    /// A peer against a raw stream the test writes to and reads from by hand.
    fn raw(
        limit: usize,
    ) -> (
        Peer,
        tokio::io::WriteHalf<DuplexStream>,
        BufReader<tokio::io::ReadHalf<DuplexStream>>,
    ) {
        let (a_io, b_io) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a_io);
        let (br, bw) = tokio::io::split(b_io);
        let cfg = PeerConfig {
            max_message_size: limit,
            ..PeerConfig::default()
        };
        (
            Peer::spawn(ar, aw, Arc::new(Echo), &cfg, closed()),
            bw,
            BufReader::new(br),
        )
    }

    #[tokio::test]
    async fn requests_flow_both_ways() {
        let (a, b) = pair(1024, 1024);
        assert_eq!(
            a.call("echo", json!({"x": 1}), T).await.unwrap(),
            json!({"x": 1})
        );
        assert_eq!(
            b.call("$/ping", Value::Null, T).await.unwrap(),
            json!("pong")
        );
        assert!(matches!(
            a.call("nope", Value::Null, T).await,
            Err(CallError::Remote(RpcError {
                code: codes::METHOD_NOT_FOUND,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn a_handler_panic_is_an_error_answer_whether_it_is_ready_at_once_or_not() {
        let (a, b) = pair(1 << 20, 1 << 20);
        for (method, message) in [("panic_now", "at once"), ("panic_later", "after waiting")] {
            let err = a.call(method, Value::Null, T).await.unwrap_err();
            assert!(
                matches!(&err, CallError::Remote(e) if e.code == codes::INTERNAL_ERROR
                    && e.message == format!("the handler of {method} panicked: {message}")),
                "{err}"
            );
        }
        // Both peers carry on.
        assert_eq!(a.call("echo", json!(1), T).await.unwrap(), json!(1));
        assert_eq!(b.call("echo", json!(2), T).await.unwrap(), json!(2));
    }

    #[tokio::test]
    async fn a_slow_handler_does_not_block_other_requests() {
        let (a, _b) = pair(1024, 1024);
        let slow = tokio::spawn({
            let a = a.clone();
            async move { a.call("slow", json!(60_000), T).await }
        });
        // The fast call completes while the slow one is still pending.
        for _ in 0..20 {
            assert_eq!(
                a.call("$/ping", Value::Null, T).await.unwrap(),
                json!("pong")
            );
        }
        assert!(!slow.is_finished());
        slow.abort();
    }

    #[tokio::test]
    async fn oversized_request_is_refused_before_sending_and_the_connection_survives() {
        let (a, _b) = pair(100, 100);
        let big = "x".repeat(200);
        assert!(matches!(
            a.call("echo", json!(big), T).await,
            Err(CallError::TooLarge { limit: 100, .. })
        ));
        assert_eq!(a.call("echo", json!("ok"), T).await.unwrap(), json!("ok"));
    }

    #[tokio::test]
    async fn oversized_request_at_the_receiver_fails_that_request_only() {
        // The sender allows big messages, the receiver does not.
        let (a, _b) = pair(1 << 20, 100);
        let big = "x".repeat(500);
        assert!(matches!(
            a.call("echo", json!(big), T).await,
            Err(CallError::TooLarge { size, limit: 100 }) if size > 500
        ));
        assert_eq!(
            a.call("echo", json!("next"), T).await.unwrap(),
            json!("next")
        );
    }

    #[tokio::test]
    async fn oversized_response_at_the_receiver_fails_that_request_only() {
        // b answers with a line larger than a accepts.
        let (a, _b) = pair(300, 1 << 20);
        let mid = "y".repeat(250);
        // Request fits (~290 bytes), the echoed response is larger than 300 bytes.
        let r = a
            .call(
                "echo",
                json!({ "a": mid, "pad": "zzzzzzzzzzzzzzzzzzzz" }),
                T,
            )
            .await;
        assert!(
            matches!(r, Err(CallError::TooLarge { limit: 300, .. })),
            "{r:?}"
        );
        assert_eq!(
            a.call("echo", json!("next"), T).await.unwrap(),
            json!("next")
        );
    }

    #[tokio::test]
    async fn garbage_lines_are_ignored_and_invalid_requests_answered() {
        let (peer, mut w, mut r) = raw(1024);
        w.write_all(b"this is not json\n{\"id\":5,\"method\":7}\n")
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], json!(5));
        assert_eq!(v["error"]["code"], json!(codes::INVALID_REQUEST));
        // Still alive: a real request is answered.
        w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"echo\",\"params\":1}\n")
            .await
            .unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap()["result"],
            json!(1)
        );
        drop(peer);
    }

    #[tokio::test]
    async fn a_never_ending_line_is_bounded_and_skipped() {
        let (peer, mut w, mut r) = raw(1024);
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..64 {
            w.write_all(&chunk).await.unwrap(); // 4 MiB without a newline
        }
        w.write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":2}\n")
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap()["result"],
            json!(2)
        );
        drop(peer);
    }

    #[tokio::test]
    async fn eof_fails_every_pending_call_with_the_close_error() {
        let (peer, w, r) = raw(1024);
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let p = peer.clone();
                tokio::spawn(async move { p.call("anything", Value::Null, T).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(w);
        drop(r);
        for c in calls {
            let err = c.await.unwrap().unwrap_err();
            assert!(
                matches!(&err, CallError::Closed(reason) if reason.to_string().contains("last words")),
                "{err:?}"
            );
        }
        // Later calls fail at once with the same error.
        assert!(matches!(
            peer.call("x", Value::Null, T).await,
            Err(CallError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn dropping_a_call_sends_cancel_request() {
        let (peer, _w, mut r) = raw(1024);
        let call = tokio::spawn({
            let p = peer.clone();
            async move { p.call("slow", json!(1), T).await }
        });
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let id = serde_json::from_str::<Value>(&line).unwrap()["id"].clone();
        call.abort();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let cancel: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(cancel["method"], json!("$/cancelRequest"));
        assert_eq!(cancel["params"]["id"], id);
    }

    #[tokio::test]
    async fn inbound_cancel_request_aborts_the_handler_and_answers_cancelled() {
        let (_peer, mut w, mut r) = raw(1024);
        w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"slow\",\"params\":600000}\n")
            .await
            .unwrap();
        w.write_all(
            b"{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":9}}\n",
        )
        .await
        .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], json!(9));
        assert_eq!(v["error"]["code"], json!(codes::REQUEST_CANCELLED));
    }

    /// Reads lines from the raw side until one satisfies `pick`.
    async fn read_until(
        r: &mut BufReader<tokio::io::ReadHalf<DuplexStream>>,
        mut pick: impl FnMut(&Value) -> bool,
    ) -> Value {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if pick(&v) {
                return v;
            }
        }
    }

    #[tokio::test]
    async fn an_answer_merged_with_stray_bytes_is_recovered() {
        let (peer, mut w, mut r) = raw(1024);
        let call = tokio::spawn({
            let p = peer.clone();
            async move { p.call("echo", json!(1), T).await }
        });
        let request = read_until(&mut r, |v| v["method"] == "echo").await;
        // Stray bytes without a newline, then the answer: one line on the wire.
        let answer = format!(
            r#"stray{{"jsonrpc":"2.0","id":{},"result":"ok"}}"#,
            request["id"]
        );
        w.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
        assert_eq!(call.await.unwrap().unwrap(), json!("ok"));
    }

    #[tokio::test]
    async fn an_answer_lost_in_an_oversized_stray_line_fails_its_call_at_once() {
        let (peer, mut w, mut r) = raw(1024);
        let lost = tokio::spawn({
            let p = peer.clone();
            async move { p.call("echo", json!("lost"), T).await }
        });
        let kept = tokio::spawn({
            let p = peer.clone();
            async move { p.call("echo", json!("kept"), T).await }
        });
        let (mut lost_id, mut kept_id) = (None, None);
        while lost_id.is_none() || kept_id.is_none() {
            let v = read_until(&mut r, |v| v["method"] == "echo").await;
            if v["params"] == "lost" {
                lost_id = v["id"].as_u64();
            } else {
                kept_id = v["id"].as_u64();
            }
        }
        // 4 KiB of stray output swallow the first answer: one over-long line, no id in sight.
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":1}}"#,
            lost_id.unwrap()
        );
        w.write_all(format!("{}{answer}\n", "x".repeat(4096)).as_bytes())
            .await
            .unwrap();
        // The peer asks which of its pending requests were answered; the other side (this
        // test) has answered the first only.
        let check = read_until(&mut r, |v| v["method"] == ANSWERED_METHOD).await;
        let mut asked: Vec<u64> = check["params"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        asked.sort_unstable();
        let mut both = vec![lost_id.unwrap(), kept_id.unwrap()];
        both.sort_unstable();
        assert_eq!(asked, both);
        let reply = json!({"jsonrpc": "2.0", "id": check["id"], "result": [lost_id]});
        w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), lost)
            .await
            .expect("the lost call fails at once, not at its deadline")
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, CallError::Lost { id } if Some(id) == lost_id),
            "{err:?}"
        );
        // The other call is still waiting, and its answer still arrives.
        let answer = json!({"jsonrpc": "2.0", "id": kept_id, "result": "kept"});
        w.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
        assert_eq!(kept.await.unwrap().unwrap(), json!("kept"));
    }

    #[tokio::test]
    async fn every_call_has_a_deadline() {
        let (peer, _w, mut r) = raw(1024);
        let call = peer.call("never answered", Value::Null, Duration::from_millis(50));
        let err = call.await.unwrap_err();
        assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
        // The peer was told to stop working on it.
        let cancel = read_until(&mut r, |v| v["method"] == CANCEL_METHOD).await;
        assert!(cancel["params"]["id"].is_u64());
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[a-z$/]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{0,5}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON-RPC-shaped messages whose fields take every JSON shape.
    fn arbitrary_message() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let method = prop_oneof![
            Just(json!("echo")),
            Just(json!("slow")),
            Just(json!(CANCEL_METHOD)),
            Just(json!("$/ping")),
            arbitrary_json(),
        ];
        (
            proptest::option::of(arbitrary_json()),
            proptest::option::of(method),
            proptest::option::of(arbitrary_json()),
            proptest::option::of(arbitrary_json()),
            proptest::option::of(arbitrary_json()),
        )
            .prop_map(|(id, method, params, result, error)| {
                let mut m = serde_json::Map::new();
                m.insert("jsonrpc".into(), json!("2.0"));
                for (k, v) in [
                    ("id", id),
                    ("method", method),
                    ("params", params),
                    ("result", result),
                    ("error", error),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// No message, however shaped, breaks the connection: afterwards our own call is still
        /// answered and the peer still answers a request.
        #[test]
        fn no_message_breaks_the_connection(
            batch in proptest::collection::vec(arbitrary_message(), 1..12)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (peer, mut w, mut r) = raw(1 << 16);
                let call = tokio::spawn({
                    let p = peer.clone();
                    async move { p.call("echo", json!("mine"), T).await }
                });
                let request = read_until(&mut r, |v| v["params"] == "mine").await;
                for message in &batch {
                    w.write_all(format!("{message}\n").as_bytes()).await.unwrap();
                }
                let probe = json!({"jsonrpc": "2.0", "id": "probe", "method": "echo", "params": 7});
                w.write_all(format!("{probe}\n").as_bytes()).await.unwrap();
                let answer = read_until(&mut r, |v| v["id"] == "probe").await;
                assert_eq!(answer["result"], json!(7));
                let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": "yours"});
                w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
                let got = call.await.unwrap();
                // A generated response may have answered (or failed) our call first; either
                // way it is answered, and the connection is open.
                assert!(got.is_ok() || matches!(got, Err(CallError::Remote(_) | CallError::TooLarge { .. } | CallError::Cancelled)), "{got:?}");
                assert!(!peer.is_closed());
            });
        }
    }
}
