//! Requests and responses end to end through the public API: parameter styles (the
//! OpenAPI style table, every location × style × explode), coercion, bodies of each media
//! type, the limits (413, 415, depth, error count), the problem bodies, response
//! validation, whole-document compilation, and a proptest that nothing panics.

use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi::{self, Document, Method};
use gatehouse_policies::problem::FieldError;
use gatehouse_policies::validate::{
    CompileError, CompileOptions, CompiledOperation, RequestParts, RequestRejection,
    compile_document,
};

fn parse(text: &str) -> Document {
    openapi::parse(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("spec does not parse: {e}\n{text}"))
}

fn first_op(doc: &Document, opts: &CompileOptions) -> CompiledOperation {
    let op = doc.operations().next().expect("one operation");
    CompiledOperation::compile(doc, op, opts).unwrap_or_else(|e| panic!("does not compile: {e}"))
}

fn errors_of(result: Result<(), RequestRejection>) -> Vec<FieldError> {
    match result {
        Err(RequestRejection::Invalid { errors }) => errors,
        other => panic!("expected a 400, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Parameter styles: the OpenAPI style examples table
// ---------------------------------------------------------------------------------------

const SCALAR: &str = "{type: string, enum: [blue, black, brown]}";
const ARRAY: &str = "{type: array, items: {type: string, enum: [blue, black, brown]}}";
const OBJECT: &str = "{type: object, required: [R], properties: {R: {type: integer, maximum: 255}, G: {type: integer, maximum: 255}, B: {type: integer, maximum: 255}}}";

/// One parameter `color` in `location`, with a style and a schema.
fn one_param(
    version: &str,
    location: &str,
    style: &str,
    explode: bool,
    schema: &str,
) -> CompiledOperation {
    let path = if location == "path" {
        "/x/{color}"
    } else {
        "/x"
    };
    let text = format!(
        "openapi: {version}\ninfo: {{title: p, version: 1.0.0}}\npaths:\n  {path}:\n    get:\n      parameters:\n        - {{name: color, in: {location}, required: true, style: {style}, explode: {explode}, schema: {schema}}}\n      responses: {{'200': {{description: ok}}}}\n"
    );
    first_op(&parse(&text), &CompileOptions::default())
}

fn request_with<'a>(
    location: &str,
    raw: &'a str,
    path: &'a mut Vec<(&'a str, &'a str)>,
    headers: &'a mut Vec<(&'a str, &'a str)>,
) -> RequestParts<'a> {
    let mut req = RequestParts::default();
    match location {
        "path" => path.push(("color", raw)),
        "query" => req.query = Some(raw),
        "header" => headers.push(("X-Color", raw)),
        "cookie" => headers.push(("Cookie", raw)),
        _ => unreachable!(),
    }
    req.path_params = path;
    req.headers = headers;
    req
}

#[test]
fn every_style_of_the_openapi_table_decodes_and_validates() {
    // (location, style, explode, schema, valid raw, invalid raw, message fragment)
    let rgb_bad = "G";
    let cases: &[(&str, &str, bool, &str, &str, &str, &str)] = &[
        (
            "path",
            "simple",
            false,
            SCALAR,
            "blue",
            "red",
            "must be one of",
        ),
        (
            "path",
            "simple",
            true,
            SCALAR,
            "blue",
            "red",
            "must be one of",
        ),
        (
            "path",
            "simple",
            false,
            ARRAY,
            "blue,black,brown",
            "blue,red",
            "at /1",
        ),
        (
            "path",
            "simple",
            true,
            ARRAY,
            "blue,black,brown",
            "blue,red",
            "at /1",
        ),
        (
            "path",
            "simple",
            false,
            OBJECT,
            "R,100,G,200,B,150",
            "R,100,G,300",
            rgb_bad,
        ),
        (
            "path",
            "simple",
            true,
            OBJECT,
            "R=100,G=200,B=150",
            "G=200",
            "/R",
        ),
        (
            "path",
            "label",
            false,
            SCALAR,
            ".blue",
            ".red",
            "must be one of",
        ),
        (
            "path",
            "label",
            true,
            SCALAR,
            ".blue",
            "blue",
            "label style",
        ),
        (
            "path",
            "label",
            false,
            ARRAY,
            ".blue.black.brown",
            ".blue.red",
            "at /1",
        ),
        (
            "path",
            "label",
            true,
            ARRAY,
            ".blue.black.brown",
            ".red",
            "at /0",
        ),
        (
            "path",
            "label",
            false,
            OBJECT,
            ".R.100.G.200.B.150",
            ".R.100.G.300",
            rgb_bad,
        ),
        (
            "path",
            "label",
            true,
            OBJECT,
            ".R=100.G=200.B=150",
            ".R=256",
            "/R",
        ),
        (
            "path",
            "matrix",
            false,
            SCALAR,
            ";color=blue",
            ";color=red",
            "must be one of",
        ),
        (
            "path",
            "matrix",
            true,
            SCALAR,
            ";color=blue",
            ";colour=blue",
            "matrix style",
        ),
        (
            "path",
            "matrix",
            false,
            ARRAY,
            ";color=blue,black,brown",
            ";color=blue,red",
            "at /1",
        ),
        (
            "path",
            "matrix",
            true,
            ARRAY,
            ";color=blue;color=black;color=brown",
            ";color=blue;color=red",
            "at /1",
        ),
        (
            "path",
            "matrix",
            false,
            OBJECT,
            ";color=R,100,G,200,B,150",
            ";color=R,100,G,300",
            rgb_bad,
        ),
        (
            "path",
            "matrix",
            true,
            OBJECT,
            ";R=100;G=200;B=150",
            ";G=200",
            "/R",
        ),
        (
            "query",
            "form",
            false,
            SCALAR,
            "color=blue",
            "color=red",
            "must be one of",
        ),
        (
            "query",
            "form",
            true,
            SCALAR,
            "color=blue",
            "color=blue&color=black",
            "2 times",
        ),
        (
            "query",
            "form",
            false,
            ARRAY,
            "color=blue,black,brown",
            "color=blue,red",
            "at /1",
        ),
        (
            "query",
            "form",
            true,
            ARRAY,
            "color=blue&color=black&color=brown",
            "color=blue&color=red",
            "at /1",
        ),
        (
            "query",
            "form",
            false,
            OBJECT,
            "color=R,100,G,200,B,150",
            "color=R,100,G,300",
            rgb_bad,
        ),
        (
            "query",
            "form",
            true,
            OBJECT,
            "R=100&G=200&B=150",
            "R=100&G=256",
            rgb_bad,
        ),
        (
            "query",
            "spaceDelimited",
            false,
            ARRAY,
            "color=blue%20black%20brown",
            "color=blue%20red",
            "at /1",
        ),
        (
            "query",
            "spaceDelimited",
            true,
            ARRAY,
            "color=blue&color=black&color=brown",
            "color=red",
            "at /0",
        ),
        (
            "query",
            "spaceDelimited",
            false,
            OBJECT,
            "color=R%20100%20G%20200%20B%20150",
            "color=R%20100%20G",
            "pairs",
        ),
        (
            "query",
            "pipeDelimited",
            false,
            ARRAY,
            "color=blue|black|brown",
            "color=blue|red",
            "at /1",
        ),
        (
            "query",
            "pipeDelimited",
            true,
            ARRAY,
            "color=blue&color=black&color=brown",
            "color=red",
            "at /0",
        ),
        (
            "query",
            "pipeDelimited",
            false,
            OBJECT,
            "color=R|100|G|200|B|150",
            "color=R|100|G|300",
            rgb_bad,
        ),
        (
            "query",
            "deepObject",
            true,
            OBJECT,
            "color[R]=100&color[G]=200&color[B]=150",
            "color[R]=100&color[G]=300",
            rgb_bad,
        ),
        (
            "header",
            "simple",
            false,
            SCALAR,
            "blue",
            "red",
            "must be one of",
        ),
        (
            "header",
            "simple",
            true,
            SCALAR,
            "blue",
            "red",
            "must be one of",
        ),
        (
            "header",
            "simple",
            false,
            ARRAY,
            "blue,black,brown",
            "blue, red",
            "at /1",
        ),
        (
            "header",
            "simple",
            true,
            ARRAY,
            "blue, black, brown",
            "red",
            "at /0",
        ),
        (
            "header",
            "simple",
            false,
            OBJECT,
            "R,100,G,200,B,150",
            "R,100,G,300",
            rgb_bad,
        ),
        (
            "header",
            "simple",
            true,
            OBJECT,
            "R=100,G=200,B=150",
            "R=100,G=x",
            rgb_bad,
        ),
        (
            "cookie",
            "form",
            false,
            SCALAR,
            "color=blue",
            "color=red",
            "must be one of",
        ),
        (
            "cookie",
            "form",
            true,
            SCALAR,
            "color=blue; other=1",
            "color=red",
            "must be one of",
        ),
        (
            "cookie",
            "form",
            false,
            ARRAY,
            "color=blue,black,brown",
            "color=blue,red",
            "at /1",
        ),
        (
            "cookie",
            "form",
            true,
            ARRAY,
            "color=blue; color=black",
            "color=blue; color=red",
            "at /1",
        ),
        (
            "cookie",
            "form",
            false,
            OBJECT,
            "color=R,100,G,200,B,150",
            "color=R,100,G,300",
            rgb_bad,
        ),
    ];
    let mut checked = 0;
    for version in ["3.0.3", "3.1.0"] {
        for (location, style, explode, schema, valid, invalid, fragment) in cases {
            let op = if *location == "header" {
                let text = format!(
                    "openapi: {version}\ninfo: {{title: p, version: 1.0.0}}\npaths:\n  /x:\n    get:\n      parameters:\n        - {{name: X-Color, in: header, required: true, style: {style}, explode: {explode}, schema: {schema}}}\n      responses: {{'200': {{description: ok}}}}\n"
                );
                first_op(&parse(&text), &CompileOptions::default())
            } else {
                one_param(version, location, style, *explode, schema)
            };
            let what = format!("{version} {location} {style} explode={explode} {schema}");
            let (mut p, mut h) = (Vec::new(), Vec::new());
            let got = op.validate_request(&request_with(location, valid, &mut p, &mut h));
            assert_eq!(got, Ok(()), "{what}: `{valid}` should pass");
            let (mut p, mut h) = (Vec::new(), Vec::new());
            let errors =
                errors_of(op.validate_request(&request_with(location, invalid, &mut p, &mut h)));
            assert_eq!(errors[0].location, *location, "{what}: {errors:?}");
            let name = if *location == "header" {
                "X-Color"
            } else {
                "color"
            };
            assert_eq!(errors[0].pointer, name, "{what}: {errors:?}");
            assert!(
                errors.iter().any(|e| e.message.contains(fragment)),
                "{what}: `{invalid}` should say `{fragment}`: {errors:?}"
            );
            checked += 2;
        }
    }
    assert_eq!(checked, 4 * cases.len());
}

// ---------------------------------------------------------------------------------------
// Parameters: coercion, presence, unknown names, content-style
// ---------------------------------------------------------------------------------------

const LISTING: &str = r##"openapi: 3.1.0
info: {title: orders, version: 1.0.0}
paths:
  /orders/{order_id}:
    get:
      parameters:
        - {name: order_id, in: path, required: true, schema: {type: integer, format: int64, minimum: 1}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: status, in: query, required: true, schema: {type: string, enum: [open, shipped, café]}}
        - {name: expand, in: query, schema: {type: boolean}}
        - {name: since, in: query, schema: {type: string, format: date}}
        - {name: filter, in: query, content: {application/json: {schema: {type: object, required: [sku], properties: {sku: {type: string}}}}}}
        - {name: X-Request-Priority, in: header, schema: {type: number, minimum: 0}}
        - {name: Authorization, in: header, required: true, schema: {type: string, pattern: '^never$'}}
        - {name: session, in: cookie, schema: {type: string, format: uuid}}
      responses: {'200': {description: ok}}
"##;

fn listing(opts: &CompileOptions) -> CompiledOperation {
    first_op(&parse(LISTING), opts)
}

fn get(
    op: &CompiledOperation,
    order_id: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<(), RequestRejection> {
    let path = [("order_id", order_id)];
    op.validate_request(&RequestParts {
        path_params: &path,
        query: Some(query),
        headers,
        ..RequestParts::default()
    })
}

#[test]
fn parameters_are_coerced_checked_and_named() {
    let op = listing(&CompileOptions::default());
    let ok = get(
        &op,
        "42",
        "status=open&limit=10&expand=true&since=2024-05-31&filter=%7B%22sku%22%3A%22A%22%7D&utm_source=x",
        &[
            ("x-request-priority", "0.5"),
            ("Cookie", "session=3fa85f64-5717-4562-b3fc-2c963f66afa6"),
        ],
    );
    assert_eq!(
        ok,
        Ok(()),
        "Authorization is the protocol's, not a parameter"
    );
    assert_eq!(
        get(&op, "42", "status=caf%C3%A9", &[]),
        Ok(()),
        "percent-decoded UTF-8"
    );
    assert_eq!(get(&op, "42", "status=caf%c3%a9", &[]), Ok(()));

    let errors = errors_of(get(
        &op,
        "0",
        "limit=abc&expand=yes&since=31-05-2024&filter=%7B%7D&status=closed",
        &[("X-Request-Priority", "-1"), ("cookie", "session=nope")],
    ));
    let got: Vec<(&str, &str, &str)> = errors
        .iter()
        .map(|e| (e.location.as_str(), e.pointer.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("path", "order_id", "must be >= 1; got 0"),
            ("query", "limit", "must be integer, got string \"abc\""),
            (
                "query",
                "status",
                "must be one of \"open\", \"shipped\", \"café\"; got \"closed\""
            ),
            ("query", "expand", "must be boolean, got string \"yes\""),
            (
                "query",
                "since",
                "must be a date (RFC 3339 full-date, e.g. 2024-05-31); got \"31-05-2024\""
            ),
            ("query", "filter", "at /sku: is required but missing"),
            ("header", "X-Request-Priority", "must be >= 0; got -1"),
            (
                "cookie",
                "session",
                "must be a UUID (e.g. 3fa85f64-5717-4562-b3fc-2c963f66afa6); got \"nope\""
            ),
        ]
    );

    let errors = errors_of(get(&op, "42", "", &[]));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].location.as_str(), errors[0].pointer.as_str()),
        ("query", "status")
    );
    assert_eq!(
        errors[0].message,
        "is required but missing (query parameter)"
    );

    let errors = errors_of(get(&op, "42", "status=%FF", &[]));
    assert!(errors[0].message.contains("not valid UTF-8"), "{errors:?}");
    let errors = errors_of(get(&op, "42", "status=open&filter=%7Bnot-json", &[]));
    assert_eq!(errors[0].pointer, "filter");
    assert!(errors[0].message.contains("not valid JSON"), "{errors:?}");
    let errors = errors_of(get(&op, "abc", "status=open", &[]));
    assert_eq!(errors[0].message, "must be integer, got string \"abc\"");
}

