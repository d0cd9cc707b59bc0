//! JWT verification (RFC 7519, RFC 7515 compact form) against one trusted issuer's policy and
//! keys, with the time as a parameter.
//!
//! The rules, each of which a well-known gateway has got wrong in public:
//! - The algorithm is pinned by the issuer's allowed list **and** by the key's type; the
//!   token's header only selects among what both allow. `none` is never an algorithm, and an
//!   RSA public key is never used as an HMAC secret (see [`KeyKind::allows`]).
//! - `iss` and `aud` are always checked; `exp` is required; `exp` and `nbf` allow the
//!   issuer's leeway.
//! - `kid` is untrusted input: it is only compared with the ids of the issuer's own keys.
//!   `jku`, `x5u` and `x5c` are ignored, never followed; a `crit` header is refused (RFC 7515
//!   section 4.1.11: extensions we do not understand must not be accepted).
//!
//! Verification is two steps so a gateway can choose the issuer before it verifies:
//! [`UnverifiedToken::parse`] decodes the header and claims (nothing in them is trusted yet),
//! then [`UnverifiedToken::verify`] checks them against the issuer the `iss` claim names.
//!
//! [`KeyKind::allows`]: super::jwks::KeyKind::allows

use super::jwks::KeySet;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// The longest token accepted, in bytes. Real access tokens are well under 4 KiB; the cap
/// bounds the work an attacker can make the gateway do before any signature check.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The default leeway for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
/// The largest leeway an issuer may configure, in seconds.
pub const MAX_LEEWAY_SECONDS: u64 = 600;
/// How many keys a token without `kid` is tried against at most.
const MAX_KEYS_TRIED: usize = 4;

/// The signature algorithms Gatehouse verifies. `none` is deliberately absent.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
}

impl Alg {
    pub const ALL: [Alg; 10] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
    ];

    /// The JOSE name, e.g. `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
        }
    }

    /// Parses a JOSE name exactly (case-sensitive, as RFC 7518 says).
    pub fn parse(text: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whether the algorithm uses a shared secret (HMAC).
    pub fn is_symmetric(self) -> bool {
        self == Alg::HS256
    }

    fn backend(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Alg::RS256 => A::RS256,
            Alg::RS384 => A::RS384,
            Alg::RS512 => A::RS512,
            Alg::PS256 => A::PS256,
            Alg::PS384 => A::PS384,
            Alg::PS512 => A::PS512,
            Alg::ES256 => A::ES256,
            Alg::ES384 => A::ES384,
            Alg::EdDSA => A::EdDSA,
            Alg::HS256 => A::HS256,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not an algorithm Gatehouse verifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a supported algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256)"
)]
pub struct UnknownAlg(pub String);

impl FromStr for Alg {
    type Err = UnknownAlg;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Alg::parse(s).ok_or_else(|| UnknownAlg(s.to_owned()))
    }
}

/// Which claim names the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsumerClaim {
    /// `sub` (the default).
    #[default]
    Sub,
    /// `azp`, the authorised party (OpenID Connect).
    Azp,
    /// `client_id` (RFC 9068, OAuth 2.0 access tokens).
    ClientId,
}

impl ConsumerClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerClaim::Sub => "sub",
            ConsumerClaim::Azp => "azp",
            ConsumerClaim::ClientId => "client_id",
        }
    }

    pub fn parse(text: &str) -> Option<ConsumerClaim> {
        Some(match text {
            "sub" => ConsumerClaim::Sub,
            "azp" => ConsumerClaim::Azp,
            "client_id" => ConsumerClaim::ClientId,
            _ => return None,
        })
    }
}

/// What one trusted issuer allows: compiled from the registry's issuer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPolicy {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// The algorithms this issuer signs with.
    pub algorithms: Vec<Alg>,
    pub consumer_claim: ConsumerClaim,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_seconds: u64,
}

/// A token whose signature and claims checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: String,
    /// The value of the issuer's consumer claim.
    pub consumer: String,
    /// Scopes from `scope` (space-separated) or `scp` (array or space-separated).
    pub scopes: Vec<String>,
    /// `exp`, Unix seconds: the token may be cached until then (plus leeway).
    pub expires_at: i64,
    pub alg: Alg,
    pub kid: Option<String>,
}

/// Why a bearer token is refused. Every variant is a 401 `invalid_token`; the texts never
/// quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("the token is not a JWT: {reason}")]
    Malformed { reason: &'static str },
    #[error("algorithm `{alg}` is not accepted from this issuer")]
    AlgorithmNotAllowed { alg: String },
    #[error("the token has a `crit` header, which Gatehouse does not support")]
    CriticalHeader,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's key id is not in its issuer's key set")]
    UnknownKid { kid: String },
    #[error("no key of the issuer may verify an {alg} signature")]
    NoKey { alg: Alg },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid yet")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the token is not for this issuer")]
    WrongIssuer,
    #[error("the token is not for this audience")]
    WrongAudience,
    #[error("the token lacks the `{claim}` claim")]
    MissingClaim { claim: &'static str },
    #[error("the token's `{claim}` claim is malformed")]
    BadClaim { claim: &'static str },
}

/// The header members Gatehouse looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// `alg` as written (may be `none` or anything else: checked at verification).
    pub alg: String,
    pub kid: Option<String>,
}

/// A decoded but not yet verified token: nothing here is to be trusted except for choosing
/// which issuer's rules and keys to verify it with.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'t> {
    pub header: TokenHeader,
    claims: Map<String, Value>,
    /// `base64url(header) . base64url(claims)`: what the signature covers.
    signing_input: &'t str,
    signature: &'t str,
}

fn decode_part(part: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed { reason: what })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed { reason: what }),
    }
}

