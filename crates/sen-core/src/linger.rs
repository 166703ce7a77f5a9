//! Reading out a refused body before answering (uploads, and JSON bodies
//! over the size limit).
//!
//! When a handler refuses a body it has not read (too large, bad
//! signature), hyper closes the connection with those bytes still unread,
//! and the kernel answers a close with unread data by sending a reset. A
//! client still writing its body (most do not wait for `100 Continue`)
//! then sees "broken pipe" or "connection reset" instead of our 413 or
//! 403. Web servers solve this with a *lingering close* (nginx's
//! `lingering_time`): read and discard what keeps coming for a while. Hyper
//! has no such setting, so the handler does it, bounded in bytes and time
//! so that a client cannot hold the connection open by trickling.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, header};

/// At most this much of a refused body is read and thrown away.
pub const LINGER_BYTES: u64 = 32 * 1024 * 1024;
/// And for at most this long.
pub const LINGER_TIME: Duration = Duration::from_secs(3);

/// Reads and discards the rest of `stream`, up to [`LINGER_BYTES`] and
/// [`LINGER_TIME`]. A client that asked for `100 Continue` has sent
/// nothing yet and will read the refusal first, so its body is left alone
/// (polling it would tell hyper to invite the upload).
pub async fn linger<S, E>(headers: &HeaderMap, stream: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    if expects_continue(headers) {
        return;
    }
    discard(stream).await;
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// Reads and discards the rest of `stream` within the same bounds, whatever
/// the headers said: for a body the caller has already started reading
/// (so any `100 Continue` has been sent and the client is sending).
pub async fn discard<S, E>(stream: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let drain = async {
        let mut read: u64 = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
