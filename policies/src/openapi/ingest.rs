//! Spec ingest: from untrusted bytes to a checked [`Document`].
//!
//! Order of checks: load (size, UTF-8, syntax, duplicates, depth, aliases) → version line
//! (Swagger 2.0 and unknown lines refused) → every `$ref` internal and resolvable → the
//! typed structure (`info`, `paths`, operations, parameters, bodies, responses, security).

use super::*;
use crate::document::{self, Limits, LoadError};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Why a spec was refused. Every variant names where (a JSON pointer) when it can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the document is not an object")]
    NotAnObject,
    #[error(
        "this is a Swagger {version} document; Gatehouse accepts OpenAPI 3.0 and 3.1 (convert it first, e.g. with swagger2openapi)"
    )]
    Swagger2 { version: String },
    #[error("the `openapi` field is missing: is this an OpenAPI document?")]
    MissingOpenApi,
    #[error("OpenAPI version `{version}` is not supported; use 3.0.x or 3.1.x")]
    UnsupportedVersion { version: String },
    #[error("`{pointer}` is required")]
    Missing { pointer: String },
    #[error("`{pointer}` must be {expected}")]
    WrongType {
        pointer: String,
        expected: &'static str,
    },
    #[error("`info.version` is `{version}`, which is not semantic versioning (e.g. 2.1.0)")]
    VersionNotSemver { version: String },
    #[error(
        "`{pointer}` refers to `{reference}`, outside this document; external references are not supported (bundle the spec into one file)"
    )]
    ExternalRef { pointer: String, reference: String },
    #[error("`{pointer}` refers to `{reference}`, which does not exist in this document")]
    UnresolvedRef { pointer: String, reference: String },
    #[error("`{pointer}` is a chain of references that never ends")]
    RefCycle { pointer: String },
    #[error("`{pointer}` has invalid value `{value}`: {expected}")]
    InvalidValue {
        pointer: String,
        value: String,
        expected: &'static str,
    },
    #[error("path `{path}` must start with `/`")]
    PathNotAbsolute { path: String },
    #[error(
        "path `{path}` uses `{{{name}}}` but its operation `{operation}` defines no path parameter `{name}`"
    )]
    PathParamUndeclared {
        path: String,
        operation: String,
        name: String,
    },
    #[error("`{pointer}` declares path parameter `{name}`, which is not in the path template")]
    PathParamNotInTemplate { pointer: String, name: String },
    #[error(
        "`{pointer}` names security scheme `{name}`, which `components.securitySchemes` does not define"
    )]
    UnknownSecurityScheme { pointer: String, name: String },
}

/// Parses and checks an OpenAPI document from JSON or YAML bytes.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Document, SpecError> {
    let tree = document::load(bytes, limits)?;
    parse_value(tree)
}

/// Checks an already loaded JSON tree and builds the model from it.
pub fn parse_value(tree: Value) -> Result<Document, SpecError> {
    let root = tree.as_object().ok_or(SpecError::NotAnObject)?;
    if let Some(v) = root.get("swagger") {
        return Err(SpecError::Swagger2 {
            version: scalar_text(v),
        });
    }
    let openapi = match root.get("openapi") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => scalar_text(other),
        None => return Err(SpecError::MissingOpenApi),
    };
    let dialect = if openapi.starts_with("3.0.") || openapi == "3.0" {
        Dialect::V30
    } else if openapi.starts_with("3.1.") || openapi == "3.1" {
        Dialect::V31
    } else {
        return Err(SpecError::UnsupportedVersion { version: openapi });
    };
    check_refs(&tree, &mut String::new())?;
    let ctx = Ctx { tree: &tree };
    let info = ctx.info(root)?;
    let security_schemes = ctx.security_schemes(root)?;
    let security = match root.get("security") {
        None => Vec::new(),
        Some(v) => ctx.security(v, "/security", &security_schemes)?,
    };
    let paths = ctx.paths(root, &security_schemes)?;
    Ok(Document {
        dialect,
        openapi,
        info,
        paths,
        security,
        security_schemes,
        // Moved, not cloned: the tree is most of a large spec's memory (GitHub's: ~48 MiB).
        tree,
    })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Walks the tree and checks that every `$ref` is internal and resolves, and that no ref
/// chain loops.
///
/// Literal data is skipped: a `$ref` key inside an `example`, a `default`, an `enum`, a
/// `const`, a JSON Schema `examples` array or an Example Object's `value` is data, not a
/// reference. Those words are keywords only where keywords are: a property, a response or
/// a component *named* `default` or `example` is a name, and the `$ref`s under it are
/// checked. The walk therefore knows, for each object, whether its keys are keywords or
/// names (see [`RefMode`]).
fn check_refs(tree: &Value, pointer: &mut String) -> Result<(), SpecError> {
    walk_refs(tree, tree, RefMode::Keywords, pointer)
}

