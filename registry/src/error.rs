//! The registry's error type: every way a registry operation can be refused.
//!
//! The admin API turns these into problem+json in exactly one place (`admin::error`).

use crate::store::StoreError;
use gatehouse_policies::openapi::SpecError;
use gatehouse_policies::validate::CompileError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("missing or invalid admin token")]
    Unauthenticated,
    #[error("role `{role}` may not {action}")]
    Forbidden { role: String, action: String },
    #[error("{entity} `{key}` does not exist")]
    NotFound { entity: &'static str, key: String },
    #[error("{entity} `{key}` already exists")]
    Duplicate { entity: &'static str, key: String },
    #[error("`{field}` is invalid: {message}")]
    Invalid { field: String, message: String },
    #[error("the request body is not valid JSON for this operation: {message}")]
    MalformedBody { message: String },
    #[error("the request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("`{parameter}` is invalid: {message}")]
    BadQuery { parameter: String, message: String },
    #[error("the spec is invalid: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("version `{version}` of `{api}` is {from}; it cannot become {to}")]
    Transition {
        api: String,
        version: String,
        from: String,
        to: String,
    },
    #[error("{message}")]
    Conflict { message: String },
    /// The spec parses, but some of its schemas cannot be compiled into validators.
    #[error(
        "the spec has {} schema(s) the gateway cannot compile into validators; first: {}",
        errors.len(),
        errors.first().map(ToString::to_string).unwrap_or_default()
    )]
    InvalidSchemas { errors: Vec<CompileError> },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { entity, key } => RegistryError::Duplicate { entity, key },
            StoreError::NotFound { entity, key } => RegistryError::NotFound { entity, key },
            StoreError::SystemOfRecordClaimed {
                entity,
                system,
                api,
            } => RegistryError::Conflict {
                message: format!(
                    "entity `{entity}` already has a system of record: `{system}`, declared by API `{api}`"
                ),
            },
            other => RegistryError::Store(other),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
