//! The OpenAPI document's own parts: its info, the bearer security scheme and the default
//! security requirement. Paths and schemas come from the handlers, through `routes::router()`.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Herald", description = "The identity event hub: publish identity events, deliver them signed to endpoints."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The document `GET /v1/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::routes::router().into_openapi()
}

#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The served document's exact bytes are pinned, so a change to a handler's annotation or a
    /// wire type shows up in review as a change to the snapshot (`UPDATE_SNAPSHOTS=1` rewrites it).
    #[test]
    fn the_document_matches_its_snapshot() {
        let rendered = super::document()
            .to_pretty_json()
            .expect("the document serializes");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &rendered).expect("snapshot written");
            return;
        }
        let pinned = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path:?} missing: run with UPDATE_SNAPSHOTS=1"));
        assert_eq!(rendered, pinned);
    }
}
