//! Request and response validation against an OpenAPI operation: compiled once (at
//! snapshot build), then checked per request in microseconds, with no I/O.
//!
//! The gateway's use, in order:
//! 1. at snapshot build, [`compile_document`] for every routable version (or
//!    [`CompiledOperation::compile`] for one operation), keeping the result behind an `Arc`;
//! 2. per request, before choosing an upstream: [`CompiledOperation::max_body_bytes`] bounds
//!    how much body to buffer, then [`CompiledOperation::validate_request`] answers `Ok`,
//!    or a [`RequestRejection`] whose [`status`](RequestRejection::status) is 413, 415 or 400
//!    and whose [`to_problem`](RequestRejection::to_problem) is the problem+json body;
//! 3. per response (when the API asks for it): [`CompiledOperation::validate_response`].
//!
//! What is checked, and how OpenAPI 3.0 schemas are converted, is written down in
//! `docs/validation.md`.

mod body;
mod params;
mod schema;
mod tape;

use schema::Direction;

use crate::openapi::{
    Document, MediaType, Method, Operation, ParamIn, ParamStyle, ResponseStatus, Schema,
};
use crate::problem::{FieldError, Problem, ProblemKind};
use body::{BodyKind, MediaRange};
use params::Shape;
use schema::{CompiledSchema, ConvertProblem, Converter, Target};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use tape::Tape;

/// Limits and policy applied to one API's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Largest request body accepted, in bytes (413 above). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects in a JSON body (400 above). Default 64.
    pub max_json_depth: usize,
    /// Refuse query parameters the operation does not declare. Default `false`: unknown
    /// parameters pass, as OpenAPI does not forbid them.
    pub reject_unknown_query_params: bool,
    /// Most errors reported for one request or response. Default 20.
    pub max_errors: usize,
    /// Compile response schemas. Off saves memory and build time for APIs whose response
    /// validation is `off`; [`CompiledOperation::validate_response`] then accepts anything.
    pub validate_responses: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 64,
            reject_unknown_query_params: false,
            max_errors: 20,
            validate_responses: true,
        }
    }
}

/// Why (part of) an operation could not be compiled. Every variant names the operation
/// (its `operationId`, or `METHOD /path`) and where in the document the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{operation}: the schema at `{pointer}` cannot be compiled: {message}")]
    InvalidSchema {
        operation: String,
        pointer: String,
        message: String,
    },
    #[error("{operation}: `{pointer}` refers to `{reference}`, which is not in the document")]
    UnresolvedRef {
        operation: String,
        pointer: String,
        reference: String,
    },
    #[error("{operation}: the schema at `{pointer}` nests too deeply to convert")]
    SchemaTooDeep { operation: String, pointer: String },
    #[error(
        "{operation}: parameter `{name}` in {location} uses style `{style}`, which OpenAPI does not define for {location} parameters"
    )]
    UnsupportedStyle {
        operation: String,
        /// The parameter object.
        pointer: String,
        name: String,
        location: &'static str,
        style: &'static str,
    },
    #[error("{operation}: `{media_type}` at `{pointer}` is not a media type (type/subtype)")]
    InvalidMediaType {
        operation: String,
        pointer: String,
        media_type: String,
    },
}

impl CompileError {
    /// The JSON pointer into the document where the problem is (a schema, a parameter, a
    /// media type): what a registry names when it refuses the document.
    pub fn pointer(&self) -> &str {
        match self {
            CompileError::InvalidSchema { pointer, .. }
            | CompileError::UnresolvedRef { pointer, .. }
            | CompileError::SchemaTooDeep { pointer, .. }
            | CompileError::UnsupportedStyle { pointer, .. }
            | CompileError::InvalidMediaType { pointer, .. } => pointer,
        }
    }

    /// The operation the problem was found in (its `operationId`, or `METHOD /path`).
    pub fn operation(&self) -> &str {
        match self {
            CompileError::InvalidSchema { operation, .. }
            | CompileError::UnresolvedRef { operation, .. }
            | CompileError::SchemaTooDeep { operation, .. }
            | CompileError::UnsupportedStyle { operation, .. }
            | CompileError::InvalidMediaType { operation, .. } => operation,
        }
    }
}

