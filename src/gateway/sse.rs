//! Checking an OpenAI-compatible event stream as it passes: complete events only, each `data`
//! valid JSON or `[DONE]`, and an end only after `[DONE]` (or a chunk with a `finish_reason`).

use serde_json::Value;

/// Why a stream is not a complete answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StreamFault {
    /// An event whose `data` is neither JSON nor `[DONE]`.
    #[error("the model sent a malformed stream chunk: {0}")]
    Malformed(String),
    /// The stream ended before its end marker.
    #[error("the model's stream ended before its end (no [DONE] and no finish_reason)")]
    Truncated,
}

/// Splits a byte stream into complete server-sent events and checks each.
#[derive(Debug, Default)]
pub(crate) struct EventCheck {
    pending: Vec<u8>,
    done: bool,
    finished: bool,
    events: usize,
}

impl EventCheck {
    /// Takes the next bytes; returns the complete, checked events among them (as bytes to
    /// forward, boundaries included), keeping an incomplete tail for later.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, StreamFault> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            self.check(&event)?;
            out.extend_from_slice(&event);
        }
        Ok(out)
    }

    /// The upstream stream ended: fine only after the end marker (a trailing partial event is
    /// a truncation too).
    pub(crate) fn finish(&self) -> Result<(), StreamFault> {
        let rest_is_blank = self.pending.iter().all(u8::is_ascii_whitespace);
        if (self.done || self.finished) && rest_is_blank {
            Ok(())
        } else {
            Err(StreamFault::Truncated)
        }
    }

    /// Complete events seen so far.
    pub(crate) const fn events(&self) -> usize {
        self.events
    }

    fn check(&mut self, event: &[u8]) -> Result<(), StreamFault> {
        let text = String::from_utf8_lossy(event);
        let mut data = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
        }
        if data.is_empty() {
            return Ok(()); // a comment or keep-alive
        }
        self.events += 1;
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(&data)
            .map_err(|_| StreamFault::Malformed(data.chars().take(80).collect()))?;
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array)
            && choices
                .iter()
                .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
        {
            self.finished = true;
        }
        Ok(())
    }
}

/// Where the first complete event ends (after its blank line), if one is complete.
fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = find(bytes, b"\n\n").map(|i| i + 2);
    let crlf = find(bytes, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = r#"data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    const LAST: &str = r#"data: {"choices":[{"delta":{},"finish_reason":"stop"}]}"#;

    #[test]
    fn events_pass_whole_and_in_order_whatever_the_split() {
        let stream = format!("{CHUNK}\n\n{LAST}\n\ndata: [DONE]\n\n");
        for split in 1..stream.len() {
            let mut check = EventCheck::default();
            let mut out = check.feed(&stream.as_bytes()[..split]).unwrap();
            out.extend(check.feed(&stream.as_bytes()[split..]).unwrap());
            assert_eq!(out, stream.as_bytes(), "split at {split}");
            check.finish().unwrap();
            assert_eq!(check.events(), 3);
        }
    }

    #[test]
    fn an_incomplete_event_is_held_back() {
        let mut check = EventCheck::default();
        assert!(check.feed(CHUNK.as_bytes()).unwrap().is_empty());
        assert_eq!(check.feed(b"\n\n").unwrap().len(), CHUNK.len() + 2);
    }

    #[test]
    fn a_stream_without_its_end_is_truncated() {
        let mut check = EventCheck::default();
        check.feed(format!("{CHUNK}\n\n").as_bytes()).unwrap();
        assert_eq!(check.finish(), Err(StreamFault::Truncated));
        // A partial event after the end marker is a truncation too.
        let mut check = EventCheck::default();
        check
            .feed(format!("{LAST}\n\ndata: {{\"cho").as_bytes())
            .unwrap();
        assert_eq!(check.finish(), Err(StreamFault::Truncated));
        // Ending after a finish_reason (servers that send no [DONE]) is complete.
        let mut check = EventCheck::default();
        check
            .feed(format!("{CHUNK}\n\n{LAST}\n\n").as_bytes())
            .unwrap();
        check.finish().unwrap();
    }

    #[test]
    fn a_malformed_chunk_is_refused_before_it_is_forwarded() {
        let mut check = EventCheck::default();
        let err = check
            .feed(format!("{CHUNK}\n\ndata: DEADBEEF {{\n\n").as_bytes())
            .unwrap_err();
        assert!(matches!(err, StreamFault::Malformed(ref d) if d.starts_with("DEADBEEF")));
    }

    #[test]
    fn comments_and_crlf_events_are_fine() {
        let mut check = EventCheck::default();
        let out = check
            .feed(format!(": keep-alive\r\n\r\n{LAST}\r\n\r\ndata: [DONE]\r\n\r\n").as_bytes())
            .unwrap();
        assert!(out.starts_with(b": keep-alive"));
        check.finish().unwrap();
    }
}