#[test]
fn unknown_query_parameters_follow_the_policy() {
    let open = listing(&CompileOptions::default());
    assert_eq!(get(&open, "1", "status=open&debug=1", &[]), Ok(()));
    let strict = listing(&CompileOptions {
        reject_unknown_query_params: true,
        ..CompileOptions::default()
    });
    assert_eq!(get(&strict, "1", "status=open&limit=5", &[]), Ok(()));
    let errors = errors_of(get(&strict, "1", "status=open&debug=1&debug=2&trace", &[]));
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, vec!["debug", "trace"]);
    assert!(errors[0].message.contains("known: "), "{errors:?}");
    assert!(errors[0].message.contains("status"), "{errors:?}");
}

#[test]
fn exploded_objects_and_deep_objects_claim_their_keys() {
    let text = r##"openapi: 3.0.3
info: {title: p, version: 1.0.0}
paths:
  /x:
    get:
      parameters:
        - {name: page, in: query, schema: {type: integer}}
        - {name: range, in: query, style: form, explode: true, schema: {type: object, properties: {from: {type: integer}, to: {type: integer}}}}
        - {name: filter, in: query, style: deepObject, explode: true, schema: {type: object, additionalProperties: {type: string}}}
      responses: {'200': {description: ok}}
"##;
    let op = first_op(
        &parse(text),
        &CompileOptions {
            reject_unknown_query_params: true,
            ..CompileOptions::default()
        },
    );
    let q = |query: &str| {
        op.validate_request(&RequestParts {
            query: Some(query),
            ..RequestParts::default()
        })
    };
    assert_eq!(q("page=2&from=1&to=9&filter[sku]=A&filter[site]=B"), Ok(()));
    let errors = errors_of(q("from=x&other=1"));
    assert_eq!(errors[0].pointer, "range");
    assert!(errors[0].message.contains("at /from"), "{errors:?}");
    assert_eq!(errors[1].pointer, "other");
}

