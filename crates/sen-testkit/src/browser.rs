//! A real Chromium for page tests: Debian's `chromium` driven through
//! `chromedriver` (WebDriver, with thirtyfour), headless, on loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;

use crate::guard;

/// A browser session; the driver process is killed when dropped.
pub struct Browser {
    /// The WebDriver session.
    pub driver: WebDriver,
    child: Child,
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless session.
    pub async fn start() -> Self {
        let port = crate::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        guard::on_exit(&format!("kill -9 {} 2>/dev/null", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = DesiredCapabilities::chrome();
        if std::path::Path::new("/usr/bin/chromium").exists() {
            caps.set_binary("/usr/bin/chromium").expect("binary");
        }
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1000",
            "--lang=en-US",
            "--no-first-run",
            "--no-default-browser-check",
        ] {
            caps.add_arg(arg).expect("arg");
        }
        let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps)
            .await
            .expect("start a Chromium session");
        Self { driver, child }
    }

    /// Saves a screenshot as `{dir}/{name}.png`.
    pub async fn screenshot(&self, dir: &std::path::Path, name: &str) {
        std::fs::create_dir_all(dir).expect("screenshot dir");
        self.driver
            .screenshot(&dir.join(format!("{name}.png")))
            .await
            .expect("screenshot");
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let driver = self.driver.clone();
        let _ = driver.quit().await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
