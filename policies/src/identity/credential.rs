//! The credentials a request presents (`X-API-Key`, `Authorization: Bearer`), read strictly
//! and bounded, and the API-key check (constant-time, against the stored SHA-256).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

/// The longest `Authorization` value read, in bytes: a bearer token plus its scheme. Larger
/// values are refused before any parsing (the same bound as the token itself, plus room).
pub const MAX_AUTHORIZATION_BYTES: usize = super::jwt::MAX_TOKEN_BYTES + 16;
/// The longest `X-API-Key` value read (Gatehouse keys are 56 characters).
pub const MAX_API_KEY_BYTES: usize = 256;

/// What a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    ApiKey(&'a str),
    Bearer(&'a str),
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Reads the credential of a request from its `Authorization` and `X-API-Key` values (raw
/// header bytes). Exactly one credential must be presented; an `Authorization` header of
/// another scheme (e.g. `Basic`) is ignored when an API key is presented.
pub fn presented<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<Presented<'a>, AuthError> {
    let key = match api_key {
        None => None,
        Some(raw) => {
            if raw.len() > MAX_API_KEY_BYTES {
                return Err(AuthError::TooLarge {
                    header: "x-api-key",
                    len: raw.len(),
                    max: MAX_API_KEY_BYTES,
                });
            }
            let text = std::str::from_utf8(raw)
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or(AuthError::Malformed {
                    what: "the X-API-Key value is not a key",
                })?;
            Some(text)
        }
    };
    let bearer = match authorization {
        None => None,
        Some(raw) => {
            if raw.len() > MAX_AUTHORIZATION_BYTES {
                return Err(AuthError::TooLarge {
                    header: "authorization",
                    len: raw.len(),
                    max: MAX_AUTHORIZATION_BYTES,
                });
            }
            let text = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed {
                what: "the Authorization value is not text",
            })?;
            let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
            if scheme.eq_ignore_ascii_case("bearer") {
                let token = rest.trim_start_matches(' ');
                if !is_b64token(token) {
                    return Err(AuthError::Malformed {
                        what: "the bearer token is not a token",
                    });
                }
                Some(token)
            } else if key.is_some() {
                None
            } else {
                return Err(AuthError::UnsupportedScheme);
            }
        }
    };
    match (key, bearer) {
        (Some(_), Some(_)) => Err(AuthError::TwoCredentials),
        (Some(k), None) => Ok(Presented::ApiKey(k)),
        (None, Some(t)) => Ok(Presented::Bearer(t)),
        (None, None) => Err(AuthError::Missing),
    }
}

/// What the gateway knows about one API key: compiled from the registry into the snapshot.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    pub consumer: String,
    /// Unix milliseconds after which the key is refused.
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("consumer", &self.consumer)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl ApiKeyRecord {
    /// A record from the registry's hex hash; `None` when the hash is not 32 hex bytes.
    pub fn from_hex(
        hash_hex: &str,
        consumer: String,
        expires_at_ms: Option<i64>,
        revoked: bool,
    ) -> Option<Self> {
        let bytes = hex::decode(hash_hex).ok()?;
        Some(ApiKeyRecord {
            hash: bytes.try_into().ok()?,
            consumer,
            expires_at_ms,
            revoked,
        })
    }
}

/// The visible key id of a presented key: `ghk_3f9a2c1b` of `ghk_3f9a2c1b.…`.
pub fn api_key_id(presented: &str) -> Option<&str> {
    let (id, rest) = presented.split_once('.')?;
    let hex_part = id.strip_prefix("ghk_")?;
    (hex_part.len() == 8 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty())
        .then_some(id)
}