/// The parts of a request the validator reads. Borrowed: nothing is copied to validate.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestParts<'a> {
    /// Path parameters as the router captured them: raw, still percent-encoded.
    pub path_params: &'a [(&'a str, &'a str)],
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Request headers (any case); repeated names are joined as HTTP says. Only declared
    /// header parameters and `Cookie` are read.
    pub headers: &'a [(&'a str, &'a str)],
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The body, fully buffered (at most [`CompiledOperation::max_body_bytes`]).
    pub body: Option<&'a [u8]>,
}

/// Why a request is refused; each variant is one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRejection {
    /// 413: the body is over the limit.
    #[error("the request body is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    /// 415: the operation takes no body of this type.
    #[error(
        "content type {} is not accepted; send one of: {}",
        content_type.as_deref().map_or_else(|| "(none)".to_owned(), |c| format!("`{c}`")),
        accepted.join(", ")
    )]
    UnsupportedMediaType {
        content_type: Option<String>,
        accepted: Vec<String>,
    },
    /// 400: parameters or body do not match (at most `max_errors` errors).
    #[error("the request does not match the operation: {} error(s)", errors.len())]
    Invalid { errors: Vec<FieldError> },
}

impl RequestRejection {
    pub fn kind(&self) -> ProblemKind {
        match self {
            RequestRejection::PayloadTooLarge { .. } => ProblemKind::PayloadTooLarge,
            RequestRejection::UnsupportedMediaType { .. } => ProblemKind::UnsupportedMediaType,
            RequestRejection::Invalid { .. } => ProblemKind::ValidationFailed,
        }
    }

    /// The HTTP status to answer with: 413, 415 or 400.
    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    /// The problem+json body (the caller adds the `instance`). 415 lists the accepted
    /// types in `accepted`, 413 gives `limit`, 400 lists `errors`.
    pub fn to_problem(&self) -> Problem {
        let problem = Problem::new(self.kind(), self.to_string());
        match self {
            RequestRejection::PayloadTooLarge { limit, .. } => {
                problem.with_extension("limit", *limit as u64)
            }
            RequestRejection::UnsupportedMediaType { accepted, .. } => {
                problem.with_extension("accepted", accepted.clone())
            }
            RequestRejection::Invalid { errors } => problem.with_errors(errors.clone()),
        }
    }
}

/// One operation, compiled: decoders and validators for every parameter, the accepted
/// request media types with their body validators, and (optionally) the responses'.
///
/// `Send + Sync`, immutable; compiled schemas are shared (`Arc`) between the operations
/// of one document, so cloning is cheap.
#[derive(Debug, Clone)]
pub struct CompiledOperation {
    method: Method,
    path: String,
    params: Vec<CompiledParam>,
    /// Query parameter names, for the unknown-parameter message.
    query_names: Vec<String>,
    body: Option<CompiledBody>,
    responses: Option<Vec<CompiledResponse>>,
    max_body_bytes: usize,
    max_json_depth: usize,
    max_errors: usize,
    reject_unknown_query: bool,
}

#[derive(Debug, Clone)]
struct CompiledParam {
    name: String,
    location: ParamIn,
    required: bool,
    style: ParamStyle,
    explode: bool,
    shape: Shape,
    /// A `content`-style parameter whose media type is JSON: the value is JSON text.
    json_content: bool,
    validator: Option<CompiledSchema>,
}