impl<'t> UnverifiedToken<'t> {
    /// Splits and decodes a compact JWS. Refuses anything but three base64url parts whose
    /// first two are JSON objects, and tokens over [`MAX_TOKEN_BYTES`].
    pub fn parse(token: &'t str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed {
            reason: "not three dot-separated parts",
        })?;
        let (header_b64, claims_b64) =
            signing_input.split_once('.').ok_or(TokenError::Malformed {
                reason: "not three dot-separated parts",
            })?;
        if claims_b64.contains('.') {
            return Err(TokenError::Malformed {
                reason: "not three dot-separated parts (JWE is not accepted)",
            });
        }
        let header = decode_part(header_b64, "the header is not base64url JSON")?;
        let claims = decode_part(claims_b64, "the claims are not base64url JSON")?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(TokenError::Malformed {
                reason: "the header has no `alg`",
            })?
            .to_owned();
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                return Err(TokenError::Malformed {
                    reason: "the header's `kid` is not a string",
                });
            }
        };
        Ok(UnverifiedToken {
            header: TokenHeader { alg, kid },
            claims,
            signing_input,
            signature,
        })
    }

    /// The `iss` claim, to choose the issuer with. Not trusted until [`Self::verify`].
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Verifies the token for `policy` with its issuer's `keys`, at `now` (Unix seconds).
    pub fn verify(
        &self,
        policy: &IssuerPolicy,
        keys: &KeySet,
        now: i64,
    ) -> Result<VerifiedToken, TokenError> {
        // 1. The algorithm: the issuer must allow what the header says ("none" never parses).
        let alg = Alg::parse(&self.header.alg)
            .filter(|a| policy.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgorithmNotAllowed {
                alg: crate::redact::clip(&self.header.alg, 40),
            })?;

        // 2. The key: only the issuer's own, of a type that fits the algorithm.
        let kid = self.header.kid.as_deref();
        let mut tried = 0;
        let mut verified = false;
        for key in keys.candidates(kid, alg).take(MAX_KEYS_TRIED) {
            tried += 1;
            let ok = jsonwebtoken::crypto::verify(
                self.signature,
                self.signing_input.as_bytes(),
                &key.key,
                alg.backend(),
            )
            .unwrap_or(false);
            if ok {
                verified = true;
                break;
            }
        }
        if tried == 0 {
            return Err(match kid {
                Some(kid) if !keys.has_kid(kid) => TokenError::UnknownKid {
                    kid: crate::redact::clip(kid, 40),
                },
                _ => TokenError::NoKey { alg },
            });
        }
        if !verified {
            return Err(TokenError::BadSignature);
        }

        // 3. The claims, now that they are the issuer's.
        if self.issuer() != Some(policy.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        let leeway = i64::try_from(policy.leeway_seconds.min(MAX_LEEWAY_SECONDS)).unwrap_or(60);
        let exp = self
            .numeric_date("exp")?
            .ok_or(TokenError::MissingClaim { claim: "exp" })?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired { exp, now });
        }
        if let Some(nbf) = self.numeric_date("nbf")?
            && now.saturating_add(leeway) < nbf
        {
            return Err(TokenError::NotYetValid { nbf, now });
        }
        self.check_audience(&policy.audiences)?;
        let claim = policy.consumer_claim.as_str();
        let consumer = match self.claims.get(claim) {
            None => return Err(TokenError::MissingClaim { claim }),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(TokenError::BadClaim { claim }),
        };
        Ok(VerifiedToken {
            issuer: policy.issuer.clone(),
            consumer,
            scopes: self.scopes()?,
            expires_at: exp,
            alg,
            kid: self.header.kid.clone(),
        })
    }

    /// A NumericDate claim (RFC 7519 section 2): seconds, possibly fractional.
    fn numeric_date(&self, claim: &'static str) -> Result<Option<i64>, TokenError> {
        match self.claims.get(claim) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let secs = n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.is_finite())
                            .map(|f| f.floor() as i64)
                    })
                    .ok_or(TokenError::BadClaim { claim })?;
                Ok(Some(secs))
            }
            Some(_) => Err(TokenError::BadClaim { claim }),
        }
    }

    fn check_audience(&self, accepted: &[String]) -> Result<(), TokenError> {
        let named = |a: &str| accepted.iter().any(|x| x == a);
        match self.claims.get("aud") {
            None => Err(TokenError::MissingClaim { claim: "aud" }),
            Some(Value::String(a)) => named(a).then_some(()).ok_or(TokenError::WrongAudience),
            Some(Value::Array(list)) => {
                if list.iter().any(|a| !a.is_string()) {
                    return Err(TokenError::BadClaim { claim: "aud" });
                }
                list.iter()
                    .filter_map(Value::as_str)
                    .any(named)
                    .then_some(())
                    .ok_or(TokenError::WrongAudience)
            }
            Some(_) => Err(TokenError::BadClaim { claim: "aud" }),
        }
    }

    /// `scope` (RFC 8693/9068: space-separated string) and `scp` (array, or string as some
    /// providers send it), merged.
    fn scopes(&self) -> Result<Vec<String>, TokenError> {
        let mut scopes: Vec<String> = Vec::new();
        for claim in ["scope", "scp"] {
            match self.claims.get(claim) {
                None => {}
                Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
                Some(Value::Array(list)) => {
                    for item in list {
                        let s = item.as_str().ok_or(TokenError::BadClaim { claim })?;
                        scopes.extend(s.split_whitespace().map(str::to_owned));
                    }
                }
                Some(_) => return Err(TokenError::BadClaim { claim }),
            }
        }
        scopes.sort_unstable();
        scopes.dedup();
        Ok(scopes)
    }
}

#[cfg(test)]
mod tests;
