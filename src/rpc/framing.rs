//! NDJSON framing with a hard bound on the bytes held for one line.
//!
//! `tokio_util::codec::LinesCodec` reports an over-long line as an error after which `FramedRead`
//! ends the stream (see `docs/architecture.md`); this decoder instead yields an
//! [`Frame::Oversized`] item and carries on with the next line, and keeps only a short head of
//! the oversized line so the peer can read its id and fail just that request.

/// How many leading bytes of an oversized line are kept (enough for `{"jsonrpc":"2.0","id":…`).
pub(super) const OVERSIZED_HEAD: usize = 256;

/// One framed unit of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Frame {
    /// A complete line, without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line longer than the limit; its body was discarded as it arrived.
    Oversized {
        /// Full length of the line in bytes.
        size: usize,
        /// Its first [`OVERSIZED_HEAD`] bytes.
        head: Vec<u8>,
    },
}

/// Incremental line decoder. Memory use never exceeds `limit` plus [`OVERSIZED_HEAD`] bytes.
#[derive(Debug)]
pub(super) struct LineDecoder {
    limit: usize,
    buf: Vec<u8>,
    discarding: Option<(usize, Vec<u8>)>,
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `limit` bytes.
    #[must_use]
    pub(super) const fn new(limit: usize) -> Self {
        Self {
            limit,
            buf: Vec::new(),
            discarding: None,
        }
    }

    /// Bytes currently held for an unfinished line.
    #[cfg(test)]
    #[must_use]
    pub(super) fn buffered(&self) -> usize {
        self.buf.len() + self.discarding.as_ref().map_or(0, |(_, h)| h.len())
    }

    /// Feeds `input`, pushing every completed frame onto `out`. Empty lines are skipped.
    pub(super) fn decode(&mut self, mut input: &[u8], out: &mut Vec<Frame>) {
        while !input.is_empty() {
            if let Some(pos) = memchr::memchr(b'\n', input) {
                self.append(&input[..pos]);
                if let Some(frame) = self.finish() {
                    out.push(frame);
                }
                input = &input[pos + 1..];
            } else {
                self.append(input);
                break;
            }
        }
    }

    /// Flushes an unterminated last line at end of input.
    pub(super) fn decode_eof(&mut self, out: &mut Vec<Frame>) {
        if let Some(frame) = self.finish() {
            out.push(frame);
        }
    }

    fn append(&mut self, segment: &[u8]) {
        if let Some((size, _)) = &mut self.discarding {
            *size += segment.len();
        } else if self.buf.len() + segment.len() > self.limit {
            let mut head = std::mem::take(&mut self.buf);
            let size = head.len() + segment.len();
            head.truncate(OVERSIZED_HEAD);
            let missing = OVERSIZED_HEAD - head.len();
            head.extend_from_slice(&segment[..missing.min(segment.len())]);
            self.discarding = Some((size, head));
        } else {
            self.buf.extend_from_slice(segment);
        }
    }

    fn finish(&mut self) -> Option<Frame> {
        if let Some((size, head)) = self.discarding.take() {
            return Some(Frame::Oversized { size, head });
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(Frame::Line(line))
    }
}

/// Reads the request id and whether a `"method"` key is present from the head of an oversized
/// message. Both peers write `"id"` right after `"jsonrpc"`, so the head holds it.
#[must_use]
pub(super) fn sniff_head(head: &[u8]) -> (Option<serde_json::Value>, bool) {
    let text = String::from_utf8_lossy(head);
    let has_method = text.contains("\"method\"");
    let id = text.find("\"id\"").and_then(|at| {
        let rest = text[at + 4..].trim_start().strip_prefix(':')?.trim_start();
        let mut de = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
        match de.next() {
            Some(Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::String(_)))) => Some(v),
            _ => None,
        }
    });
    (id, has_method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(limit: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut d = LineDecoder::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.decode_eof(&mut out);
        out
    }

    #[test]
    fn splits_lines_across_chunks() {
        let out = run(100, &[b"{\"a\"", b":1}\n{\"b\":2}\r\n\n", b"{\"c\":3}"]);
        assert_eq!(
            out,
            vec![
                Frame::Line(b"{\"a\":1}".to_vec()),
                Frame::Line(b"{\"b\":2}".to_vec()),
                Frame::Line(b"{\"c\":3}".to_vec()),
            ]
        );
    }

    #[test]
    fn oversized_line_is_reported_and_the_next_line_survives() {
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"{}\"}}\n",
            "x".repeat(500)
        );
        let out = run(64, &[long.as_bytes(), b"{\"ok\":1}\n"]);
        let Frame::Oversized { size, head } = &out[0] else {
            panic!("expected oversized, got {out:?}")
        };
        assert_eq!(*size, long.len() - 1);
        assert_eq!(sniff_head(head), (Some(serde_json::json!(7)), false));
        assert_eq!(out[1], Frame::Line(b"{\"ok\":1}".to_vec()));
    }

    #[test]
    fn exactly_the_limit_passes() {
        let out = run(5, &[b"12345\n123456\n"]);
        assert_eq!(out[0], Frame::Line(b"12345".to_vec()));
        assert!(matches!(out[1], Frame::Oversized { size: 6, .. }));
    }

    #[test]
    fn sniffs_string_ids_and_methods() {
        let (id, method) = sniff_head(br#"{"jsonrpc":"2.0","id":"a-1","method":"x","params":"#);
        assert_eq!(id, Some(serde_json::json!("a-1")));
        assert!(method);
        assert_eq!(sniff_head(b"garbage"), (None, false));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_outgrow_the_limit(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..16),
            limit in 1usize..300,
        ) {
            let mut d = LineDecoder::new(limit);
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut prev = 0;
            for c in cuts.into_iter().chain(std::iter::once(data.len())) {
                d.decode(&data[prev..c], &mut out);
                prop_assert!(d.buffered() <= limit + OVERSIZED_HEAD);
                prev = c;
            }
            d.decode_eof(&mut out);
            let total: usize = out.iter().map(|f| match f {
                Frame::Line(l) => { assert!(l.len() <= limit); l.len() }
                Frame::Oversized { size, .. } => { assert!(*size > limit); *size }
            }).sum();
            prop_assert!(total <= data.len());
            let _ = out.iter().map(|f| if let Frame::Oversized { head, .. } = f { sniff_head(head) } else { (None, false) }).count();
        }
    }
}