#[derive(Debug, Clone)]
struct CompiledBody {
    required: bool,
    media: Vec<CompiledMedia>,
    accepted: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledMedia {
    range: MediaRange<'static>,
    shape: Shape,
    validator: Option<CompiledSchema>,
}

#[derive(Debug, Clone)]
struct CompiledResponse {
    status: ResponseStatus,
    media: Vec<CompiledMedia>,
    declared: Vec<String>,
}

impl CompiledOperation {
    /// Compiles one operation of `doc`. Strict: the first problem is an error. To compile
    /// a whole document and keep going past bad schemas, use [`compile_document`].
    pub fn compile(
        doc: &Document,
        op: &Operation,
        opts: &CompileOptions,
    ) -> Result<CompiledOperation, CompileError> {
        let mut build = Build::new(doc, opts);
        let plan = build.plan(op);
        let (mut ops, mut errors) = build.finish(vec![plan]);
        if !errors.is_empty() {
            return Err(errors.swap_remove(0));
        }
        ops.pop().map(|(_, compiled)| compiled).ok_or_else(|| {
            // `finish` returns one operation per plan; this is unreachable in practice.
            CompileError::InvalidSchema {
                operation: op.display_name(),
                pointer: op.pointer.clone(),
                message: "the operation produced no compiled form".into(),
            }
        })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The path template, e.g. `/orders/{order_number}`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body limit: buffer at most this much, answer 413 beyond it.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The request media types as declared (ranges included); empty when the operation
    /// declares no request body.
    pub fn accepted_content_types(&self) -> &[String] {
        self.body.as_ref().map_or(&[], |b| b.accepted.as_slice())
    }

    /// Whether the operation declares a request body (with or without media types). A
    /// gateway reads and buffers the body before validating only for such operations;
    /// others never look at a body.
    pub fn declares_request_body(&self) -> bool {
        self.body.is_some()
    }

    /// Whether the operation has header or cookie parameters: only then does
    /// [`RequestParts::headers`] need to be filled.
    pub fn reads_headers(&self) -> bool {
        self.params
            .iter()
            .any(|p| matches!(p.location, ParamIn::Header | ParamIn::Cookie))
    }

    /// Whether the operation has path parameters: only then does
    /// [`RequestParts::path_params`] need to be filled.
    pub fn reads_path(&self) -> bool {
        self.params.iter().any(|p| p.location == ParamIn::Path)
    }

    /// Whether responses are checked ([`CompileOptions::validate_responses`]).
    pub fn validates_responses(&self) -> bool {
        self.responses.is_some()
    }

    /// Whether a request body of this `Content-Type` would be accepted (checkable before
    /// reading the body, to answer 415 early).
    pub fn accepts_content_type(&self, content_type: &str) -> bool {
        match &self.body {
            None => true,
            Some(b) => b.media.is_empty() || self.match_media(&b.media, content_type).is_some(),
        }
    }

    /// Validates a request. Checks, in order: body size (413), content type (415), then
    /// parameters and body together (400, at most `max_errors` errors).
    pub fn validate_request(&self, req: &RequestParts<'_>) -> Result<(), RequestRejection> {
        let body = req.body.filter(|b| !b.is_empty());
        if let Some(b) = body
            && b.len() > self.max_body_bytes
        {
            return Err(RequestRejection::PayloadTooLarge {
                size: b.len(),
                limit: self.max_body_bytes,
            });
        }
        // Resolve the media type before any parsing: a 415 costs nothing else.
        let media = match (&self.body, body) {
            (Some(declared), Some(_)) if !declared.media.is_empty() => {
                let found = req
                    .content_type
                    .and_then(|ct| self.match_media(&declared.media, ct));
                match found {
                    Some(found) => Some(found),
                    None => {
                        return Err(RequestRejection::UnsupportedMediaType {
                            content_type: req.content_type.map(str::to_owned),
                            accepted: declared.accepted.clone(),
                        });
                    }
                }
            }
            _ => None,
        };
        let mut errors = Vec::new();
        self.check_params(req, &mut errors);
        match (&self.body, body, media) {
            (Some(declared), None, _) if declared.required => {
                push_limited(
                    &mut errors,
                    self.max_errors,
                    FieldError {
                        location: "body".into(),
                        pointer: String::new(),
                        message: format!(
                            "a request body is required ({})",
                            declared.accepted.join(", ")
                        ),
                    },
                );
            }
            (_, Some(bytes), Some((compiled, actual))) => {
                self.check_body(compiled, &actual, req.content_type, bytes, &mut errors);
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RequestRejection::Invalid { errors })
        }
    }

    /// Validates an upstream response against the operation's declared response for
    /// `status` (exact code, then `NXX`, then `default`). Errors use `in: "status"` for an
    /// undeclared status, `in: "header"` for the content type, and `in: "body"`.
    pub fn validate_response(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), Vec<FieldError>> {
        let Some(responses) = &self.responses else {
            return Ok(());
        };
        let Some(response) = find_response(responses, status) else {
            let declared: Vec<String> = responses.iter().map(|r| r.status.to_string()).collect();
            return Err(vec![FieldError {
                location: "status".into(),
                pointer: String::new(),
                message: format!(
                    "status {status} is not declared for this operation (declared: {})",
                    if declared.is_empty() {
                        "none".to_owned()
                    } else {
                        declared.join(", ")
                    }
                ),
            }]);
        };
        if response.media.is_empty() {
            return Ok(());
        }
        let found = content_type.and_then(|ct| self.match_media(&response.media, ct));
        let Some((compiled, actual)) = found else {
            return Err(vec![FieldError {
                location: "header".into(),
                pointer: "Content-Type".into(),
                message: format!(
                    "{} is not declared for status {status}; declared: {}",
                    content_type.map_or_else(|| "no content type".to_owned(), |c| format!("`{c}`")),
                    response.declared.join(", ")
                ),
            }]);
        };
        let mut errors = Vec::new();
        if body.is_empty() {
            if actual.body_kind() == BodyKind::Json {
                errors.push(FieldError {
                    location: "body".into(),
                    pointer: String::new(),
                    message: format!("is empty, but status {status} declares a JSON body"),
                });
            }
        } else {
            self.check_body(compiled, &actual, content_type, body, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The most specific declared media type covering `content_type`, with the parsed
    /// actual type.
    fn match_media<'m, 't>(
        &self,
        media: &'m [CompiledMedia],
        content_type: &'t str,
    ) -> Option<(&'m CompiledMedia, MediaRange<'t>)> {
        let actual = MediaRange::parse(content_type)?;
        media
            .iter()
            .filter(|m| m.range.covers(&actual))
            .max_by_key(|m| m.range.specificity())
            .map(|m| (m, actual))
    }

    fn check_body(
        &self,
        media: &CompiledMedia,
        actual: &MediaRange<'_>,
        content_type: Option<&str>,
        bytes: &[u8],
        errors: &mut Vec<FieldError>,
    ) {
        let limit = self.max_errors;
        let body_error = |message: String| FieldError {
            location: "body".into(),
            pointer: String::new(),
            message,
        };
        // JSON goes straight onto a tape (no `Value`: see `tape`); form and multipart
        // bodies are decoded into a `Value` first, which the tape then borrows.
        let decoded = match actual.body_kind() {
            BodyKind::Json => {
                return match body::parse_json_tape(bytes, self.max_json_depth) {
                    Ok(tape) => {
                        if let Some(validator) = &media.validator {
                            schema::check(validator, tape, Target::Body, limit, errors);
                        }
                    }
                    Err(message) => push_limited(errors, limit, body_error(message)),
                };
            }
            BodyKind::Form => {
                let decoded = std::str::from_utf8(bytes)
                    .map_err(|_| "is not valid UTF-8".to_owned())
                    .and_then(|text| params::decode_form_body(text, &media.shape));
                match decoded {
                    Ok(v) => v,
                    Err(message) => return push_limited(errors, limit, body_error(message)),
                }
            }
            BodyKind::Multipart => {
                let boundary = content_type.and_then(|ct| body::media_param(ct, "boundary"));
                let Some(boundary) = boundary else {
                    return push_limited(
                        errors,
                        limit,
                        FieldError {
                            location: "header".into(),
                            pointer: "Content-Type".into(),
                            message: "multipart/form-data needs a `boundary` parameter".into(),
                        },
                    );
                };
                let parsed = body::parse_multipart(bytes, &boundary)
                    .map_err(|m| (String::new(), m))
                    .and_then(|parts| {
                        body::multipart_instance(&parts, &media.shape, self.max_json_depth)
                    });
                match parsed {
                    Ok(v) => v,
                    Err((pointer, message)) => {
                        return push_limited(
                            errors,
                            limit,
                            FieldError {
                                location: "body".into(),
                                pointer,
                                message,
                            },
                        );
                    }
                }
            }
            BodyKind::Other => return,
        };
        if let Some(validator) = &media.validator {
            schema::check(
                validator,
                Tape::from_value(&decoded),
                Target::Body,
                limit,
                errors,
            );
        }
    }

    fn check_params(&self, req: &RequestParts<'_>, errors: &mut Vec<FieldError>) {
        let limit = self.max_errors;
        let mut pairs = match req.query.map(params::parse_query) {
            None => Vec::new(),
            Some(Ok(pairs)) => pairs,
            Some(Err(key)) => {
                push_limited(
                    errors,
                    limit,
                    FieldError {
                        location: "query".into(),
                        pointer: key,
                        message: "has a name that is not valid UTF-8 once percent-decoded".into(),
                    },
                );
                Vec::new()
            }
        };
        let cookies = if self.params.iter().any(|p| p.location == ParamIn::Cookie) {
            params::parse_cookies(
                req.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                    .map(|(_, v)| *v),
            )
        } else {
            Vec::new()
        };
        for p in &self.params {
            if errors.len() >= limit {
                return;
            }
            let decoded = if p.json_content {
                self.content_param(p, req, &mut pairs, &cookies)
            } else {
                self.styled_param(p, req, &mut pairs, &cookies)
            };
            let location = p.location.as_str();
            match decoded {
                Err(message) => push_limited(
                    errors,
                    limit,
                    FieldError {
                        location: location.into(),
                        pointer: p.name.clone(),
                        message,
                    },
                ),
                Ok(None) if p.required => push_limited(
                    errors,
                    limit,
                    FieldError {
                        location: location.into(),
                        pointer: p.name.clone(),
                        message: format!("is required but missing ({location} parameter)"),
                    },
                ),
                Ok(None) => {}
                Ok(Some(value)) => {
                    if let Some(v) = &p.validator {
                        let target = Target::Param {
                            location,
                            name: &p.name,
                        };
                        schema::check(v, Tape::from_value(&value), target, limit, errors);
                    }
                }
            }
        }
        if self.reject_unknown_query {
            let mut reported = HashSet::new();
            for pair in pairs.iter().filter(|p| !p.claimed) {
                if reported.insert(pair.key.as_ref()) {
                    let known = if self.query_names.is_empty() {
                        "this operation takes no query parameters".to_owned()
                    } else {
                        format!("known: {}", self.query_names.join(", "))
                    };
                    push_limited(
                        errors,
                        limit,
                        FieldError {
                            location: "query".into(),
                            pointer: pair.key.to_string(),
                            message: format!("is not a parameter of this operation ({known})"),
                        },
                    );
                }
            }
        }
    }

    fn styled_param(
        &self,
        p: &CompiledParam,
        req: &RequestParts<'_>,
        pairs: &mut [params::QueryPair<'_>],
        cookies: &[(&str, &str)],
    ) -> Result<Option<Value>, String> {
        match p.location {
            ParamIn::Path => match find_path(req, &p.name) {
                Some(raw) => {
                    params::decode_path(&p.name, raw, p.style, p.explode, &p.shape).map(Some)
                }
                None => Ok(None),
            },
            ParamIn::Query => params::decode_query(&p.name, p.style, p.explode, &p.shape, pairs),
            ParamIn::Header => match header_value(req, &p.name) {
                Some(v) => params::decode_header(&v, p.explode, &p.shape).map(Some),
                None => Ok(None),
            },
            ParamIn::Cookie => params::decode_cookie(&p.name, p.explode, &p.shape, cookies),
        }
    }

    /// A `content`-style parameter: the whole value is JSON text.
    fn content_param(
        &self,
        p: &CompiledParam,
        req: &RequestParts<'_>,
        pairs: &mut [params::QueryPair<'_>],
        cookies: &[(&str, &str)],
    ) -> Result<Option<Value>, String> {
        let not_utf8 = |_| "is not valid UTF-8 once percent-decoded".to_owned();
        let text: Option<Cow<'_, str>> = match p.location {
            ParamIn::Path => match find_path(req, &p.name) {
                Some(raw) => {
                    Some(params::decode(raw, params::Decoding::Percent).map_err(not_utf8)?)
                }
                None => None,
            },
            ParamIn::Query => {
                let mut found = None;
                for pair in pairs.iter_mut().filter(|pair| pair.key == p.name.as_str()) {
                    pair.claimed = true;
                    if found.is_some() {
                        return Err("is given more than once but takes one value".into());
                    }
                    found = Some(pair.raw_value);
                }
                match found {
                    Some(raw) => {
                        Some(params::decode(raw, params::Decoding::Form).map_err(not_utf8)?)
                    }
                    None => None,
                }
            }
            ParamIn::Header => header_value(req, &p.name),
            ParamIn::Cookie => cookies.iter().find(|(k, _)| *k == p.name).map(|(_, v)| {
                params::decode(v, params::Decoding::Percent).unwrap_or(Cow::Borrowed(*v))
            }),
        };
        match text {
            None => Ok(None),
            Some(t) => body::parse_json(t.as_bytes(), self.max_json_depth).map(Some),
        }
    }
}

fn push_limited(errors: &mut Vec<FieldError>, limit: usize, error: FieldError) {
    if errors.len() < limit {
        errors.push(error);
    }
}

fn find_path<'a>(req: &RequestParts<'a>, name: &str) -> Option<&'a str> {
    req.path_params
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// A header's value; several lines of one name are joined with `,` (RFC 9110 5.3).
fn header_value<'a>(req: &RequestParts<'a>, name: &str) -> Option<Cow<'a, str>> {
    let mut values = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v);
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first},{second}");
            for v in values {
                joined.push(',');
                joined.push_str(v);
            }
            Some(Cow::Owned(joined))
        }
    }
}

