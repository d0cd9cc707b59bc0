//! JSON Web Key Sets (RFC 7517): an issuer's published keys parsed into verification keys,
//! each pinned to the algorithms its key type can serve.
//!
//! A key set is untrusted input from the network (or an administrator's paste), so parsing
//! is strict about what it keeps and lenient about what it skips: a key of a type Gatehouse
//! does not verify with (an encryption key, an unknown curve, an RSA key under 2048 bits) is
//! left out with a reason, and the rest of the set still serves. A set that is not a JWKS at
//! all is refused as a whole, so a broken response never replaces good keys.

use super::jwt::Alg;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use std::fmt;

/// The most keys one set may hold; more is refused (a key set is a handful of keys).
pub const MAX_KEYS: usize = 64;
/// The largest key set document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The smallest RSA modulus accepted, in bits (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// The type of a verification key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `kty: RSA`: RS256/384/512 and PS256/384/512.
    Rsa,
    /// `kty: EC, crv: P-256`: ES256 only.
    EcP256,
    /// `kty: EC, crv: P-384`: ES384 only.
    EcP384,
    /// `kty: OKP, crv: Ed25519`: EdDSA only.
    Ed25519,
    /// `kty: oct`: a shared secret, HS256 only.
    Oct,
}

impl KeyKind {
    /// Whether a key of this type may verify a signature made with `alg`. This, not the
    /// token's header, is what rules out RS/HS confusion: an RSA public key is never used as
    /// an HMAC secret, whatever the token claims.
    pub fn allows(self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (
                KeyKind::Rsa,
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ) | (KeyKind::EcP256, Alg::ES256)
                | (KeyKind::EcP384, Alg::ES384)
                | (KeyKind::Ed25519, Alg::EdDSA)
                | (KeyKind::Oct, Alg::HS256)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "OKP Ed25519",
            KeyKind::Oct => "oct",
        }
    }
}

/// One key that may verify signatures.
#[derive(Clone)]
pub struct VerifyKey {
    /// The key id (`kid`), when the set names one.
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The algorithm the key is restricted to (`alg` member), when the set says.
    pub alg: Option<Alg>,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material: an oct key is a shared secret.
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Whether this key may verify a token signed with `alg`: its type allows the algorithm
    /// and, when the key names an algorithm, it is that one.
    pub fn accepts(&self, alg: Alg) -> bool {
        self.kind.allows(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// A key the parser left out, and why (for logs and the admin API's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: String,
}

/// Why a document is not a usable key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the key set is {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the key set is not JSON: {message}")]
    NotJson { message: String },
    #[error("the key set is not an object with a `keys` array")]
    NoKeys,
    #[error("the key set has {count} keys, over the limit of {max}")]
    TooManyKeys { count: usize, max: usize },
}

/// An issuer's verification keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot verify are skipped and
    /// reported; a document that is not a key set fails whole.
    pub fn parse(bytes: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                len: bytes.len(),
                max: MAX_JWKS_BYTES,
            });
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| JwksError::NotJson {
            message: e.to_string(),
        })?;
        Self::from_value(&value)
    }

    /// As [`KeySet::parse`], from a JSON value already read.
    pub fn from_value(value: &Value) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeys)?;
        if keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys {
                count: keys.len(),
                max: MAX_KEYS,
            });
        }
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (index, jwk) in keys.iter().enumerate() {
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            match jwk
                .as_object()
                .ok_or("a key is not an object")
                .and_then(parse_key)
            {
                Ok(key) => set.keys.push(key),
                Err(reason) => skipped.push(SkippedKey {
                    index,
                    kid,
                    reason: reason.to_owned(),
                }),
            }
        }
        Ok((set, skipped))
    }

    /// The keys that may verify a token signed with `alg` and naming `kid`. A token that
    /// names a key id is only ever checked against keys with that id; one that names none is
    /// checked against every key of a fitting type. `kid` is never used for anything but this
    /// comparison: no URL in a token (`jku`, `x5u`) is ever followed.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Alg,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(move |k| k.accepts(alg))
    }

    /// Whether any key carries this id (whatever its type).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key ids, in set order (for logs and `GET /issuers`).
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }

    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// This set followed by `other`'s keys (inline keys plus fetched ones).
    #[must_use]
    pub fn merged(&self, other: &KeySet) -> KeySet {
        let mut keys = self.keys.clone();
        keys.extend(other.keys.iter().cloned());
        KeySet { keys }
    }
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn b64_len(text: &str) -> Result<usize, &'static str> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map(|b| b.len())
        .map_err(|_| "a key member is not base64url")
}

