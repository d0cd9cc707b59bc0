//! What validation costs, measured by hand (no assertions, nothing timed in tests):
//!
//! ```text
//! cargo run --release -p gatehouse-policies --example validate_bench
//! cargo run --release -p gatehouse-policies --example validate_bench -- workload  # to profile
//! ```
//!
//! (No curl line: this example calls the validator directly, without a gateway.)
//!
//! Prints the median time to validate a ~1 KB order POST (parameters, content type, JSON
//! parse, schema), the same for a GET with five query parameters, the throughput on a
//! ~100 KB body, and the time and peak memory to compile a synthetic 1,200-operation
//! document whose 600 schemas all reach one another (the shape of GitHub's spec). The
//! machine is shared and noisy: compare figures from one run only.

use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi::{self, Method};
use gatehouse_policies::validate::{
    CompileOptions, CompiledOperation, RequestParts, compile_document,
};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SPEC: &str = r##"openapi: 3.0.3
info: {title: Orders, version: 1.0.0}
paths:
  /orders:
    get:
      parameters:
        - {name: status, in: query, schema: {type: string, enum: [open, shipped, cancelled]}}
        - {name: customer, in: query, schema: {type: string, format: uuid}}
        - {name: since, in: query, schema: {type: string, format: date}}
        - {name: limit, in: query, schema: {type: integer, format: int32, minimum: 1, maximum: 500}}
        - {name: sites, in: query, explode: false, schema: {type: array, items: {type: string, pattern: '^[A-Z]{3}$'}}}
      responses: {'200': {description: ok}}
    post:
      parameters:
        - {name: Idempotency-Key, in: header, required: true, schema: {type: string, format: uuid}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Order'}
      responses:
        '201':
          description: created
          content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}
components:
  schemas:
    Order:
      type: object
      required: [customer_id, currency, lines, ship_to]
      additionalProperties: false
      properties:
        id: {type: string, readOnly: true}
        customer_id: {type: string, format: uuid}
        order_date: {type: string, format: date}
        currency: {type: string, enum: [EUR, USD, GBP]}
        reference: {type: string, maxLength: 64, nullable: true}
        ship_to: {$ref: '#/components/schemas/Address'}
        payment:
          nullable: true
          oneOf: [{$ref: '#/components/schemas/Card'}, {$ref: '#/components/schemas/Invoice'}]
          discriminator: {propertyName: method, mapping: {card: Card, invoice: Invoice}}
        lines:
          type: array
          minItems: 1
          items: {$ref: '#/components/schemas/Line'}
    Line:
      type: object
      required: [sku, qty, unit_price]
      properties:
        sku: {type: string, pattern: '^[A-Z]{3}-[0-9]{4,8}$'}
        qty: {type: integer, format: int32, minimum: 1}
        unit_price: {type: number, minimum: 0, exclusiveMinimum: true}
        note: {type: string, nullable: true, maxLength: 200}
    Address:
      type: object
      required: [name, line1, city, country]
      properties:
        name: {type: string}
        line1: {type: string}
        city: {type: string}
        postcode: {type: string}
        country: {type: string, pattern: '^[A-Z]{2}$'}
    Card:
      type: object
      required: [method, token]
      properties: {method: {type: string}, token: {type: string, minLength: 8}}
    Invoice:
      type: object
      required: [method, terms_days]
      properties: {method: {type: string}, terms_days: {type: integer, enum: [30, 60, 90]}}
"##;

