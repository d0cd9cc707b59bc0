//! The one OpenAPI model of the project: what the registry stores, the gateway routes and
//! validates by, and the diff and lint engines compare.
//!
//! OpenAPI 3.0.x and 3.1.x both map into it. Structure the gateway and the governance
//! checks navigate (paths, operations, parameters, bodies, responses, security) is typed;
//! schemas stay JSON values (`Schema`) with the JSON pointer where they sit, because their
//! consumers (the JSON Schema validator, the structural diff) work on JSON and must follow
//! `$ref`s through [`Document::resolve`]. Parameter, body, response and example `$ref`s are
//! resolved at ingest, so every consumer sees them inline.
//!
//! Why not a crate: `openapiv3` models 3.0 only and `oas3` models 3.1 only; either would
//! leave one version as a second model. Both keep schemas as typed trees that the
//! validator would have to serialise back to JSON anyway.

mod ingest;

pub use ingest::{SpecError, parse, parse_value};

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The OpenAPI line a document belongs to; decides how its schemas are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Dialect {
    /// OpenAPI 3.0.x: schemas are the OpenAPI 3.0 subset/superset of JSON Schema draft 4
    /// (`nullable`, boolean `exclusiveMinimum`, `$ref` siblings ignored).
    #[serde(rename = "3.0")]
    V30,
    /// OpenAPI 3.1.x: schemas are JSON Schema 2020-12.
    #[serde(rename = "3.1")]
    V31,
}

/// A parsed, checked OpenAPI document.
#[derive(Debug, Clone)]
pub struct Document {
    pub dialect: Dialect,
    /// The `openapi` field as written, e.g. `3.0.3`.
    pub openapi: String,
    pub info: Info,
    /// Path items in document order.
    pub paths: Vec<PathItem>,
    /// Top-level `security`: applies to operations that do not name their own.
    pub security: Vec<SecurityRequirement>,
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// The whole document as JSON: the base that schema `$ref`s resolve against.
    pub tree: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub title: String,
    pub version: semver::Version,
    pub description: Option<String>,
    pub contact: Option<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub url: Option<String>,
}

/// One entry of `paths`.
#[derive(Debug, Clone)]
pub struct PathItem {
    /// The template as written, e.g. `/orders/{order_number}`.
    pub template: String,
    pub pointer: String,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
    Options,
    Head,
    Patch,
    Trace,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// The lower-case key used in an OpenAPI path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }

    /// The HTTP method token, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }

    /// Parses an HTTP method token (case-sensitive, as HTTP says).
    pub fn from_http(token: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == token)
    }

    /// Whether the method is idempotent (RFC 9110 section 9.2.2): such requests may be retried.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation (method × path), with path-level parameters merged in.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    /// The path template this operation belongs to.
    pub path: String,
    /// JSON pointer of the operation object, e.g. `/paths/~1orders/post`.
    pub pointer: String,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub deprecated: bool,
    /// `x-sunset` as written (a date), when the operation declares one.
    pub sunset: Option<String>,
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    pub responses: Vec<Response>,
    /// The operation's own `security`; `None` means the document's applies.
    pub security: Option<Vec<SecurityRequirement>>,
}

impl Operation {
    /// A name for humans and logs: the operation id, or `METHOD /path`.
    pub fn display_name(&self) -> String {
        match &self.operation_id {
            Some(id) => id.clone(),
            None => format!("{} {}", self.method, self.path),
        }
    }

    /// The security requirements that apply: the operation's own or the document's.
    pub fn effective_security<'a>(&'a self, doc: &'a Document) -> &'a [SecurityRequirement] {
        self.security.as_deref().unwrap_or(&doc.security)
    }

    /// Finds the response for a status code: exact code, then `NXX` range, then `default`.
    pub fn response_for(&self, status: u16) -> Option<&Response> {
        self.responses
            .iter()
            .find(|r| r.status == ResponseStatus::Code(status))
            .or_else(|| {
                let class = u8::try_from(status / 100).ok()?;
                self.responses
                    .iter()
                    .find(|r| r.status == ResponseStatus::Range(class))
            })
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|r| r.status == ResponseStatus::Default)
            })
    }

    pub fn parameter(&self, location: ParamIn, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| {
            p.location == location
                && if location == ParamIn::Header {
                    p.name.eq_ignore_ascii_case(name)
                } else {
                    p.name == name
                }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamIn {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamIn::Path => "path",
            ParamIn::Query => "query",
            ParamIn::Header => "header",
            ParamIn::Cookie => "cookie",
        }
    }
}