/// What the keys of the object being walked are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefMode {
    /// Keywords of an OpenAPI or JSON Schema object (`type`, `$ref`, `example`, …).
    Keywords,
    /// Names chosen by the author: property names, status codes, media types, paths,
    /// component names. None of them is literal data, whatever it is called.
    Names,
    /// The root's `components`: each key is a component kind whose value is a name map.
    Components,
    /// An OpenAPI Example Object: its `value` is data.
    Example,
}

/// Keys whose object value maps names to values, wherever they appear as keywords.
const NAME_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "responses",
    "paths",
    "webhooks",
    "headers",
    "content",
    "callbacks",
    "links",
    "encoding",
    "mapping",
];

fn walk_refs(
    root: &Value,
    node: &Value,
    mode: RefMode,
    pointer: &mut String,
) -> Result<(), SpecError> {
    match node {
        Value::Object(map) => {
            // In a name map, a key `$ref` is a name (a property called `$ref`).
            if let Some(Value::String(r)) = map
                .get("$ref")
                .filter(|_| !matches!(mode, RefMode::Names | RefMode::Components))
            {
                check_ref(root, r, pointer)?;
            }
            for (key, child) in map {
                let child_mode = match mode {
                    RefMode::Names => RefMode::Keywords,
                    RefMode::Components if key == "examples" => {
                        // A map of named Example Objects (or references to them).
                        with_segment(pointer, key, |pointer| {
                            walk_named(root, child, RefMode::Example, pointer)
                        })?;
                        continue;
                    }
                    RefMode::Components => RefMode::Names,
                    RefMode::Example if key == "value" => continue,
                    RefMode::Example | RefMode::Keywords => {
                        match (key.as_str(), child) {
                            ("example" | "default" | "enum" | "const", _) => continue,
                            // OpenAPI `examples` (media types, parameters, headers) maps
                            // names to Example Objects; JSON Schema `examples` is data.
                            ("examples", Value::Object(_)) => {
                                with_segment(pointer, key, |pointer| {
                                    walk_named(root, child, RefMode::Example, pointer)
                                })?;
                                continue;
                            }
                            ("examples", _) => continue,
                            ("components", Value::Object(_)) if pointer.is_empty() => {
                                RefMode::Components
                            }
                            (k, Value::Object(_)) if NAME_MAPS.contains(&k) => RefMode::Names,
                            _ => RefMode::Keywords,
                        }
                    }
                };
                with_segment(pointer, key, |pointer| {
                    walk_refs(root, child, child_mode, pointer)
                })?;
            }
            Ok(())
        }
        Value::Array(items) => {
            // Arrays hold values, never names: `allOf` members, parameters, tags, …
            let inner = match mode {
                RefMode::Names | RefMode::Components => RefMode::Keywords,
                other => other,
            };
            for (i, child) in items.iter().enumerate() {
                with_segment(pointer, &i.to_string(), |pointer| {
                    walk_refs(root, child, inner, pointer)
                })?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Walks each value of a name map in `mode`.
fn walk_named(
    root: &Value,
    map: &Value,
    mode: RefMode,
    pointer: &mut String,
) -> Result<(), SpecError> {
    if let Value::Object(entries) = map {
        for (name, value) in entries {
            with_segment(pointer, name, |pointer| {
                walk_refs(root, value, mode, pointer)
            })?;
        }
    }
    Ok(())
}

/// Runs `f` with `/segment` appended to the pointer, then restores it.
fn with_segment(
    pointer: &mut String,
    segment: &str,
    f: impl FnOnce(&mut String) -> Result<(), SpecError>,
) -> Result<(), SpecError> {
    let len = pointer.len();
    pointer.push('/');
    pointer.push_str(&escape_pointer(segment));
    let result = f(pointer);
    pointer.truncate(len);
    result
}

/// Checks one `$ref` found at `pointer`: internal, resolving, and not part of a loop.
fn check_ref(root: &Value, reference: &str, pointer: &str) -> Result<(), SpecError> {
    let at = format!("{pointer}/$ref");
    if !reference.starts_with('#') {
        return Err(SpecError::ExternalRef {
            pointer: at,
            reference: reference.to_owned(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut current = reference.to_owned();
    loop {
        if !seen.insert(current.clone()) {
            return Err(SpecError::RefCycle { pointer: at });
        }
        let target = resolve_in(root, &current).ok_or_else(|| SpecError::UnresolvedRef {
            pointer: at.clone(),
            reference: current.clone(),
        })?;
        match target.get("$ref").and_then(Value::as_str) {
            Some(next) if next.starts_with('#') => current = next.to_owned(),
            _ => return Ok(()),
        }
    }
}

struct Ctx<'a> {
    tree: &'a Value,
}

impl<'a> Ctx<'a> {
    /// Follows a Reference Object (for parameters, bodies, responses, examples, headers).
    fn follow(&self, value: &'a Value, pointer: &str) -> Result<(&'a Value, String), SpecError> {
        let mut current = value;
        let mut at = pointer.to_owned();
        for _ in 0..64 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    at = r.trim_start_matches('#').to_owned();
                    current = resolve_in(self.tree, r).ok_or_else(|| SpecError::UnresolvedRef {
                        pointer: format!("{pointer}/$ref"),
                        reference: r.to_owned(),
                    })?;
                }
                None => return Ok((current, at)),
            }
        }
        Err(SpecError::RefCycle {
            pointer: pointer.to_owned(),
        })
    }

    fn info(&self, root: &Map<String, Value>) -> Result<Info, SpecError> {
        let info = object(root.get("info"), "/info")?.ok_or(SpecError::Missing {
            pointer: "/info".into(),
        })?;
        let title = string(info.get("title"), "/info/title")?.ok_or(SpecError::Missing {
            pointer: "/info/title".into(),
        })?;
        let version_text = match info.get("version") {
            None => {
                return Err(SpecError::Missing {
                    pointer: "/info/version".into(),
                });
            }
            Some(v) => scalar_text(v),
        };
        let version = semver::Version::parse(version_text.trim()).map_err(|_| {
            SpecError::VersionNotSemver {
                version: version_text.clone(),
            }
        })?;
        let contact = match object(info.get("contact"), "/info/contact")? {
            None => None,
            Some(c) => Some(Contact {
                name: string(c.get("name"), "/info/contact/name")?,
                email: string(c.get("email"), "/info/contact/email")?,
                url: string(c.get("url"), "/info/contact/url")?,
            }),
        };
        Ok(Info {
            title,
            version,
            description: string(info.get("description"), "/info/description")?,
            contact,
        })
    }

    fn security_schemes(
        &self,
        root: &Map<String, Value>,
    ) -> Result<BTreeMap<String, SecurityScheme>, SpecError> {
        let mut out = BTreeMap::new();
        let Some(components) = object(root.get("components"), "/components")? else {
            return Ok(out);
        };
        let Some(schemes) = object(
            components.get("securitySchemes"),
            "/components/securitySchemes",
        )?
        else {
            return Ok(out);
        };
        for (name, raw) in schemes {
            let at = format!("/components/securitySchemes/{}", escape_pointer(name));
            let (scheme, at) = self.follow(raw, &at)?;
            let scheme = scheme.as_object().ok_or(SpecError::WrongType {
                pointer: at.clone(),
                expected: "an object",
            })?;
            let kind =
                string(scheme.get("type"), &format!("{at}/type"))?.ok_or(SpecError::Missing {
                    pointer: format!("{at}/type"),
                })?;
            let parsed = match kind.as_str() {
                "apiKey" => {
                    let location = match string(scheme.get("in"), &format!("{at}/in"))?.as_deref() {
                        Some("header") => ParamIn::Header,
                        Some("query") => ParamIn::Query,
                        Some("cookie") => ParamIn::Cookie,
                        other => {
                            return Err(SpecError::InvalidValue {
                                pointer: format!("{at}/in"),
                                value: other.unwrap_or("").to_owned(),
                                expected: "one of header, query, cookie",
                            });
                        }
                    };
                    SecurityScheme::ApiKey {
                        name: string(scheme.get("name"), &format!("{at}/name"))?.ok_or(
                            SpecError::Missing {
                                pointer: format!("{at}/name"),
                            },
                        )?,
                        location,
                    }
                }
                "http" => SecurityScheme::Http {
                    scheme: string(scheme.get("scheme"), &format!("{at}/scheme"))?
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    bearer_format: string(
                        scheme.get("bearerFormat"),
                        &format!("{at}/bearerFormat"),
                    )?,
                },
                "oauth2" => {
                    let mut scopes = BTreeMap::new();
                    if let Some(flows) = object(scheme.get("flows"), &format!("{at}/flows"))? {
                        for (flow_name, flow) in flows {
                            let flow_at = format!("{at}/flows/{flow_name}");
                            if let Some(s) =
                                object(flow.get("scopes"), &format!("{flow_at}/scopes"))?
                            {
                                for (scope, desc) in s {
                                    scopes.insert(scope.clone(), scalar_text(desc));
                                }
                            }
                        }
                    }
                    SecurityScheme::OAuth2 { scopes }
                }
                "openIdConnect" => SecurityScheme::OpenIdConnect {
                    url: string(
                        scheme.get("openIdConnectUrl"),
                        &format!("{at}/openIdConnectUrl"),
                    )?
                    .unwrap_or_default(),
                },
                "mutualTLS" => SecurityScheme::MutualTls,
                other => {
                    return Err(SpecError::InvalidValue {
                        pointer: format!("{at}/type"),
                        value: other.to_owned(),
                        expected: "one of apiKey, http, oauth2, openIdConnect, mutualTLS",
                    });
                }
            };
            out.insert(name.clone(), parsed);
        }
        Ok(out)
    }

    fn security(
        &self,
        value: &Value,
        pointer: &str,
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Result<Vec<SecurityRequirement>, SpecError> {
        let list = value.as_array().ok_or(SpecError::WrongType {
            pointer: pointer.to_owned(),
            expected: "an array of security requirements",
        })?;
        let mut out = Vec::with_capacity(list.len());
        for (i, req) in list.iter().enumerate() {
            let at = format!("{pointer}/{i}");
            let req = req.as_object().ok_or(SpecError::WrongType {
                pointer: at.clone(),
                expected: "an object",
            })?;
            let mut requirement = SecurityRequirement::default();
            for (name, scopes) in req {
                if !schemes.contains_key(name) {
                    return Err(SpecError::UnknownSecurityScheme {
                        pointer: at.clone(),
                        name: name.clone(),
                    });
                }
                let scopes = scopes
                    .as_array()
                    .ok_or(SpecError::WrongType {
                        pointer: format!("{at}/{}", escape_pointer(name)),
                        expected: "an array of scope names",
                    })?
                    .iter()
                    .map(scalar_text)
                    .collect();
                requirement.schemes.insert(name.clone(), scopes);
            }
            out.push(requirement);
        }
        Ok(out)
    }

    fn paths(
        &self,
        root: &Map<String, Value>,
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Result<Vec<PathItem>, SpecError> {
        let mut out = Vec::new();
        // 3.1 makes `paths` optional (a webhooks-only document); 3.0 requires it, but an
        // empty document is harmless and lint reports it.
        let Some(paths) = object(root.get("paths"), "/paths")? else {
            return Ok(out);
        };
        for (template, item) in paths {
            if template.starts_with("x-") {
                continue;
            }
            if !template.starts_with('/') {
                return Err(SpecError::PathNotAbsolute {
                    path: template.clone(),
                });
            }
            let at = format!("/paths/{}", escape_pointer(template));
            let (item, item_at) = self.follow(item, &at)?;
            let item = item.as_object().ok_or(SpecError::WrongType {
                pointer: item_at.clone(),
                expected: "a path item object",
            })?;
            let shared = match item.get("parameters") {
                None => Vec::new(),
                Some(p) => self.parameters(p, &format!("{item_at}/parameters"))?,
            };
            let mut operations = Vec::new();
            for method in Method::ALL {
                let Some(op) = item.get(method.key()) else {
                    continue;
                };
                let op_at = format!("{item_at}/{}", method.key());
                operations.push(self.operation(template, method, op, &op_at, &shared, schemes)?);
            }
            out.push(PathItem {
                template: template.clone(),
                pointer: at,
                operations,
            });
        }
        Ok(out)
    }

    fn operation(
        &self,
        template: &str,
        method: Method,
        op: &Value,
        at: &str,
        shared: &[Parameter],
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Result<Operation, SpecError> {
        let op = op.as_object().ok_or(SpecError::WrongType {
            pointer: at.to_owned(),
            expected: "an operation object",
        })?;
        let own = match op.get("parameters") {
            None => Vec::new(),
            Some(p) => self.parameters(p, &format!("{at}/parameters"))?,
        };
        // Operation parameters override path-level ones with the same name and location.
        let mut parameters: Vec<Parameter> = shared
            .iter()
            .filter(|s| {
                !own.iter()
                    .any(|o| o.name == s.name && o.location == s.location)
            })
            .cloned()
            .collect();
        parameters.extend(own);
        let operation_id = string(op.get("operationId"), &format!("{at}/operationId"))?;
        let display = operation_id
            .clone()
            .unwrap_or_else(|| format!("{method} {template}"));
        for name in template_params(template) {
            if !parameters
                .iter()
                .any(|p| p.location == ParamIn::Path && p.name == name)
            {
                return Err(SpecError::PathParamUndeclared {
                    path: template.to_owned(),
                    operation: display,
                    name: name.to_owned(),
                });
            }
        }
        let names: Vec<&str> = template_params(template).collect();
        if let Some(p) = parameters
            .iter()
            .find(|p| p.location == ParamIn::Path && !names.contains(&p.name.as_str()))
        {
            return Err(SpecError::PathParamNotInTemplate {
                pointer: p.pointer.clone(),
                name: p.name.clone(),
            });
        }
        let request_body = match op.get("requestBody") {
            None => None,
            Some(b) => Some(self.request_body(b, &format!("{at}/requestBody"))?),
        };
        let responses = match object(op.get("responses"), &format!("{at}/responses"))? {
            None => Vec::new(),
            Some(r) => self.responses(r, &format!("{at}/responses"))?,
        };
        let security = match op.get("security") {
            None => None,
            Some(s) => Some(self.security(s, &format!("{at}/security"), schemes)?),
        };
        let tags = match op.get("tags") {
            None => Vec::new(),
            Some(Value::Array(t)) => t.iter().map(scalar_text).collect(),
            Some(_) => {
                return Err(SpecError::WrongType {
                    pointer: format!("{at}/tags"),
                    expected: "an array of strings",
                });
            }
        };
        Ok(Operation {
            method,
            path: template.to_owned(),
            pointer: at.to_owned(),
            operation_id,
            summary: string(op.get("summary"), &format!("{at}/summary"))?,
            description: string(op.get("description"), &format!("{at}/description"))?,
            tags,
            deprecated: boolean(op.get("deprecated"), &format!("{at}/deprecated"))?
                .unwrap_or(false),
            sunset: op.get("x-sunset").map(scalar_text),
            parameters,
            request_body,
            responses,
            security,
        })
    }

    fn parameters(&self, value: &Value, at: &str) -> Result<Vec<Parameter>, SpecError> {
        let list = value.as_array().ok_or(SpecError::WrongType {
            pointer: at.to_owned(),
            expected: "an array of parameters",
        })?;
        let mut out: Vec<Parameter> = Vec::with_capacity(list.len());
        for (i, raw) in list.iter().enumerate() {
            let (p, p_at) = self.follow(raw, &format!("{at}/{i}"))?;
            let p = p.as_object().ok_or(SpecError::WrongType {
                pointer: p_at.clone(),
                expected: "a parameter object",
            })?;
            let name =
                string(p.get("name"), &format!("{p_at}/name"))?.ok_or(SpecError::Missing {
                    pointer: format!("{p_at}/name"),
                })?;
            let location = match string(p.get("in"), &format!("{p_at}/in"))?.as_deref() {
                Some("path") => ParamIn::Path,
                Some("query") => ParamIn::Query,
                Some("header") => ParamIn::Header,
                Some("cookie") => ParamIn::Cookie,
                other => {
                    return Err(SpecError::InvalidValue {
                        pointer: format!("{p_at}/in"),
                        value: other.unwrap_or("").to_owned(),
                        expected: "one of path, query, header, cookie",
                    });
                }
            };
            let style = match string(p.get("style"), &format!("{p_at}/style"))? {
                None => ParamStyle::default_for(location),
                Some(s) => ParamStyle::parse(&s).ok_or(SpecError::InvalidValue {
                    pointer: format!("{p_at}/style"),
                    value: s.clone(),
                    expected: "an OpenAPI parameter style",
                })?,
            };
            let explode = boolean(p.get("explode"), &format!("{p_at}/explode"))?
                .unwrap_or(style == ParamStyle::Form);
            let (schema, content_type) = match (p.get("schema"), p.get("content")) {
                (Some(s), _) => (
                    Some(Schema {
                        pointer: format!("{p_at}/schema"),
                        value: s.clone(),
                    }),
                    None,
                ),
                (None, Some(Value::Object(content))) => match content.iter().next() {
                    Some((media, m)) => (
                        m.get("schema").map(|s| Schema {
                            pointer: format!("{p_at}/content/{}/schema", escape_pointer(media)),
                            value: s.clone(),
                        }),
                        Some(media.clone()),
                    ),
                    None => (None, None),
                },
                _ => (None, None),
            };
            let required = boolean(p.get("required"), &format!("{p_at}/required"))?
                .unwrap_or(location == ParamIn::Path);
            let param = Parameter {
                name,
                location,
                required,
                deprecated: boolean(p.get("deprecated"), &format!("{p_at}/deprecated"))?
                    .unwrap_or(false),
                style,
                explode,
                allow_reserved: boolean(p.get("allowReserved"), &format!("{p_at}/allowReserved"))?
                    .unwrap_or(false),
                description: string(p.get("description"), &format!("{p_at}/description"))?,
                schema,
                content_type,
                pointer: p_at,
            };
            // Later duplicates win, as for path-level overrides; keep one per name and place.
            out.retain(|o| !(o.name == param.name && o.location == param.location));
            out.push(param);
        }
        Ok(out)
    }

    fn request_body(&self, value: &Value, at: &str) -> Result<RequestBody, SpecError> {
        let (body, body_at) = self.follow(value, at)?;
        let body = body.as_object().ok_or(SpecError::WrongType {
            pointer: body_at.clone(),
            expected: "a request body object",
        })?;
        Ok(RequestBody {
            required: boolean(body.get("required"), &format!("{body_at}/required"))?
                .unwrap_or(false),
            description: string(body.get("description"), &format!("{body_at}/description"))?,
            content: self.content(body.get("content"), &format!("{body_at}/content"))?,
            pointer: body_at,
        })
    }

    fn responses(&self, map: &Map<String, Value>, at: &str) -> Result<Vec<Response>, SpecError> {
        let mut out = Vec::with_capacity(map.len());
        for (key, raw) in map {
            if key.starts_with("x-") {
                continue;
            }
            let status = parse_status(key).ok_or(SpecError::InvalidValue {
                pointer: format!("{at}/{key}"),
                value: key.clone(),
                expected: "an HTTP status code, a range like 4XX, or default",
            })?;
            let (resp, resp_at) = self.follow(raw, &format!("{at}/{key}"))?;
            let resp = resp.as_object().ok_or(SpecError::WrongType {
                pointer: resp_at.clone(),
                expected: "a response object",
            })?;
            let mut headers = Vec::new();
            if let Some(h) = object(resp.get("headers"), &format!("{resp_at}/headers"))? {
                for (name, raw_header) in h {
                    let h_at = format!("{resp_at}/headers/{}", escape_pointer(name));
                    let (header, h_at) = self.follow(raw_header, &h_at)?;
                    headers.push(ResponseHeader {
                        name: name.clone(),
                        required: boolean(header.get("required"), &format!("{h_at}/required"))?
                            .unwrap_or(false),
                        schema: header.get("schema").map(|s| Schema {
                            pointer: format!("{h_at}/schema"),
                            value: s.clone(),
                        }),
                    });
                }
            }
            out.push(Response {
                status,
                description: string(resp.get("description"), &format!("{resp_at}/description"))?,
                headers,
                content: self.content(resp.get("content"), &format!("{resp_at}/content"))?,
                pointer: resp_at,
            });
        }
        Ok(out)
    }

    fn content(&self, value: Option<&Value>, at: &str) -> Result<Vec<MediaType>, SpecError> {
        let Some(map) = object(value, at)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(map.len());
        for (media, m) in map {
            let m_at = format!("{at}/{}", escape_pointer(media));
            let m = m.as_object().ok_or(SpecError::WrongType {
                pointer: m_at.clone(),
                expected: "a media type object",
            })?;
            let mut examples = Vec::new();
            if let Some(e) = m.get("example") {
                examples.push(Example {
                    name: None,
                    summary: None,
                    value: e.clone(),
                });
            }
            if let Some(named) = object(m.get("examples"), &format!("{m_at}/examples"))? {
                for (name, raw) in named {
                    let (ex, _) =
                        self.follow(raw, &format!("{m_at}/examples/{}", escape_pointer(name)))?;
                    // `externalValue` examples live outside the document; they are skipped.
                    if let Some(v) = ex.get("value") {
                        examples.push(Example {
                            name: Some(name.clone()),
                            summary: ex.get("summary").map(scalar_text),
                            value: v.clone(),
                        });
                    }
                }
            }
            out.push(MediaType {
                media_type: media.clone(),
                schema: m.get("schema").map(|s| Schema {
                    pointer: format!("{m_at}/schema"),
                    value: s.clone(),
                }),
                examples,
                pointer: m_at,
            });
        }
        Ok(out)
    }
}

fn parse_status(key: &str) -> Option<ResponseStatus> {
    if key == "default" {
        return Some(ResponseStatus::Default);
    }
    let bytes = key.as_bytes();
    if bytes.len() == 3 && (b'1'..=b'5').contains(&bytes[0]) {
        if bytes[1..].eq_ignore_ascii_case(b"XX") {
            return Some(ResponseStatus::Range(bytes[0] - b'0'));
        }
        if let Ok(code) = key.parse::<u16>() {
            return Some(ResponseStatus::Code(code));
        }
    }
    None
}

/// The parameter names of a path template, e.g. `order_number` in `/orders/{order_number}`.
pub fn template_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
}

fn object<'v>(
    value: Option<&'v Value>,
    pointer: &str,
) -> Result<Option<&'v Map<String, Value>>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(SpecError::WrongType {
            pointer: pointer.to_owned(),
            expected: "an object",
        }),
    }
}

fn string(value: Option<&Value>, pointer: &str) -> Result<Option<String>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SpecError::WrongType {
            pointer: pointer.to_owned(),
            expected: "a string",
        }),
    }
}

