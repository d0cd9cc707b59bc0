//! Data-driven tests of the diff engine: for every check id in the catalogue a pair of
//! small specs where it is reported and one where it is not, each run in OpenAPI 3.0 and
//! 3.1; then `$ref` chains, recursion, dialect equivalences, renderers and the docs.

use gatehouse_policies::diff::{self, Date, FailOn, Options, Report, Severity};
use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi::{self, Document};
use std::collections::BTreeSet;

const V30: &str = "3.0.3";
const V31: &str = "3.1.0";
const SCHEMES: &str = "  securitySchemes:\n    key: {type: apiKey, in: header, name: X-Key}\n    bearer: {type: http, scheme: bearer}\n    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: 'https://t.example/token', scopes: {read: r, write: w}}}}\n";

/// A whole spec around `body` (a `paths:` section, then optionally `components:`).
fn spec(version: &str, body: &str) -> String {
    let mut s = format!(
        "openapi: {version}\ninfo: {{title: T, version: 1.0.0}}\nsecurity: [{{key: []}}]\n{body}\n"
    );
    if !body.contains("securitySchemes:") {
        if !body.contains("components:") {
            s.push_str("components:\n");
        }
        s.push_str(SCHEMES);
    }
    s
}

fn parse(text: &str) -> Document {
    openapi::parse(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("test spec does not parse: {e}\n{text}"))
}

fn today() -> Options {
    Options {
        today: Some(Date::new(2026, 6, 1).expect("a date")),
    }
}

fn run(version: &str, old: &str, new: &str) -> Report {
    diff::diff_with(
        &parse(&spec(version, old)),
        &parse(&spec(version, new)),
        &today(),
    )
}

fn ids(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.id).collect()
}

/// `paths:` with one line per path item.
fn paths(items: &[&str]) -> String {
    let mut s = String::from("paths:\n");
    for item in items {
        s.push_str("  ");
        s.push_str(item);
        s.push('\n');
    }
    s
}

/// `paths:` then `components:` with one line per component section.
fn with_components(items: &[&str], components: &[&str]) -> String {
    let mut s = paths(items);
    s.push_str("components:\n");
    for c in components {
        s.push_str("  ");
        s.push_str(c);
        s.push('\n');
    }
    s
}

struct Case {
    id: &'static str,
    old: String,
    new: String,
    present: bool,
}

fn yes(id: &'static str, old: String, new: String) -> Case {
    Case {
        id,
        old,
        new,
        present: true,
    }
}

fn no(id: &'static str, old: String, new: String) -> Case {
    Case {
        id,
        old,
        new,
        present: false,
    }
}

const OK: &str = "{get: {responses: {'200': {description: ok}}}}";