/// The size in bits of a base64url big-endian RSA modulus.
fn rsa_bits(n: &str) -> Result<usize, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(n.trim_end_matches('='))
        .map_err(|_| "a key member is not base64url")?;
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    Ok(match significant.first() {
        None => 0,
        Some(top) => significant.len() * 8 - top.leading_zeros() as usize,
    })
}

/// One JWK to a verification key, or the reason it is skipped.
fn parse_key(jwk: &Map<String, Value>) -> Result<VerifyKey, &'static str> {
    if let Some(u) = jwk.get("use")
        && u.as_str() != Some("sig")
    {
        return Err("the key is not for signatures (`use` is not `sig`)");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err("the key's `key_ops` does not include `verify`");
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(a) => Some(
            a.as_str()
                .and_then(Alg::parse)
                .ok_or("the key names an algorithm Gatehouse does not verify")?,
        ),
    };
    let kty = member(jwk, "kty").ok_or("the key has no `kty`")?;
    let (kind, key) = match kty {
        "RSA" => {
            let n = member(jwk, "n").ok_or("an RSA key needs `n`")?;
            let e = member(jwk, "e").ok_or("an RSA key needs `e`")?;
            if rsa_bits(n)? < MIN_RSA_BITS {
                return Err("the RSA key is shorter than 2048 bits");
            }
            b64_len(e)?;
            let key = DecodingKey::from_rsa_components(n, e)
                .map_err(|_| "the RSA key's `n` or `e` is not valid")?;
            (KeyKind::Rsa, key)
        }
        "EC" => {
            let (kind, size) = match member(jwk, "crv") {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                _ => return Err("only EC keys on P-256 and P-384 are supported"),
            };
            let x = member(jwk, "x").ok_or("an EC key needs `x`")?;
            let y = member(jwk, "y").ok_or("an EC key needs `y`")?;
            if b64_len(x)? != size || b64_len(y)? != size {
                return Err("the EC key's coordinates do not fit its curve");
            }
            let key = DecodingKey::from_ec_components(x, y)
                .map_err(|_| "the EC key's coordinates are not valid")?;
            (kind, key)
        }
        "OKP" => {
            if member(jwk, "crv") != Some("Ed25519") {
                return Err("only OKP keys on Ed25519 are supported");
            }
            let x = member(jwk, "x").ok_or("an OKP key needs `x`")?;
            if b64_len(x)? != 32 {
                return Err("the Ed25519 key is not 32 bytes");
            }
            let key =
                DecodingKey::from_ed_components(x).map_err(|_| "the Ed25519 key is not valid")?;
            (KeyKind::Ed25519, key)
        }
        "oct" => {
            let k = member(jwk, "k").ok_or("an oct key needs `k`")?;
            let secret = URL_SAFE_NO_PAD
                .decode(k.trim_end_matches('='))
                .map_err(|_| "the oct key's `k` is not base64url")?;
            // RFC 7518 section 3.2: an HS256 key must be at least as long as the hash.
            if secret.len() < 32 {
                return Err("the oct key is shorter than 256 bits");
            }
            (KeyKind::Oct, DecodingKey::from_secret(&secret))
        }
        _ => return Err("the key type is not supported (RSA, EC, OKP, oct)"),
    };
    if let Some(a) = alg
        && !kind.allows(a)
    {
        return Err("the key's `alg` does not fit its type");
    }
    Ok(VerifyKey {
        kid: member(jwk, "kid").map(str::to_owned),
        kind,
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(n: usize, fill: u8) -> String {
        URL_SAFE_NO_PAD.encode(vec![fill; n])
    }

    fn parse(v: Value) -> (KeySet, Vec<SkippedKey>) {
        KeySet::from_value(&v).expect("a key set")
    }

    #[test]
    fn keys_of_each_supported_type_are_kept() {
        let (set, skipped) = parse(json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": b64(256, 0xc5), "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "EC", "kid": "e256", "crv": "P-256", "x": b64(32, 1), "y": b64(32, 2)},
            {"kty": "EC", "kid": "e384", "crv": "P-384", "x": b64(48, 1), "y": b64(48, 2)},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(32, 3)},
            {"kty": "oct", "kid": "h", "k": b64(32, 4)},
        ]}));
        assert_eq!(skipped, []);
        let kinds: Vec<KeyKind> = set.keys().iter().map(|k| k.kind).collect();
        assert_eq!(
            kinds,
            [
                KeyKind::Rsa,
                KeyKind::EcP256,
                KeyKind::EcP384,
                KeyKind::Ed25519,
                KeyKind::Oct
            ]
        );
        assert_eq!(set.kids(), ["r", "e256", "e384", "ed", "h"]);
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let cases = [
            (
                json!({"kty": "RSA", "n": b64(128, 0xc5), "e": "AQAB"}),
                "2048",
            ),
            (
                json!({"kty": "RSA", "n": b64(256, 0xc5), "e": "AQAB", "use": "enc"}),
                "signatures",
            ),
            (
                json!({"kty": "RSA", "n": b64(256, 0xc5), "e": "AQAB", "alg": "none"}),
                "algorithm",
            ),
            (
                json!({"kty": "RSA", "n": b64(256, 0xc5), "e": "AQAB", "alg": "HS256"}),
                "fit its type",
            ),
            (
                json!({"kty": "RSA", "n": b64(256, 0xc5), "e": "AQAB", "key_ops": ["encrypt"]}),
                "verify",
            ),
            (
                json!({"kty": "EC", "crv": "P-521", "x": b64(66, 1), "y": b64(66, 1)}),
                "P-256",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": b64(48, 1), "y": b64(48, 1)}),
                "curve",
            ),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": b64(32, 1)}),
                "Ed25519",
            ),
            (json!({"kty": "oct", "k": b64(16, 1)}), "256 bits"),
            (json!({"kty": "oct", "k": "!!"}), "base64url"),
            (json!({"kty": "XYZ"}), "not supported"),
            (json!({"n": "x"}), "kty"),
            (json!("not an object"), "object"),
        ];
        for (jwk, why) in cases {
            let (set, skipped) = parse(json!({"keys": [jwk.clone()]}));
            assert!(set.is_empty(), "{jwk} was kept");
            assert!(
                skipped[0].reason.contains(why),
                "{jwk}: {}",
                skipped[0].reason
            );
        }
    }

    #[test]
    fn documents_that_are_not_key_sets_fail_whole() {
        assert_eq!(KeySet::parse(b"[]").unwrap_err(), JwksError::NoKeys);
        assert!(matches!(
            KeySet::parse(b"{").unwrap_err(),
            JwksError::NotJson { .. }
        ));
        let many: Vec<Value> = (0..=MAX_KEYS).map(|_| json!({"kty": "oct"})).collect();
        assert!(matches!(
            KeySet::from_value(&json!({ "keys": many })).unwrap_err(),
            JwksError::TooManyKeys { .. }
        ));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(
            KeySet::parse(&big).unwrap_err(),
            JwksError::TooLarge { .. }
        ));
    }

    #[test]
    fn candidates_are_pinned_by_kid_and_key_type() {
        let (set, _) = parse(json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": b64(256, 0xc5), "e": "AQAB"},
            {"kty": "oct", "kid": "b", "k": b64(32, 4)},
            {"kty": "RSA", "kid": "c", "n": b64(256, 0xc5), "e": "AQAB", "alg": "PS256"},
        ]}));
        let kids = |kid: Option<&str>, alg| -> Vec<String> {
            set.candidates(kid, alg)
                .filter_map(|k| k.kid.clone())
                .collect()
        };
        assert_eq!(kids(Some("a"), Alg::RS256), ["a"]);
        // An RSA key is never an HMAC secret, whatever the token says.
        assert!(kids(Some("a"), Alg::HS256).is_empty());
        assert_eq!(kids(None, Alg::HS256), ["b"]);
        assert_eq!(kids(None, Alg::RS256), ["a"]);
        assert_eq!(kids(None, Alg::PS256), ["a", "c"]);
        assert!(kids(Some("zzz"), Alg::RS256).is_empty());
        assert!(set.has_kid("b") && !set.has_kid("zzz"));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let (set, _) = parse(json!({"keys": [{"kty": "oct", "kid": "h", "k": b64(32, 0x41)}]}));
        let text = format!("{set:?}");
        assert!(
            !text.contains(&b64(32, 0x41)) && !text.contains("65, 65"),
            "{text}"
        );
    }
}
