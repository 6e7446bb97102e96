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

use futures::future::{AbortHandle, Abortable, BoxFuture};
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
            let result = match Abortable::new(work, registration).await {
                Ok(result) => result,
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
