//! The OpenAPI document, generated from the handlers and wire types.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::routes::listen;
use crate::routes::{
    api_keys, blocking, catalog, deliveries, endpoints, events, hooks, ingest, sources, ssf,
    ssf_streams, subjects, tenants,
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Herald", description = "The identity event hub: publish identity events, deliver them signed to endpoints."),
    paths(
        tenants::create, tenants::list, tenants::get_one,
        api_keys::create_tenant_key, api_keys::list_tenant_keys, api_keys::revoke_tenant_key,
        api_keys::create_admin_key, api_keys::list_admin_keys, api_keys::revoke_admin_key,
        events::publish, events::publish_batch, events::list, events::get_one,
        catalog::list, catalog::register,
        endpoints::create, endpoints::list, endpoints::get_one, endpoints::update, endpoints::delete,
        endpoints::rotate_secret, endpoints::replay,
        deliveries::list_for_endpoint, deliveries::get_one, deliveries::list_attempts, deliveries::retry,
        subjects::erase,
        hooks::create, hooks::list, hooks::get_one, hooks::update, hooks::delete,
        blocking::evaluate, blocking::list,
        sources::create, sources::list, sources::get_one, sources::update, sources::delete,
        sources::rotate_secret,
        ingest::ingest, ingest::verify_intent,
        listen::open_stream, listen::report_result, listen::close,
        ssf::rotate_key, ssf::list_keys, ssf::create_receiver, ssf::list_receivers,
        // Standard Webhooks `v1a` keys and the tenant's view of its SSF streams (issue 14)
        ssf::retire_key, ssf_streams::list, ssf_streams::get_one,
        // Shared Signals durable delivery: the push attempts of a stream.
        ssf::list_push_attempts,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

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

    use utoipa::OpenApi;

    /// The served document's exact bytes are pinned, so a change to a handler's annotation or a
    /// wire type shows up in review as a change to the snapshot (`UPDATE_SNAPSHOTS=1` rewrites it).
    #[test]
    fn the_document_matches_its_snapshot() {
        let rendered = super::ApiDoc::openapi()
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
