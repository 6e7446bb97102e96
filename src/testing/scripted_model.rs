//! An OpenAI-compatible `/v1/chat/completions` server driven by a script written in Rust.

use std::{collections::VecDeque, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use parking_lot::Mutex;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One scripted model reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// Stream this text, split into chunks, with a pause between chunks.
    Text {
        /// The chunks, streamed in order.
        chunks: Vec<String>,
        /// Pause before each chunk after the first.
        pause: Duration,
    },
    /// Ask for these tool calls (in one assistant message).
    ToolCalls(Vec<ToolCall>),
    /// Answer with an HTTP error status and body.
    HttpError {
        /// Status code, e.g. 429 or 500.
        status: u16,
        /// Response body.
        body: String,
        /// A `Retry-After` header (whole seconds), when set.
        retry_after: Option<u64>,
    },
    /// Stream these text chunks, then end the stream cleanly but early: no `finish_reason`, no
    /// `[DONE]` (a proxy or server that cut the answer short).
    Truncated(Vec<String>),
    /// Stream these text chunks, then a chunk that is not JSON, then the end marker.
    Malformed(Vec<String>),
    /// Stream these text chunks (none: only the response head), then, 50 ms later, drop the
    /// connection.
    Disconnect(Vec<String>),
    /// Never answer: the request hangs until the client gives up (a model that stalls, for
    /// testing timeouts and cancellation).
    Stall,
    /// Wait, then give the inner reply.
    Delayed {
        /// How long to wait before answering.
        delay: Duration,
        /// What to answer.
        reply: Box<Reply>,
    },
}

/// A scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Tool name as the model sees it.
    pub name: String,
    /// Arguments (a JSON object).
    pub args: Value,
}

impl Reply {
    /// Streams `text` word by word.
    pub fn text(text: impl AsRef<str>) -> Self {
        let text = text.as_ref();
        let mut chunks: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        if chunks.is_empty() {
            chunks.push(String::new());
        }
        Self::Text {
            chunks,
            pause: Duration::ZERO,
        }
    }

    /// Streams `chunks` with `pause` between them (a slow model).
    pub fn slow_text<S: Into<String>>(
        chunks: impl IntoIterator<Item = S>,
        pause: Duration,
    ) -> Self {
        Self::Text {
            chunks: chunks.into_iter().map(Into::into).collect(),
            pause,
        }
    }

    /// Asks for one tool call.
    pub fn tool_call(name: impl Into<String>, args: Value) -> Self {
        Self::ToolCalls(vec![ToolCall {
            name: name.into(),
            args,
        }])
    }