fn boolean(value: Option<&Value>, pointer: &str) -> Result<Option<bool>, SpecError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(SpecError::WrongType {
            pointer: pointer.to_owned(),
            expected: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V31: &str = r##"
openapi: 3.1.0
info: {title: Orders, version: 1.2.0, contact: {email: o@example.com}}
security: [{apiKey: []}]
paths:
  /orders/{order_number}:
    parameters:
      - {name: order_number, in: path, required: true, schema: {type: string}}
    get:
      operationId: getOrder
      summary: Get an order
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Order"}
              examples:
                shipped: {value: {number: SO-1, status: shipped}}
        4XX: {$ref: "#/components/responses/Problem"}
    post:
      operationId: updateOrder
      security: [{oauth: [orders:write]}]
      parameters:
        - {name: Idempotency-Key, in: header, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Order"}
            example: {number: SO-1}
      responses:
        default: {description: error}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-API-Key}
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: "https://x.example/t", scopes: {"orders:write": w}}}
  responses:
    Problem:
      description: a problem
      content: {application/problem+json: {schema: {type: object}}}
  schemas:
    Order:
      type: object
      properties:
        number: {type: string}
        parent: {$ref: "#/components/schemas/Order"}
"##;

    fn parse_str(s: &str) -> Result<Document, SpecError> {
        parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn builds_the_model_from_31_yaml() {
        let doc = parse_str(V31).unwrap();
        assert_eq!(doc.dialect, Dialect::V31);
        assert_eq!(doc.info.version, semver::Version::new(1, 2, 0));
        assert_eq!(doc.paths.len(), 1);
        let get = doc.operation_by_id("getOrder").unwrap();
        assert_eq!(get.method, Method::Get);
        assert_eq!(get.parameters.len(), 1, "path-level parameter merged");
        assert_eq!(get.effective_security(&doc), doc.security.as_slice());
        let ok = get.response_for(200).unwrap();
        assert_eq!(ok.content[0].examples[0].name.as_deref(), Some("shipped"));
        let problem = get.response_for(404).unwrap();
        assert_eq!(problem.status, ResponseStatus::Range(4));
        assert_eq!(problem.content[0].media_type, "application/problem+json");
        let post = doc.operation_by_id("updateOrder").unwrap();
        assert_eq!(post.parameters.len(), 2);
        assert!(post.request_body.as_ref().unwrap().required);
        assert_eq!(
            post.effective_security(&doc)[0].schemes["oauth"],
            vec!["orders:write".to_owned()]
        );
        assert_eq!(
            post.response_for(500).unwrap().status,
            ResponseStatus::Default
        );
        // Recursive schemas resolve lazily.
        let schema = &ok.content[0].schema.as_ref().unwrap().value;
        let (order, at) = doc.deref(schema, "/x").unwrap();
        assert_eq!(at, "/components/schemas/Order");
        assert!(order.get("properties").is_some());
    }

    #[test]
    fn the_document_keeps_the_tree_it_was_given() {
        // `parse_value` moves the tree into the document (no copy): it is the same value.
        let tree = parse_str(V31).unwrap().tree;
        let doc = parse_value(tree.clone()).unwrap();
        assert_eq!(doc.tree, tree);
        assert_eq!(doc.operations().count(), 2);
    }

    #[test]
    fn json_30_is_the_same_model() {
        let yaml_doc = parse_str(&V31.replace("3.1.0", "3.0.3")).unwrap();
        let json = serde_json::to_vec(&yaml_doc.tree).unwrap();
        let json_doc = parse(&json, &Limits::default()).unwrap();
        assert_eq!(json_doc.dialect, Dialect::V30);
        assert_eq!(json_doc.tree, yaml_doc.tree);
        assert_eq!(json_doc.operations().count(), 2);
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(matches!(
            parse_str("swagger: '2.0'\ninfo: {title: x, version: 1.0.0}\npaths: {}\n"),
            Err(SpecError::Swagger2 { version }) if version == "2.0"
        ));
        assert!(matches!(
            parse_str("openapi: 2.5.0\ninfo: {title: x, version: 1.0.0}\n"),
            Err(SpecError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            parse_str("info: {title: x, version: 1.0.0}\n"),
            Err(SpecError::MissingOpenApi)
        ));
        assert!(matches!(
            parse_str("openapi: 3.1.0\ninfo: {title: x, version: v1}\n"),
            Err(SpecError::VersionNotSemver { .. })
        ));
        assert!(matches!(
            parse_str(&V31.replace("#/components/schemas/Order\"}\n              examples", "other.yaml#/Order\"}\n              examples")),
            Err(SpecError::ExternalRef { reference, .. }) if reference == "other.yaml#/Order"
        ));
        assert!(matches!(
            parse_str(&V31.replace(
                "$ref: \"#/components/responses/Problem\"",
                "$ref: \"#/components/responses/Nope\""
            )),
            Err(SpecError::UnresolvedRef { .. })
        ));
        let cyclic = "openapi: 3.1.0\ninfo: {title: x, version: 1.0.0}\ncomponents:\n  schemas:\n    A: {$ref: '#/components/schemas/B'}\n    B: {$ref: '#/components/schemas/A'}\n";
        assert!(matches!(parse_str(cyclic), Err(SpecError::RefCycle { .. })));
        let undeclared = "openapi: 3.1.0\ninfo: {title: x, version: 1.0.0}\npaths:\n  /a/{id}:\n    get: {responses: {}}\n";
        assert!(matches!(
            parse_str(undeclared),
            Err(SpecError::PathParamUndeclared { name, .. }) if name == "id"
        ));
        assert!(matches!(
            parse_str(&V31.replace("security: [{oauth:", "security: [{nope:")),
            Err(SpecError::UnknownSecurityScheme { name, .. }) if name == "nope"
        ));
    }

    #[test]
    fn refs_inside_examples_are_data() {
        let doc = "openapi: 3.1.0\ninfo: {title: x, version: 1.0.0}\ncomponents:\n  schemas:\n    A: {type: object, example: {$ref: 'http://elsewhere'}}\n";
        assert!(parse_str(doc).is_ok());
    }

    /// A spec with one operation whose `responses` are `body`.
    fn dangling(body: &str) -> String {
        format!(
            "openapi: 3.1.0\ninfo: {{title: x, version: 1.0.0}}\npaths:\n  /a:\n    get:\n      responses:\n{body}"
        )
    }

    #[test]
    fn refs_under_a_response_named_default_are_checked() {
        let doc = dangling(
            "        default:\n          description: error\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Missing'}\n",
        );
        assert!(matches!(
            parse_str(&doc),
            Err(SpecError::UnresolvedRef { pointer, .. })
                if pointer == "/paths/~1a/get/responses/default/content/application~1json/schema/$ref"
        ));
    }

    #[test]
    fn refs_under_properties_named_like_keywords_are_checked() {
        for name in ["example", "default", "enum", "const", "examples"] {
            let doc = dangling(&format!(
                "        '200':\n          description: ok\n          content:\n            application/json:\n              schema:\n                type: object\n                properties:\n                  {name}: {{$ref: '#/components/schemas/Missing'}}\n"
            ));
            assert!(
                matches!(
                    parse_str(&doc),
                    Err(SpecError::UnresolvedRef { ref pointer, .. })
                        if pointer.ends_with(&format!("/properties/{name}/$ref"))
                ),
                "property `{name}`: {:?}",
                parse_str(&doc).map(|_| ())
            );
        }
    }

    #[test]
    fn refs_in_components_named_like_keywords_are_checked() {
        let doc = "openapi: 3.1.0\ninfo: {title: x, version: 1.0.0}\ncomponents:\n  schemas:\n    default: {$ref: '#/components/schemas/Missing'}\n";
        assert!(matches!(
            parse_str(doc),
            Err(SpecError::UnresolvedRef { pointer, .. })
                if pointer == "/components/schemas/default/$ref"
        ));
        let doc = "openapi: 3.1.0\ninfo: {title: x, version: 1.0.0}\ncomponents:\n  responses:\n    example:\n      description: x\n      content:\n        application/json:\n          schema: {$ref: 'other.yaml#/X'}\n";
        assert!(matches!(
            parse_str(doc),
            Err(SpecError::ExternalRef { pointer, .. })
                if pointer == "/components/responses/example/content/application~1json/schema/$ref"
        ));
    }

    #[test]
    fn literal_values_stay_data_wherever_they_are() {
        // `$ref`-shaped data in a schema default, an enum, a const, a JSON Schema
        // `examples` array, a media-type example, an Example Object's value (inline and
        // in components) and a parameter example: none of it is a reference.
        let data = "{$ref: 'http://elsewhere/x'}";
        let doc = format!(
            "openapi: 3.1.0\ninfo: {{title: x, version: 1.0.0}}\npaths:\n  /a:\n    get:\n      parameters:\n        - {{name: q, in: query, schema: {{type: object}}, example: {data}}}\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema:\n                type: object\n                default: {data}\n                enum: [{data}]\n                const: {data}\n                examples: [{data}]\n                properties:\n                  default: {{type: object, default: {data}}}\n              example: {data}\n              examples:\n                one: {{value: {data}}}\n                two: {{$ref: '#/components/examples/Two'}}\ncomponents:\n  examples:\n    Two: {{value: {data}}}\n"
        );
        parse_str(&doc).unwrap();
        // An example that is itself a reference is still checked.
        let broken = doc.replace(
            "'#/components/examples/Two'",
            "'#/components/examples/Nope'",
        );
        assert!(matches!(
            parse_str(&broken),
            Err(SpecError::UnresolvedRef { pointer, .. })
                if pointer.ends_with("/examples/two/$ref")
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_mutated_specs(cut in 0usize..2000, junk in "[\\[\\]{}:#$ -]{0,5}") {
            let mut text = V31.to_owned();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &junk);
            }
            let _ = parse_str(&text);
        }
    }
}