/// Checks about the shape of the API, each with a case where it fires and one where it
/// must not.
fn shape_cases() -> Vec<Case> {
    let p = |items: &[&str]| paths(items);
    let a = "/a: {get: {responses: {'200': {description: ok}}}}";
    let q = |param: &str| {
        format!("/a: {{get: {{parameters: [{param}], responses: {{'200': {{description: ok}}}}}}}}")
    };
    let body = |rb: &str| {
        format!("/a: {{post: {{requestBody: {rb}, responses: {{'200': {{description: ok}}}}}}}}")
    };
    let req_schema = |schema: &str| {
        body(&format!(
            "{{required: true, content: {{application/json: {{schema: {schema}}}}}}}"
        ))
    };
    let responses = |r: &str| format!("/a: {{get: {{responses: {r}}}}}");
    let res_schema = |schema: &str| {
        responses(&format!(
            "{{'200': {{description: ok, content: {{application/json: {{schema: {schema}}}}}}}}}"
        ))
    };
    let headers = |h: &str| responses(&format!("{{'200': {{description: ok, headers: {h}}}}}"));
    let sec = |s: &str| {
        format!("/a: {{get: {{security: {s}, responses: {{'200': {{description: ok}}}}}}}}")
    };
    let dep = |extra: &str| {
        format!(
            "/b: {{get: {{deprecated: true, {extra}responses: {{'200': {{description: ok}}}}}}}}"
        )
    };
    let schemes = |key_name: &str, description: &str| {
        with_components(
            &[a],
            &[&format!(
                "securitySchemes: {{key: {{type: apiKey, in: header, name: {key_name}, description: {description}}}}}"
            )],
        )
    };
    let obj = |props: &str, required: &str, extra: &str| {
        format!("{{type: object, properties: {{{props}}}, required: [{required}]{extra}}}")
    };
    let ab = "a: {type: string}, b: {type: string}";
    let a_only = "a: {type: string}";
    vec![
        // Paths and operations.
        yes("path-removed", p(&[a, &format!("/b: {OK}")]), p(&[a])),
        no(
            "path-removed",
            p(&[a, &dep("x-sunset: '2026-01-01', ")]),
            p(&[a]),
        ),
        no("path-removed", p(&[a]), p(&[a])),
        yes("path-added", p(&[a]), p(&[a, &format!("/b: {OK}")])),
        no(
            "path-added",
            p(&[
                "/a/{x}: {get: {parameters: [{name: x, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
            p(&[
                "/a/{y}: {get: {parameters: [{name: y, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
        ),
        yes(
            "operation-removed",
            p(&[
                "/a: {get: {responses: {'200': {description: ok}}}, post: {responses: {'200': {description: ok}}}}",
            ]),
            p(&[a]),
        ),
        no(
            "operation-removed",
            p(&[
                "/a: {get: {responses: {'200': {description: ok}}}, post: {deprecated: true, x-sunset: '2026-01-01', responses: {'200': {description: ok}}}}",
            ]),
            p(&[a]),
        ),
        yes(
            "operation-added",
            p(&[a]),
            p(&[
                "/a: {get: {responses: {'200': {description: ok}}}, post: {responses: {'200': {description: ok}}}}",
            ]),
        ),
        no("operation-added", p(&[a]), p(&[a])),
        yes(
            "operation-id-changed",
            p(&["/a: {get: {operationId: one, responses: {'200': {description: ok}}}}"]),
            p(&["/a: {get: {operationId: two, responses: {'200': {description: ok}}}}"]),
        ),
        no(
            "operation-id-changed",
            p(&[a]),
            p(&["/a: {get: {operationId: two, responses: {'200': {description: ok}}}}"]),
        ),
        yes(
            "path-parameter-renamed",
            p(&[
                "/a/{x}: {get: {parameters: [{name: x, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
            p(&[
                "/a/{y}: {get: {parameters: [{name: y, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
        ),
        no(
            "path-parameter-renamed",
            p(&[
                "/a/{x}: {get: {parameters: [{name: x, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
            p(&[
                "/a/{x}: {get: {parameters: [{name: x, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}}",
            ]),
        ),
        // Parameters.
        yes(
            "parameter-added-required",
            p(&[a]),
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
        ),
        no(
            "parameter-added-required",
            p(&[a]),
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
        ),
        yes(
            "parameter-added",
            p(&[a]),
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
        ),
        no(
            "parameter-added",
            p(&[a]),
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
        ),
        yes(
            "parameter-removed",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[a]),
        ),
        no(
            "parameter-removed",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q("{name: q, in: header, schema: {type: string}}")]),
        ),
        yes(
            "parameter-became-required",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
        ),
        no(
            "parameter-became-required",
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
        ),
        yes(
            "parameter-became-optional",
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
        ),
        no(
            "parameter-became-optional",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q(
                "{name: q, in: query, required: true, schema: {type: string}}",
            )]),
        ),
        yes(
            "parameter-location-changed",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q("{name: q, in: header, schema: {type: string}}")]),
        ),
        no(
            "parameter-location-changed",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
        ),
        yes(
            "parameter-style-changed",
            p(&[&q(
                "{name: q, in: query, schema: {type: array, items: {type: string}}}",
            )]),
            p(&[&q(
                "{name: q, in: query, style: pipeDelimited, schema: {type: array, items: {type: string}}}",
            )]),
        ),
        no(
            "parameter-style-changed",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q(
                "{name: q, in: query, style: pipeDelimited, schema: {type: string}}",
            )]),
        ),
        yes(
            "parameter-explode-changed",
            p(&[&q(
                "{name: q, in: query, schema: {type: array, items: {type: string}}}",
            )]),
            p(&[&q(
                "{name: q, in: query, explode: false, schema: {type: array, items: {type: string}}}",
            )]),
        ),
        no(
            "parameter-explode-changed",
            p(&[&q("{name: q, in: query, schema: {type: integer}}")]),
            p(&[&q(
                "{name: q, in: query, explode: false, schema: {type: integer}}",
            )]),
        ),
        // Request bodies.
        yes(
            "request-body-added-required",
            p(&["/a: {post: {responses: {'200': {description: ok}}}}"]),
            p(&[&req_schema("{type: object}")]),
        ),
        no(
            "request-body-added-required",
            p(&["/a: {post: {responses: {'200': {description: ok}}}}"]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        yes(
            "request-body-added",
            p(&["/a: {post: {responses: {'200': {description: ok}}}}"]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        no(
            "request-body-added",
            p(&["/a: {post: {responses: {'200': {description: ok}}}}"]),
            p(&[&req_schema("{type: object}")]),
        ),
        yes(
            "request-body-removed",
            p(&[&req_schema("{type: object}")]),
            p(&["/a: {post: {responses: {'200': {description: ok}}}}"]),
        ),
        no(
            "request-body-removed",
            p(&[&req_schema("{type: object}")]),
            p(&[&req_schema("{type: object}")]),
        ),
        yes(
            "request-body-became-required",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
            p(&[&req_schema("{type: object}")]),
        ),
        no(
            "request-body-became-required",
            p(&[&req_schema("{type: object}")]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        yes(
            "request-body-became-optional",
            p(&[&req_schema("{type: object}")]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        no(
            "request-body-became-optional",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
            p(&[&req_schema("{type: object}")]),
        ),
        yes(
            "request-body-media-type-removed",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}, application/xml: {schema: {type: object}}}}",
            )]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        no(
            "request-body-media-type-removed",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
            p(&[&body(
                "{content: {'application/json; charset=utf-8': {schema: {type: object}}}}",
            )]),
        ),
        yes(
            "request-body-media-type-added",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}, application/xml: {schema: {type: object}}}}",
            )]),
        ),
        no(
            "request-body-media-type-added",
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}, application/xml: {schema: {type: object}}}}",
            )]),
            p(&[&body(
                "{content: {application/json: {schema: {type: object}}}}",
            )]),
        ),
        yes(
            "request-property-added-required",
            p(&[&req_schema(&obj(a_only, "a", ""))]),
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
        ),
        no(
            "request-property-added-required",
            p(&[&req_schema(&obj(a_only, "a", ""))]),
            p(&[&req_schema(&obj(
                "a: {type: string}, b: {type: string, readOnly: true}",
                "a, b",
                "",
            ))]),
        ),
        yes(
            "request-property-added",
            p(&[&req_schema(&obj(a_only, "a", ""))]),
            p(&[&req_schema(&obj(ab, "a", ""))]),
        ),
        no(
            "request-property-added",
            p(&[&req_schema(&obj(a_only, "a", ""))]),
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
        ),
        yes(
            "request-property-became-required",
            p(&[&req_schema(&obj(ab, "a", ""))]),
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
        ),
        no(
            "request-property-became-required",
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
            p(&[&req_schema(&obj(ab, "a", ""))]),
        ),
        yes(
            "request-property-became-optional",
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
            p(&[&req_schema(&obj(ab, "a", ""))]),
        ),
        no(
            "request-property-became-optional",
            p(&[&req_schema(&obj(ab, "a", ""))]),
            p(&[&req_schema(&obj(ab, "a, b", ""))]),
        ),
        yes(
            "request-property-removed",
            p(&[&req_schema(&obj(ab, "a", ", additionalProperties: false"))]),
            p(&[&req_schema(&obj(
                a_only,
                "a",
                ", additionalProperties: false",
            ))]),
        ),
        no(
            "request-property-removed",
            p(&[&req_schema(&obj(ab, "a", ""))]),
            p(&[&req_schema(&obj(a_only, "a", ""))]),
        ),
        yes(
            "request-property-no-longer-documented",
            p(&[&req_schema(&obj(ab, "a", ""))]),
            p(&[&req_schema(&obj(a_only, "a", ""))]),
        ),
        no(
            "request-property-no-longer-documented",
            p(&[&req_schema(&obj(ab, "a", ", additionalProperties: false"))]),
            p(&[&req_schema(&obj(
                a_only,
                "a",
                ", additionalProperties: false",
            ))]),
        ),
        // Responses.
        yes(
            "response-success-status-removed",
            p(&[&responses(
                "{'200': {description: ok}, '404': {description: no}}",
            )]),
            p(&[&responses("{'404': {description: no}}")]),
        ),
        no(
            "response-success-status-removed",
            p(&[&responses("{'200': {description: ok}}")]),
            p(&[&responses("{2XX: {description: ok}}")]),
        ),
        yes(
            "response-error-status-removed",
            p(&[&responses(
                "{'200': {description: ok}, '404': {description: no}}",
            )]),
            p(&[&responses("{'200': {description: ok}}")]),
        ),
        no(
            "response-error-status-removed",
            p(&[&responses(
                "{'200': {description: ok}, '404': {description: no}}",
            )]),
            p(&[&responses(
                "{'200': {description: ok}, 4XX: {description: no}}",
            )]),
        ),
        yes(
            "response-success-status-added",
            p(&[&responses("{'200': {description: ok}}")]),
            p(&[&responses(
                "{'200': {description: ok}, '202': {description: later}}",
            )]),
        ),
        no(
            "response-success-status-added",
            p(&[&responses("{2XX: {description: ok}}")]),
            p(&[&responses(
                "{2XX: {description: ok}, '202': {description: later}}",
            )]),
        ),
        yes(
            "response-error-status-added",
            p(&[&responses("{'200': {description: ok}}")]),
            p(&[&responses(
                "{'200': {description: ok}, '404': {description: no}}",
            )]),
        ),
        no(
            "response-error-status-added",
            p(&[&responses(
                "{'200': {description: ok}, default: {description: error}}",
            )]),
            p(&[&responses(
                "{'200': {description: ok}, default: {description: error}, '404': {description: no}}",
            )]),
        ),
        yes(
            "response-media-type-removed",
            p(&[&responses(
                "{'200': {description: ok, content: {application/json: {schema: {type: object}}, text/csv: {schema: {type: string}}}}}",
            )]),
            p(&[&res_schema("{type: object}")]),
        ),
        no(
            "response-media-type-removed",
            p(&[&res_schema("{type: object}")]),
            p(&[&responses(
                "{'200': {description: ok, content: {application/json: {schema: {type: object}}, text/csv: {schema: {type: string}}}}}",
            )]),
        ),
        yes(
            "response-media-type-added",
            p(&[&res_schema("{type: object}")]),
            p(&[&responses(
                "{'200': {description: ok, content: {application/json: {schema: {type: object}}, text/csv: {schema: {type: string}}}}}",
            )]),
        ),
        no(
            "response-media-type-added",
            p(&[&responses(
                "{'200': {description: ok, content: {application/json: {schema: {type: object}}, text/csv: {schema: {type: string}}}}}",
            )]),
            p(&[&res_schema("{type: object}")]),
        ),
        yes(
            "response-required-property-removed",
            p(&[&res_schema(&obj(ab, "a, b", ""))]),
            p(&[&res_schema(&obj(a_only, "a", ""))]),
        ),
        no(
            "response-required-property-removed",
            p(&[&res_schema(&obj(ab, "a", ""))]),
            p(&[&res_schema(&obj(a_only, "a", ""))]),
        ),
        yes(
            "response-property-removed",
            p(&[&res_schema(&obj(ab, "a", ""))]),
            p(&[&res_schema(&obj(a_only, "a", ""))]),
        ),
        no(
            "response-property-removed",
            p(&[&res_schema(&obj(
                "a: {type: string}, b: {type: string, writeOnly: true}",
                "a",
                "",
            ))]),
            p(&[&res_schema(&obj(a_only, "a", ""))]),
        ),
        yes(
            "response-property-became-optional",
            p(&[&res_schema(&obj(ab, "a, b", ""))]),
            p(&[&res_schema(&obj(ab, "a", ""))]),
        ),
        no(
            "response-property-became-optional",
            p(&[&res_schema(&obj(ab, "a", ""))]),
            p(&[&res_schema(&obj(ab, "a, b", ""))]),
        ),
        yes(
            "response-property-became-required",
            p(&[&res_schema(&obj(ab, "a", ""))]),
            p(&[&res_schema(&obj(ab, "a, b", ""))]),
        ),
        no(
            "response-property-became-required",
            p(&[&res_schema(&obj(ab, "a, b", ""))]),
            p(&[&res_schema(&obj(ab, "a", ""))]),
        ),
        yes(
            "response-property-added",
            p(&[&res_schema(&obj(a_only, "a", ""))]),
            p(&[&res_schema(&obj(ab, "a", ""))]),
        ),
        no(
            "response-property-added",
            p(&[&res_schema(&obj(ab, "a", ""))]),
            p(&[&res_schema(&obj(ab, "a", ""))]),
        ),
        yes(
            "response-required-header-removed",
            p(&[&headers(
                "{X-Total: {required: true, schema: {type: integer}}}",
            )]),
            p(&[&responses("{'200': {description: ok}}")]),
        ),
        no(
            "response-required-header-removed",
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
            p(&[&responses("{'200': {description: ok}}")]),
        ),
        yes(
            "response-header-removed",
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
            p(&[&responses("{'200': {description: ok}}")]),
        ),
        no(
            "response-header-removed",
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
            p(&[&headers("{x-total: {schema: {type: integer}}}")]),
        ),
        yes(
            "response-header-became-optional",
            p(&[&headers(
                "{X-Total: {required: true, schema: {type: integer}}}",
            )]),
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
        ),
        no(
            "response-header-became-optional",
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
            p(&[&headers(
                "{X-Total: {required: true, schema: {type: integer}}}",
            )]),
        ),
        yes(
            "response-header-added",
            p(&[&responses("{'200': {description: ok}}")]),
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
        ),
        no(
            "response-header-added",
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
            p(&[&headers("{X-Total: {schema: {type: integer}}}")]),
        ),
        // Security.
        yes(
            "security-requirement-added",
            p(&[&sec("[]")]),
            p(&[&sec("[{key: []}]")]),
        ),
        yes(
            "security-requirement-added",
            p(&[&sec("[{key: []}]")]),
            p(&[&sec("[{key: [], bearer: []}]")]),
        ),
        no(
            "security-requirement-added",
            p(&[&sec("[{key: []}]")]),
            p(&[&sec("[{key: []}, {bearer: []}]")]),
        ),
        no(
            "security-requirement-added",
            p(&[a]),
            p(&[&sec("[{key: []}]")]),
        ),
        yes(
            "security-scope-added",
            p(&[&sec("[{oauth: [read]}]")]),
            p(&[&sec("[{oauth: [read, write]}]")]),
        ),
        no(
            "security-scope-added",
            p(&[&sec("[{oauth: [read, write]}]")]),
            p(&[&sec("[{oauth: [read]}]")]),
        ),
        yes(
            "security-requirement-removed",
            p(&[&sec("[{key: []}]")]),
            p(&[&sec("[{key: []}, {}]")]),
        ),
        no(
            "security-requirement-removed",
            p(&[&sec("[{key: []}]")]),
            p(&[&sec("[{bearer: []}, {key: []}]")]),
        ),
        yes(
            "security-scheme-changed",
            schemes("X-Key", "old"),
            schemes("X-Api-Key", "old"),
        ),
        no(
            "security-scheme-changed",
            schemes("X-Key", "old"),
            schemes("X-Key", "new"),
        ),
        // Deprecation (today is 2026-06-01).
        yes(
            "operation-became-deprecated",
            p(&[a]),
            p(&["/a: {get: {deprecated: true, responses: {'200': {description: ok}}}}"]),
        ),
        no(
            "operation-became-deprecated",
            p(&["/a: {get: {deprecated: true, responses: {'200': {description: ok}}}}"]),
            p(&[a]),
        ),
        yes(
            "operation-removed-before-sunset",
            p(&[a, &dep("x-sunset: '2027-01-01', ")]),
            p(&[a]),
        ),
        yes(
            "operation-removed-before-sunset",
            p(&[a, &dep("x-sunset: 'when we feel like it', ")]),
            p(&[a]),
        ),
        no(
            "operation-removed-before-sunset",
            p(&[a, &dep("x-sunset: 'Thu, 01 Jan 2026 00:00:00 GMT', ")]),
            p(&[a]),
        ),
        yes(
            "deprecated-operation-removed",
            p(&[a, &dep("x-sunset: '2026-06-01', ")]),
            p(&[a]),
        ),
        no(
            "deprecated-operation-removed",
            p(&[a, &dep("x-sunset: '2026-06-02', ")]),
            p(&[a]),
        ),
        yes(
            "deprecated-operation-removed-without-sunset",
            p(&[a, &dep("")]),
            p(&[a]),
        ),
        no(
            "deprecated-operation-removed-without-sunset",
            p(&[a, &format!("/b: {OK}")]),
            p(&[a]),
        ),
        yes(
            "operation-sunset-brought-forward",
            p(&[a, &dep("x-sunset: '2027-06-01', ")]),
            p(&[a, &dep("x-sunset: '2027-01-01', ")]),
        ),
        no(
            "operation-sunset-brought-forward",
            p(&[a, &dep("x-sunset: '2027-01-01', ")]),
            p(&[a, &dep("x-sunset: '2027-06-01', ")]),
        ),
        yes(
            "parameter-became-deprecated",
            p(&[&q("{name: q, in: query, schema: {type: string}}")]),
            p(&[&q(
                "{name: q, in: query, deprecated: true, schema: {type: string}}",
            )]),
        ),
        no(
            "parameter-became-deprecated",
            p(&[&q(
                "{name: q, in: query, deprecated: true, schema: {type: string}}",
            )]),
            p(&[&q(
                "{name: q, in: query, deprecated: true, schema: {type: string}}",
            )]),
        ),
        // Limits: a walk that stops says so; a shallow one does not.
        yes("schema-comparison-truncated", chain(250), chain(250)),
        no("schema-comparison-truncated", chain(150), chain(150)),
    ]
}