/// Checks a presented key against the record its id names (`None`: no such id), at `now_ms`.
/// The hash comparison is constant-time; a revoked or expired key is reported as such only
/// after the secret matched, so the answer says nothing about keys the caller does not hold.
pub fn check_api_key(
    presented: &str,
    record: Option<&ApiKeyRecord>,
    now_ms: i64,
) -> Result<(), AuthError> {
    let Some(record) = record else {
        return Err(AuthError::UnknownKey);
    };
    let digest = Sha256::digest(presented.as_bytes());
    if !bool::from(digest.as_slice().ct_eq(&record.hash)) {
        return Err(AuthError::UnknownKey);
    }
    if record.revoked {
        return Err(AuthError::KeyRevoked);
    }
    if record.expires_at_ms.is_some_and(|e| now_ms >= e) {
        return Err(AuthError::KeyExpired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_credentials() {
        let key = b"ghk_0123abcd.secret";
        fn ok<'a>(a: Option<&'a [u8]>, k: Option<&'a [u8]>) -> Result<Presented<'a>, AuthError> {
            presented(a, k)
        }
        assert_eq!(
            ok(None, Some(key)),
            Ok(Presented::ApiKey("ghk_0123abcd.secret"))
        );
        assert_eq!(
            ok(Some(b"Bearer a.b.c"), None),
            Ok(Presented::Bearer("a.b.c"))
        );
        assert_eq!(
            ok(Some(b"bearer  a.b-_c=="), None),
            Ok(Presented::Bearer("a.b-_c=="))
        );
        assert_eq!(
            ok(Some(b"Basic dXNlcg=="), Some(key)),
            Ok(Presented::ApiKey("ghk_0123abcd.secret"))
        );
        assert_eq!(ok(None, None), Err(AuthError::Missing));
        assert_eq!(
            ok(Some(b"Bearer a.b.c"), Some(key)),
            Err(AuthError::TwoCredentials)
        );
        assert_eq!(
            ok(Some(b"Basic dXNlcg=="), None),
            Err(AuthError::UnsupportedScheme)
        );
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff",
            b"Bearer a\"b",
        ] {
            assert!(
                matches!(ok(Some(bad), None), Err(AuthError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            ok(None, Some(b"a b")),
            Err(AuthError::Malformed { .. })
        ));
        let huge = vec![b'a'; 64 * 1024];
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(&huge);
        assert!(matches!(
            ok(Some(&bearer), None),
            Err(AuthError::TooLarge { .. })
        ));
        assert!(matches!(
            ok(None, Some(&huge)),
            Err(AuthError::TooLarge { .. })
        ));
    }

    #[test]
    fn key_ids() {
        assert_eq!(api_key_id("ghk_0123abcd.x"), Some("ghk_0123abcd"));
        for bad in [
            "ghk_0123abcd.",
            "gha_0123abcd.x",
            "ghk_0123abc.x",
            "ghk_0123abcz.x",
            "x",
        ] {
            assert_eq!(api_key_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn api_key_checks() {
        let key = "ghk_0123abcd.c2VjcmV0";
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        let rec = |expires, revoked| {
            ApiKeyRecord::from_hex(&hash, "portal".into(), expires, revoked).expect("a hash")
        };
        let now = 1_000;
        assert_eq!(check_api_key(key, Some(&rec(None, false)), now), Ok(()));
        assert_eq!(
            check_api_key(key, Some(&rec(Some(1_001), false)), now),
            Ok(())
        );
        assert_eq!(
            check_api_key(key, Some(&rec(Some(1_000), false)), now),
            Err(AuthError::KeyExpired)
        );
        assert_eq!(
            check_api_key(key, Some(&rec(None, true)), now),
            Err(AuthError::KeyRevoked)
        );
        // A wrong secret under a real id says nothing about the key's state.
        assert_eq!(
            check_api_key("ghk_0123abcd.other", Some(&rec(None, true)), now),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(check_api_key(key, None, now), Err(AuthError::UnknownKey));
        assert!(ApiKeyRecord::from_hex("abc", "x".into(), None, false).is_none());
        assert!(!format!("{:?}", rec(None, false)).contains(&hash[..8]));
    }
}
