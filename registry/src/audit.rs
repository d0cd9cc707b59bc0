//! The auditor's two questions beyond raw records: has anybody rewritten the change log
//! (hash-chain verification that names the first entry edited, removed or reordered), and who
//! still calls a deprecated version (the deprecation-readiness report).
//!
//! Both are computed from the store through [`Registry`](crate::Registry); the classification
//! and the report's arithmetic are plain functions here, tested without a database.

use crate::access::OperationCallers;
use crate::model::{ChangeEntry, Version};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// How an entry of the change log was tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tamper {
    /// Its content no longer matches its hash, or its hash no longer matches what its
    /// successor recorded (edited, hash recomputed).
    Edited,
    /// It is missing: the sequence has a gap there (or, with an anchor, the log ends early).
    Removed,
    /// It sits before an entry it was written after.
    Reordered,
}

/// The first entry found tampered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// The sequence number of the entry that was edited, removed or moved.
    pub seq: i64,
    pub kind: Tamper,
    pub message: String,
}

/// What an anchored head hash told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    pub hash: String,
    /// Whether the intact part of the chain contains it.
    pub found: bool,
    /// The entry that carries it.
    pub seq: Option<i64>,
}

/// The outcome of walking the change log's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub ok: bool,
    /// Entries read (up to and including the first bad one).
    pub entries: u64,
    /// The sequence of the last good entry (0: none).
    pub head_seq: i64,
    /// The hash of the last good entry: anchor it outside the system (print it, keep it)
    /// and pass it back as `anchor` later to detect truncation.
    pub head: String,
    pub first_bad: Option<BadEntry>,
    pub anchor: Option<AnchorCheck>,
}

/// What the verifier sees at one position, and how it names the damage.
///
/// `expected` is the sequence the position should hold and `head` the hash of the entry
/// before it. `predecessor` is the entry whose hash `entry.prev_hash` names, if any exists
/// anywhere in the log (the caller looks it up only when the link is broken).
pub fn classify(
    expected: i64,
    head: &str,
    entry: &ChangeEntry,
    predecessor: Option<&ChangeEntry>,
) -> Option<BadEntry> {
    if entry.seq != expected {
        let last_missing = entry.seq - 1;
        let range = if last_missing > expected {
            format!("entries {expected} to {last_missing} are")
        } else {
            format!("entry {expected} is")
        };
        return Some(BadEntry {
            seq: expected,
            kind: Tamper::Removed,
            message: format!(
                "{range} missing: the log jumps from {} to {}",
                expected - 1,
                entry.seq
            ),
        });
    }
    if entry.prev_hash != head {
        if let Some(p) = predecessor
            && p.seq != entry.seq - 1
        {
            return Some(BadEntry {
                seq: entry.seq,
                kind: Tamper::Reordered,
                message: format!(
                    "entry {} was written after the entry now numbered {}: entries were reordered",
                    entry.seq, p.seq
                ),
            });
        }
        if entry.compute_hash() == entry.hash && entry.seq > 1 {
            return Some(BadEntry {
                seq: entry.seq - 1,
                kind: Tamper::Edited,
                message: format!(
                    "entry {} no longer has the hash entry {} recorded for it: it was edited and its hash recomputed",
                    entry.seq - 1,
                    entry.seq
                ),
            });
        }
        return Some(BadEntry {
            seq: entry.seq,
            kind: Tamper::Edited,
            message: format!(
                "entry {} does not link to its predecessor: it was edited",
                entry.seq
            ),
        });
    }
    if entry.compute_hash() != entry.hash {
        return Some(BadEntry {
            seq: entry.seq,
            kind: Tamper::Edited,
            message: format!(
                "entry {}'s content does not match its hash: it was edited",
                entry.seq
            ),
        });
    }
    None
}

/// The anchor verdict once the walk is done: an anchor that is not in the intact chain means
/// the log was cut short (or the anchor is from another registry).
pub fn check_anchor(report: &mut ChainReport, anchor: &str, found_at: Option<i64>) {
    report.anchor = Some(AnchorCheck {
        hash: anchor.to_owned(),
        found: found_at.is_some(),
        seq: found_at,
    });
    if found_at.is_none() && report.first_bad.is_none() {
        report.ok = false;
        report.first_bad = Some(BadEntry {
            seq: report.head_seq + 1,
            kind: Tamper::Removed,
            message: format!(
                "the anchored hash is not in the log, which ends at entry {}: entries after it were removed (or the anchor belongs to another registry)",
                report.head_seq
            ),
        });
    }
}

