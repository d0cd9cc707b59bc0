//! Request and response validation through the real gateway (issue 6): refusals with exact
//! pointers, the limits (413 by `Content-Length` and mid-stream, 415, JSON depth), parameters
//! in every location, the body reaching the upstream byte for byte, nothing of a refused
//! request reaching the upstream (not even a connection), and response validation in
//! `report` and `enforce`. Most run in process against a [`RecordingUpstream`]; the last ones
//! go through `gatehouse serve` and its admin API.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_registry::model::{Contents, LifecycleState, ResponseValidation, ValidationSettings};
use gatehouse_tests::{
    GatehouseProcess, InProcessGateway, RecordingUpstream, ServeOptions, TEST_API_KEY, client,
    eventually, records, sha256_hex,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "5f0c6f38-3a9c-4c7e-9d55-0e6f0a3c2b11";

/// The test API: an order POST with a header parameter and a `$ref`'d body, a GET with a
/// parameter in every location, an octet-stream upload, and operations whose responses the
/// upstream answers as the test wishes.
fn shop_spec() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Shop", "version": "1.0.0"},
        "paths": {
            "/orders": {
                "post": {
                    "operationId": "createOrder",
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": true,
                                    "schema": {"type": "string", "format": "uuid"}}],
                    "requestBody": {"required": true, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                    "responses": {"200": {"description": "accepted", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}}}
                }
            },
            "/orders/{number}/lines/{line}": {
                "get": {
                    "operationId": "getLine",
                    "parameters": [
                        {"name": "number", "in": "path", "required": true,
                         "schema": {"type": "string", "pattern": "^SO-[0-9]+$"}},
                        {"name": "line", "in": "path", "required": true,
                         "schema": {"type": "integer", "minimum": 1}},
                        {"name": "fields", "in": "query", "explode": false,
                         "schema": {"type": "array", "items": {"type": "string", "enum": ["sku", "qty"]}}},
                        {"name": "X-Tenant", "in": "header", "required": true,
                         "schema": {"type": "string", "enum": ["eu", "us"]}},
                        {"name": "session", "in": "cookie", "required": true,
                         "schema": {"type": "integer"}}
                    ],
                    "responses": {"200": {"description": "ok", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}}}
                }
            },
            "/uploads": {
                "post": {
                    "operationId": "upload",
                    "requestBody": {"content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"200": {"description": "stored"}}
                }
            },
            "/drift/{case}": {
                "get": {
                    "operationId": "drift",
                    "parameters": [{"name": "case", "in": "path", "required": true,
                                    "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {"schema": {
                            "type": "object", "required": ["id"],
                            "properties": {"id": {"type": "integer"}}}}}},
                        "204": {"description": "nothing"}
                    }
                }
            }
        },
        "components": {"schemas": {
            "Order": {
                "type": "object", "required": ["customer", "lines"], "additionalProperties": false,
                "properties": {
                    "customer": {"type": "string", "minLength": 1},
                    "note": {"type": "string", "nullable": true},
                    "lines": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Line"}}
                }
            },
            "Line": {
                "type": "object", "required": ["sku", "qty"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "qty": {"type": "integer", "minimum": 1},
                    "text": {"type": "string"}
                }
            },
            "Receipt": {
                "type": "object", "required": ["sha256"],
                "properties": {"sha256": {"type": "string"}, "len": {"type": "integer"}}
            }
        }}
    })
}

fn shop(upstream: &str, validation: ValidationSettings) -> Contents {
    let mut api = records::api("shop", false, None);
    api.validation = validation;
    Contents {
        generation: 1,
        apis: vec![api],
        versions: vec![records::version(
            "shop",
            "1.0.0",
            LifecycleState::Published,
            &shop_spec(),
        )],
        upstreams: vec![records::upstream("shop", 1, &[(upstream, 1)])],
        ..Contents::default()
    }
}

fn settings(f: impl FnOnce(&mut ValidationSettings)) -> ValidationSettings {
    let mut s = ValidationSettings::default();
    f(&mut s);
    s
}

