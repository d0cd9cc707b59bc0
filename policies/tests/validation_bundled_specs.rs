//! The bundled capability specs (`specs/`) compile with no error, and every example they
//! carry validates against its own schema (the `mock://` upstream answers with them).

use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi;
use gatehouse_policies::validate::{
    CompileOptions, RequestParts, RequestRejection, compile_document,
};
use std::path::Path;

fn spec_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            spec_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "json")
            && path.file_name().is_some_and(|n| n != "catalog.yaml")
        {
            out.push(path);
        }
    }
}

#[test]
fn bundled_specs_compile_and_their_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut files = Vec::new();
    spec_files(&root, &mut files);
    files.sort();
    let mut examples = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let doc = openapi::parse(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (ops, errors) = compile_document(&doc, &CompileOptions::default());
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        for op in doc.operations() {
            let compiled = &ops[&(op.method, op.path.clone())];
            for media in op.request_body.iter().flat_map(|b| b.content.iter()) {
                for example in &media.examples {
                    let body = serde_json::to_vec(&example.value).unwrap();
                    let result = compiled.validate_request(&RequestParts {
                        content_type: Some(&media.media_type),
                        body: Some(&body),
                        ..RequestParts::default()
                    });
                    // Parameters are not part of a body example: only body errors count.
                    if let Err(RequestRejection::Invalid { errors }) = &result {
                        let body_errors: Vec<_> =
                            errors.iter().filter(|e| e.location == "body").collect();
                        assert!(
                            body_errors.is_empty(),
                            "{} {}: example {:?}: {body_errors:?}",
                            file.display(),
                            op.display_name(),
                            example.name
                        );
                    } else {
                        assert!(
                            result.is_ok(),
                            "{} {}: {result:?}",
                            file.display(),
                            op.display_name()
                        );
                    }
                    examples += 1;
                }
            }
            for response in &op.responses {
                // A status this response (and no more specific one) answers for.
                let status = (100..600)
                    .find(|&code| op.response_for(code).map(|r| r.status) == Some(response.status))
                    .expect("every declared response answers some status");
                for media in &response.content {
                    for example in &media.examples {
                        let body = serde_json::to_vec(&example.value).unwrap();
                        let result =
                            compiled.validate_response(status, Some(&media.media_type), &body);
                        assert!(
                            result.is_ok(),
                            "{} {} {status}: example {:?}: {result:?}",
                            file.display(),
                            op.display_name(),
                            example.name
                        );
                        examples += 1;
                    }
                }
            }
        }
    }
    assert!(!files.is_empty());
    println!("{} specs, {examples} examples", files.len());
}