// -- deprecation readiness ---------------------------------------------------------------

/// Calls of one consumer to one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationUsage {
    pub operation: String,
    pub calls_7d: u64,
    pub calls_30d: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// One consumer still calling a deprecated version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerUsage {
    /// `None`: calls no credential identified.
    pub consumer: Option<String>,
    pub calls_7d: u64,
    pub calls_30d: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub operations: Vec<OperationUsage>,
}

/// One deprecated version and who still calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeprecatedVersion {
    pub api: String,
    pub version: String,
    pub major: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deprecated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sunset_at: Option<OffsetDateTime>,
    /// Whole days until the sunset, rounded up (0 on the day; negative once past).
    pub days_to_sunset: Option<i64>,
    pub successor: Option<String>,
    pub calls_7d: u64,
    pub calls_30d: u64,
    /// No call in the last 30 days: retiring it affects nobody who called recently.
    pub ready: bool,
    pub consumers: Vec<ConsumerUsage>,
}

/// `GET /reports/deprecations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeprecationReport {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub items: Vec<DeprecatedVersion>,
}

/// Whole days from `now` to `sunset`, rounded up.
pub fn days_to(now: OffsetDateTime, sunset: OffsetDateTime) -> i64 {
    let seconds = (sunset - now).whole_seconds();
    seconds.div_euclid(86_400) + i64::from(seconds.rem_euclid(86_400) != 0)
}