    /// Fails with an HTTP status.
    pub fn http_error(status: u16, body: impl Into<String>) -> Self {
        Self::HttpError {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    /// Fails with an HTTP status and a `Retry-After: secs` header.
    pub fn http_error_retry_after(status: u16, body: impl Into<String>, secs: u64) -> Self {
        Self::HttpError {
            status,
            body: body.into(),
            retry_after: Some(secs),
        }
    }

    /// The words of `text` as stream chunks, for the fault replies.
    #[must_use]
    pub fn words(text: &str) -> Vec<String> {
        text.split_inclusive(' ').map(str::to_owned).collect()
    }

    /// Answers with `reply` after `delay`.
    #[must_use]
    pub fn delayed(self, delay: Duration) -> Self {
        Self::Delayed {
            delay,
            reply: Box::new(self),
        }
    }
}

/// A request the model received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The JSON body as sent by the harness.
    pub body: Value,
}

impl RecordedRequest {
    /// The `messages` array.
    #[must_use]
    pub fn messages(&self) -> &[Value] {
        self.body["messages"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The text of the last message with role `user`.
    #[must_use]
    pub fn last_user_text(&self) -> Option<String> {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(message_text)
    }

    /// The user's prompt of the last user message: the harness wraps it in `<USER_REQUEST>` tags
    /// and appends metadata; this returns just the prompt (or the whole text if untagged).
    #[must_use]
    pub fn last_user_prompt(&self) -> Option<String> {
        self.last_user_text().map(|text| {
            text.split_once("<USER_REQUEST>")
                .and_then(|(_, rest)| rest.split_once("</USER_REQUEST>"))
                .map_or_else(|| text.clone(), |(inner, _)| inner.trim().to_owned())
        })
    }

    /// The names of the tools the model is offered.
    #[must_use]
    pub fn tool_names(&self) -> Vec<String> {
        self.tools()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The last message, if it is a tool result: its content.
    #[must_use]
    pub fn tool_result(&self) -> Option<String> {
        self.messages()
            .last()
            .filter(|m| m["role"] == "tool")
            .map(message_text)
    }

    /// The system prompt.
    #[must_use]
    pub fn system_prompt(&self) -> Option<String> {
        self.messages()
            .iter()
            .find(|m| m["role"] == "system")
            .map(message_text)
    }

    /// The tool declarations (`tools[].function`).
    #[must_use]
    pub fn tools(&self) -> Vec<Value> {
        self.body["tools"]
            .as_array()
            .map(|t| t.iter().map(|t| t["function"].clone()).collect())
            .unwrap_or_default()
    }
}

fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Decides a reply when the script queue is empty.
pub type Responder = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    responder: Responder,
    requests: Mutex<Vec<RecordedRequest>>,
    counter: Mutex<u64>,
}

/// An OpenAI-compatible chat-completions server on `127.0.0.1:<random port>`.
///
/// Replies come from a queue ([`ScriptedModel::push`]); when it is empty, from the responder
/// (by default: echo — `You said: <last user message>`, or `Tool said: <result>` after a tool
/// call). Every request is recorded. The server stops when the value is dropped.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use agy_bridge::testing::{Reply, ScriptedModel};
/// let model = ScriptedModel::start().await?;
/// model.push(Reply::tool_call("get_weather", serde_json::json!({"city": "Oslo"})));
/// model.push(Reply::text("It is sunny in Oslo."));
/// let base_url = model.base_url(); // hand this to ModelConfig::openai_compatible
/// # Ok(()) }
/// ```
pub struct ScriptedModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The default responder: echo the user, or report the tool result.
#[must_use]
pub fn echo_responder() -> Responder {
    Arc::new(|req: &RecordedRequest| {
        req.tool_result().map_or_else(
            || {
                Reply::text(format!(
                    "You said: {}",
                    req.last_user_prompt().unwrap_or_default()
                ))
            },
            |result| Reply::text(format!("Tool said: {result}")),
        )
    })
}

impl ScriptedModel {
    /// Starts a server with the echo responder.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::with_responder(echo_responder()).await
    }

    /// Starts a server that answers with `responder` whenever the script queue is empty.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn with_responder(responder: Responder) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            responder,
            requests: Mutex::new(Vec::new()),
            counter: Mutex::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/chat/completions", post(completions))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// The base URL to configure, e.g. `http://127.0.0.1:40123/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().push_back(reply);
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    /// Number of queued replies not used yet.
    #[must_use]
    pub fn pending_replies(&self) -> usize {
        self.shared.script.lock().len()
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")).into_response(),
    };
    let request = RecordedRequest { body };
    let seq = {
        let mut c = shared.counter.lock();
        *c += 1;
        *c
    };
    let scripted = shared.script.lock().pop_front();
    let mut reply = scripted.unwrap_or_else(|| (shared.responder)(&request));
    shared.requests.lock().push(request.clone());
    loop {
        match reply {
            Reply::Delayed {
                delay,
                reply: inner,
            } => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::Stall => return futures::future::pending().await,
            Reply::HttpError {
                status,
                body,
                retry_after,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = (status, body).into_response();
                if let Some(secs) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                }
                return response;
            }
            other => return stream_reply(&request, seq, other),
        }
    }
}

fn stream_reply(request: &RecordedRequest, seq: u64, reply: Reply) -> Response {
    let model = request.body["model"]
        .as_str()
        .unwrap_or("scripted")
        .to_owned();
    let id = format!("chatcmpl-{seq}");
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let prompt_tokens = prompt_tokens(request);
    let fault = match &reply {
        Reply::Malformed(_) => Fault::Malformed,
        Reply::Disconnect(_) => Fault::Disconnect,
        _ => Fault::Truncated,
    };
    let mut events: Vec<(Duration, Value)> = Vec::new();
    let completion_tokens;
    match reply {
        Reply::Text { chunks, pause } => {
            completion_tokens = chunks.len() as u64;
            for (i, text) in chunks.into_iter().enumerate() {
                let mut delta = json!({ "content": text });
                if i == 0 {
                    delta["role"] = json!("assistant");
                }
                events.push((
                    if i == 0 { Duration::ZERO } else { pause },
                    chunk(delta, None),
                ));
            }
            events.push((Duration::ZERO, chunk(json!({}), Some("stop"))));
        }
        Reply::ToolCalls(calls) => {
            completion_tokens = 1 + calls.len() as u64;
            let tools = request.tools();
            let calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(i, call)| {
                    let args = with_harness_fields(&tools, &call.name, call.args);
                    json!({
                        "index": i, "id": format!("call_{seq}_{i}"), "type": "function",
                        "function": {"name": call.name, "arguments": args.to_string()},
                    })
                })
                .collect();
            events.push((
                Duration::ZERO,
                chunk(json!({"role": "assistant", "tool_calls": calls}), None),
            ));
            events.push((Duration::ZERO, chunk(json!({}), Some("tool_calls"))));
        }
        Reply::Truncated(chunks) | Reply::Malformed(chunks) | Reply::Disconnect(chunks) => {
            let events = chunks
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let mut delta = json!({ "content": text });
                    if i == 0 {
                        delta["role"] = json!("assistant");
                    }
                    chunk(delta, None)
                })
                .collect();
            return fault_stream(fault, events);
        }
        Reply::HttpError { .. } | Reply::Delayed { .. } | Reply::Stall => {
            unreachable!("handled by the caller")
        }
    }
    events.push((
        Duration::ZERO,
        json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }),
    ));
    let stream = futures::stream::unfold(
        (events.into_iter(), false),
        |(mut events, done)| async move {
            if done {
                return None;
            }
            match events.next() {
                Some((pause, event)) => {
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    let bytes = Bytes::from(format!("data: {event}\n\n"));
                    Some((Ok::<_, Infallible>(bytes), (events, false)))
                }
                None => Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), (events, true))),
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// How a scripted stream goes wrong.
#[derive(Clone, Copy)]
enum Fault {
    Truncated,
    Malformed,
    Disconnect,
}

