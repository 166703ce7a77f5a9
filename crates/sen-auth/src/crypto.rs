//! Small cryptographic helpers on aws-lc-rs (already in the tree for JWT
//! signing): random tokens, digests, constant-time comparison, and sealing
//! secrets at rest with a key derived from `SEN_SECRET_KEY`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngError;

impl From<RngError> for sen_core::AppError {
    fn from(e: RngError) -> Self {
        sen_core::AppError::internal(e)
    }
}

/// `N` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RngError> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| RngError)?;
    Ok(buf)
}

/// A URL-safe random token carrying `N` bytes of entropy.
pub fn random_token<const N: usize>() -> Result<String, RngError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// Base64url (no padding) of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url (no padding).
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// SHA-256 of `data` as lowercase hex: how high-entropy tokens (API keys,
/// reset tokens, codes, refresh tokens from before migration 0009) are
/// stored. A slow KDF adds nothing for 256-bit random secrets and would
/// cost a hash per request.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Constant-time equality of two byte strings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Seals and opens secrets at rest (signing keys, TOTP secrets) with
/// AES-256-GCM under a key derived from the instance secret.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("sealed value cannot be opened: wrong SEN_SECRET_KEY or corrupted data")]
pub struct SealError;

impl Sealer {
    /// Derives the sealing key from `secret` (≥ 32 characters, checked by config).
    pub fn new(secret: &str) -> Result<Self, SealError> {
        let mut input = b"sen/seal/v1\0".to_vec();
        input.extend_from_slice(secret.as_bytes());
        let key_bytes = digest::digest(&digest::SHA256, &input);
        let key = UnboundKey::new(&AES_256_GCM, key_bytes.as_ref()).map_err(|_| SealError)?;
        Ok(Self {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
        })
    }

    /// `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &[u8]) -> Result<String, SealError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>().map_err(|_| SealError)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::empty(),
                &mut buf,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("v1.{}", b64(&out)))
    }

    /// Opens what [`Sealer::seal`] produced.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(unb64)
            .ok_or(SealError)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_rejects_another_key_or_tampering() {
        let a = Sealer::new("a-secret-key-of-at-least-32-characters!").unwrap();
        let b = Sealer::new("another-secret-key-of-32-characters-ok").unwrap();
        let sealed = a.seal(b"private key").unwrap();
        assert_eq!(a.open(&sealed).unwrap(), b"private key");
        assert!(b.open(&sealed).is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(a.open(std::str::from_utf8(&tampered).unwrap()).is_err());
        assert_ne!(a.seal(b"x").unwrap(), a.seal(b"x").unwrap(), "fresh nonce");
    }

    #[test]
    fn tokens_are_random_and_digests_hex() {
        assert_ne!(random_token::<32>().unwrap(), random_token::<32>().unwrap());
        assert_eq!(random_token::<32>().unwrap().len(), 43);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd"));
    }
}