fn find_response(responses: &[CompiledResponse], status: u16) -> Option<&CompiledResponse> {
    let class = u8::try_from(status / 100).ok();
    responses
        .iter()
        .find(|r| r.status == ResponseStatus::Code(status))
        .or_else(|| {
            responses
                .iter()
                .find(|r| Some(r.status) == class.map(ResponseStatus::Range))
        })
        .or_else(|| {
            responses
                .iter()
                .find(|r| r.status == ResponseStatus::Default)
        })
}

/// Compiles every operation of a document. Every operation is in the map; a schema that
/// cannot be compiled is reported in the error list (once per schema, naming the first
/// operation that uses it) and left unchecked in the compiled form, so one bad response
/// schema does not take a whole version down. Callers that want all-or-nothing refuse the
/// version when the list is not empty.
pub fn compile_document(
    doc: &Document,
    opts: &CompileOptions,
) -> (HashMap<OperationKey, CompiledOperation>, Vec<CompileError>) {
    let mut build = Build::new(doc, opts);
    let plans: Vec<OpPlan> = doc.operations().map(|op| build.plan(op)).collect();
    let (ops, errors) = build.finish(plans);
    (ops.into_iter().collect(), errors)
}

// ---------------------------------------------------------------------------------------
// Building: plan every operation (converting schemas), compile the schemas once, assemble
// ---------------------------------------------------------------------------------------