/// A request body whose schema is a chain of `depth` components, each holding the next.
fn chain(depth: usize) -> String {
    let mut schemas = String::from("schemas:\n");
    for i in 0..depth {
        schemas.push_str(&format!(
            "    C{i}: {{type: object, properties: {{next: {{$ref: '#/components/schemas/C{}'}}}}}}\n",
            i + 1
        ));
    }
    schemas.push_str(&format!("    C{depth}: {{type: string}}"));
    with_components(
        &[
            "/a: {post: {requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/C0'}}}}, responses: {'200': {description: ok}}}}",
        ],
        &[&schemas],
    )
}

#[test]
fn every_shape_check_fires_on_its_breaking_spec_and_not_on_its_harmless_one() {
    let mut failures = Vec::new();
    for case in shape_cases() {
        for version in [V30, V31] {
            let report = run(version, &case.old, &case.new);
            let found = ids(&report).contains(&case.id);
            if found != case.present {
                failures.push(format!(
                    "{} (OpenAPI {version}): expected {}, got {:?}\n--- old\n{}\n--- new\n{}",
                    case.id,
                    if case.present { "present" } else { "absent" },
                    ids(&report),
                    case.old,
                    case.new
                ));
            }
            let expected = diff::lookup(case.id).expect("case ids are in the catalogue");
            for f in report.findings.iter().filter(|f| f.id == case.id) {
                assert_eq!(f.severity, expected.severity, "{}", case.id);
                assert!(f.message.ends_with('.'), "{}: {}", case.id, f.message);
                assert!(
                    f.old_pointer.is_some() || f.new_pointer.is_some(),
                    "{} has no pointer",
                    case.id
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A schema change, spelled in each dialect (`None`: the dialect has no spelling for it).
struct SchemaCase {
    change: &'static str,
    v30: Option<(&'static str, &'static str)>,
    v31: Option<(&'static str, &'static str)>,
    /// The reverse change reports the same id (an unrelated type, a changed pattern).
    symmetric: bool,
}

const fn both(change: &'static str, old: &'static str, new: &'static str) -> SchemaCase {
    SchemaCase {
        change,
        v30: Some((old, new)),
        v31: Some((old, new)),
        symmetric: false,
    }
}

const fn symmetric(change: &'static str, old: &'static str, new: &'static str) -> SchemaCase {
    SchemaCase {
        change,
        v30: Some((old, new)),
        v31: Some((old, new)),
        symmetric: true,
    }
}

const fn dialects(
    change: &'static str,
    v30: Option<(&'static str, &'static str)>,
    v31: Option<(&'static str, &'static str)>,
) -> SchemaCase {
    SchemaCase {
        change,
        v30,
        v31,
        symmetric: false,
    }
}

const SCHEMA_CASES: &[SchemaCase] = &[
    symmetric("type-changed", "{type: string}", "{type: integer}"),
    both("type-narrowed", "{type: number}", "{type: integer}"),
    both("type-narrowed", "{}", "{type: string}"),
    both("type-widened", "{type: integer}", "{type: number}"),
    dialects(
        "type-widened",
        None,
        Some(("{type: string}", "{type: [string, integer]}")),
    ),
    symmetric(
        "format-changed",
        "{type: string, format: date}",
        "{type: string, format: date-time}",
    ),
    both(
        "format-narrowed",
        "{type: integer, format: int64}",
        "{type: integer, format: int32}",
    ),
    both(
        "format-narrowed",
        "{type: string}",
        "{type: string, format: uuid}",
    ),
    both(
        "format-widened",
        "{type: number, format: float}",
        "{type: number, format: double}",
    ),
    both(
        "enum-value-removed",
        "{type: string, enum: [open, shipped]}",
        "{type: string, enum: [open]}",
    ),
    dialects(
        "enum-value-removed",
        None,
        Some(("{enum: [open, shipped]}", "{const: open}")),
    ),
    both(
        "enum-value-added",
        "{type: string, enum: [open]}",
        "{type: string, enum: [open, shipped]}",
    ),
    both(
        "enum-added",
        "{type: string}",
        "{type: string, enum: [open]}",
    ),
    both(
        "enum-removed",
        "{type: string, enum: [open]}",
        "{type: string}",
    ),
    both(
        "max-length-decreased",
        "{type: string, maxLength: 10}",
        "{type: string, maxLength: 5}",
    ),
    both(
        "max-length-increased",
        "{type: string, maxLength: 5}",
        "{type: string}",
    ),
    both(
        "min-length-increased",
        "{type: string, minLength: 1}",
        "{type: string, minLength: 3}",
    ),
    both(
        "min-length-decreased",
        "{type: string, minLength: 3}",
        "{type: string, minLength: 0}",
    ),
    both(
        "maximum-decreased",
        "{type: integer, maximum: 100}",
        "{type: integer, maximum: 50}",
    ),
    dialects(
        "maximum-decreased",
        Some((
            "{type: number, maximum: 10}",
            "{type: number, maximum: 10, exclusiveMaximum: true}",
        )),
        Some((
            "{type: number, maximum: 10}",
            "{type: number, exclusiveMaximum: 10}",
        )),
    ),
    both(
        "maximum-increased",
        "{type: integer, maximum: 50}",
        "{type: integer, maximum: 100}",
    ),
    both(
        "minimum-increased",
        "{type: integer, minimum: 0}",
        "{type: integer, minimum: 1}",
    ),
    dialects(
        "minimum-increased",
        Some((
            "{type: number, minimum: 0}",
            "{type: number, minimum: 0, exclusiveMinimum: true}",
        )),
        Some((
            "{type: number, minimum: 0}",
            "{type: number, exclusiveMinimum: 0}",
        )),
    ),
    both(
        "minimum-decreased",
        "{type: integer, minimum: 1}",
        "{type: integer}",
    ),
    both(
        "max-items-decreased",
        "{type: array, items: {type: string}, maxItems: 10}",
        "{type: array, items: {type: string}, maxItems: 5}",
    ),
    both(
        "max-items-increased",
        "{type: array, items: {type: string}, maxItems: 5}",
        "{type: array, items: {type: string}, maxItems: 10}",
    ),
    both(
        "min-items-increased",
        "{type: array, items: {type: string}}",
        "{type: array, items: {type: string}, minItems: 1}",
    ),
    both(
        "min-items-decreased",
        "{type: array, items: {type: string}, minItems: 2}",
        "{type: array, items: {type: string}, minItems: 1}",
    ),
    both(
        "unique-items-added",
        "{type: array, items: {type: string}}",
        "{type: array, items: {type: string}, uniqueItems: true}",
    ),
    both(
        "unique-items-removed",
        "{type: array, items: {type: string}, uniqueItems: true}",
        "{type: array, items: {type: string}}",
    ),
    both(
        "pattern-added",
        "{type: string}",
        "{type: string, pattern: '^[A-Z]+$'}",
    ),
    both(
        "pattern-removed",
        "{type: string, pattern: '^[A-Z]+$'}",
        "{type: string}",
    ),
    symmetric(
        "pattern-changed",
        "{type: string, pattern: '^[A-Z]+$'}",
        "{type: string, pattern: '^[A-Z0-9]+$'}",
    ),
    dialects(
        "nullable-removed",
        Some(("{type: string, nullable: true}", "{type: string}")),
        Some(("{type: [string, 'null']}", "{type: string}")),
    ),
    dialects(
        "nullable-added",
        Some(("{type: string}", "{type: string, nullable: true}")),
        Some(("{type: string}", "{type: [string, 'null']}")),
    ),
    dialects(
        "nullable-added",
        Some((
            "{type: object}",
            "{nullable: true, allOf: [{type: object}]}",
        )),
        Some((
            "{type: string}",
            "{anyOf: [{type: string}, {type: 'null'}]}",
        )),
    ),
    both(
        "additional-properties-closed",
        "{type: object, properties: {a: {type: string}}}",
        "{type: object, properties: {a: {type: string}}, additionalProperties: false}",
    ),
    both(
        "additional-properties-opened",
        "{type: object, properties: {a: {type: string}}, additionalProperties: false}",
        "{type: object, properties: {a: {type: string}}, additionalProperties: true}",
    ),
    both(
        "alternative-removed",
        "{oneOf: [{type: string}, {type: integer}]}",
        "{oneOf: [{type: string}]}",
    ),
    both(
        "alternative-added",
        "{type: string}",
        "{anyOf: [{type: string}, {type: array, items: {type: string}}]}",
    ),
];

/// Puts a schema where each scope reads it.
fn at_scope(scope: &str, schema: &str) -> String {
    let item = match scope {
        "parameter" => format!(
            "/a: {{get: {{parameters: [{{name: q, in: query, schema: {schema}}}], responses: {{'200': {{description: ok}}}}}}}}"
        ),
        "request-body" => format!(
            "/a: {{post: {{requestBody: {{content: {{application/json: {{schema: {schema}}}}}}}, responses: {{'200': {{description: ok}}}}}}}}"
        ),
        "response-body" => format!(
            "/a: {{get: {{responses: {{'200': {{description: ok, content: {{application/json: {{schema: {schema}}}}}}}}}}}}}"
        ),
        "response-header" => format!(
            "/a: {{get: {{responses: {{'200': {{description: ok, headers: {{X-H: {{schema: {schema}}}}}}}}}}}}}"
        ),
        other => panic!("unknown scope {other}"),
    };
    paths(&[&item])
}

const SCOPES: [&str; 4] = [
    "parameter",
    "request-body",
    "response-body",
    "response-header",
];

#[test]
fn every_schema_change_fires_in_every_scope_and_dialect_and_not_in_reverse() {
    let mut failures = Vec::new();
    for case in SCHEMA_CASES {
        for scope in SCOPES {
            let id = format!("{scope}-{}", case.change);
            let expected = diff::lookup(&id).expect("schema change ids are in the catalogue");
            for (version, spelling) in [(V30, case.v30), (V31, case.v31)] {
                let Some((old, new)) = spelling else {
                    continue;
                };
                let (old, new) = (at_scope(scope, old), at_scope(scope, new));
                let forward = run(version, &old, &new);
                let hits: Vec<_> = forward.findings.iter().filter(|f| f.id == id).collect();
                if hits.len() != 1 {
                    failures.push(format!(
                        "{id} (OpenAPI {version}): expected once, got {:?}\n{old}\n{new}",
                        ids(&forward)
                    ));
                }
                for f in hits {
                    assert_eq!(f.severity, expected.severity, "{id}");
                    assert!(f.new_pointer.is_some() || f.old_pointer.is_some(), "{id}");
                }
                let unchanged = run(version, &old, &old);
                if !unchanged.is_empty() {
                    failures.push(format!(
                        "{id} (OpenAPI {version}): unchanged spec reports {:?}",
                        ids(&unchanged)
                    ));
                }
                if !case.symmetric {
                    let reverse = run(version, &new, &old);
                    if ids(&reverse).contains(&id.as_str()) {
                        failures.push(format!(
                            "{id} (OpenAPI {version}): also reported for the reverse change"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_test_tables_cover_every_check_id_both_ways() {
    let catalogue: BTreeSet<&str> = diff::catalogue().iter().map(|c| c.id).collect();
    let cases = shape_cases();
    let mut present: BTreeSet<String> = cases
        .iter()
        .filter(|c| c.present)
        .map(|c| c.id.to_owned())
        .collect();
    let absent: BTreeSet<String> = cases
        .iter()
        .filter(|c| !c.present)
        .map(|c| c.id.to_owned())
        .collect();
    for case in SCHEMA_CASES {
        for scope in SCOPES {
            // Schema cases check both: forward present, unchanged and reverse absent.
            present.insert(format!("{scope}-{}", case.change));
        }
    }
    let missing: Vec<&&str> = catalogue
        .iter()
        .filter(|id| !present.contains(**id))
        .collect();
    assert!(missing.is_empty(), "no breaking-side case for {missing:?}");
    let shape_ids: BTreeSet<&str> = diff::Check::ALL.iter().map(|c| c.info().id).collect();
    let missing: Vec<&&str> = shape_ids
        .iter()
        .filter(|id| !absent.contains(**id))
        .collect();
    assert!(missing.is_empty(), "no harmless-side case for {missing:?}");
    assert!(
        present.iter().all(|id| catalogue.contains(id.as_str())),
        "a case names an id outside the catalogue"
    );
}

// ---------------------------------------------------------------------------------------
// Structure through `$ref`s, composition and recursion.

fn body_with(schema: &str, components: &str) -> String {
    with_components(
        &[&format!(
            "/orders: {{post: {{operationId: submitOrder, requestBody: {{required: true, content: {{application/json: {{schema: {schema}}}}}}}, responses: {{'201': {{description: ok, content: {{application/json: {{schema: {schema}}}}}}}}}}}}}"
        )],
        &[components],
    )
}

#[test]
fn renamed_and_inlined_components_are_not_changes() {
    let old = body_with(
        "{$ref: '#/components/schemas/Order'}",
        "schemas: {Order: {type: object, required: [sku], properties: {sku: {type: string, maxLength: 20}, qty: {type: integer, minimum: 1}}}}",
    );
    let renamed = body_with(
        "{$ref: '#/components/schemas/PurchaseOrder'}",
        "schemas: {PurchaseOrder: {type: object, required: [sku], properties: {sku: {type: string, maxLength: 20}, qty: {type: integer, minimum: 1}}}}",
    );
    let inlined = body_with(
        "{type: object, required: [sku], properties: {sku: {type: string, maxLength: 20}, qty: {type: integer, minimum: 1}}}",
        "schemas: {}",
    );
    let composed = body_with(
        "{allOf: [{$ref: '#/components/schemas/Base'}, {properties: {qty: {$ref: '#/components/schemas/Qty'}}}]}",
        "schemas: {Base: {type: object, required: [sku], properties: {sku: {type: string, maxLength: 20}}}, Qty: {type: integer, minimum: 1}}",
    );
    for version in [V30, V31] {
        for new in [&renamed, &inlined, &composed] {
            let report = run(version, &old, new);
            assert!(report.is_empty(), "{version}: {}", report.to_text());
        }
    }
}

#[test]
fn a_change_at_the_end_of_a_ref_chain_is_found_with_pointers_into_both_documents() {
    let chain = |max: u32| {
        body_with(
            "{$ref: '#/components/schemas/A'}",
            &format!(
                "schemas: {{A: {{$ref: '#/components/schemas/B'}}, B: {{$ref: '#/components/schemas/C'}}, C: {{type: object, properties: {{sku: {{type: string, maxLength: {max}}}}}}}}}"
            ),
        )
    };
    for version in [V30, V31] {
        let report = run(version, &chain(20), &chain(10));
        let f = report
            .findings
            .iter()
            .find(|f| f.id == "request-body-max-length-decreased")
            .unwrap_or_else(|| panic!("{}", report.to_text()));
        assert_eq!(
            f.new_pointer.as_deref(),
            Some("/components/schemas/C/properties/sku")
        );
        assert_eq!(f.old_pointer, f.new_pointer);
        assert_eq!(f.operation.as_deref(), Some("POST /orders"));
        assert_eq!(f.operation_id.as_deref(), Some("submitOrder"));
        assert!(f.message.contains("`sku`"), "{}", f.message);
        assert_eq!(f.severity, Severity::Breaking);
        // The response side of the same change is harmless.
        assert!(ids(&report).contains(&"response-body-max-length-decreased"));
        assert!(
            !report
                .findings
                .iter()
                .any(|f| f.id == "response-body-max-length-decreased"
                    && f.severity != Severity::Info)
        );
    }
}

#[test]
fn recursive_schemas_terminate_and_a_deep_change_is_reported_once() {
    let tree = |status: &str| {
        body_with(
            "{$ref: '#/components/schemas/Category'}",
            &format!(
                "schemas: {{Category: {{type: object, properties: {{name: {{type: string}}, parent: {{$ref: '#/components/schemas/Category'}}, children: {{type: array, items: {{$ref: '#/components/schemas/Category'}}}}, owner: {{$ref: '#/components/schemas/Team'}}}}}}, Team: {{type: object, properties: {{lead: {{$ref: '#/components/schemas/Person'}}}}}}, Person: {{type: object, properties: {{team: {{$ref: '#/components/schemas/Team'}}, status: {{type: string, enum: [{status}]}}}}}}}}"
            ),
        )
    };
    for version in [V30, V31] {
        let same = run(version, &tree("active, left"), &tree("active, left"));
        assert!(same.is_empty(), "{}", same.to_text());
        let report = run(version, &tree("active, left"), &tree("active"));
        let removed: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.id == "request-body-enum-value-removed")
            .collect();
        assert_eq!(removed.len(), 1, "{}", report.to_text());
        assert_eq!(
            removed[0].new_pointer.as_deref(),
            Some("/components/schemas/Person/properties/status")
        );
        assert!(
            removed[0].message.contains("owner.lead.status"),
            "{}",
            removed[0].message
        );
    }
}

#[test]
fn dialects_that_say_the_same_thing_compare_equal() {
    let v30 = spec(
        V30,
        &body_with(
            "{$ref: '#/components/schemas/Order'}",
            "schemas: {Order: {type: object, properties: {note: {type: string, nullable: true}, total: {type: number, minimum: 0, exclusiveMinimum: true}, ship_to: {nullable: true, allOf: [{$ref: '#/components/schemas/Address'}]}}}, Address: {type: object, properties: {city: {type: string}}}}",
        ),
    );
    let v31 = spec(
        V31,
        &body_with(
            "{$ref: '#/components/schemas/Order'}",
            "schemas: {Order: {type: object, properties: {note: {type: [string, 'null']}, total: {type: number, exclusiveMinimum: 0}, ship_to: {anyOf: [{$ref: '#/components/schemas/Address'}, {type: 'null'}]}}}, Address: {type: object, properties: {city: {type: string}}}}",
        ),
    );
    let report = diff::diff(&parse(&v30), &parse(&v31));
    assert!(report.is_empty(), "{}", report.to_text());
}

#[test]
fn nullable_is_a_30_keyword_only() {
    // In 3.1 `nullable` is not a keyword: adding it changes nothing.
    let old = at_scope("response-body", "{type: string}");
    let new = at_scope("response-body", "{type: string, nullable: true}");
    assert!(run(V31, &old, &new).is_empty());
    assert_eq!(
        ids(&run(V30, &old, &new)),
        vec!["response-body-nullable-added"]
    );
}

#[test]
fn alternatives_are_matched_by_structure_not_by_order_or_name() {
    let pets = |one_of: &str, comps: &str| body_with(&format!("{{oneOf: [{one_of}]}}"), comps);
    let comps = "schemas: {Cat: {type: object, required: [meow], properties: {meow: {type: boolean}}}, Dog: {type: object, required: [bark], properties: {bark: {type: string, maxLength: 10}}}}";
    let renamed = "schemas: {Kitty: {type: object, required: [meow], properties: {meow: {type: boolean}}}, Dog: {type: object, required: [bark], properties: {bark: {type: string, maxLength: 10}}}}";
    let old = pets(
        "{$ref: '#/components/schemas/Cat'}, {$ref: '#/components/schemas/Dog'}",
        comps,
    );
    for version in [V30, V31] {
        let reordered = pets(
            "{$ref: '#/components/schemas/Dog'}, {$ref: '#/components/schemas/Kitty'}",
            renamed,
        );
        let report = run(version, &old, &reordered);
        assert!(report.is_empty(), "{}", report.to_text());
        // A change inside one alternative is reported inside it.
        let tighter = pets(
            "{$ref: '#/components/schemas/Cat'}, {$ref: '#/components/schemas/Dog'}",
            &comps.replace("maxLength: 10", "maxLength: 5"),
        );
        let report = run(version, &old, &tighter);
        let f = report
            .findings
            .iter()
            .find(|f| f.id == "request-body-max-length-decreased")
            .unwrap_or_else(|| panic!("{}", report.to_text()));
        assert!(f.message.contains("(alt 2).bark"), "{}", f.message);
        assert!(!ids(&report).iter().any(|id| id.contains("alternative")));
        // Dropping Dog narrows requests and is harmless for responses.
        let fewer = pets("{$ref: '#/components/schemas/Cat'}", comps);
        let report = run(version, &old, &fewer);
        let got = ids(&report);
        assert!(got.contains(&"request-body-alternative-removed"), "{got:?}");
        assert!(
            got.contains(&"response-body-alternative-removed"),
            "{got:?}"
        );
        assert_eq!(report.summary.breaking, 1, "{}", report.to_text());
    }
}

#[test]
fn a_shared_schema_under_two_media_types_is_one_finding() {
    let resp = |max: u32| {
        paths(&[&format!(
            "/a: {{get: {{responses: {{'200': {{description: ok, content: {{application/json: {{schema: {{$ref: '#/components/schemas/S'}}}}, application/xml: {{schema: {{$ref: '#/components/schemas/S'}}}}}}}}}}}}}}\ncomponents:\n  schemas: {{S: {{type: string, maxLength: {max}}}}}"
        )])
    };
    let report = run(V31, &resp(5), &resp(10));
    assert_eq!(ids(&report), vec!["response-body-max-length-increased"]);
}

#[test]
fn top_level_security_changes_reach_every_operation() {
    let old = paths(&[
        "/a: {get: {responses: {'200': {description: ok}}}}",
        "/b: {get: {responses: {'200': {description: ok}}}}",
    ]);
    let text = |s: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{title: T, version: 1.0.0}}\nsecurity: {s}\n{old}components:\n{SCHEMES}"
        )
    };
    let report = diff::diff(
        &parse(&text("[{key: []}]")),
        &parse(&text("[{bearer: []}]")),
    );
    assert_eq!(
        ids(&report),
        vec!["security-requirement-added", "security-requirement-added"]
    );
}

#[test]
fn without_a_date_a_removal_before_an_announced_sunset_is_assumed_early() {
    let old = spec(
        V31,
        &paths(&[
            "/a: {get: {responses: {'200': {description: ok}}}}",
            "/b: {get: {deprecated: true, x-sunset: '2020-01-01', responses: {'200': {description: ok}}}}",
        ]),
    );
    let new = spec(
        V31,
        &paths(&["/a: {get: {responses: {'200': {description: ok}}}}"]),
    );
    let (old, new) = (parse(&old), parse(&new));
    assert_eq!(
        ids(&diff::diff(&old, &new)),
        vec!["operation-removed-before-sunset"]
    );
    assert_eq!(
        ids(&diff::diff_with(&old, &new, &today())),
        vec!["deprecated-operation-removed"]
    );
}

// ---------------------------------------------------------------------------------------
// Reports and renderers.

fn sample_report() -> Report {
    let old = with_components(
        &[
            "/orders/{id}: {get: {operationId: getOrder, parameters: [{name: id, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/O'}}}}}}}",
        ],
        &[
            "schemas: {O: {type: object, required: [status], properties: {status: {type: string, enum: [open, shipped], description: 'a | b'}}}}",
        ],
    );
    let new = with_components(
        &[
            "/orders/{id}: {get: {operationId: getOrder, parameters: [{name: id, in: path, required: true, schema: {type: string}}, {name: 'x|y', in: header, required: true, schema: {type: string}}], responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/O'}}}}}}}",
            "/health: {get: {responses: {'200': {description: ok}}}}",
        ],
        &[
            "schemas: {O: {type: object, properties: {status: {type: string, enum: [open, shipped, held]}}}}",
        ],
    );
    run(V31, &old, &new)
}

#[test]
fn json_output_is_the_cli_contract() {
    let report = sample_report();
    let json = report.to_json();
    assert_eq!(json["summary"]["breaking"], 2);
    assert_eq!(json["summary"]["warning"], 1);
    assert_eq!(json["summary"]["info"], 1);
    let first = &json["findings"][0];
    for key in [
        "id",
        "severity",
        "operation",
        "operation_id",
        "old_pointer",
        "new_pointer",
        "message",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["severity"], "breaking");
    assert_eq!(first["operation"], "GET /orders/{id}");
    assert_eq!(first["operation_id"], "getOrder");
    // Breaking first, then warnings, then info.
    let severities: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["severity"].as_str().expect("severity"))
        .collect();
    assert_eq!(severities, vec!["breaking", "breaking", "warning", "info"]);
}

#[test]
fn text_and_markdown_render_every_finding() {
    let report = sample_report();
    let text = report.to_text();
    assert!(
        text.starts_with("2 breaking, 1 warning, 1 info\n"),
        "{text}"
    );
    for f in &report.findings {
        assert!(text.contains(f.id), "{text}");
    }
    let md = report.to_markdown();
    assert!(
        md.starts_with("### API changes: 2 breaking, 1 warning, 1 info"),
        "{md}"
    );
    assert!(
        md.contains("| severity | check | operation | change |"),
        "{md}"
    );
    assert!(md.contains("`parameter-added-required`"), "{md}");
    assert!(
        md.contains("<details><summary>1 compatible change</summary>"),
        "{md}"
    );
    // A `|` inside a message must not split the table cell.
    assert!(md.contains("`x\\|y`"), "{md}");
    let empty = Report::new(Vec::new());
    assert_eq!(empty.to_text(), "No changes.\n");
    assert!(empty.to_markdown().contains("No changes."));
}

#[test]
fn fail_on_thresholds() {
    let report = sample_report();
    assert!(report.fails(FailOn::Breaking));
    assert!(report.fails(FailOn::Warning));
    assert!(!report.fails(FailOn::Never));
    let warnings_only = Report::new(
        report
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Breaking)
            .cloned()
            .collect(),
    );
    assert!(!warnings_only.fails(FailOn::Breaking));
    assert!(warnings_only.fails(FailOn::Warning));
    assert_eq!("warning".parse::<FailOn>(), Ok(FailOn::Warning));
    assert!("loud".parse::<FailOn>().is_err());
    assert_eq!(FailOn::default(), FailOn::Breaking);
}

// ---------------------------------------------------------------------------------------
// The bundled catalog and the docs.

fn bundled(path: &str) -> Document {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    openapi::parse(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{full}: {e}"))
}

const BUNDLED: [&str; 4] = [
    "specs/inventory/v1.yaml",
    "specs/inventory/v2.yaml",
    "specs/orders/v1.yaml",
    "specs/shipments/v1.yaml",
];

#[test]
fn every_bundled_spec_is_unchanged_against_itself() {
    for path in BUNDLED {
        let doc = bundled(path);
        let report = diff::diff(&doc, &doc);
        assert!(report.is_empty(), "{path}: {}", report.to_text());
    }
}

#[test]
fn the_bundled_inventory_v2_breaks_v1() {
    let report = diff::diff(
        &bundled("specs/inventory/v1.yaml"),
        &bundled("specs/inventory/v2.yaml"),
    );
    assert!(report.has_breaking(), "{}", report.to_text());
    assert!(
        report.breaking().all(|f| f.operation.is_some()),
        "{}",
        report.to_text()
    );
}

#[test]
fn docs_checks_md_is_the_catalogue() {
    let path = format!("{}/../docs/checks.md", env!("CARGO_MANIFEST_DIR"));
    let expected = diff::checks::catalogue_markdown();
    if std::env::var_os("GATEHOUSE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/checks.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/checks.md is out of date; regenerate with GATEHOUSE_WRITE_DOCS=1 cargo test -p gatehouse-policies --test diff_checks"
    );
}

#[test]
fn hostile_specs_are_compared_in_bounded_work() {
    let started = std::time::Instant::now();
    // A chain of 3000 components, deeper than any stack should follow: the walk stops and
    // says where.
    let deep = chain(3000);
    let report = run(
        V31,
        &deep,
        &deep.replace("C3000: {type: string}", "C3000: {type: integer}"),
    );
    assert_eq!(ids(&report), vec!["schema-comparison-truncated"]);
    // Ten levels of eight-way `oneOf`s, whose matching would multiply without a shared
    // budget: the change at the bottom is still found.
    let mut wide = String::from("schemas:\n");
    for i in 0..10 {
        let branches: Vec<String> = (0..8)
            .map(|b| {
                format!(
                    "{{type: object, required: [k{b}], properties: {{k{b}: {{$ref: '#/components/schemas/W{}'}}}}}}",
                    i + 1
                )
            })
            .collect();
        wide.push_str(&format!("    W{i}: {{oneOf: [{}]}}\n", branches.join(", ")));
    }
    let leaf = |max: u32| format!("    W10: {{type: string, maxLength: {max}}}");
    let old = body_with(
        "{$ref: '#/components/schemas/W0'}",
        &format!("{wide}{}", leaf(10)),
    );
    let new = body_with(
        "{$ref: '#/components/schemas/W0'}",
        &format!("{wide}{}", leaf(5)),
    );
    let report = run(V31, &old, &new);
    assert!(
        ids(&report).contains(&"request-body-max-length-decreased"),
        "{}",
        report.to_text()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