fn order_body(lines: usize) -> String {
    let line = |i: usize| {
        format!(
            r#"{{"sku": "ABC-{:05}", "qty": {}, "unit_price": 12.5, "note": null}}"#,
            i,
            1 + i % 9
        )
    };
    let lines: Vec<String> = (0..lines).map(line).collect();
    format!(
        r#"{{"customer_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "order_date": "2024-05-31", "currency": "EUR", "reference": "PO-7781", "ship_to": {{"name": "Acme Distribution", "line1": "1 Dock Road", "city": "Rotterdam", "postcode": "3011", "country": "NL"}}, "payment": {{"method": "invoice", "terms_days": 30}}, "lines": [{}]}}"#,
        lines.join(", ")
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Times `f` one call at a time, after a warm-up, and returns the median.
fn time(iterations: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 + 1 {
        f();
    }
    let samples = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() {
    if std::env::args().any(|a| a == "workload") {
        // Just the gateway's workload, long enough to profile (`perf record … workload`).
        for _ in 0..10 {
            bench_workload();
        }
        return;
    }
    let start = Instant::now();
    let doc = openapi::parse(SPEC.as_bytes(), &Limits::default()).expect("the spec parses");
    let opts = CompileOptions::default();
    let post = CompiledOperation::compile(
        &doc,
        doc.operation(Method::Post, "/orders")
            .expect("POST /orders"),
        &opts,
    )
    .expect("POST /orders compiles");
    let get = CompiledOperation::compile(
        &doc,
        doc.operation(Method::Get, "/orders").expect("GET /orders"),
        &opts,
    )
    .expect("GET /orders compiles");
    println!("parse + compile both operations: {:?}", start.elapsed());

    let headers = [("Idempotency-Key", "7c9e6679-7425-40de-944b-e07fc1f98a7b")];
    let small = order_body(11);
    let large = order_body(1510);
    for (name, body) in [("small", &small), ("large", &large)] {
        let req = RequestParts {
            headers: &headers,
            content_type: Some("application/json"),
            body: Some(body.as_bytes()),
            ..RequestParts::default()
        };
        assert_eq!(
            post.validate_request(&req),
            Ok(()),
            "the {name} body is valid"
        );
    }

    let small_req = RequestParts {
        headers: &headers,
        content_type: Some("application/json"),
        body: Some(small.as_bytes()),
        ..RequestParts::default()
    };
    let parse_only = time(20_000, || {
        let v: serde_json::Value =
            serde_json::from_slice(black_box(small.as_bytes())).unwrap_or_default();
        black_box(v);
    });
    let full = time(20_000, || {
        black_box(post.validate_request(black_box(&small_req))).ok();
    });
    println!(
        "POST {} B order: {} ns median (a serde_json::Value parse alone, for comparison: {} ns)",
        small.len(),
        full.as_nanos(),
        parse_only.as_nanos()
    );

    let query = "status=open&customer=3fa85f64-5717-4562-b3fc-2c963f66afa6&since=2024-05-01&limit=50&sites=AMS,RTM,HAM";
    let get_req = RequestParts {
        query: Some(query),
        ..RequestParts::default()
    };
    assert_eq!(get.validate_request(&get_req), Ok(()));
    let get_time = time(20_000, || {
        black_box(get.validate_request(black_box(&get_req))).ok();
    });
    println!(
        "GET with 5 query parameters: {} ns median",
        get_time.as_nanos()
    );

    let large_req = RequestParts {
        headers: &headers,
        content_type: Some("application/json"),
        body: Some(large.as_bytes()),
        ..RequestParts::default()
    };
    let large_time = time(300, || {
        black_box(post.validate_request(black_box(&large_req))).ok();
    });
    let large_parse = time(300, || {
        let v: serde_json::Value =
            serde_json::from_slice(black_box(large.as_bytes())).unwrap_or_default();
        black_box(v);
    });
    let mb_per_s = large.len() as f64 / large_time.as_secs_f64() / 1e6;
    println!(
        "POST {} B order: {} µs median, {:.0} MB/s (a serde_json::Value parse alone: {} µs)",
        large.len(),
        large_time.as_micros(),
        mb_per_s,
        large_parse.as_micros()
    );

    let invalid = small
        .replace("\"qty\": 1", "\"qty\": 0")
        .replace("EUR", "EURO");
    let invalid_req = RequestParts {
        headers: &headers,
        content_type: Some("application/json"),
        body: Some(invalid.as_bytes()),
        ..RequestParts::default()
    };
    let refused = time(5_000, || {
        black_box(post.validate_request(black_box(&invalid_req))).ok();
    });
    println!(
        "POST {} B invalid order (errors collected): {} ns median",
        invalid.len(),
        refused.as_nanos()
    );

    bench_workload();
    compile_synthetic();
}

/// The gateway benchmark's own workload (`bench/bench-api.json`, `bench/post-1k.json`),
/// split into its parts: the whole check, the same body against an accept-anything schema
/// (the parse onto the tape and the call), and `serde_json`'s bare syntax scan.
fn bench_workload() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/");
    let spec = std::fs::read_to_string(format!("{root}bench-api.json")).expect("bench-api.json");
    let body = std::fs::read(format!("{root}post-1k.json")).expect("post-1k.json");
    let anything = spec.replace(r##"{"$ref": "#/components/schemas/Order"}"##, "{}");
    assert_ne!(spec, anything, "the request body schema is a $ref to Order");
    let op = |text: &str| {
        let doc = openapi::parse(text.as_bytes(), &Limits::default()).expect("the spec parses");
        let found = doc
            .operation(Method::Post, "/orders")
            .expect("POST /orders");
        CompiledOperation::compile(&doc, found, &CompileOptions::default()).expect("compiles")
    };
    let (order, open) = (op(&spec), op(&anything));
    let req = RequestParts {
        content_type: Some("application/json"),
        body: Some(&body),
        ..RequestParts::default()
    };
    assert_eq!(
        order.validate_request(&req),
        Ok(()),
        "the bench body is valid"
    );
    let full = time(20_000, || {
        black_box(order.validate_request(black_box(&req))).ok();
    });
    let parse = time(20_000, || {
        black_box(open.validate_request(black_box(&req))).ok();
    });
    let scan = time(20_000, || {
        black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(
            &body,
        )))
        .ok();
    });
    println!(
        "bench workload, POST {} B order: {} ns median; against an accept-anything schema {} ns; \
         serde_json's syntax scan alone {} ns",
        body.len(),
        full.as_nanos(),
        parse.as_nanos(),
        scan.as_nanos()
    );
}

/// 1,200 operations (three parameters, a request body, two responses each) over 600
/// schemas that reference one another densely, recursively and through `nullable` +
/// `allOf`.
fn synthetic_spec() -> String {
    let mut s = String::from("openapi: 3.0.3\ninfo: {title: big, version: 1.0.0}\npaths:\n");
    for i in 0..1200 {
        let (a, b) = (i % 600, (i * 7) % 600);
        let _ = write!(
            s,
            "  /r{i}/{{id}}:\n    post:\n      parameters:\n        - {{name: id, in: path, required: true, schema: {{type: integer}}}}\n        - {{name: per_page, in: query, schema: {{type: integer, maximum: 100}}}}\n        - {{name: page, in: query, schema: {{type: integer}}}}\n      requestBody: {{content: {{application/json: {{schema: {{$ref: '#/components/schemas/S{a}'}}}}}}}}\n      responses:\n        '200': {{description: ok, content: {{application/json: {{schema: {{type: array, items: {{$ref: '#/components/schemas/S{b}'}}}}}}}}}}\n        '404': {{description: nf, content: {{application/json: {{schema: {{$ref: '#/components/schemas/Err'}}}}}}}}\n"
        );
    }
    s.push_str(
        "components:\n  schemas:\n    Err: {type: object, properties: {message: {type: string}}}\n",
    );
    for j in 0..600 {
        let (c, d, e) = ((j + 1) % 600, (j * 13 + 5) % 600, (j * 31 + 7) % 600);
        let _ = write!(
            s,
            "    S{j}:\n      type: object\n      nullable: true\n      required: [id]\n      properties:\n        id: {{type: integer, readOnly: true}}\n        name: {{type: string, maxLength: 100}}\n        url: {{type: string, format: uri}}\n        created_at: {{type: string, format: date-time}}\n        owner: {{nullable: true, allOf: [{{$ref: '#/components/schemas/S{c}'}}]}}\n        tags: {{type: array, items: {{$ref: '#/components/schemas/S{d}'}}}}\n        parent: {{$ref: '#/components/schemas/S{e}'}}\n        state: {{type: string, enum: [open, closed]}}\n"
        );
    }
    s
}

fn compile_synthetic() {
    let spec = synthetic_spec();
    let doc =
        openapi::parse(spec.as_bytes(), &Limits::default()).expect("the synthetic spec parses");
    let rss_before = peak_rss_kib();
    let start = Instant::now();
    let (ops, errors) = compile_document(&doc, &CompileOptions::default());
    let took = start.elapsed();
    let rss_after = peak_rss_kib();
    println!(
        "compile_document, {} operations ({} KiB spec): {:?}, {} errors, peak RSS {} MiB (+{} MiB)",
        ops.len(),
        spec.len() / 1024,
        took,
        errors.len(),
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024
    );
}

/// The process's peak resident set (Linux); 0 elsewhere.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