/// A schema an operation uses, by converter and def id.
#[derive(Debug, Clone, Copy)]
struct SchemaUse {
    dir: Direction,
    id: usize,
}

#[derive(Debug)]
struct ParamPlan {
    compiled: CompiledParam,
    schema: Option<SchemaUse>,
}

#[derive(Debug)]
struct MediaPlan {
    range: MediaRange<'static>,
    shape: Shape,
    schema: Option<SchemaUse>,
}

#[derive(Debug)]
struct OpPlan {
    method: Method,
    path: String,
    operation: String,
    params: Vec<ParamPlan>,
    body: Option<BodyPlan>,
    responses: Option<Vec<ResponsePlan>>,
    errors: Vec<CompileError>,
}

#[derive(Debug)]
struct BodyPlan {
    required: bool,
    media: Vec<MediaPlan>,
    accepted: Vec<String>,
}

#[derive(Debug)]
struct ResponsePlan {
    status: ResponseStatus,
    media: Vec<MediaPlan>,
    declared: Vec<String>,
}

/// How [`compile_document`] keys operations: method and path template.
pub type OperationKey = (Method, String);

struct Build<'d> {
    doc: &'d Document,
    opts: &'d CompileOptions,
    request: Converter<'d>,
    response: Converter<'d>,
}

