//! A small SMTP server on 127.0.0.1 that keeps what it accepts, for mail
//! tests. It speaks enough of RFC 5321 for a real client (lettre): EHLO/HELO,
//! AUTH PLAIN/LOGIN (any credentials, recorded), MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT. A message counts as received only once
//! its final `250` is sent, as with a real server.
//!
//! Hand-written because the crates that embed an SMTP server run it on
//! blocking threads with no way to stop it, and tests need to stop, restart
//! (same port) and hold a server mid-transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends, unstuffed).
    pub data: String,
    /// `AUTH` user, when the client authenticated.
    pub auth_user: Option<String>,
}

impl Received {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = out.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim().to_string());
            }
        }
        out
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    arrived: Notify,
    hold: AtomicBool,
    released: Notify,
    held: AtomicUsize,
}

/// A running sink; stopped when dropped.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(crate::free_port()).await
    }

    /// Starts on `port` (to restart a stopped sink at the same address).
    pub async fn start_on(port: u16) -> Self {
        let mut sink = Self {
            port,
            shared: Arc::new(Shared::default()),
            task: None,
        };
        sink.restart().await;
        sink
    }

    /// `smtp://127.0.0.1:{port}` (plain: the sink has no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops listening and drops every open connection (a crash, for the
    /// client). Accepted messages are kept.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("SMTP sink cannot bind port {}: {e}", self.port),
            }
        };
        let shared = self.shared.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            conns.spawn(session(stream, shared.clone()));
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }

    /// While held, a message's final reply is withheld after its data
    /// arrived: the client waits, and the message is lost if the client
    /// goes away before [`SmtpSink::release`].
    pub fn hold(&self) {
        self.shared.hold.store(true, Ordering::SeqCst);
    }

    /// Ends a hold: withheld messages are accepted.
    pub fn release(&self) {
        self.shared.hold.store(false, Ordering::SeqCst);
        self.shared.released.notify_waiters();
    }

    /// Waits until some message's data has fully arrived while held.
    pub async fn wait_held(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.shared.held.load(Ordering::SeqCst) == 0 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Every accepted message so far.
    pub async fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().await.clone()
    }

    /// Waits until at least `n` messages were accepted (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.messages().await;
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                let got = self.messages().await;
                if got.len() >= n {
                    return got;
                }
                panic!("SMTP sink got {} of {n} messages in {timeout:?}", got.len());
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn address(arg: &str) -> String {
    let a = arg.split_once(':').map(|x| x.1).unwrap_or(arg).trim();
    let a = a.split_whitespace().next().unwrap_or_default();
    a.trim_start_matches('<').trim_end_matches('>').to_string()
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHA.iter().position(|a| *a == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth_user = None;
    macro_rules! reply {
        ($s:expr) => {
            if write.write_all($s.as_bytes()).await.is_err() {
                return;
            }
        };
    }
    reply!("220 sen-test-smtp ready\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => reply!(
                "250-sen-test-smtp\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"
            ),
            "HELO" => reply!("250 sen-test-smtp\r\n"),
            "AUTH" => {
                let mut parts = cmd.split_whitespace().skip(1);
                let mech = parts.next().unwrap_or_default().to_ascii_uppercase();
                if mech == "PLAIN" {
                    let initial = match parts.next() {
                        Some(i) => i.to_string(),
                        None => {
                            reply!("334 \r\n");
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            line.trim().to_string()
                        }
                    };
                    let raw = b64_decode(&initial).unwrap_or_default();
                    let fields: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                    auth_user = fields
                        .get(1)
                        .map(|u| String::from_utf8_lossy(u).into_owned());
                } else if mech == "LOGIN" {
                    reply!("334 VXNlcm5hbWU6\r\n");
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    auth_user =
                        b64_decode(line.trim()).map(|u| String::from_utf8_lossy(&u).into_owned());
                    reply!("334 UGFzc3dvcmQ6\r\n");
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                reply!("235 2.7.0 Authentication successful\r\n");
            }
            "MAIL" => {
                from = address(&cmd);
                to.clear();
                reply!("250 2.1.0 OK\r\n");
            }
            "RCPT" => {
                to.push(address(&cmd));
                reply!("250 2.1.5 OK\r\n");
            }
            "DATA" => {
                reply!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = line.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push_str("\r\n");
                }
                let released = shared.released.notified();
                if shared.hold.load(Ordering::SeqCst) {
                    shared.held.fetch_add(1, Ordering::SeqCst);
                    tokio::pin!(released);
                    // Lost if the client goes away while held.
                    let mut probe = [0u8; 1];
                    tokio::select! {
                        _ = &mut released => {}
                        _ = tokio::io::AsyncReadExt::read(lines.get_mut(), &mut probe) => return,
                    }
                }
                shared.messages.lock().await.push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                    auth_user: auth_user.clone(),
                });
                shared.arrived.notify_waiters();
                reply!("250 2.0.0 OK: queued\r\n");
            }
            "RSET" => {
                from.clear();
                to.clear();
                reply!("250 2.0.0 OK\r\n");
            }
            "NOOP" => reply!("250 2.0.0 OK\r\n"),
            "QUIT" => {
                reply!("221 2.0.0 Bye\r\n");
                return;
            }
            _ => reply!("502 5.5.2 Command not recognised\r\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_addresses() {
        assert_eq!(b64_decode("AGFubgBzZWNyZXQ=").unwrap(), b"\0ann\0secret");
        assert_eq!(address("FROM:<a@b.co> BODY=8BITMIME"), "a@b.co");
        assert_eq!(address("TO:<c@d.vn>"), "c@d.vn");
    }
}
