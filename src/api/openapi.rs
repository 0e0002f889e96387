//! The OpenAPI 3.1 document of this API, served at `/api/v1/openapi.json`. It is generated
//! (utoipa) from the handlers' own `#[utoipa::path]` attributes and request and response
//! types, and from the routes [`super::router`] serves: it cannot drift from the API.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The description of every 503: each is worth retrying.
pub const UNAVAILABLE: &str = "store unavailable, or this replica is a standby that could not \
    hand the write to the leader (none known, none advertised, out of reach): retry after \
    Retry-After";

/// What the document says before the routes add their paths: title, description and the
/// security schemes the operations name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollbackd API",
        description = "Alertmanager webhook receiver and manual override API of rollbackd. \
            Any replica takes every request: reads are answered by the replica asked (from the \
            shared store with store.backend = kubernetes), and a write (POST) reaching a standby \
            is forwarded to the leader, whose answer comes back with the header \
            x-rollbackd-forwarded-to naming it. Roles: a viewer token may read (GET), an \
            operator token may also change things (POST); with no tokens configured the API is \
            read-only."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "alerts", description = "Alertmanager's webhook"),
        (name = "rollbacks", description = "Incidents: trigger, approve, cancel, list, show"),
        (name = "agents", description = "Agents and pausing automation"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The security schemes: API tokens, and the webhook's bearer token or basic credentials.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = |auth: HttpAuthScheme, what: &str| {
            let mut http = Http::new(auth);
            http.description = Some(what.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "bearer",
            scheme(
                HttpAuthScheme::Bearer,
                "API token (`[api] tokens`): viewer for GET, operator for changes",
            ),
        );
        components.add_security_scheme(
            "webhook_bearer",
            scheme(
                HttpAuthScheme::Bearer,
                "Alertmanager http_config bearer token (`[webhook] bearer_token`)",
            ),
        );
        components.add_security_scheme(
            "webhook_basic",
            scheme(
                HttpAuthScheme::Basic,
                "Alertmanager http_config basic auth (`[webhook] basic`)",
            ),
        );
    }
}

/// The document, generated once from the routes [`super::router`] serves.
pub fn document() -> &'static Document {
    static DOCUMENT: LazyLock<Document> = LazyLock::new(|| super::documented().into_openapi());
    &DOCUMENT
}

/// `GET /api/v1/openapi.json`
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "the document", body = Object)))]
pub async fn serve() -> Json<&'static Document> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The served document, its validation and every operation are tested in
    /// `tests/openapi.rs`; here, what the document says before any route.
    #[test]
    fn the_document_is_3_1_with_its_security_schemes() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for scheme in ["bearer", "webhook_bearer", "webhook_basic"] {
            assert!(doc["components"]["securitySchemes"][scheme].is_object());
        }
        assert_eq!(
            doc["paths"]["/api/v1/alerts"]["post"]["security"],
            serde_json::json!([{"webhook_bearer": []}, {"webhook_basic": []}])
        );
    }
}
