//! The key that signs tokens, parsed once when the key ring loads it.
//!
//! `jsonwebtoken::encode` takes the private key as bytes and parses it
//! again for every token: for Ed25519 that re-derives the public key, a
//! scalar multiplication as costly as the signature itself, and for RSA it
//! re-validates the whole key. Every login and refresh signs a token, so
//! the parsed key is kept here and the token assembled in JWS compact form
//! (RFC 7515 §7.1: `b64url(header).b64url(claims).b64url(signature)`), the
//! same bytes `jsonwebtoken::encode` produces (a test compares them).
//! Verification stays with `jsonwebtoken`.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::crypto::b64;
use crate::jwt::TokenError;

/// A parsed private key.
enum Key {
    Ed25519(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// The current signing key: its kid, algorithm and parsed private half.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    alg: Algorithm,
    key: Arc<Key>,
}

impl Signer {
    /// Parses `pkcs8_der`, the private key of `kid` for `alg` (EdDSA or RS256).
    pub fn new(kid: String, alg: Algorithm, pkcs8_der: &[u8]) -> anyhow::Result<Self> {
        let key = match alg {
            Algorithm::EdDSA => Key::Ed25519(
                Ed25519KeyPair::from_pkcs8(pkcs8_der)
                    .map_err(|_| anyhow::anyhow!("signing key {kid}: not an Ed25519 key"))?,
            ),
            Algorithm::RS256 => Key::Rs256(
                RsaKeyPair::from_pkcs8(pkcs8_der)
                    .map_err(|_| anyhow::anyhow!("signing key {kid}: not an RSA key"))?,
            ),
            other => anyhow::bail!("signing key {kid}: unsupported algorithm {other:?}"),
        };
        Ok(Self {
            kid,
            alg,
            key: Arc::new(key),
        })
    }

    /// The key's id (`kid` header).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `claims` signed, with the header `{alg, typ, kid}`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, TokenError> {
        let mut header = Header::new(self.alg);
        header.typ = Some(typ.into());
        header.kid = Some(self.kid.clone());
        let mut token = part(&header)?;
        token.push('.');
        token.push_str(&part(claims)?);
        let signature = match self.key.as_ref() {
            Key::Ed25519(k) => k.sign(token.as_bytes()).as_ref().to_vec(),
            Key::Rs256(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    token.as_bytes(),
                    &mut out,
                )
                .map_err(|_| TokenError::Rejected("RSA signing failed".into()))?;
                out
            }
        };
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }
}

/// One part of the token: `value`'s JSON, base64url-encoded.
fn part<T: Serialize + ?Sized>(value: &T) -> Result<String, TokenError> {
    serde_json::to_vec(value)
        .map(|json| b64(&json))
        .map_err(|e| TokenError::Rejected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use jsonwebtoken::{DecodingKey, EncodingKey, Validation};

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "user-1".into(),
            exp: 4_000_000_000,
        }
    }

    fn reference(alg: Algorithm, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims(), key).unwrap()
    }

    #[test]
    fn ed25519_tokens_are_jsonwebtokens_own_bytes() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let signer = Signer::new("k1".into(), Algorithm::EdDSA, doc.as_ref()).unwrap();
        let token = signer.sign("at+jwt", &claims()).unwrap();
        // Ed25519 is deterministic: the same key and input give the same bytes.
        assert_eq!(
            token,
            reference(Algorithm::EdDSA, &EncodingKey::from_ed_der(doc.as_ref()))
        );
        let public = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_ed_der(aws_lc_rs::signature::KeyPair::public_key(&public).as_ref()),
            &Validation::new(Algorithm::EdDSA),
        )
        .unwrap();
        assert_eq!(decoded.claims, claims());
        assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
        assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
    }

    /// jsonwebtoken reads RSA DER only as PKCS#1; aws-lc writes PKCS#8.
    fn pkcs8_pem(der: &[u8]) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    #[test]
    fn rs256_tokens_are_jsonwebtokens_own_bytes() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let signer = Signer::new("k1".into(), Algorithm::RS256, der.as_ref()).unwrap();
        let token = signer.sign("at+jwt", &claims()).unwrap();
        // PKCS#1 v1.5 signatures are deterministic too.
        let pem = pkcs8_pem(der.as_ref());
        assert_eq!(
            token,
            reference(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
            )
        );
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        assert!(Signer::new("k1".into(), Algorithm::RS256, doc.as_ref()).is_err());
        assert!(Signer::new("k1".into(), Algorithm::HS256, doc.as_ref()).is_err());
        assert!(Signer::new("k1".into(), Algorithm::EdDSA, b"not a key").is_err());
    }
}