/// Serialization style of a parameter (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ParamStyle {
    Simple,
    Label,
    Matrix,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl ParamStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamStyle::Simple => "simple",
            ParamStyle::Label => "label",
            ParamStyle::Matrix => "matrix",
            ParamStyle::Form => "form",
            ParamStyle::SpaceDelimited => "spaceDelimited",
            ParamStyle::PipeDelimited => "pipeDelimited",
            ParamStyle::DeepObject => "deepObject",
        }
    }

    fn parse(s: &str) -> Option<ParamStyle> {
        Some(match s {
            "simple" => ParamStyle::Simple,
            "label" => ParamStyle::Label,
            "matrix" => ParamStyle::Matrix,
            "form" => ParamStyle::Form,
            "spaceDelimited" => ParamStyle::SpaceDelimited,
            "pipeDelimited" => ParamStyle::PipeDelimited,
            "deepObject" => ParamStyle::DeepObject,
            _ => return None,
        })
    }

    /// The default style for a location (OpenAPI 3.x, Parameter Object).
    pub fn default_for(location: ParamIn) -> ParamStyle {
        match location {
            ParamIn::Path | ParamIn::Header => ParamStyle::Simple,
            ParamIn::Query | ParamIn::Cookie => ParamStyle::Form,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    pub deprecated: bool,
    pub style: ParamStyle,
    pub explode: bool,
    pub allow_reserved: bool,
    pub description: Option<String>,
    /// The parameter's schema; for `content`-style parameters, the schema of its one media type.
    pub schema: Option<Schema>,
    /// The media type of a `content`-style parameter.
    pub content_type: Option<String>,
    pub pointer: String,
}

/// A schema where it sits: the JSON as written (possibly a `$ref`) and its pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub pointer: String,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub struct RequestBody {
    pub required: bool,
    pub description: Option<String>,
    pub content: Vec<MediaType>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct MediaType {
    /// The media type or range as written, e.g. `application/json` or `application/*`.
    pub media_type: String,
    pub schema: Option<Schema>,
    /// Examples, `example` first (named `None`), then `examples` by name.
    pub examples: Vec<Example>,
    pub pointer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub name: Option<String>,
    pub summary: Option<String>,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResponseStatus {
    /// An exact code, e.g. `200`.
    Code(u16),
    /// A range, e.g. `4XX` is `Range(4)`.
    Range(u8),
    Default,
}

impl fmt::Display for ResponseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseStatus::Code(c) => write!(f, "{c}"),
            ResponseStatus::Range(r) => write!(f, "{r}XX"),
            ResponseStatus::Default => f.write_str("default"),
        }
    }
}

impl ResponseStatus {
    /// Whether this response covers a success (2xx) status.
    pub fn is_success(self) -> bool {
        match self {
            ResponseStatus::Code(c) => (200..300).contains(&c),
            ResponseStatus::Range(r) => r == 2,
            ResponseStatus::Default => false,
        }
    }

    /// Whether this response covers a client or server error.
    pub fn is_error(self) -> bool {
        match self {
            ResponseStatus::Code(c) => c >= 400,
            ResponseStatus::Range(r) => r >= 4,
            ResponseStatus::Default => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: ResponseStatus,
    pub description: Option<String>,
    pub headers: Vec<ResponseHeader>,
    pub content: Vec<MediaType>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct ResponseHeader {
    pub name: String,
    pub required: bool,
    pub schema: Option<Schema>,
}

/// One alternative of a `security` list: every scheme named must be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityRequirement {
    /// Scheme name → scopes required from it.
    pub schemes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityScheme {
    ApiKey {
        name: String,
        location: ParamIn,
    },
    Http {
        scheme: String,
        bearer_format: Option<String>,
    },
    OAuth2 {
        /// Every scope any flow declares, with its description.
        scopes: BTreeMap<String, String>,
    },
    OpenIdConnect {
        url: String,
    },
    MutualTls,
}

impl Document {
    /// Resolves an internal reference (`#/components/schemas/Order`) against the document.
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        resolve_in(&self.tree, reference)
    }

    /// Follows `$ref`s from a schema (or any object) to the first object that is not one.
    /// Returns the resolved value and its pointer. Stops after 64 hops (a ref cycle).
    pub fn deref<'a>(&'a self, value: &'a Value, pointer: &str) -> Option<(&'a Value, String)> {
        let mut current = value;
        let mut at = pointer.to_owned();
        for _ in 0..64 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    at = r.trim_start_matches('#').to_owned();
                    current = self.resolve(r)?;
                }
                None => return Some((current, at)),
            }
        }
        None
    }

    /// Every operation of the document, in document order.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.paths.iter().flat_map(|p| p.operations.iter())
    }

    /// Finds an operation by its `operationId`.
    pub fn operation_by_id(&self, id: &str) -> Option<&Operation> {
        self.operations()
            .find(|o| o.operation_id.as_deref() == Some(id))
    }

    /// Finds an operation by method and path template.
    pub fn operation(&self, method: Method, template: &str) -> Option<&Operation> {
        self.paths
            .iter()
            .find(|p| p.template == template)
            .and_then(|p| p.operations.iter().find(|o| o.method == method))
    }
}

/// Resolves `#/a/b~1c` style references within a JSON tree.
pub fn resolve_in<'a>(tree: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    let decoded = percent_encoding::percent_decode_str(pointer)
        .decode_utf8()
        .ok()?;
    if decoded.is_empty() {
        return Some(tree);
    }
    tree.pointer(&decoded)
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
