//! Data-driven checks of JWT verification against fixed vectors signed by PyJWT
//! (`tests/fixtures/jwt/make_vectors.py`), with the time as a parameter.

use super::*;
use crate::identity::jwks::KeySet;
use serde_json::Value;

const VECTORS: &str = include_str!("../../../../tests/fixtures/jwt/vectors.json");
/// 2026-06-01: inside every valid vector's lifetime.
const NOW: i64 = 1_780_272_000;

struct Fixture {
    vectors: Value,
}

impl Fixture {
    fn load() -> Self {
        Fixture {
            vectors: serde_json::from_str(VECTORS).expect("vectors.json is JSON"),
        }
    }

    fn policy(&self, name: &str) -> IssuerPolicy {
        let i = &self.vectors["issuers"][name];
        IssuerPolicy {
            issuer: i["issuer"].as_str().unwrap().to_owned(),
            audiences: vec![i["audiences"][0].as_str().unwrap().to_owned()],
            algorithms: i["algorithms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().parse().unwrap())
                .collect(),
            consumer_claim: ConsumerClaim::Sub,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
        }
    }

    fn keys(&self, issuer: &str, set: &str) -> KeySet {
        let (keys, skipped) =
            KeySet::from_value(&self.vectors["issuers"][issuer][set]).expect("a key set");
        assert!(skipped.is_empty(), "{skipped:?}");
        keys
    }

    fn token(&self, name: &str) -> (&str, &str, &str) {
        let t = &self.vectors["tokens"][name];
        (
            t["token"].as_str().unwrap(),
            t["issuer"].as_str().unwrap(),
            t["expect"].as_str().unwrap(),
        )
    }

    fn verify(&self, name: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        let (token, issuer, _) = self.token(name);
        let parsed = UnverifiedToken::parse(token)?;
        parsed.verify(&self.policy(issuer), &self.keys(issuer, "jwks"), now)
    }
}

/// The variant name of an outcome, as the vectors file spells it.
fn outcome(r: &Result<VerifiedToken, TokenError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => match e {
            TokenError::TooLong { .. } => "TooLong",
            TokenError::Malformed { .. } => "Malformed",
            TokenError::AlgorithmNotAllowed { .. } => "AlgorithmNotAllowed",
            TokenError::CriticalHeader => "CriticalHeader",
            TokenError::UnknownIssuer => "UnknownIssuer",
            TokenError::UnknownKid { .. } => "UnknownKid",
            TokenError::NoKey { .. } => "NoKey",
            TokenError::BadSignature => "BadSignature",
            TokenError::Expired { .. } => "Expired",
            TokenError::NotYetValid { .. } => "NotYetValid",
            TokenError::WrongIssuer => "WrongIssuer",
            TokenError::WrongAudience => "WrongAudience",
            TokenError::MissingClaim { .. } => "MissingClaim",
            TokenError::BadClaim { .. } => "BadClaim",
        },
    }
}

