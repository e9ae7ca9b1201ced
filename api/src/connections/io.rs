//! A client connection's socket, as the HTTP server sees it: it notes when
//! bytes last moved (for the idle timeout), and it turns the few answers
//! hyper writes on its own — to a request it could not even parse, before
//! any of Herald's code runs (400, 414 URI too long, 431 headers too large)
//! — into problem documents like every other error. Those answers are the
//! only ones with no content type and an empty body: every answer Herald
//! makes carries `application/problem+json` or a real body.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When bytes last moved on a connection, in microseconds since `epoch`.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_us: AtomicU64,
    /// `NEVER` until the first read.
    last_read_us: AtomicU64,
    written: AtomicBool,
}

const NEVER: u64 = u64::MAX;

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            last_us: AtomicU64::new(0),
            last_read_us: AtomicU64::new(NEVER),
            written: AtomicBool::new(false),
        })
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn read(&self) {
        let now = self.now_us();
        self.last_us.store(now, Ordering::Relaxed);
        self.last_read_us.store(now, Ordering::Relaxed);
    }

    fn wrote(&self) {
        self.last_us.store(self.now_us(), Ordering::Relaxed);
        self.written.store(true, Ordering::Relaxed);
    }

    /// When the connection opened.
    pub fn opened(&self) -> Instant {
        self.epoch
    }

    /// When bytes last moved either way.
    pub fn last(&self) -> Instant {
        self.epoch + Duration::from_micros(self.last_us.load(Ordering::Relaxed))
    }

    /// When bytes last arrived.
    pub fn last_read(&self) -> Option<Instant> {
        match self.last_read_us.load(Ordering::Relaxed) {
            NEVER => None,
            us => Some(self.epoch + Duration::from_micros(us)),
        }
    }

    /// Whether anything was ever written (an answer was sent).
    pub fn has_written(&self) -> bool {
        self.written.load(Ordering::Relaxed)
    }
}

pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    /// A rewritten answer being written: its bytes, how many are out, and
    /// the length of hyper's original to report once all are.
    rewrite: Option<(Vec<u8>, usize, usize)>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            rewrite: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_none()
            && let Some(status) = bare_answer(buf)
        {
            this.rewrite = Some((problem_answer(status), 0, buf.len()));
        }
        if let Some((bytes, written, original)) = this.rewrite.as_mut() {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
                this.activity.wrote();
            }
            let original = *original;
            this.rewrite = None;
            return Poll::Ready(Ok(original));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.activity.wrote();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A bare answer is a head alone, in one slice.
        if bufs.len() == 1 || self.rewrite.is_some() {
            let first = bufs.first().map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            this.activity.wrote();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The status of one of hyper's own answers: a whole head, with an empty
/// body and no content type.
fn bare_answer(buf: &[u8]) -> Option<StatusCode> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    if !buf.ends_with(b"\r\n\r\n") || buf.windows(4).filter(|w| w == b"\r\n\r\n").count() != 1 {
        return None;
    }
    let head = buf.to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    (has(b"\r\ncontent-length: 0\r\n") && !has(b"\r\ncontent-type:")).then_some(status)
}

/// The problem document for one of those answers, as a whole response; the
/// connection closes after it, as hyper closes it after its own.
fn problem_answer(status: StatusCode) -> Vec<u8> {
    let (slug, title, detail) = match status {
        StatusCode::URI_TOO_LONG => (
            "uri-too-long",
            "URI too long",
            "the request URI is longer than the server accepts",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers-too-large",
            "Request header fields too large",
            "the request's headers are larger, or more numerous, than the server accepts",
        ),
        _ => (
            "bad-request",
            "Bad request",
            "the request is not valid HTTP",
        ),
    };
    let body = crate::error::Problem {
        kind: format!("urn:herald:problem:{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors: Vec::new(),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(title),
        crate::error::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_answers_are_rewritten() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            bare_answer(bare),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_answer(ours), None);
        let with_body = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(bare_answer(with_body), None);
        assert_eq!(
            bare_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        let answer =
            String::from_utf8(problem_answer(StatusCode::URI_TOO_LONG)).unwrap_or_default();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("\"status\":414"), "{body}");
    }
}