// ---------------------------------------------------------------------------------------
// Bodies and limits
// ---------------------------------------------------------------------------------------

const ORDERS: &str = r##"openapi: 3.0.3
info: {title: orders, version: 1.0.0}
paths:
  /orders:
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Order'}
          application/merge-patch+json:
            schema: {$ref: '#/components/schemas/Order'}
          application/x-www-form-urlencoded:
            schema: {$ref: '#/components/schemas/Form'}
          multipart/form-data:
            schema: {$ref: '#/components/schemas/Upload'}
          application/*:
            schema: {type: string}
      responses:
        '201':
          description: created
          content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}
        4XX:
          description: refused
          content: {application/problem+json: {schema: {type: object, required: [type]}}}
        default: {description: other}
  /ping:
    put:
      requestBody:
        content: {application/json: {schema: {type: object}}}
      responses: {'204': {description: none}}
components:
  schemas:
    Order:
      type: object
      required: [lines]
      properties:
        lines:
          type: array
          items: {$ref: '#/components/schemas/Line'}
    Line:
      type: object
      required: [sku, qty]
      properties:
        sku: {type: string}
        qty: {type: integer, minimum: 1}
    Form:
      type: object
      required: [sku, qty]
      properties:
        sku: {type: string}
        qty: {type: integer, minimum: 1}
        tags: {type: array, items: {type: string}}
    Upload:
      type: object
      required: [qty, file]
      properties:
        qty: {type: integer}
        meta: {type: object, required: [by], properties: {by: {type: string}}}
        file: {type: string, format: binary}
"##;

fn orders(opts: &CompileOptions) -> (Document, CompiledOperation) {
    let doc = parse(ORDERS);
    let op = first_op(&doc, opts);
    (doc, op)
}

fn post(
    op: &CompiledOperation,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), RequestRejection> {
    op.validate_request(&RequestParts {
        content_type,
        body: Some(body),
        ..RequestParts::default()
    })
}

#[test]
fn content_types_415_and_ranges() {
    let (_, op) = orders(&CompileOptions::default());
    let good = br#"{"lines": [{"sku": "A", "qty": 1}]}"#;
    assert_eq!(post(&op, Some("application/json"), good), Ok(()));
    assert_eq!(
        post(&op, Some("Application/JSON; charset=UTF-8"), good),
        Ok(()),
        "charset ignored"
    );
    assert_eq!(
        post(&op, Some("application/merge-patch+json"), good),
        Ok(())
    );
    assert!(
        post(&op, Some("application/merge-patch+json"), b"{}").is_err(),
        "+json validated"
    );
    // `application/*` covers XML: its (string) schema is not applied to a non-JSON body.
    assert_eq!(post(&op, Some("application/xml"), b"<order/>"), Ok(()));
    assert!(op.accepts_content_type("application/xml"));
    assert!(!op.accepts_content_type("text/plain"));
    let rejection = post(&op, Some("text/plain"), b"hello").unwrap_err();
    assert_eq!(rejection.status(), 415);
    let RequestRejection::UnsupportedMediaType {
        content_type,
        accepted,
    } = &rejection
    else {
        panic!("{rejection:?}")
    };
    assert_eq!(content_type.as_deref(), Some("text/plain"));
    assert_eq!(accepted.len(), 5);
    let problem = rejection.to_problem().to_value();
    assert_eq!(problem["status"], 415);
    assert_eq!(
        problem["type"],
        "urn:gatehouse:problem:unsupported-media-type"
    );
    assert_eq!(problem["accepted"][0], "application/json");
    let missing = post(&op, None, good).unwrap_err();
    assert_eq!(missing.status(), 415);
    assert!(missing.to_string().contains("(none)"), "{missing}");
    assert_eq!(op.accepted_content_types()[3], "multipart/form-data");
}

#[test]
fn body_presence() {
    let (doc, op) = orders(&CompileOptions::default());
    let errors = errors_of(post(&op, Some("application/json"), b""));
    assert_eq!(errors[0].location, "body");
    assert!(
        errors[0].message.starts_with("a request body is required"),
        "{errors:?}"
    );
    let errors = errors_of(op.validate_request(&RequestParts::default()));
    assert_eq!(errors.len(), 1);
    // An optional body may be left out.
    let ping = CompiledOperation::compile(
        &doc,
        doc.operation(Method::Put, "/ping").unwrap(),
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(ping.validate_request(&RequestParts::default()), Ok(()));
    let errors = errors_of(post(&ping, Some("application/json"), b"{\"a\": "));
    assert_eq!(errors[0].pointer, "");
    assert!(
        errors[0].message.starts_with("is not valid JSON: "),
        "{errors:?}"
    );
}

#[test]
fn limits_413_depth_and_error_count() {
    let (_, op) = orders(&CompileOptions {
        max_body_bytes: 64,
        ..CompileOptions::default()
    });
    assert_eq!(op.max_body_bytes(), 64);
    let big = format!(r#"{{"lines": [], "pad": "{}"}}"#, "x".repeat(64));
    let rejection = post(&op, Some("application/json"), big.as_bytes()).unwrap_err();
    assert_eq!(rejection.status(), 413);
    assert_eq!(
        rejection,
        RequestRejection::PayloadTooLarge {
            size: big.len(),
            limit: 64
        }
    );
    assert_eq!(rejection.to_problem().to_value()["limit"], 64);
    // The size decides before the content type: 413 even for a type that would be 415.
    assert_eq!(
        post(&op, Some("text/plain"), big.as_bytes())
            .unwrap_err()
            .status(),
        413
    );

    let (_, op) = orders(&CompileOptions::default());
    let deep = format!(r#"{{"lines": {}{}}}"#, "[".repeat(70), "]".repeat(70));
    let errors = errors_of(post(&op, Some("application/json"), deep.as_bytes()));
    assert!(
        errors[0].message.contains("deeper than the limit of 64"),
        "{errors:?}"
    );

    let many = format!(r#"{{"lines": [{}]}}"#, vec![r#"{"qty": 0}"#; 30].join(","));
    let errors = errors_of(post(&op, Some("application/json"), many.as_bytes()));
    assert_eq!(errors.len(), 20, "default cap");
    let (_, op) = orders(&CompileOptions {
        max_errors: 3,
        ..CompileOptions::default()
    });
    let errors = errors_of(post(&op, Some("application/json"), many.as_bytes()));
    assert_eq!(errors.len(), 3);
}

#[test]
fn form_and_multipart_bodies_are_validated_field_by_field() {
    let (_, op) = orders(&CompileOptions::default());
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(post(&op, form, b"sku=A+1&qty=2&tags=x&tags=y"), Ok(()));
    assert_eq!(
        post(&op, form, b"sku=A&qty=3&tags=only-one"),
        Ok(()),
        "one value of an array field"
    );
    let errors = errors_of(post(&op, form, b"sku=A&qty=zero"));
    assert_eq!(
        (errors[0].pointer.as_str(), errors[0].message.as_str()),
        ("/qty", "must be integer, got string \"zero\"")
    );
    let errors = errors_of(post(&op, form, b"qty=0"));
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert!(
        pointers.contains(&"/sku") && pointers.contains(&"/qty"),
        "{errors:?}"
    );

    let ct = "multipart/form-data; boundary=\"----b0undary\"";
    let part = |name: &str, extra: &str, value: &str| {
        format!(
            "------b0undary\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n{value}\r\n"
        )
    };
    let good = format!(
        "{}{}{}------b0undary--\r\n",
        part("qty", "", "2"),
        part(
            "meta",
            "\r\nContent-Type: application/json",
            r#"{"by": "me"}"#
        ),
        part("file", "; filename=\"o.csv\"", "sku,qty\nA,1")
    );
    assert_eq!(post(&op, Some(ct), good.as_bytes()), Ok(()));
    let bad = format!(
        "{}{}------b0undary--\r\n",
        part("qty", "", "two"),
        part("meta", "\r\nContent-Type: application/json", r#"{}"#),
    );
    let errors = errors_of(post(&op, Some(ct), bad.as_bytes()));
    let mut got: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, vec!["/file", "/meta/by", "/qty"], "{errors:?}");
    let errors = errors_of(post(&op, Some("multipart/form-data"), good.as_bytes()));
    assert_eq!(
        (errors[0].location.as_str(), errors[0].pointer.as_str()),
        ("header", "Content-Type")
    );
    let errors = errors_of(post(&op, Some(ct), b"garbage"));
    assert!(errors[0].message.contains("delimiter"), "{errors:?}");
}

#[test]
fn problem_body_of_a_400() {
    let (_, op) = orders(&CompileOptions::default());
    let rejection = post(
        &op,
        Some("application/json"),
        br#"{"lines": [{"sku": 1, "qty": 1}]}"#,
    )
    .unwrap_err();
    assert_eq!(rejection.status(), 400);
    let body = rejection.to_problem().with_instance("req-1").to_value();
    assert_eq!(body["type"], "urn:gatehouse:problem:validation-failed");
    assert_eq!(body["status"], 400);
    assert_eq!(body["instance"], "req-1");
    assert_eq!(
        body["errors"],
        serde_json::json!([{"in": "body", "pointer": "/lines/0/sku", "message": "must be string, got number 1"}])
    );
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

#[test]
fn responses_by_status_range_and_default() {
    let (_, op) = orders(&CompileOptions::default());
    let json = Some("application/json");
    assert_eq!(op.validate_response(201, json, br#"{"lines": []}"#), Ok(()));
    let errors = op
        .validate_response(201, json, br#"{"lines": [{}]}"#)
        .unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert!(
        pointers.contains(&"/lines/0/qty") && pointers.contains(&"/lines/0/sku"),
        "{errors:?}"
    );
    let problem = Some("application/problem+json");
    assert_eq!(
        op.validate_response(404, problem, br#"{"type": "x"}"#),
        Ok(()),
        "4XX"
    );
    assert!(op.validate_response(409, problem, b"{}").is_err());
    assert_eq!(
        op.validate_response(500, Some("text/html"), b"<p>oops</p>"),
        Ok(()),
        "default has no content"
    );
    let errors = op
        .validate_response(201, Some("text/html"), b"<p/>")
        .unwrap_err();
    assert_eq!(
        (errors[0].location.as_str(), errors[0].pointer.as_str()),
        ("header", "Content-Type")
    );
    assert!(errors[0].message.contains("application/json"), "{errors:?}");
    let errors = op.validate_response(201, json, b"").unwrap_err();
    assert!(errors[0].message.contains("empty"), "{errors:?}");

    let doc = parse(LISTING);
    let listing = first_op(&doc, &CompileOptions::default());
    let errors = listing.validate_response(418, None, b"").unwrap_err();
    assert_eq!(errors[0].location, "status");
    assert!(errors[0].message.contains("declared: 200"), "{errors:?}");

    let off = first_op(
        &parse(ORDERS),
        &CompileOptions {
            validate_responses: false,
            ..CompileOptions::default()
        },
    );
    assert_eq!(off.validate_response(201, json, b"not json"), Ok(()));
}

// ---------------------------------------------------------------------------------------
// Whole documents
// ---------------------------------------------------------------------------------------

#[test]
fn compile_document_reports_bad_schemas_and_keeps_going() {
    let text = r##"openapi: 3.0.3
info: {title: mixed, version: 1.0.0}
paths:
  /good:
    post:
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Good'}}}}
      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Bad'}}}}}
    get:
      operationId: listGood
      parameters:
        - {name: id, in: path, required: true, style: form, schema: {type: string}}
      responses: {'200': {description: ok}}
  /other:
    post:
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Bad'}}}}
      responses: {'204': {description: ok}}
  /weird:
    post:
      requestBody: {content: {application/json: {schema: {type: array, items: {$ref: '#/components/schemas/Weird'}}}}}
      responses: {'204': {description: ok}}
components:
  schemas:
    Good: {type: object, required: [a]}
    Bad: {type: object, properties: {code: {type: string, pattern: '(unclosed'}}}
    Weird: {type: object, properties: {n: {type: integer, minimum: five}}}
"##
    .replace("/good:\n    post", "/good/{id}:\n    post")
    .replace(
        "      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Good'}}}}",
        "      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Good'}}}}",
    );
    let doc = parse(&text);
    let (ops, errors) = compile_document(&doc, &CompileOptions::default());
    assert_eq!(ops.len(), 4, "every operation is compiled");
    let mut bad: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            CompileError::InvalidSchema { pointer, .. } => Some(pointer.as_str()),
            _ => None,
        })
        .collect();
    bad.sort_unstable();
    assert_eq!(
        bad,
        vec![
            "/components/schemas/Bad/properties/code/pattern",
            "/components/schemas/Weird/properties/n/minimum"
        ],
        "each bad schema reported once, where it is written: {errors:?}"
    );
    assert!(errors.iter().any(|e| matches!(
        e,
        CompileError::UnsupportedStyle { operation, name, .. } if operation == "listGood" && name == "id"
    )));
    // The good request schema still applies; the bad response schema is left unchecked.
    let good = &ops[&(Method::Post, "/good/{id}".to_owned())];
    let path = [("id", "1")];
    let req = |body: &'static [u8]| RequestParts {
        path_params: &path,
        content_type: Some("application/json"),
        body: Some(body),
        ..RequestParts::default()
    };
    assert!(good.validate_request(&req(b"{}")).is_err());
    assert_eq!(good.validate_request(&req(b"{\"a\": 1}")), Ok(()));
    assert_eq!(
        good.validate_response(200, Some("application/json"), b"{\"code\": 1}"),
        Ok(())
    );
    // Strict compilation of the same operation refuses.
    let op = doc.operation(Method::Post, "/other").unwrap();
    let err = CompiledOperation::compile(&doc, op, &CompileOptions::default()).unwrap_err();
    assert!(err.to_string().contains("/components/schemas/Bad"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------

const EVERYTHING: &str = r##"openapi: 3.0.3
info: {title: all, version: 1.0.0}
paths:
  /t/{a}/{b}/{c}:
    post:
      parameters:
        - {name: a, in: path, required: true, style: label, explode: true, schema: {type: array, items: {type: integer}}}
        - {name: b, in: path, required: true, style: matrix, explode: true, schema: {type: object, properties: {x: {type: number}}}}
        - {name: c, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: q, in: query, style: pipeDelimited, schema: {type: array, items: {type: boolean}}}
        - {name: d, in: query, style: deepObject, explode: true, schema: {type: object, properties: {e: {type: object, properties: {f: {type: integer}}}}}}
        - {name: o, in: query, schema: {type: object, properties: {p: {type: integer}}}}
        - {name: j, in: query, content: {application/json: {schema: {type: object}}}}
        - {name: X-H, in: header, schema: {type: array, items: {type: integer}}}
        - {name: k, in: cookie, schema: {type: integer}}
      requestBody:
        content:
          application/json: {schema: {$ref: '#/components/schemas/Node'}}
          application/x-www-form-urlencoded: {schema: {$ref: '#/components/schemas/Node'}}
          multipart/form-data: {schema: {$ref: '#/components/schemas/Node'}}
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Node'}}}}
components:
  schemas:
    Node:
      nullable: true
      type: object
      properties:
        n: {type: integer, format: int32}
        s: {type: string, format: date-time}
        kids: {type: array, items: {$ref: '#/components/schemas/Node'}}
        pay: {oneOf: [{$ref: '#/components/schemas/A'}, {$ref: '#/components/schemas/B'}], discriminator: {propertyName: t}}
    A: {type: object, properties: {t: {type: string}}}
    B: {type: object, properties: {t: {type: string}}}
"##;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn validation_never_panics(
        a in ".{0,24}", b in ".{0,24}", c in ".{0,24}",
        query in "[a-z=&%\\[\\]|,+0-9A-F.;{}\"]{0,64}",
        header in ".{0,24}", cookie in "[a-z=;, 0-9%]{0,24}",
        content_type in "(application/json|application/x-www-form-urlencoded|multipart/form-data; boundary=[a-z]{0,3}|[a-z/+;= ]{0,20})",
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        json_body in "[\\[\\]{}\":,0-9a-z \\\\-]{0,128}",
        status in 100u16..600,
    ) {
        let doc = parse(EVERYTHING);
        let op = first_op(&doc, &CompileOptions { max_json_depth: 8, ..CompileOptions::default() });
        let path = [("a", a.as_str()), ("b", b.as_str()), ("c", c.as_str())];
        let headers = [("X-H", header.as_str()), ("Cookie", cookie.as_str())];
        for bytes in [body.as_slice(), json_body.as_bytes()] {
            let req = RequestParts {
                path_params: &path,
                query: Some(&query),
                headers: &headers,
                content_type: Some(&content_type),
                body: Some(bytes),
            };
            if let Err(RequestRejection::Invalid { errors }) = op.validate_request(&req) {
                proptest::prop_assert!(!errors.is_empty() && errors.len() <= 20);
            }
            let _ = op.validate_response(status, Some(&content_type), bytes);
        }
    }
}
