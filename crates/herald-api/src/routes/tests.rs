//! Every handler annotated with `#[utoipa::path]` is routed. `routes!` makes the router and the
//! document from the same annotation, so a documented route is always served; what it cannot
//! see is an annotated handler that no router names, which would be neither. This test reads the
//! annotations from the source and finds each in the document.

use std::collections::BTreeSet;
use std::path::Path;

/// (method, path) of every `#[utoipa::path(...)]` in the files below `directory`.
fn annotated_routes(directory: &Path, found: &mut BTreeSet<(String, String)>) {
    let entries = std::fs::read_dir(directory).expect("the routes directory");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            annotated_routes(&path, found);
            continue;
        }
        // This file names the attribute in its code, not as an annotation.
        if path.extension().is_none_or(|extension| extension != "rs")
            || path.file_name().is_some_and(|name| name == "tests.rs")
        {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        for annotation in source.split("#[utoipa::path(").skip(1) {
            let method = annotation.split(',').next().expect("a method").trim();
            let route = annotation
                .split_once("path = \"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(route, _)| route)
                .unwrap_or_else(|| panic!("{path:?}: an annotation without a path"));
            found.insert((method.to_owned(), route.to_owned()));
        }
    }
}

#[test]
fn every_annotated_handler_is_routed() {
    let mut annotated = BTreeSet::new();
    annotated_routes(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes"),
        &mut annotated,
    );
    let document = super::router().into_openapi();
    let mut documented = BTreeSet::new();
    for (route, item) in &document.paths.paths {
        let operations = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, operation) in operations {
            if operation.is_some() {
                documented.insert((method.to_owned(), route.clone()));
            }
        }
    }
    assert!(!annotated.is_empty(), "no annotation found");
    let not_routed: Vec<_> = annotated.difference(&documented).collect();
    assert!(
        not_routed.is_empty(),
        "annotated but in no router's routes!: {not_routed:?}"
    );
}
