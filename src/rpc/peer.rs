//! The symmetric peer: one reader task that only frames and routes, one writer task, a pending
//! table for our requests, and one spawned task per inbound request.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{
    FutureExt,
    future::{AbortHandle, Abortable, BoxFuture},
};
use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

use super::{
    framing::{Frame, LineDecoder, sniff_head},
    message::{self, DecodeError, Incoming, RpcError, codes},
};
use crate::error::{Error, Result};

/// Default limit for one message in either direction: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

const CANCEL_METHOD: &str = "$/cancelRequest";
const READ_CHUNK: usize = 256 * 1024;

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

type Reply = oneshot::Sender<Result<Value>>;

#[derive(Default)]
struct State {
    pending: HashMap<u64, Reply>,
    inflight: HashMap<String, AbortHandle>,
    closed: Option<Error>,
}

struct Inner {
    max: usize,
    next_id: AtomicU64,
    state: Mutex<State>,
    writer: mpsc::Sender<Vec<u8>>,
    handler: Arc<dyn Handler>,
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

/// Produces the error that pending requests fail with once the input ends.
pub type OnClose = Box<dyn FnOnce() -> BoxFuture<'static, Error> + Send>;

impl Peer {
    /// Starts the reader and writer tasks on the current tokio runtime.
    ///
    /// When the input ends, `on_close` is awaited for the error to fail everything with (the
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
            }),
        };
        tokio::spawn(write_loop(writer, rx));
        tokio::spawn(peer.clone().read_loop(reader, on_close));
        peer
    }

    /// The message size limit in force.
    #[must_use]
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a request and waits for its answer. Dropping the future sends `$/cancelRequest`.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] without sending anything when the request is over the limit;
    /// the remote error; or the connection's close error.
    pub async fn call(&self, method: &str, params: impl Serialize) -> Result<Value> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let line = message::encode_request(Some(id), method, params)
            .map_err(|e| Error::Protocol(format!("cannot encode {method} params: {e}")))?;
        self.check_size(&line)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if let Some(err) = &state.closed {
                return Err(err.clone());
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

    /// [`Peer::call`] with a deadline; on expiry the request is cancelled at the peer.
    ///
    /// # Errors
    /// As [`Peer::call`], plus [`Error::Timeout`].
    pub async fn call_timeout(
        &self,
        method: &str,
        params: impl Serialize,
        timeout: Duration,
    ) -> Result<Value> {
        tokio::time::timeout(timeout, self.call(method, params))
            .await
            .map_err(|_| Error::Timeout {
                operation: method.to_owned(),
                duration: timeout,
            })?
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], or the close error if the connection is gone.
    pub async fn notify(&self, method: &str, params: impl Serialize) -> Result<()> {
        let line = message::encode_request(None, method, params)
            .map_err(|e| Error::Protocol(format!("cannot encode {method} params: {e}")))?;
        self.check_size(&line)?;
        if let Some(err) = &self.state().closed {
            return Err(err.clone());
        }
        self.inner
            .writer
            .send(line)
            .await
            .map_err(|_| self.closed_error())
    }

    /// Fails every pending request with `error` and refuses new ones. Idempotent: the first
    /// error wins.
    pub fn close(&self, error: Error) {
        let (pending, inflight) = {
            let mut state = self.state();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(error.clone());
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.inflight),
            )
        };
        for (_, reply) in pending {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, task) in inflight {
            task.abort();
        }
    }

    fn closed_error(&self) -> Error {
        self.state().closed.clone().unwrap_or(Error::WorkerStopped)
    }

    fn check_size(&self, line: &[u8]) -> Result<()> {
        let size = line.len() - 1;
        if size > self.inner.max {
            return Err(Error::MessageTooLarge {
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
                    tracing::warn!("reading from the worker failed: {e}");
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
        let error = on_close().await;
        self.close(error);
    }

    fn on_frame(&self, frame: Frame) {
        match frame {
            Frame::Line(line) => match message::decode(&line) {
                Ok(msg) => self.on_message(msg),
                Err(DecodeError::NotJson) => {
                    let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                    tracing::warn!(line = %shown, "ignoring a non-JSON line from the peer");
                }
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
                    let _ = reply.send(Err(Error::MessageTooLarge { size, limit }));
                }
            }
            _ => {}
        }
    }

    fn on_message(&self, msg: Incoming) {
        match msg {
            Incoming::Response { id, result } => {
                let reply = id.as_u64().and_then(|id| self.state().pending.remove(&id));
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result.map_err(error_from_rpc));
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
        let work = self.inner.handler.request(method.clone(), params);
        let (abort, registration) = AbortHandle::new_pair();
        let key = id.to_string();
        self.state().inflight.insert(key.clone(), abort);
        let peer = self.clone();
        tokio::spawn(async move {
            let work = std::panic::AssertUnwindSafe(work).catch_unwind();
            let result = match Abortable::new(work, registration).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(RpcError::new(
                    codes::INTERNAL_ERROR,
                    format!(
                        "the handler of {method} panicked: {}",
                        crate::tools::panic_message(panic.as_ref())
                    ),
                )),
                Err(_) => Err(RpcError::new(
                    codes::REQUEST_CANCELLED,
                    format!("{method} was cancelled"),
                )),
            };
            peer.state().inflight.remove(&key);
            let mut line = message::encode_response(&id, &result);
            if line.len() - 1 > peer.inner.max {
                let err = RpcError::too_large(line.len() - 1, peer.inner.max);
                line = message::encode_response(&id, &Err(err));
            }
            let _ = peer.inner.writer.send(line).await;
        });
    }
}

/// Maps a remote JSON-RPC error onto the generic [`Error`] variants the rpc layer knows.
fn error_from_rpc(e: RpcError) -> Error {
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
            Error::MessageTooLarge {
                size: field("size"),
                limit: field("limit"),
            }
        }
        codes::REQUEST_CANCELLED => Error::Cancelled,
        _ => Error::Rpc {
            code: e.code,
            message: e.message,
            data: e.data,
        },
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

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = rx.recv().await {
        if let Err(e) = writer.write_all(&line).await {
            tracing::debug!("writing to the peer failed: {e}");
            return;
        }
        if rx.is_empty()
            && let Err(e) = writer.flush().await
        {
            tracing::debug!("flushing to the peer failed: {e}");
            return;
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
                    _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, method)),
                }
            }
            .boxed()
        }

        fn notification(&self, _method: String, _params: Value) {}
    }

    fn closed() -> OnClose {
        Box::new(|| {
            async {
                Error::WorkerCrashed {
                    exit_status: Some("exit code 9".into()),
                    stderr_tail: "last words".into(),
                }
            }
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
            a.call("echo", json!({"x": 1})).await.unwrap(),
            json!({"x": 1})
        );
        assert_eq!(b.call("$/ping", Value::Null).await.unwrap(), json!("pong"));
        assert!(matches!(
            a.call("nope", Value::Null).await,
            Err(Error::Rpc {
                code: codes::METHOD_NOT_FOUND,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_slow_handler_does_not_block_other_requests() {
        let (a, _b) = pair(1024, 1024);
        let slow = tokio::spawn({
            let a = a.clone();
            async move { a.call("slow", json!(60_000)).await }
        });
        // The fast call completes while the slow one is still pending.
        for _ in 0..20 {
            assert_eq!(a.call("$/ping", Value::Null).await.unwrap(), json!("pong"));
        }
        assert!(!slow.is_finished());
        slow.abort();
    }

    #[tokio::test]
    async fn oversized_request_is_refused_before_sending_and_the_connection_survives() {
        let (a, _b) = pair(100, 100);
        let big = "x".repeat(200);
        assert!(matches!(
            a.call("echo", json!(big)).await,
            Err(Error::MessageTooLarge { limit: 100, .. })
        ));
        assert_eq!(a.call("echo", json!("ok")).await.unwrap(), json!("ok"));
    }

    #[tokio::test]
    async fn oversized_request_at_the_receiver_fails_that_request_only() {
        // The sender allows big messages, the receiver does not.
        let (a, _b) = pair(1 << 20, 100);
        let big = "x".repeat(500);
        assert!(matches!(
            a.call("echo", json!(big)).await,
            Err(Error::MessageTooLarge { size, limit: 100 }) if size > 500
        ));
        assert_eq!(a.call("echo", json!("next")).await.unwrap(), json!("next"));
    }

    #[tokio::test]
    async fn oversized_response_at_the_receiver_fails_that_request_only() {
        // b answers with a line larger than a accepts.
        let (a, _b) = pair(300, 1 << 20);
        let mid = "y".repeat(250);
        // Request fits (~290 bytes), the echoed response is larger than 300 bytes.
        let r = a
            .call("echo", json!({ "a": mid, "pad": "zzzzzzzzzzzzzzzzzzzz" }))
            .await;
        assert!(
            matches!(r, Err(Error::MessageTooLarge { limit: 300, .. })),
            "{r:?}"
        );
        assert_eq!(a.call("echo", json!("next")).await.unwrap(), json!("next"));
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
                tokio::spawn(async move { p.call("anything", Value::Null).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(w);
        drop(r);
        for c in calls {
            let err = c.await.unwrap().unwrap_err();
            assert!(
                matches!(err, Error::WorkerCrashed { ref stderr_tail, .. } if stderr_tail == "last words"),
                "{err:?}"
            );
        }
        // Later calls fail at once with the same error.
        assert!(matches!(
            peer.call("x", Value::Null).await,
            Err(Error::WorkerCrashed { .. })
        ));
    }

    #[tokio::test]
    async fn dropping_a_call_sends_cancel_request() {
        let (peer, _w, mut r) = raw(1024);
        let call = tokio::spawn({
            let p = peer.clone();
            async move { p.call("slow", json!(1)).await }
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
}
