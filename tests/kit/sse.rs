//! Server-Sent Events read off a streaming response.

use futures::StreamExt;

use crate::WAIT;

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads SSE events from a streaming response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub async fn open(req: reqwest::RequestBuilder) -> SseReader {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "SSE refused: {}", resp.status());
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseReader {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends. Panics when nothing
    /// arrives for [`WAIT`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(WAIT).await
    }

    /// [`SseReader::next`], waiting up to `wait` for each chunk (a stream carried through a
    /// cluster on a loaded machine may take longer to start).
    pub async fn next_within(&mut self, wait: std::time::Duration) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim_start().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout(wait, self.stream.next())
                .await
                .expect("an SSE event in time")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }
}