/// A stream that goes wrong as `fault` says, after `events`.
fn fault_stream(fault: Fault, events: Vec<Value>) -> Response {
    let mut frames: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .map(|event| Ok(Bytes::from(format!("data: {event}\n\n"))))
        .collect();
    match fault {
        Fault::Malformed => {
            frames.push(Ok(Bytes::from_static(b"data: DEADBEEF {not json\n\n")));
            frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
        }
        Fault::Disconnect => frames.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "scripted disconnect",
        ))),
        Fault::Truncated => {} // just stop
    }
    // The events go out before the connection drops (a pause lets them be flushed).
    let stream = futures::StreamExt::then(futures::stream::iter(frames), |frame| async move {
        if frame.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        frame
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The harness adds required `toolSummary`/`toolAction` properties to every tool schema; a real
/// model fills them in, so the script does too when the tool declares them.
fn with_harness_fields(tools: &[Value], name: &str, mut args: Value) -> Value {
    let props = tools
        .iter()
        .find(|t| t["name"] == name)
        .map(|t| t["parameters"]["properties"].clone())
        .unwrap_or(Value::Null);
    if let Value::Object(map) = &mut args {
        for (key, value) in [
            ("toolSummary", format!("calling {name}")),
            ("toolAction", name.to_owned()),
        ] {
            if props.get(key).is_some() && !map.contains_key(key) {
                map.insert(key.to_owned(), json!(value));
            }
        }
    }
    args
}

fn prompt_tokens(request: &RecordedRequest) -> u64 {
    let chars: usize = request
        .messages()
        .iter()
        .map(|m| message_text(m).len())
        .sum();
    (chars / 4 + 1) as u64
}
