//! Consumer identity, decided without I/O: which credential a request presents, whether it
//! is genuine (API keys, JWTs against trusted issuers' keys), and whether the consumer may
//! call the operation (subscription and OpenAPI scopes). Time is always a parameter.
//!
//! - [`credential`]: reading `X-API-Key` / `Authorization: Bearer`, and the API-key check.
//! - [`jwt`]: JWT verification for one issuer's policy and keys.
//! - [`jwks`]: parsing JSON Web Key Sets into keys pinned to their algorithms.
//! - [`authz`]: the scope decision from the operation's `security`, subscription coverage.
//!
//! Every refusal is a [`Refusal`], which knows its status (401 or 403), its RFC 6750
//! `WWW-Authenticate` challenge and its problem+json body. The texts never quote a
//! credential.

pub mod authz;
pub mod credential;
pub mod jwks;
pub mod jwt;

pub use authz::{CredentialKind, Decision, SecurityPolicy, covers};
pub use credential::{ApiKeyRecord, Presented, api_key_id, check_api_key, presented};
pub use jwks::{JwksError, KeyKind, KeySet, SkippedKey, VerifyKey};
pub use jwt::{Alg, ConsumerClaim, IssuerPolicy, TokenError, UnverifiedToken, VerifiedToken};

use crate::problem::{Problem, ProblemKind};

/// The realm named in every challenge.
pub const REALM: &str = "gatehouse";

/// Why a request's credential does not identify a consumer: always a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send `X-API-Key: <key>` or `Authorization: Bearer <token>`")]
    Missing,
    #[error("two credentials: send either an API key or a bearer token, not both")]
    TwoCredentials,
    #[error("the Authorization scheme is not supported: use `Bearer`")]
    UnsupportedScheme,
    #[error("{what}")]
    Malformed { what: &'static str },
    #[error("the {header} header is {len} bytes, over the limit of {max}")]
    TooLarge {
        header: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the API key is not valid")]
    UnknownKey,
    #[error("the API key has been revoked")]
    KeyRevoked,
    #[error("the API key has expired")]
    KeyExpired,
    #[error("{0}")]
    Token(#[from] TokenError),
}

impl AuthError {
    /// Whether a credential was presented at all (RFC 6750 section 3.1: a challenge to a
    /// request without credentials carries no error code).
    pub fn presented(&self) -> bool {
        !matches!(self, AuthError::Missing | AuthError::UnsupportedScheme)
    }
}

/// Why the gateway refuses a request for identity reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no, unknown, expired or invalid credential.
    Unauthenticated(AuthError),
    /// 401: the operation does not accept this kind of credential.
    CredentialNotAccepted { accepted: Vec<CredentialKind> },
    /// 403: the consumer has no subscription covering this API and major.
    NotSubscribed {
        consumer: String,
        api: String,
        major: u64,
    },
    /// 403 `insufficient_scope`.
    InsufficientScope { missing: Vec<String> },
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Refusal::Unauthenticated(e)
    }
}

impl Refusal {
    /// The HTTP status: 401 or 403.
    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    fn kind(&self) -> ProblemKind {
        match self {
            Refusal::Unauthenticated(_) | Refusal::CredentialNotAccepted { .. } => {
                ProblemKind::Unauthorized
            }
            Refusal::NotSubscribed { .. } => ProblemKind::Forbidden,
            Refusal::InsufficientScope { .. } => ProblemKind::InsufficientScope,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 section 3): `invalid_token` for a credential
    /// that was presented and refused, no error code when none was, `insufficient_scope`
    /// with the missing scopes for a 403 of scope. `None` for "not subscribed", which no
    /// other token would fix.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            Refusal::Unauthenticated(e) if e.presented() => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                description(e)
            )),
            Refusal::Unauthenticated(_) | Refusal::CredentialNotAccepted { .. } => {
                Some(format!("Bearer realm=\"{REALM}\""))
            }
            Refusal::InsufficientScope { missing } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                missing
                    .iter()
                    .map(|s| scope_token(s))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Refusal::NotSubscribed { .. } => None,
        }
    }

    /// The problem+json body (without `instance`, which the gateway adds).
    pub fn problem(&self) -> Problem {
        match self {
            Refusal::Unauthenticated(e) => Problem::new(self.kind(), e.to_string()),
            Refusal::CredentialNotAccepted { accepted } => {
                let detail = if accepted.is_empty() {
                    "this operation requires a credential Gatehouse cannot check".to_owned()
                } else {
                    format!(
                        "this operation accepts: {}",
                        accepted
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                };
                Problem::new(self.kind(), detail)
            }
            Refusal::NotSubscribed {
                consumer,
                api,
                major,
            } => Problem::new(
                self.kind(),
                format!("consumer `{consumer}` has no subscription to {api} v{major}"),
            ),
            Refusal::InsufficientScope { missing } => Problem::new(
                self.kind(),
                format!("the operation requires the scopes: {}", missing.join(" ")),
            )
            .with_extension("missing_scopes", missing.clone()),
        }
    }
}

