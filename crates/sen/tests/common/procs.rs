//! Running real binaries from tests: spawn with a clean environment, logs
//! to files, signals, bounded waits. Children are killed if the test dies.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `sen` binary.
pub const SEN: &str = env!("CARGO_BIN_EXE_sen");
/// The `sen` command with diagnostic jobs (`src/bin/sen-test-jobs.rs`).
pub const SEN_TEST_JOBS: &str = env!("CARGO_BIN_EXE_sen-test-jobs");

pub fn command(exe: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SEN_SECRET_KEY", "process-test-secret-key-0123456789abcdef");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    run_exe(SEN, dir, args, env)
}

pub fn run_exe(exe: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    command(exe, dir, args, env)
        .stdin(Stdio::null())
        .output()
        .expect("run sen")
}

/// Runs `sen` with `input` on standard input.
pub fn run_with_input(dir: &Path, args: &[&str], env: &[(&str, String)], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = command(SEN, dir, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sen");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for sen")
}

pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)], log: &str) -> Child {
    spawn_exe(SEN, dir, args, env, log)
}

pub fn spawn_exe(exe: &str, dir: &Path, args: &[&str], env: &[(&str, String)], log: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{log}.out"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{log}.err"))).unwrap();
    let child = command(exe, dir, args, env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn sen");
    sen_testkit::kill_on_exit(child.id());
    child
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

pub fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Sends `SIG{name}` to `child`.
pub fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sen did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn wait_http(url: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await {
            return r;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn assert_clean_failure(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail");
    let err = text(&out.stderr);
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(
        !err.contains("panicked")
            && !err.contains("stack backtrace")
            && !err.contains("RUST_BACKTRACE"),
        "no panic: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