impl<'d> Build<'d> {
    fn new(doc: &'d Document, opts: &'d CompileOptions) -> Self {
        Self {
            doc,
            opts,
            request: Converter::new(doc, Direction::Request),
            response: Converter::new(doc, Direction::Response),
        }
    }

    fn convert(
        &mut self,
        dir: Direction,
        schema: &Schema,
        operation: &str,
        errors: &mut Vec<CompileError>,
    ) -> SchemaUse {
        let converter = match dir {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        };
        let before = converter.problems.len();
        let id = converter.add(schema);
        for problem in &converter.problems[before..] {
            errors.push(match problem {
                ConvertProblem::UnresolvedRef { pointer, reference } => {
                    CompileError::UnresolvedRef {
                        operation: operation.to_owned(),
                        pointer: pointer.clone(),
                        reference: reference.clone(),
                    }
                }
                ConvertProblem::TooDeep { pointer } => CompileError::SchemaTooDeep {
                    operation: operation.to_owned(),
                    pointer: pointer.clone(),
                },
            });
        }
        SchemaUse { dir, id }
    }

    fn plan(&mut self, op: &Operation) -> OpPlan {
        let operation = op.display_name();
        let mut errors = Vec::new();
        let mut params = Vec::new();
        for p in &op.parameters {
            // OpenAPI: header parameters named Accept, Content-Type or Authorization are
            // ignored (the protocol owns them).
            if p.location == ParamIn::Header
                && ["accept", "content-type", "authorization"]
                    .iter()
                    .any(|n| p.name.eq_ignore_ascii_case(n))
            {
                continue;
            }
            let mut style = p.style;
            if !style_allowed(p.location, style) {
                errors.push(CompileError::UnsupportedStyle {
                    operation: operation.clone(),
                    pointer: p.pointer.clone(),
                    name: p.name.clone(),
                    location: p.location.as_str(),
                    style: style.as_str(),
                });
                style = ParamStyle::default_for(p.location);
            }
            let json_content = p
                .content_type
                .as_deref()
                .and_then(MediaRange::parse)
                .is_some_and(|m| m.body_kind() == BodyKind::Json);
            let shape = p
                .schema
                .as_ref()
                .map_or(Shape::Any, |s| Shape::of(self.doc, &s.value));
            let schema = p
                .schema
                .as_ref()
                .map(|s| self.convert(Direction::Request, s, &operation, &mut errors));
            params.push(ParamPlan {
                compiled: CompiledParam {
                    name: p.name.clone(),
                    location: p.location,
                    required: p.required,
                    style,
                    explode: p.explode,
                    shape,
                    json_content,
                    validator: None,
                },
                schema,
            });
        }
        // Exploded form objects claim query keys by property name: they decode after
        // every other parameter has taken its own keys.
        params.sort_by_key(|p| {
            let c = &p.compiled;
            c.location == ParamIn::Query
                && !c.json_content
                && c.explode
                && c.style == ParamStyle::Form
                && matches!(c.shape, Shape::Object { .. })
        });
        let body = op.request_body.as_ref().map(|b| {
            let (media, accepted) =
                self.plan_media(&b.content, Direction::Request, &operation, &mut errors);
            BodyPlan {
                required: b.required,
                media,
                accepted,
            }
        });
        let responses = self.opts.validate_responses.then(|| {
            op.responses
                .iter()
                .map(|r| {
                    let (media, declared) =
                        self.plan_media(&r.content, Direction::Response, &operation, &mut errors);
                    ResponsePlan {
                        status: r.status,
                        media,
                        declared,
                    }
                })
                .collect()
        });
        OpPlan {
            method: op.method,
            path: op.path.clone(),
            operation,
            params,
            body,
            responses,
            errors,
        }
    }