/// An `error_description` (RFC 6750: printable ASCII without `"` and `\`). Fixed texts per
/// kind: the description never echoes the token or its claims.
fn description(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing | AuthError::UnsupportedScheme => "no credential",
        AuthError::TwoCredentials => "more than one credential",
        AuthError::Malformed { .. } | AuthError::TooLarge { .. } => "malformed credential",
        AuthError::UnknownKey => "unknown API key",
        AuthError::KeyRevoked => "revoked API key",
        AuthError::KeyExpired => "expired API key",
        AuthError::Token(t) => match t {
            TokenError::TooLong { .. } | TokenError::Malformed { .. } => "malformed token",
            TokenError::AlgorithmNotAllowed { .. } | TokenError::CriticalHeader => {
                "algorithm not accepted"
            }
            TokenError::UnknownIssuer | TokenError::WrongIssuer => "untrusted issuer",
            TokenError::UnknownKid { .. } | TokenError::NoKey { .. } => "unknown signing key",
            TokenError::BadSignature => "invalid signature",
            TokenError::Expired { .. } => "token expired",
            TokenError::NotYetValid { .. } => "token not yet valid",
            TokenError::WrongAudience => "wrong audience",
            TokenError::MissingClaim { .. } | TokenError::BadClaim { .. } => {
                "missing or malformed claim"
            }
        },
    }
}

/// A scope as it may appear in a quoted `scope` attribute (RFC 6749 `scope-token` is
/// `%x21 / %x23-5B / %x5D-7E`): anything else is dropped.
fn scope_token(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        let missing = Refusal::Unauthenticated(AuthError::Missing);
        assert_eq!(missing.status(), 401);
        assert_eq!(
            missing.www_authenticate().unwrap(),
            "Bearer realm=\"gatehouse\""
        );

        let expired = Refusal::from(AuthError::Token(TokenError::Expired { exp: 1, now: 2 }));
        assert_eq!(expired.status(), 401);
        assert_eq!(
            expired.www_authenticate().unwrap(),
            "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"token expired\""
        );

        let scope = Refusal::InsufficientScope {
            missing: vec!["orders:write".into(), "x\"y".into()],
        };
        assert_eq!(scope.status(), 403);
        assert_eq!(
            scope.www_authenticate().unwrap(),
            "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"orders:write xy\""
        );
        let body = scope.problem().to_value();
        assert_eq!(body["type"], "urn:gatehouse:problem:insufficient-scope");
        assert_eq!(body["missing_scopes"][0], "orders:write");

        let sub = Refusal::NotSubscribed {
            consumer: "p".into(),
            api: "orders".into(),
            major: 1,
        };
        assert_eq!((sub.status(), sub.www_authenticate()), (403, None));
    }

    #[test]
    fn descriptions_are_safe_to_quote() {
        let errors = [
            AuthError::Missing,
            AuthError::TwoCredentials,
            AuthError::Malformed { what: "x" },
            AuthError::UnknownKey,
            AuthError::Token(TokenError::UnknownKid {
                kid: "\"k\"".into(),
            }),
            AuthError::Token(TokenError::AlgorithmNotAllowed { alg: "\\".into() }),
        ];
        for e in errors {
            let d = description(&e);
            assert!(
                d.bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            );
        }
    }
}
