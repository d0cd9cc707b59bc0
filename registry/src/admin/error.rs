//! The one place where registry errors become HTTP responses (problem+json, RFC 9457).
//!
//! Database details never reach the client: a store failure is logged here and answered
//! with a generic 503.

use crate::error::{Forced, RegistryError};
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_policies::document::LoadError;
use gatehouse_policies::lint::LintSeverity;
use gatehouse_policies::openapi::SpecError;
use gatehouse_policies::problem::{CONTENT_TYPE, FieldError, Problem, ProblemKind};

/// The most errors one problem lists (the detail says how many there are).
const MAX_LISTED_ERRORS: usize = 20;

/// Builds the problem for an error. Public so the CLI and tests can reuse the mapping.
pub fn problem_for(err: &RegistryError) -> Problem {
    match err {
        RegistryError::Unauthenticated => Problem::new(
            ProblemKind::Unauthorized,
            "send `Authorization: Bearer <token>` with a valid admin token",
        ),
        RegistryError::Forbidden { .. } => Problem::new(ProblemKind::Forbidden, err.to_string()),
        RegistryError::NotFound { .. } => Problem::new(ProblemKind::NotFound, err.to_string()),
        RegistryError::Duplicate { .. }
        | RegistryError::Transition { .. }
        | RegistryError::Conflict { .. }
        | RegistryError::RetireBeforeSunset { .. }
        | RegistryError::RetireBeforeNotice { .. } => {
            Problem::new(ProblemKind::Conflict, err.to_string())
        }
        RegistryError::SystemOfRecordClaimed {
            entity,
            system,
            api,
        } => Problem::new(ProblemKind::Conflict, err.to_string()).with_extension(
            "claimed_by",
            serde_json::json!({"entity": entity, "system": system, "api": api}),
        ),
        RegistryError::LintFailed { report, .. } => {
            Problem::new(ProblemKind::LintFailed, err.to_string())
                .with_errors(
                    report
                        .findings
                        .iter()
                        .filter(|f| f.severity == LintSeverity::Error)
                        .map(|f| FieldError {
                            location: "body".into(),
                            pointer: f.pointer.clone(),
                            message: format!("{}: {}", f.rule, f.message),
                        })
                        .collect(),
                )
                .with_extension("lint", report.to_json())
        }
        RegistryError::BreakingChange {
            against, report, ..
        } => Problem::new(ProblemKind::BreakingChange, err.to_string())
            .with_errors(
                report
                    .breaking()
                    .map(|f| FieldError {
                        location: "body".into(),
                        // A removal has no place in the new document: it is about the
                        // document as a whole, and the old pointer is in the extension.
                        pointer: f.new_pointer.clone().unwrap_or_default(),
                        message: match &f.operation {
                            Some(op) => format!("{}: {op}: {}", f.id, f.message),
                            None => format!("{}: {}", f.id, f.message),
                        },
                    })
                    .collect(),
            )
            .with_extension(
                "compatibility",
                serde_json::json!({
                    "against": against,
                    "summary": report.summary,
                    "findings": report.findings,
                }),
            ),
        RegistryError::ReasonRequired { what } => {
            Problem::new(ProblemKind::Unprocessable, err.to_string()).with_errors(vec![
                FieldError {
                    // `POST …/versions` takes it in the query (or a header); lifecycle
                    // routes in their JSON body.
                    location: match what {
                        Forced::BreakingChange => "query",
                        Forced::Deprecation | Forced::Retirement => "body",
                    }
                    .into(),
                    pointer: match what {
                        Forced::BreakingChange => "reason",
                        Forced::Deprecation | Forced::Retirement => "/reason",
                    }
                    .into(),
                    message: "required when forcing".into(),
                },
            ])
        }
        RegistryError::SunsetTooSoon { earliest, .. } => {
            Problem::new(ProblemKind::Unprocessable, err.to_string())
                .with_errors(vec![FieldError {
                    location: "body".into(),
                    pointer: "/sunset".into(),
                    message: format!("must be {earliest} or later"),
                }])
                .with_extension("earliest_sunset", earliest.to_string())
        }
        RegistryError::SuccessorRequired { newer, .. } => {
            Problem::new(ProblemKind::Unprocessable, err.to_string()).with_errors(vec![
                FieldError {
                    location: "body".into(),
                    pointer: "/successor".into(),
                    message: format!("required: `{newer}` is published in a newer major"),
                },
            ])
        }
        RegistryError::Invalid { field, message } => {
            Problem::new(ProblemKind::Unprocessable, err.to_string()).with_errors(vec![
                FieldError {
                    location: "body".into(),
                    pointer: format!("/{}", field.trim_start_matches('/')),
                    message: message.clone(),
                },
            ])
        }
        RegistryError::BadQuery { parameter, message } => {
            Problem::new(ProblemKind::BadRequest, err.to_string()).with_errors(vec![FieldError {
                location: "query".into(),
                pointer: parameter.clone(),
                message: message.clone(),
            }])
        }
        RegistryError::MalformedBody { .. } => {
            Problem::new(ProblemKind::BadRequest, err.to_string())
        }
        RegistryError::BodyTooLarge { .. }
        | RegistryError::InvalidSpec(SpecError::Load(LoadError::TooLarge { .. })) => {
            Problem::new(ProblemKind::PayloadTooLarge, err.to_string())
        }
        RegistryError::InvalidSpec(spec) => Problem::new(ProblemKind::InvalidSpec, err.to_string())
            .with_errors(vec![FieldError {
                location: "body".into(),
                pointer: spec_pointer(spec),
                message: spec.to_string(),
            }]),
        RegistryError::InvalidSchemas { errors } => {
            Problem::new(ProblemKind::InvalidSpec, err.to_string()).with_errors(
                errors
                    .iter()
                    .take(MAX_LISTED_ERRORS)
                    .map(|e| FieldError {
                        location: "body".into(),
                        pointer: e.pointer().to_owned(),
                        message: e.to_string(),
                    })
                    .collect(),
            )
        }
        RegistryError::Store(StoreError::BadUrl { .. }) | RegistryError::Store(_) => Problem::new(
            ProblemKind::StoreUnavailable,
            "the registry store is unavailable; try again",
        ),
    }
}

/// The JSON pointer a spec error names, or the document root.
fn spec_pointer(e: &SpecError) -> String {
    match e {
        SpecError::Missing { pointer }
        | SpecError::WrongType { pointer, .. }
        | SpecError::ExternalRef { pointer, .. }
        | SpecError::UnresolvedRef { pointer, .. }
        | SpecError::RefCycle { pointer }
        | SpecError::InvalidValue { pointer, .. }
        | SpecError::PathParamNotInTemplate { pointer, .. }
        | SpecError::UnknownSecurityScheme { pointer, .. } => pointer.clone(),
        SpecError::VersionNotSemver { .. } => "/info/version".into(),
        SpecError::Swagger2 { .. } => "/swagger".into(),
        SpecError::MissingOpenApi | SpecError::UnsupportedVersion { .. } => "/openapi".into(),
        SpecError::PathNotAbsolute { path } | SpecError::PathParamUndeclared { path, .. } => {
            format!(
                "/paths/{}",
                gatehouse_policies::openapi::escape_pointer(path)
            )
        }
        SpecError::Load(_) | SpecError::NotAnObject => String::new(),
    }
}

/// Writes a problem as a response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, problem.to_json()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if problem.kind == ProblemKind::Unauthorized {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatehouse-admin\""),
        );
    }
    response
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if let RegistryError::Store(e) = &self {
            tracing::error!(error = %e, "registry store failure");
        }
        problem_response(&problem_for(&self))
    }
}
