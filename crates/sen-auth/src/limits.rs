//! The attempt limits of sign-in, registration, reset and codes. Each
//! endpoint is limited per client address and, where there is one, per
//! account, so guessing one account's password is slow and a locked
//! account never locks out the others behind the same address.

use std::time::Duration;

use sen_core::ratelimit::Quota;
use sen_core::{AppContext, AppError};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Sign-in attempts per address.
pub const LOGIN_IP: Quota = Quota::new(30, MIN);
/// Sign-in attempts per account.
pub const LOGIN_ACCOUNT: Quota = Quota::new(10, Duration::from_secs(15 * 60));
/// Registrations per address.
pub const REGISTER_IP: Quota = Quota::new(10, HOUR);
/// Reset requests per address.
pub const RESET_IP: Quota = Quota::new(10, HOUR);
/// Reset requests per account.
pub const RESET_ACCOUNT: Quota = Quota::new(3, HOUR);
/// Reset confirmations per address.
pub const RESET_CONFIRM_IP: Quota = Quota::new(20, HOUR);
/// Token requests per address.
pub const OAUTH_TOKEN_IP: Quota = Quota::new(60, MIN);
/// Second-factor code attempts per account.
pub const TOTP_ACCOUNT: Quota = Quota::new(10, Duration::from_secs(15 * 60));

/// Counts one attempt against each `(key, quota)`; 429 with `Retry-After`
/// when any is spent. Does nothing when `auth_rate_limits` is off.
pub async fn guard(ctx: &AppContext, checks: &[(String, Quota)]) -> Result<(), AppError> {
    if !ctx.config().auth_rate_limits {
        return Ok(());
    }
    for (key, quota) in checks {
        ctx.rate_limits().check(key, *quota).await?;
    }
    Ok(())
}

/// The address part of a key.
pub fn ip_key(kind: &str, ip: Option<&str>) -> String {
    format!("{kind}:ip:{}", ip.unwrap_or("unknown"))
}

/// The account part of a key.
pub fn account_key(kind: &str, account: &str) -> String {
    format!("{kind}:acct:{account}")
}