#[test]
fn every_vector_reaches_its_expected_outcome() {
    let f = Fixture::load();
    let names: Vec<String> = f.vectors["tokens"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(names.len() >= 20);
    for name in names {
        let (_, _, expect) = f.token(&name);
        let got = f.verify(&name, NOW);
        assert_eq!(outcome(&got), expect, "{name}: {got:?}");
    }
}

#[test]
fn valid_tokens_carry_consumer_scopes_and_expiry() {
    let f = Fixture::load();
    for (name, alg) in [
        ("rs256_valid", Alg::RS256),
        ("es256_valid", Alg::ES256),
        ("eddsa_valid", Alg::EdDSA),
        ("hs256_valid", Alg::HS256),
    ] {
        let v = f.verify(name, NOW).expect(name);
        assert_eq!(v.alg, alg, "{name}");
        assert_eq!(v.consumer, "b2b-portal");
        assert_eq!(v.scopes, ["inventory:read", "orders:read"], "{name}");
        assert_eq!(v.expires_at, 4_102_444_800);
    }
    assert!(f.verify("rs256_no_scope", NOW).unwrap().scopes.is_empty());
}

#[test]
fn expiry_and_not_before_allow_the_leeway_and_no_more() {
    let f = Fixture::load();
    let exp = 1_000_000_000;
    for (now, ok) in [(exp - 1, true), (exp + 60, true), (exp + 61, false)] {
        assert_eq!(
            f.verify("expired", now).is_ok(),
            ok,
            "now = exp {:+}",
            now - exp
        );
    }
    let nbf = 4_102_444_800;
    for (now, ok) in [(nbf - 61, false), (nbf - 60, true), (nbf, true)] {
        assert_eq!(
            f.verify("not_yet_valid", now).is_ok(),
            ok,
            "now = nbf {:+}",
            now - nbf
        );
    }
}

#[test]
fn rotation_adds_the_key_the_token_names() {
    let f = Fixture::load();
    let (token, issuer, _) = f.token("unknown_kid_rotated");
    let parsed = UnverifiedToken::parse(token).unwrap();
    let policy = f.policy(issuer);
    assert_eq!(
        parsed.verify(&policy, &f.keys(issuer, "jwks"), NOW),
        Err(TokenError::UnknownKid {
            kid: "rsa-2".into()
        })
    );
    assert!(
        parsed
            .verify(&policy, &f.keys(issuer, "jwks_rotated"), NOW)
            .is_ok()
    );
}

#[test]
fn the_issuer_pins_the_algorithm_not_the_token() {
    let f = Fixture::load();
    let (token, issuer, _) = f.token("es256_valid");
    let parsed = UnverifiedToken::parse(token).unwrap();
    let mut policy = f.policy(issuer);
    policy.algorithms = vec![Alg::RS256];
    assert!(matches!(
        parsed.verify(&policy, &f.keys(issuer, "jwks"), NOW),
        Err(TokenError::AlgorithmNotAllowed { .. })
    ));
    // Even an issuer that allows HS256 never verifies one with an RSA public key.
    let (token, _, _) = f.token("hs256_with_rsa_public_key");
    let parsed = UnverifiedToken::parse(token).unwrap();
    policy.algorithms = vec![Alg::RS256, Alg::HS256];
    assert_eq!(
        parsed.verify(&policy, &f.keys(issuer, "jwks"), NOW),
        Err(TokenError::NoKey { alg: Alg::HS256 })
    );
}

#[test]
fn consumer_claim_is_configurable() {
    let f = Fixture::load();
    let (token, issuer, _) = f.token("rs256_valid");
    let parsed = UnverifiedToken::parse(token).unwrap();
    let mut policy = f.policy(issuer);
    policy.consumer_claim = ConsumerClaim::Azp;
    assert_eq!(
        parsed.verify(&policy, &f.keys(issuer, "jwks"), NOW),
        Err(TokenError::MissingClaim { claim: "azp" })
    );
}

#[test]
fn malformed_tokens_are_refused_before_any_key_is_used() {
    let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let claims = b(r#"{"iss":"x"}"#);
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "Malformed"),
        ("abc".into(), "Malformed"),
        ("a.b".into(), "Malformed"),
        ("a.b.c.d.e".into(), "Malformed"),
        (format!("{}.{claims}.", b("[]")), "Malformed"),
        (format!("{}.{claims}.", b(r#"{"kid":"x"}"#)), "Malformed"),
        (
            format!("{}.{claims}.", b(r#"{"alg":"RS256","kid":7}"#)),
            "Malformed",
        ),
        (format!("!!.{claims}.x"), "Malformed"),
        (
            format!("{}.{claims}.x", b(r#"{"alg":"RS256","crit":["exp"]}"#)),
            "CriticalHeader",
        ),
        ("a".repeat(MAX_TOKEN_BYTES + 1), "TooLong"),
    ];
    for (token, expect) in cases {
        let got = UnverifiedToken::parse(&token).map(|_| unreachable_ok());
        assert_eq!(outcome(&got), expect, "{}", crate::redact::clip(&token, 40));
    }
}

fn unreachable_ok() -> VerifiedToken {
    VerifiedToken {
        issuer: String::new(),
        consumer: String::new(),
        scopes: Vec::new(),
        expires_at: 0,
        alg: Alg::HS256,
        kid: None,
    }
}

#[test]
fn alg_names_round_trip_and_none_is_not_one() {
    for a in Alg::ALL {
        assert_eq!(Alg::parse(a.as_str()), Some(a));
    }
    for bad in ["none", "None", "rs256", "HS512", ""] {
        assert_eq!(Alg::parse(bad), None, "{bad}");
    }
}
