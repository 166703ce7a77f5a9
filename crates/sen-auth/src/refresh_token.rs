//! Refresh tokens that need no row of their own. A session counts its
//! refresh generations (`sen_sessions.refresh_gen`); the token of
//! generation `g` is the session id and `g` under an HMAC keyed from
//! `SEN_SECRET_KEY`. The session row is the whole state:
//! - a token of the current generation refreshes once (the generation is
//!   bumped with a conditional update, so of two racing refreshes one wins);
//! - a token of an older generation is a replay, and ends the session;
//! - a token whose MAC does not verify was never issued, so it ends
//!   nothing: a guessed or forged token cannot log anyone out.
//!
//! Against one random token per row (the earlier scheme, still accepted
//! for sessions opened before it: see [`Presented::Legacy`]) this saves
//! an insert into a four-index table on every sign-in and every refresh,
//! and the table no longer grows with every refresh. A copy of the
//! database alone still cannot mint tokens: the key is not in it.

use aws_lc_rs::{digest, hmac};

use crate::crypto::{b64, unb64};

/// Prefix of refresh tokens, so leaked ones are recognisable by scanners.
pub const PREFIX: &str = "senr_";

/// Session id (16) ‖ generation (8, big-endian) ‖ HMAC-SHA256 (32).
const LEN: usize = 16 + 8 + 32;

/// Bytes of a token of the earlier scheme: 32 random bytes.
const LEGACY_LEN: usize = 32;

/// What a presented refresh token is.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// A token of this scheme whose MAC verified.
    Generation {
        /// The session.
        session_id: String,
        /// The generation it was issued for.
        generation: i64,
    },
    /// A random token of the earlier scheme, looked up by its SHA-256 in
    /// `sen_refresh_tokens` (sessions opened before migration 0009).
    Legacy,
}

/// Mints and checks refresh tokens.
#[derive(Clone)]
pub struct RefreshKey {
    key: hmac::Key,
}

impl RefreshKey {
    /// Derives the MAC key from the instance secret (a different derivation
    /// from the sealing key's, so neither key reveals the other).
    pub fn new(secret: &str) -> Self {
        let mut input = b"sen/refresh/v1\0".to_vec();
        input.extend_from_slice(secret.as_bytes());
        let key_bytes = digest::digest(&digest::SHA256, &input);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes.as_ref()),
        }
    }

    /// The token of `session_id`'s generation `generation`, or `None` when
    /// the session id is not a UUID (every session id Sen makes is one).
    pub fn token(&self, session_id: &str, generation: i64) -> Option<String> {
        let id = uuid::Uuid::try_parse(session_id).ok()?;
        let mut raw = Vec::with_capacity(LEN);
        raw.extend_from_slice(id.as_bytes());
        raw.extend_from_slice(&generation.to_be_bytes());
        let tag = hmac::sign(&self.key, &raw);
        raw.extend_from_slice(tag.as_ref());
        Some(format!("{PREFIX}{}", b64(&raw)))
    }

    /// What `presented` is, or `None` when it is no token of ours (wrong
    /// shape, or a MAC that does not verify; checked in constant time).
    pub fn open(&self, presented: &str) -> Option<Presented> {
        let raw = unb64(presented.strip_prefix(PREFIX)?)?;
        match raw.len() {
            LEGACY_LEN => Some(Presented::Legacy),
            LEN => {
                let (body, tag) = raw.split_at(16 + 8);
                hmac::verify(&self.key, body, tag).ok()?;
                let (id, generation) = body.split_at(16);
                let id = uuid::Uuid::from_slice(id).ok()?;
                let generation = i64::from_be_bytes(generation.try_into().ok()?);
                Some(Presented::Generation {
                    session_id: id.to_string(),
                    generation,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn a_token_opens_to_its_session_and_generation() {
        let k = RefreshKey::new("a secret of at least thirty-two characters");
        let t = k.token(SID, 7).unwrap();
        assert!(t.starts_with(PREFIX));
        assert_eq!(
            k.open(&t),
            Some(Presented::Generation {
                session_id: SID.into(),
                generation: 7
            })
        );
        assert_ne!(
            k.token(SID, 8),
            Some(t),
            "each generation has its own token"
        );
    }

    #[test]
    fn tokens_of_another_key_or_altered_do_not_open() {
        let k = RefreshKey::new("a secret of at least thirty-two characters");
        let other = RefreshKey::new("another secret of thirty-two characters!!");
        let t = other.token(SID, 1).unwrap();
        assert_eq!(k.open(&t), None);
        // Flip one bit in each part: the session id, the generation, the MAC.
        let good = k.token(SID, 1).unwrap();
        let raw = unb64(&good[PREFIX.len()..]).unwrap();
        for at in [0, 16 + 7, LEN - 1] {
            let mut bad = raw.clone();
            bad[at] ^= 1;
            assert_eq!(k.open(&format!("{PREFIX}{}", b64(&bad))), None, "byte {at}");
        }
        assert_eq!(k.open(&good[PREFIX.len()..]), None, "no prefix");
        assert_eq!(k.open("senr_!!"), None);
        assert_eq!(k.open(&format!("{PREFIX}{}", b64(&raw[..LEN - 1]))), None);
    }

    #[test]
    fn earlier_random_tokens_are_told_apart() {
        let k = RefreshKey::new("a secret of at least thirty-two characters");
        let legacy = format!("{PREFIX}{}", crate::crypto::random_token::<32>().unwrap());
        assert_eq!(k.open(&legacy), Some(Presented::Legacy));
        assert_eq!(k.token("not-a-uuid", 1), None);
    }
}
