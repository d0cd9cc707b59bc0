//! Generating, recognising and hashing API keys and admin tokens.
//!
//! A secret looks like `ghk_3f9a2c1b.Xk…` (API key) or `gha_…` (admin token): a visible id
//! (the prefix and 32 random bits in hex) so that a leaked key can be recognised in a report
//! without revealing it, a dot, then 256 random bits in base64url. Only the SHA-256 of the
//! whole secret is stored. With 256 bits of entropy a fast hash is not reversible, and it keeps
//! the gateway's lookup cheap; comparison is constant-time.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What kind of secret, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A consumer's API key, presented as `X-API-Key`.
    ApiKey,
    /// An admin-API token, presented as `Authorization: Bearer`.
    AdminToken,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "ghk_",
            SecretKind::AdminToken => "gha_",
        }
    }
}

/// A freshly generated secret: shown once, then only `id` and `hash` are kept.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub id: String,
    pub secret: String,
    pub hash: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Generates a new secret of a kind.
pub fn generate(kind: SecretKind) -> NewSecret {
    let mut rng = rand::rng();
    let mut id_bytes = [0u8; 4];
    rng.fill_bytes(&mut id_bytes);
    let mut secret_bytes = [0u8; 32];
    rng.fill_bytes(&mut secret_bytes);
    let id = format!("{}{}", kind.prefix(), hex::encode(id_bytes));
    let secret = format!(
        "{id}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes)
    );
    let hash = hash(&secret);
    NewSecret { id, secret, hash }
}

/// The stored form of a secret: hex SHA-256.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The visible id of a presented secret (`ghk_3f9a2c1b` of `ghk_3f9a2c1b.…`), if it has one.
pub fn visible_id(secret: &str) -> Option<&str> {
    let (id, rest) = secret.split_once('.')?;
    (id.len() == 12 && !rest.is_empty() && (id.starts_with("ghk_") || id.starts_with("gha_")))
        .then_some(id)
}

/// Whether a presented secret matches a stored hash, in constant time.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    let computed = hash(presented);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_a_visible_id_and_verify() {
        let k = generate(SecretKind::ApiKey);
        assert!(k.secret.starts_with("ghk_"));
        assert_eq!(visible_id(&k.secret), Some(k.id.as_str()));
        assert!(verify(&k.secret, &k.hash));
        assert!(!verify(&format!("{}x", k.secret), &k.hash));
        assert!(!format!("{k:?}").contains(&k.secret));
        // 256 bits in base64url: 43 characters after the dot.
        assert_eq!(k.secret.split_once('.').unwrap().1.len(), 43);
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(
            generate(SecretKind::AdminToken).secret,
            generate(SecretKind::AdminToken).secret
        );
    }

    #[test]
    fn visible_id_refuses_other_shapes() {
        assert_eq!(visible_id("nope"), None);
        assert_eq!(visible_id("ghk_12.x"), None);
        assert_eq!(visible_id("xyz_12345678.abc"), None);
    }
}
