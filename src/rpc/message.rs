//! JSON-RPC 2.0 messages as plain serde data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Standard and bridge-specific JSON-RPC error codes.
pub(crate) mod codes {
    /// The line is not valid JSON (the worker answers it; Rust skips such a line and logs it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request object.
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    /// Internal error while handling the request.
    pub(crate) const INTERNAL_ERROR: i64 = -32603;
    /// The request was cancelled with `$/cancelRequest`.
    pub(crate) const REQUEST_CANCELLED: i64 = -32800;
    /// The message exceeded the receiver's (or sender's) size limit. `data: {size, limit}`.
    pub(crate) const MESSAGE_TOO_LARGE: i64 = -32001;

    /// Every JSON-RPC-level code by name, for the protocol schema.
    #[cfg(test)]
    pub(crate) const ALL: &[(&str, i64)] = &[
        ("PARSE_ERROR", PARSE_ERROR),
        ("INVALID_REQUEST", INVALID_REQUEST),
        ("METHOD_NOT_FOUND", METHOD_NOT_FOUND),
        ("INVALID_PARAMS", INVALID_PARAMS),
        ("INTERNAL_ERROR", INTERNAL_ERROR),
        ("REQUEST_CANCELLED", REQUEST_CANCELLED),
        ("MESSAGE_TOO_LARGE", MESSAGE_TOO_LARGE),
    ];
}

/// A request id. We send integers; we answer whatever the peer sent.
pub(super) type Id = Value;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// Error code (JSON-RPC's, or ours: see `docs/protocol.md`).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// Optional structured data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured data.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error for a message of `size` bytes over `limit`.
    #[must_use]
    pub fn too_large(size: usize, limit: usize) -> Self {
        Self::new(
            codes::MESSAGE_TOO_LARGE,
            format!("message of {size} bytes exceeds the limit of {limit} bytes"),
        )
        .with_data(serde_json::json!({ "size": size, "limit": limit }))
    }
}

/// A decoded inbound message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Incoming {
    /// A request that expects an answer.
    Request {
        /// Its id.
        id: Id,
        /// Method name.
        method: String,
        /// Parameters (`Null` when absent).
        params: Value,
    },
    /// A notification (no answer).
    Notification {
        /// Method name.
        method: String,
        /// Parameters (`Null` when absent).
        params: Value,
    },
    /// An answer to one of our requests.
    Response {
        /// The id of our request.
        id: Id,
        /// Its result or error.
        result: Result<Value, RpcError>,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RpcError>,
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum DecodeError {
    /// Not JSON at all (stray output).
    NotJson,
    /// JSON, but not a JSON-RPC message; `id` is set when one could be read.
    Invalid {
        /// The id, if present.
        id: Option<Id>,
    },
}

/// Decodes one line.
///
/// # Errors
/// [`DecodeError::NotJson`] for non-JSON text, [`DecodeError::Invalid`] for other JSON.
pub(super) fn decode(line: &[u8]) -> Result<Incoming, DecodeError> {
    let raw: Raw = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(e) if e.is_data() => {
            let id = serde_json::from_slice::<Value>(line)
                .ok()
                .and_then(|v| v.get("id").cloned());
            return Err(DecodeError::Invalid { id });
        }
        Err(_) => return Err(DecodeError::NotJson),
    };
    match (raw.id, raw.method) {
        (Some(id), Some(method)) => Ok(Incoming::Request {
            id,
            method,
            params: raw.params.unwrap_or(Value::Null),
        }),
        (None, Some(method)) => Ok(Incoming::Notification {
            method,
            params: raw.params.unwrap_or(Value::Null),
        }),
        (Some(id), None) => Ok(Incoming::Response {
            id,
            result: raw
                .error
                .map_or_else(|| Ok(raw.result.unwrap_or(Value::Null)), Err),
        }),
        (None, None) => Err(DecodeError::Invalid { id: None }),
    }
}

#[derive(Serialize)]
struct OutRequest<'a, P> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct OutResponse<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

/// Encodes a request (`id: Some`) or notification (`id: None`), newline-terminated.
///
/// # Errors
/// When `params` cannot be serialized.
pub(super) fn encode_request<P: Serialize>(
    id: Option<u64>,
    method: &str,
    params: P,
) -> serde_json::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(&OutRequest {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })?;
    out.push(b'\n');
    Ok(out)
}

/// Encodes a response, newline-terminated.
#[must_use]
pub(super) fn encode_response(id: &Id, result: &Result<Value, RpcError>) -> Vec<u8> {
    let (result, error) = match result {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    let mut out = serde_json::to_vec(&OutResponse {
        jsonrpc: "2.0",
        id,
        result: result.or(if error.is_none() {
            Some(&Value::Null)
        } else {
            None
        }),
        error,
    })
    .expect("JSON values always serialize");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_every_kind() {
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#),
            Ok(Incoming::Request {
                id: json!(1),
                method: "m".into(),
                params: json!([1])
            })
        );
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","method":"n"}"#),
            Ok(Incoming::Notification {
                method: "n".into(),
                params: Value::Null
            })
        );
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","id":"x","result":null}"#),
            Ok(Incoming::Response {
                id: json!("x"),
                result: Ok(Value::Null)
            })
        );
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}"#),
            Ok(Incoming::Response {
                id: json!(2),
                result: Err(RpcError::new(-1, "no"))
            })
        );
        assert_eq!(decode(b"hello world"), Err(DecodeError::NotJson));
        assert_eq!(
            decode(br#"{"id":3,"method":5}"#),
            Err(DecodeError::Invalid { id: Some(json!(3)) })
        );
    }

    #[test]
    fn encodes_null_results_explicitly() {
        let line = encode_response(&json!(1), &Ok(Value::Null));
        assert_eq!(line, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n");
    }
}
