//! Starts one throwaway PostgreSQL and one Redis for a whole test run,
//! writes their URLs to the file named by the first argument (as
//! `KEY=value` lines for `SEN_TEST_DATABASE_URL` and `SEN_TEST_REDIS_URL`),
//! and keeps them until this process is stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: sen-test-services ENV_FILE");
        std::process::exit(2);
    };
    let pg = sen_testkit::postgres::shared().admin_url().to_string();
    let redis = sen_testkit::redis::shared_url();
    let tmp = format!("{path}.tmp");
    std::fs::write(
        &tmp,
        format!("SEN_TEST_DATABASE_URL={pg}\nSEN_TEST_REDIS_URL={redis}\n"),
    )
    .expect("write env file");
    std::fs::rename(&tmp, &path).expect("publish env file");
    loop {
        std::thread::park();
    }
}
