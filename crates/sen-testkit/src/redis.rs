//! Throwaway Redis servers on free loopback ports, with no persistence.
//! A test can stop and restart its own server on the same port to prove
//! that Sen survives a Redis outage.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::guard;

/// A Redis server owned by one test (or the shared one).
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

static SHARED: OnceLock<Result<String, String>> = OnceLock::new();

/// The URL of this test process's shared Redis: `SEN_TEST_REDIS_URL` when
/// set, else one started on first use.
pub fn shared_url() -> String {
    let url = SHARED.get_or_init(|| match std::env::var("SEN_TEST_REDIS_URL") {
        Ok(url) => Ok(url),
        Err(_) => RedisServer::start().map(|s| {
            let url = s.url();
            std::mem::forget(s); // lives for the process; the exit guard stops it
            url
        }),
    });
    match url {
        Ok(u) => u.clone(),
        Err(e) => panic!("cannot start a throwaway Redis: {e}"),
    }
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Result<Self, String> {
        let mut server = Self {
            port: crate::free_port(),
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("redis-server could not start ({e}); apt-get install redis-server")
            })?;
        guard::on_exit(&format!("kill {} 2>/dev/null", child.id()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not listen on port {} within 10 s",
            self.port
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
