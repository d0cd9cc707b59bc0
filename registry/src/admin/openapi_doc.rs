//! The admin API's own OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! Written by hand in `openapi.yaml` beside this file and embedded at build time; a test
//! runs it through the project's own spec ingest, so it cannot drift into invalidity.

use serde_json::Value;
use std::sync::OnceLock;

const SOURCE: &str = include_str!("openapi.yaml");

/// The document as JSON (parsed once).
pub fn openapi_document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        gatehouse_policies::document::load(SOURCE.as_bytes(), &Default::default())
            .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
    })
}

#[cfg(test)]
mod tests {
    use gatehouse_policies::document::Limits;
    use gatehouse_policies::openapi;

    #[test]
    fn the_admin_document_passes_our_own_ingest() {
        let doc = openapi::parse(super::SOURCE.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(doc.dialect, openapi::Dialect::V31);
        assert!(doc.operations().count() >= 30);
        assert!(
            doc.paths.iter().any(|p| p.template == "/apis/{slug}/diff"),
            "the diff route is documented"
        );
        for op in doc.operations() {
            assert!(
                op.operation_id.is_some(),
                "{} has no operationId",
                op.display_name()
            );
        }
    }
}