    fn plan_media(
        &mut self,
        content: &[MediaType],
        dir: Direction,
        operation: &str,
        errors: &mut Vec<CompileError>,
    ) -> (Vec<MediaPlan>, Vec<String>) {
        let mut out = Vec::with_capacity(content.len());
        let mut declared = Vec::with_capacity(content.len());
        for m in content {
            let Some(range) = MediaRange::parse(&m.media_type).map(MediaRange::into_owned) else {
                errors.push(CompileError::InvalidMediaType {
                    operation: operation.to_owned(),
                    pointer: m.pointer.clone(),
                    media_type: m.media_type.clone(),
                });
                continue;
            };
            declared.push(m.media_type.clone());
            let shape = match (range.body_kind(), &m.schema) {
                (BodyKind::Form | BodyKind::Multipart, Some(s)) => Shape::of(self.doc, &s.value),
                _ => Shape::Any,
            };
            let schema = m
                .schema
                .as_ref()
                .map(|s| self.convert(dir, s, operation, errors));
            out.push(MediaPlan {
                range,
                shape,
                schema,
            });
        }
        (out, declared)
    }

    /// Compiles every schema the plans use (once each), then assembles the operations.
    fn finish(
        self,
        plans: Vec<OpPlan>,
    ) -> (Vec<(OperationKey, CompiledOperation)>, Vec<CompileError>) {
        let mut wanted: HashMap<Direction, Vec<usize>> = HashMap::new();
        let mut note = |u: &Option<SchemaUse>| {
            if let Some(u) = u {
                wanted.entry(u.dir).or_default().push(u.id);
            }
        };
        for plan in &plans {
            plan.params.iter().for_each(|p| note(&p.schema));
            if let Some(b) = &plan.body {
                b.media.iter().for_each(|m| note(&m.schema));
            }
            for r in plan.responses.iter().flatten() {
                r.media.iter().for_each(|m| note(&m.schema));
            }
        }
        let mut compiled = HashMap::new();
        for (dir, converter) in [
            (Direction::Request, &self.request),
            (Direction::Response, &self.response),
        ] {
            let mut ids = wanted.remove(&dir).unwrap_or_default();
            ids.sort_unstable();
            ids.dedup();
            for (id, result) in schema::compile_defs(converter, &ids) {
                compiled.insert((dir, id), result);
            }
        }
        let mut errors = Vec::new();
        let mut reported: HashSet<String> = HashSet::new();
        let mut ops = Vec::with_capacity(plans.len());
        for plan in plans {
            errors.extend(plan.errors);
            let operation = plan.operation;
            let mut resolve = |u: Option<SchemaUse>| -> Option<CompiledSchema> {
                let u = u?;
                match compiled.get(&(u.dir, u.id))? {
                    Ok(v) => Some(v.clone()),
                    Err(failure) => {
                        if reported.insert(failure.pointer.clone()) {
                            errors.push(CompileError::InvalidSchema {
                                operation: operation.clone(),
                                pointer: failure.pointer.clone(),
                                message: failure.message.clone(),
                            });
                        }
                        None
                    }
                }
            };
            let params: Vec<CompiledParam> = plan
                .params
                .into_iter()
                .map(|p| CompiledParam {
                    validator: resolve(p.schema),
                    ..p.compiled
                })
                .collect();
            let mut media = |plans: Vec<MediaPlan>| -> Vec<CompiledMedia> {
                plans
                    .into_iter()
                    .map(|m| CompiledMedia {
                        range: m.range,
                        shape: m.shape,
                        validator: resolve(m.schema),
                    })
                    .collect()
            };
            let body = plan.body.map(|b| CompiledBody {
                required: b.required,
                media: media(b.media),
                accepted: b.accepted,
            });
            let responses = plan.responses.map(|rs| {
                rs.into_iter()
                    .map(|r| CompiledResponse {
                        status: r.status,
                        media: media(r.media),
                        declared: r.declared,
                    })
                    .collect()
            });
            let query_names = params
                .iter()
                .filter(|p| p.location == ParamIn::Query)
                .map(|p| p.name.clone())
                .collect();
            ops.push((
                (plan.method, plan.path.clone()),
                CompiledOperation {
                    method: plan.method,
                    path: plan.path,
                    params,
                    query_names,
                    body,
                    responses,
                    max_body_bytes: self.opts.max_body_bytes,
                    max_json_depth: self.opts.max_json_depth,
                    max_errors: self.opts.max_errors.max(1),
                    reject_unknown_query: self.opts.reject_unknown_query_params,
                },
            ));
        }
        (ops, errors)
    }
}