/// An order with `lines` lines, each line's `text` padding it to about `pad` bytes.
fn order(lines: usize, pad: usize) -> Value {
    let lines: Vec<Value> = (0..lines)
        .map(|i| json!({"sku": format!("ABC-{:04}", i % 10_000), "qty": i + 1, "text": "x".repeat(pad)}))
        .collect();
    json!({"customer": "C-1", "note": null, "lines": lines})
}

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let rid = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(ct, "application/problem+json", "{status}: {body}");
    assert_eq!(body["instance"], rid);
    assert_eq!(body["status"], status);
    (status, body)
}

fn pointers(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["in"].as_str().unwrap().to_owned(),
                e["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn post_order(gw: &InProcessGateway, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(gw.url("/shop/v1/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", KEY)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A raw HTTP/1.1 exchange: writes `head` (without the blank line) and `body`, in `pieces`
/// writes, then reads the whole answer (the request asks the gateway to close).
async fn raw(gw: &InProcessGateway, head: &str, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_body_reaches_the_upstream_byte_for_byte() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), ValidationSettings::default())).await;

    // Odd but valid JSON text: the upstream must get these bytes, not a re-serialisation.
    let small =
        b"{ \"customer\" :\"C-\\u00e9\",\n \"lines\":[{\"qty\":1.0e0,\"sku\":\"ABC-0001\"}]\t}"
            .to_vec();
    let kib = serde_json::to_vec_pretty(&order(8, 60)).unwrap();
    let big = serde_json::to_vec(&order(700, 120)).unwrap();
    assert!(
        kib.len() > 1_000 && big.len() > 100_000,
        "{} {}",
        kib.len(),
        big.len()
    );
    for body in [&small, &kib, &big] {
        let resp = post_order(&gw, body.clone()).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["sha256"], sha256_hex(body), "{} bytes", body.len());
        assert_eq!(v["len"], body.len());
    }

    // Chunked within Pingora's replay window, in small pieces.
    let text = raw(
        &gw,
        &format!(
            "POST /shop/v1/orders HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\n\
             Idempotency-Key: {KEY}\r\nTransfer-Encoding: chunked"
        ),
        &chunked(&kib, 100),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&sha256_hex(&kib)), "{text}");

    // `Expect: 100-continue`: the gateway asks for the body itself, the upstream never sees
    // the expectation.
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /shop/v1/orders HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {KEY}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        big.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).await.unwrap();
    assert!(first.starts_with(b"HTTP/1.1 100 Continue"), "{first:?}");
    s.write_all(&big).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("200 OK") && rest.contains(&sha256_hex(&big)),
        "{rest}"
    );

    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter()
            .all(|r| r.headers.iter().all(|(k, _)| k != "expect")),
        "Expect reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_body_is_refused_with_every_violation_and_exact_pointers() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), ValidationSettings::default())).await;

    let mut o = order(5, 0);
    o["lines"][3]["sku"] = json!("abc");
    o["lines"][1].as_object_mut().unwrap().remove("qty");
    o["lines"][4]["qty"] = json!(0);
    o["extra"] = json!(true);
    let resp = client()
        .post(gw.url("/shop/v1/orders"))
        .header("content-type", "application/json; charset=utf-8")
        .header("idempotency-key", "not-a-uuid")
        .body(serde_json::to_vec(&o).unwrap())
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:gatehouse:problem:validation-failed");
    let mut got = pointers(&body);
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("body", "/extra"),
        ("body", "/lines/1/qty"),
        ("body", "/lines/3/sku"),
        ("body", "/lines/4/qty"),
        ("header", "Idempotency-Key"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    want.sort();
    assert_eq!(got, want, "{body}");
    let sku = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pointer"] == "/lines/3/sku")
        .unwrap();
    assert!(
        sku["message"].as_str().unwrap().contains("\"abc\""),
        "the message says what was sent: {sku}"
    );

    // Not JSON, and a missing required body.
    let (status, body) = problem(post_order(&gw, b"{\"customer\":".to_vec()).await).await;
    assert_eq!(
        (status, body["errors"][0]["in"].as_str()),
        (400, Some("body"))
    );
    let resp = client()
        .post(gw.url("/shop/v1/orders"))
        .header("idempotency-key", KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("required")
    );

    // The JSON depth limit (64): 100 nested arrays in a string-typed field.
    let deep = format!(
        "{{\"customer\":\"C\",\"lines\":[{{\"sku\":\"ABC-0001\",\"qty\":1,\"text\":{}{}}}]}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let (status, body) = problem(post_order(&gw, deep.into_bytes()).await).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("deep"),
        "{body}"
    );

    assert_eq!(
        up.connections(),
        0,
        "nothing of a refused request reaches the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_from_the_header_and_mid_stream() {
    let up = RecordingUpstream::start().await;
    let gw =
        InProcessGateway::start(&shop(&up.url(), settings(|s| s.max_body_bytes = 2_048))).await;
    let body = serde_json::to_vec(&order(40, 20)).unwrap();
    assert!(body.len() > 2_048);

    // By Content-Length, before the body is read: the gateway answers and closes.
    let text = raw(
        &gw,
        &format!(
            "POST /shop/v1/orders HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\n\
             Idempotency-Key: {KEY}\r\nContent-Length: {}",
            body.len()
        ),
        b"",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"limit\":2048"), "{text}");

    // Chunked: refused as soon as the limit is passed.
    let text = raw(
        &gw,
        &format!(
            "POST /shop/v1/orders HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\n\
             Idempotency-Key: {KEY}\r\nTransfer-Encoding: chunked"
        ),
        &chunked(&body, 512),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload-too-large"), "{text}");

    // A streamed body from a client library, too.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let resp = client()
        .post(gw.url("/shop/v1/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", KEY)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Any operation: the header check does not need a declared body.
    let resp = client()
        .get(gw.url("/shop/v1/drift/good"))
        .body(vec![b'x'; 4_096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(up.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccepted_content_type_is_415_before_the_body_is_read() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), ValidationSettings::default())).await;
    for ct in [Some("text/plain"), Some("application/xml"), None] {
        let mut req = client()
            .post(gw.url("/shop/v1/orders"))
            .header("idempotency-key", KEY)
            .body("{}");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (status, body) = problem(req.send().await.unwrap()).await;
        assert_eq!(status, 415, "{ct:?}");
        assert_eq!(body["accepted"], json!(["application/json"]));
    }
    // `+json` is not `application/json`; a declared binary type passes unread by the schema.
    let resp = client()
        .post(gw.url("/shop/v1/uploads"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["sha256"], sha256_hex(&[0u8, 159, 146, 150]));
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_decoded_and_checked_in_every_location() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), ValidationSettings::default())).await;
    let c = client();

    let ok = c
        .get(gw.url("/shop/v1/orders/SO-42/lines/3?fields=sku,qty&other=1"))
        .header("x-tenant", "eu")
        .header("cookie", "theme=dark; session=77")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        up.seen()[0].target,
        "/orders/SO-42/lines/3?fields=sku,qty&other=1"
    );

    let resp = c
        .get(gw.url("/shop/v1/orders/42/lines/zero?fields=sku,price"))
        .header("x-tenant", "mars")
        .header("cookie", "session=abc")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400);
    let mut got = pointers(&body);
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("cookie", "session"),
        ("header", "X-Tenant"),
        ("path", "line"),
        ("path", "number"),
        ("query", "fields"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    want.sort();
    assert_eq!(got, want, "{body}");

    // Missing required header and cookie.
    let resp = c
        .get(gw.url("/shop/v1/orders/SO-1/lines/1"))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400);
    let got = pointers(&body);
    assert!(
        got.contains(&("header".into(), "X-Tenant".into())),
        "{body}"
    );
    assert!(got.contains(&("cookie".into(), "session".into())), "{body}");
    assert_eq!(
        up.seen().len(),
        1,
        "only the valid request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_are_refused_only_when_the_api_says_so() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(
        &up.url(),
        settings(|s| s.reject_unknown_query_params = true),
    ))
    .await;
    let resp = client()
        .get(gw.url("/shop/v1/orders/SO-1/lines/1?fields=sku&debug=1"))
        .header("x-tenant", "us")
        .header("cookie", "session=1")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400);
    assert_eq!(pointers(&body), vec![("query".into(), "debug".into())]);
    assert_eq!(up.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_too_large_to_replay_is_411_after_it_validated() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), ValidationSettings::default())).await;
    let big = serde_json::to_vec(&order(700, 120)).unwrap();
    let head = format!(
        "POST /shop/v1/orders HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_API_KEY}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {KEY}\r\nTransfer-Encoding: chunked"
    );
    let text = raw(&gw, &head, &chunked(&big, 8_192)).await;
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    assert!(text.contains("length-required"), "{text}");
    // An invalid one still gets its 400 with the details.
    let mut bad = order(700, 120);
    bad["lines"][650]["qty"] = json!(-1);
    let text = raw(
        &gw,
        &head,
        &chunked(&serde_json::to_vec(&bad).unwrap(), 8_192),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("/lines/650/qty"), "{text}");
    assert_eq!(up.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_validation_off_passes_anything_through() {
    let up = RecordingUpstream::start().await;
    let gw = InProcessGateway::start(&shop(&up.url(), settings(|s| s.request = false))).await;
    let resp = client()
        .post(gw.url("/shop/v1/orders"))
        .header("content-type", "text/plain")
        .body("not an order")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.seen()[0].body_sha256, sha256_hex(b"not an order"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_reported_or_enforced_as_the_api_says() {
    let up = RecordingUpstream::start().await;
    up.answer("/drift/good", 200, "application/json", r#"{"id": 7}"#);
    up.answer("/drift/bad", 200, "application/json", r#"{"id": "seven"}"#);
    up.answer("/drift/status", 418, "application/json", r#"{"id": 1}"#);
    up.answer("/drift/type", 200, "text/html", "<p>oops</p>");
    let big = format!(r#"{{"id": 1, "pad": "{}"}}"#, "x".repeat(200_000));
    up.answer("/drift/big", 200, "application/json", big.clone());

    // report: relayed unchanged, counted.
    let gw = InProcessGateway::start(&shop(
        &up.url(),
        settings(|s| s.response = ResponseValidation::Report),
    ))
    .await;
    let c = client();
    let resp = c.get(gw.url("/shop/v1/drift/bad")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"id": "seven"}"#);
    let resp = c.get(gw.url("/shop/v1/drift/good")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), r#"{"id": 7}"#);
    let metrics = gw.holder.metrics().render();
    for line in [
        "gatehouse_response_validation_total{api=\"shop\",major=\"1\",result=\"reported\"} 1",
        "gatehouse_response_validation_total{api=\"shop\",major=\"1\",result=\"conforming\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line}\n{metrics}"
        );
    }
    drop(gw);

    // enforce: a non-conforming response becomes a 502 problem; a conforming one is relayed
    // byte for byte, large ones too, on a connection that stays usable.
    let gw = InProcessGateway::start(&shop(
        &up.url(),
        settings(|s| s.response = ResponseValidation::Enforce),
    ))
    .await;
    for (path, pointer) in [
        ("/shop/v1/drift/bad", "/id"),
        ("/shop/v1/drift/status", ""),
        ("/shop/v1/drift/type", "Content-Type"),
    ] {
        let (status, body) = problem(c.get(gw.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 502, "{path}");
        assert_eq!(
            body["type"],
            "urn:gatehouse:problem:response-validation-failed"
        );
        assert_eq!(body["errors"][0]["pointer"], pointer, "{body}");
    }
    for _ in 0..3 {
        let resp = c.get(gw.url("/shop/v1/drift/good")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-request-id"));
        assert_eq!(resp.text().await.unwrap(), r#"{"id": 7}"#);
    }
    let resp = c.get(gw.url("/shop/v1/drift/big")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), big);
    let head = c.head(gw.url("/shop/v1/drift/good")).send().await.unwrap();
    assert_eq!(head.status(), 405, "HEAD is not declared");
    let metrics = gw.holder.metrics().render();
    assert!(
        metrics.lines().any(|l| l
            == "gatehouse_response_validation_total{api=\"shop\",major=\"1\",result=\"enforced\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            == "gatehouse_response_validation_total{api=\"shop\",major=\"1\",result=\"conforming\"} 4"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_answers_only_valid_requests() {
    let contents = shop("mock://", ValidationSettings::default());
    let gw = InProcessGateway::start(&contents).await;
    let (status, _) = problem(post_order(&gw, b"{}".to_vec()).await).await;
    assert_eq!(status, 400);
}

// -- through `gatehouse serve` --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_a_spec_whose_schemas_do_not_compile_naming_the_pointer() {
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    admin
        .post(
            "/teams",
            &json!({"name": "test", "contact": "t@example.com"}),
        )
        .await;
    let (s, b) = admin
        .post(
            "/apis",
            &json!({"slug": "bad", "title": "Bad", "team": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let mut spec = shop_spec();
    spec["components"]["schemas"]["Line"]["properties"]["sku"]["pattern"] = json!("^[A-Z{3}$");
    let (s, b) = admin.post("/apis/bad/versions", &spec).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["type"], "urn:gatehouse:problem:invalid-spec");
    assert_eq!(
        b["errors"][0]["pointer"], "/components/schemas/Line/properties/sku/pattern",
        "{b}"
    );
    let (s, b) = admin.get("/apis/bad/versions").await;
    assert_eq!(
        (s, b["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validation_policy_is_set_through_the_admin_api_and_served_within_a_second() {
    let up = RecordingUpstream::start().await;
    up.answer("/drift/bad", 200, "application/json", r#"{"id": "x"}"#);
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    admin
        .post(
            "/teams",
            &json!({"name": "test", "contact": "t@example.com"}),
        )
        .await;
    let (s, b) = admin
        .post(
            "/apis",
            &json!({"slug": "shop", "title": "Shop", "team": "test",
                    "validation": {"max_body_bytes": 4096}}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["validation"]["request"], true);
    assert_eq!(b["validation"]["response"], "off");
    let (s, b) = admin.post("/apis/shop/versions", &shop_spec()).await;
    assert_eq!(s, 201, "{b}");
    admin
        .post("/apis/shop/versions/1.0.0/publish", &json!({}))
        .await;
    admin.set_upstream("shop", 1, &[(&up.url(), 1)]).await;
    admin.subscribe_test_consumer("shop").await;

    let c = client();
    let url = gh.url("/shop/v1/drift/bad");
    let served = eventually(Duration::from_secs(2), || {
        let (c, url) = (c.clone(), url.clone());
        async move { (c.get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    assert!(served.is_some(), "{}", gh.logs());

    let (s, b) = admin
        .put(
            "/apis/shop/validation",
            &json!({"response": "enforce", "max_body_bytes": 0}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = admin
        .put("/apis/shop/validation", &json!({"response": "enforce"}))
        .await;
    assert_eq!((s, b["response"].as_str()), (200, Some("enforce")), "{b}");
    let enforced = eventually(Duration::from_secs(1), || {
        let (c, url) = (c.clone(), url.clone());
        async move { (c.get(url).send().await.ok()?.status() == 502).then_some(()) }
    })
    .await;
    assert!(enforced.is_some(), "enforce not live within a second");
    let (s, b) = admin.get("/apis/shop/validation").await;
    assert_eq!(
        (s, b["max_body_bytes"].as_u64()),
        (200, Some(1_048_576)),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_bundled_catalog_is_validated() {
    let gh = GatehouseProcess::start(ServeOptions {
        seed: true,
        ..ServeOptions::default()
    })
    .await;
    let c = client();
    let resp = c
        .post(gh.url("/inventory/v2/batch-inquiries"))
        .header("content-type", "application/json")
        .body(r#"{"lines":[{"sku":"SKU-10042","quantity":0}]}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 400, "{body}");
    let metrics = gh.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "gatehouse_validation_unchecked_schemas 0"),
        "{metrics}"
    );
}
