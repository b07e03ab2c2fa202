//! The OpenAPI 3 document, generated from the handlers' own parameter and
//! answer types, served at `/api/v1/openapi.json`.
use crate::{
    dead_letters,
    reports::{demographics, events, revenue},
};
use axum::Json;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "events-reporter",
        description = "Marketing reports over the stored events: exact counts and money, \
                       answered from rollups. Times are UTC RFC 3339; money is a decimal string \
                       with two decimals. Invalid parameters give 400 with \
                       `{\"error\", \"details\": [{\"param\", \"message\"}]}`; unknown parameters \
                       are ignored. The dead-letters endpoints list and count the refused \
                       events (same errors and bearer token)."
    ),
    paths(
        events::handler,
        revenue::handler,
        demographics::handler,
        dead_letters::list_handler,
        dead_letters::summary_handler
    ),
    // Reached only through parameter value types and the flattened section
    // map, which utoipa does not follow when collecting schemas.
    components(schemas(
        crate::params::FunnelStage,
        demographics::Section,
        demographics::ProfileSection,
        demographics::AudienceSection,
        dead_letters::Reason
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "reports", description = "Events, revenue and demographics reports"),
        (name = "dead-letters", description = "The refused events: list and summary")
    )
)]
pub struct ApiDoc;

/// Declares the optional bearer scheme (`REPORTER_API_TOKEN`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn handler() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