/// Joins the callers of the last 30 days and of the last 7 days into one version's entry.
/// Consumers are ordered by calls in the last 30 days, most first, then by name.
pub fn deprecated_version(
    version: &Version,
    callers_30d: &[OperationCallers],
    callers_7d: &[OperationCallers],
    now: OffsetDateTime,
) -> DeprecatedVersion {
    let mut by_consumer: BTreeMap<Option<String>, Vec<OperationUsage>> = BTreeMap::new();
    for c in callers_30d {
        let recent = callers_7d
            .iter()
            .find(|r| r.consumer == c.consumer && r.operation == c.operation)
            .map_or(0, |r| r.calls);
        by_consumer
            .entry(c.consumer.clone())
            .or_default()
            .push(OperationUsage {
                operation: c.operation.clone(),
                calls_7d: recent,
                calls_30d: c.calls,
                last_seen: c.last_seen,
            });
    }
    let mut consumers: Vec<ConsumerUsage> = by_consumer
        .into_iter()
        .filter_map(|(consumer, operations)| {
            let last_seen = operations.iter().map(|o| o.last_seen).max()?;
            Some(ConsumerUsage {
                calls_7d: operations.iter().map(|o| o.calls_7d).sum(),
                calls_30d: operations.iter().map(|o| o.calls_30d).sum(),
                last_seen,
                consumer,
                operations,
            })
        })
        .collect();
    consumers.sort_by(|a, b| {
        b.calls_30d
            .cmp(&a.calls_30d)
            .then_with(|| a.consumer.cmp(&b.consumer))
    });
    let calls_30d: u64 = consumers.iter().map(|c| c.calls_30d).sum();
    DeprecatedVersion {
        api: version.api.clone(),
        version: version.version.clone(),
        major: version.major,
        deprecated_at: version.deprecated_at,
        sunset_at: version.sunset_at,
        days_to_sunset: version.sunset_at.map(|s| days_to(now, s)),
        successor: version.successor.clone(),
        calls_7d: consumers.iter().map(|c| c.calls_7d).sum(),
        calls_30d,
        ready: calls_30d == 0,
        consumers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LifecycleState, Role};
    use time::macros::datetime;

    fn chain(n: i64) -> Vec<ChangeEntry> {
        let mut out: Vec<ChangeEntry> = Vec::new();
        for seq in 1..=n {
            let prev_hash = out
                .last()
                .map_or(ChangeEntry::GENESIS.to_owned(), |e| e.hash.clone());
            let mut e = ChangeEntry {
                seq,
                at: datetime!(2026-03-02 12:00 UTC),
                actor: "system".into(),
                role: Role::Admin,
                action: "team.create".into(),
                target: format!("team/t{seq}"),
                before_digest: None,
                after_digest: None,
                reason: None,
                prev_hash,
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            out.push(e);
        }
        out
    }

    /// Walks `entries` (already in seq order) as the registry does.
    fn walk(entries: &[ChangeEntry]) -> Option<BadEntry> {
        let mut head = ChangeEntry::GENESIS.to_owned();
        let mut expected = 1;
        for e in entries {
            let pred = entries.iter().find(|p| p.hash == e.prev_hash);
            if let Some(bad) = classify(expected, &head, e, pred) {
                return Some(bad);
            }
            head = e.hash.clone();
            expected = e.seq + 1;
        }
        None
    }

    #[test]
    fn an_intact_chain_has_no_bad_entry() {
        assert_eq!(walk(&chain(5)), None);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        let bad = walk(&c).unwrap();
        assert_eq!((bad.seq, bad.kind), (3, Tamper::Edited));
        // Edited with its hash recomputed: its successor names it.
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        c[2].hash = c[2].compute_hash();
        let bad = walk(&c).unwrap();
        assert_eq!((bad.seq, bad.kind), (3, Tamper::Edited), "{}", bad.message);
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut c = chain(5);
        c.remove(2);
        let bad = walk(&c).unwrap();
        assert_eq!((bad.seq, bad.kind), (3, Tamper::Removed));
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(walk(&c).unwrap().seq, 1);
    }

    #[test]
    fn swapped_entries_are_named_reordered() {
        let mut c = chain(5);
        c[2].seq = 4;
        c[3].seq = 3;
        c.swap(2, 3);
        let bad = walk(&c).unwrap();
        assert_eq!(
            (bad.seq, bad.kind),
            (3, Tamper::Reordered),
            "{}",
            bad.message
        );
    }

    #[test]
    fn a_missing_anchor_means_truncation() {
        let mut report = ChainReport {
            ok: true,
            entries: 3,
            head_seq: 3,
            head: "h3".into(),
            first_bad: None,
            anchor: None,
        };
        check_anchor(&mut report, "h5", None);
        assert!(!report.ok);
        assert_eq!(report.first_bad.as_ref().map(|b| b.seq), Some(4));
        let mut report = ChainReport {
            ok: true,
            entries: 3,
            head_seq: 3,
            head: "h3".into(),
            first_bad: None,
            anchor: None,
        };
        check_anchor(&mut report, "h2", Some(2));
        assert!(report.ok);
    }

    #[test]
    fn days_round_up() {
        let now = datetime!(2026-03-02 12:00 UTC);
        assert_eq!(days_to(now, datetime!(2026-03-02 12:00 UTC)), 0);
        assert_eq!(days_to(now, datetime!(2026-03-02 13:00 UTC)), 1);
        assert_eq!(days_to(now, datetime!(2026-03-04 12:00 UTC)), 2);
        assert_eq!(days_to(now, datetime!(2026-03-01 12:00 UTC)), -1);
    }

    #[test]
    fn the_report_joins_both_windows() {
        let now = datetime!(2026-03-02 12:00 UTC);
        let seen = datetime!(2026-03-01 12:00 UTC);
        let c = |consumer: Option<&str>, op: &str, calls| OperationCallers {
            consumer: consumer.map(str::to_owned),
            operation: op.into(),
            calls,
            last_seen: seen,
        };
        let version = Version {
            api: "inventory".into(),
            version: "1.4.2".into(),
            major: 1,
            state: LifecycleState::Deprecated,
            spec_raw: Vec::new(),
            spec_json: String::new(),
            sha256: String::new(),
            content_type: String::new(),
            deprecated_at: Some(now),
            sunset_at: Some(datetime!(2026-04-01 12:00 UTC)),
            successor: Some("2.1.0".into()),
            deprecation_link: None,
            brownouts: Vec::new(),
            created_by: String::new(),
            created_at: now,
            updated_by: String::new(),
            updated_at: now,
        };
        let d = deprecated_version(
            &version,
            &[
                c(Some("b2b-portal"), "getAvailability", 10),
                c(Some("b2b-portal"), "listWarehouses", 2),
                c(Some("edi"), "getAvailability", 20),
            ],
            &[c(Some("b2b-portal"), "getAvailability", 3)],
            now,
        );
        assert_eq!(d.days_to_sunset, Some(30));
        assert_eq!((d.calls_7d, d.calls_30d, d.ready), (3, 32, false));
        assert_eq!(d.consumers[0].consumer.as_deref(), Some("edi"));
        assert_eq!(d.consumers[1].calls_30d, 12);
        assert_eq!(d.consumers[1].operations[0].calls_7d, 3);
    }
}
