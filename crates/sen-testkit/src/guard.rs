//! Stops a server when the test process exits, however it exits: a small
//! shell watches the test process and, once it is gone, runs the clean-up.
//! (Statics are never dropped, so `Drop` alone would leak servers.)

use std::process::{Command, Stdio};

/// Runs `cleanup` (a shell snippet) once this process has exited.
pub fn on_exit(cleanup: &str) {
    let me = std::process::id();
    let script = format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {cleanup}");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
}

/// Whether this process runs as root (servers then run as another user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

use std::os::unix::process::CommandExt as _;
