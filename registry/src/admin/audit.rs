//! The auditor's routes: the access log (a JSON page, or a streamed CSV / NDJSON export),
//! change-log verification with an optional anchor, and the deprecation-readiness report.
//!
//! Exports stream rows from the database into the response body as they are read, a few
//! hundred at a time (`Store::stream_access`), so memory stays flat however large the export.
//! A failure half-way ends the body abruptly (the chunked encoding is not terminated) so a
//! client never mistakes a cut export for a complete one.

use super::{AdminState, Authed, Query, decode_cursor, encode_cursor, parse_time};
use crate::access::{AccessCursor, AccessFilter, AccessRecord, Decision, StatusFilter, csv_header};
use crate::error::{RegistryError, Result};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

/// Records gathered into one chunk of an export body.
const EXPORT_CHUNK_ROWS: usize = 256;

/// `GET /audit/access` query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessQuery {
    from: Option<String>,
    to: Option<String>,
    consumer: Option<String>,
    api: Option<String>,
    major: Option<u64>,
    status: Option<String>,
    decision: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    /// `csv` or `ndjson`: the same as asking for it with `Accept`.
    format: Option<String>,
}

/// How the caller wants the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Page,
    Csv,
    Ndjson,
}

impl Format {
    fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Result<Format> {
        match query {
            Some("csv") => return Ok(Format::Csv),
            Some("ndjson") => return Ok(Format::Ndjson),
            Some("json") => return Ok(Format::Page),
            Some(other) => {
                return Err(RegistryError::BadQuery {
                    parameter: "format".into(),
                    message: format!("`{other}` is not a format (json, csv, ndjson)"),
                });
            }
            None => {}
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/x-ndjson") {
            Format::Ndjson
        } else {
            Format::Page
        })
    }
}

impl AccessQuery {
    fn filter(&self, format: Format) -> Result<AccessFilter> {
        let bad = |parameter: &str, message: String| RegistryError::BadQuery {
            parameter: parameter.into(),
            message,
        };
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                AccessCursor::decode(&decode_cursor(c)?)
                    .ok_or_else(|| bad("cursor", "not a cursor this API returned".into()))?,
            ),
        };
        Ok(AccessFilter {
            from: self
                .from
                .as_deref()
                .map(|t| parse_time("from", t))
                .transpose()?,
            to: self
                .to
                .as_deref()
                .map(|t| parse_time("to", t))
                .transpose()?,
            consumer: self.consumer.clone(),
            api: self.api.clone(),
            major: self.major,
            status: self
                .status
                .as_deref()
                .map(|s| s.parse::<StatusFilter>().map_err(|m| bad("status", m)))
                .transpose()?,
            decision: self
                .decision
                .as_deref()
                .map(|d| {
                    d.parse::<Decision>()
                        .map_err(|e| bad("decision", e.to_string()))
                })
                .transpose()?,
            after,
            limit: match format {
                Format::Page => self.limit.unwrap_or(100).clamp(1, 1000),
                // An export is everything that matches unless a limit is asked for.
                Format::Csv | Format::Ndjson => self.limit.unwrap_or(0),
            },
        })
    }
}

pub(super) async fn list_access(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Query(q): Query<AccessQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let format = Format::negotiate(q.format.as_deref(), &headers)?;
    let filter = q.filter(format)?;
    if format == Format::Page {
        let items = s.registry.list_access(&a, &filter).await?;
        let next = (items.len() >= filter.limit as usize)
            .then(|| items.last())
            .flatten()
            .map(|r| encode_cursor(&AccessCursor::after(r).encode()));
        return Ok(Json(json!({"items": items, "next_cursor": next})).into_response());
    }
    let rows = s.registry.stream_access(&a, filter)?;
    let (content_type, extension, header_line) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", Some(csv_header())),
        _ => ("application/x-ndjson", "ndjson", None),
    };
    let line = move |r: &AccessRecord| match format {
        Format::Csv => r.to_csv_line(),
        _ => r.to_ndjson_line(),
    };
    let body =
        futures::stream::iter(header_line.map(|h| Ok(Bytes::from(h))))
            .chain(rows.ready_chunks(EXPORT_CHUNK_ROWS).map(move |chunk| {
            let mut out = String::with_capacity(chunk.len() * 320);
            for row in chunk {
                match row {
                    Ok(r) => out.push_str(&line(&r)),
                    Err(error) => {
                        tracing::error!(%error, "access-log export failed; the body is cut short");
                        return Err(std::io::Error::other("the export failed"));
                    }
                }
            }
            Ok(Bytes::from(out))
        }));
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"access-{stamp}.{extension}\""
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET /audit/changes/verify?anchor=HASH`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyQuery {
    anchor: Option<String>,
}

pub(super) async fn verify_changes(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<crate::audit::ChainReport>> {
    Ok(Json(
        s.registry
            .verify_changes(&a, q.anchor.as_deref().map(str::trim))
            .await?,
    ))
}

pub(super) async fn deprecations(
    State(s): State<AdminState>,
    Authed(a): Authed,
) -> Result<Json<crate::audit::DeprecationReport>> {
    Ok(Json(
        s.registry
            .deprecation_report(&a, OffsetDateTime::now_utc())
            .await?,
    ))
}