/// The styles OpenAPI defines per location.
fn style_allowed(location: ParamIn, style: ParamStyle) -> bool {
    use ParamStyle::*;
    match location {
        ParamIn::Path => matches!(style, Simple | Label | Matrix),
        ParamIn::Query => matches!(style, Form | SpaceDelimited | PipeDelimited | DeepObject),
        ParamIn::Header => style == Simple,
        ParamIn::Cookie => style == Form,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_operations_are_send_sync_and_cheap_to_share() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CompiledOperation>();
        assert_send_sync::<std::sync::Arc<CompiledOperation>>();
    }

    /// Regression: one validator per operation compiled the whole `$ref` graph again for
    /// every operation (130 s and 18 GB for 1,200 operations over 600 linked schemas).
    #[test]
    fn compile_document_compiles_the_schema_graph_once_per_direction() {
        let text = r##"openapi: 3.0.3
info: {title: t, version: 1.0.0}
paths:
  /a:
    post:
      parameters: [{name: q, in: query, schema: {type: integer}}]
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/N'}}}}
      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/N'}}}}}
  /b:
    put:
      requestBody: {content: {application/json: {schema: {type: array, items: {$ref: '#/components/schemas/N'}}}}}
      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/N'}}}}}
components:
  schemas:
    N: {type: object, properties: {next: {$ref: '#/components/schemas/N'}}}
"##;
        let doc =
            crate::openapi::parse(text.as_bytes(), &crate::document::Limits::default()).unwrap();
        let (ops, errors) = compile_document(&doc, &CompileOptions::default());
        assert!(errors.is_empty(), "{errors:?}");
        let a = &ops[&(Method::Post, "/a".to_owned())];
        let b = &ops[&(Method::Put, "/b".to_owned())];
        let body = |op: &CompiledOperation| {
            op.body.as_ref().unwrap().media[0]
                .validator
                .clone()
                .unwrap()
        };
        let response = |op: &CompiledOperation| {
            op.responses.as_ref().unwrap()[0].media[0]
                .validator
                .clone()
                .unwrap()
        };
        let param = a.params[0].validator.clone().unwrap();
        assert!(body(a).shares_set_with(&body(b)));
        assert!(body(a).shares_set_with(&param));
        assert!(response(a).shares_set_with(&response(b)));
        assert!(!body(a).shares_set_with(&response(a)), "directions differ");
    }
}
