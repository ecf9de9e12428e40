//! The merged OpenAPI document and the offline docs page. The gateway's document is its own paths
//! merged with each service's generated document, fetched live so it always describes what is deployed.

use std::time::Duration;

use actix_web::{get, web, HttpResponse, ResponseError};
use askama::Template;
use futures_util::future::join_all;
use immilink_shared::compliance::{RuleEntry, RuleStatus};
use immilink_shared::ApiError;
use utoipa::openapi::OpenApi;

use crate::routing::Backend;
use crate::State;

/// The merged document: the gateway's paths, then each service's (first definition wins).
#[utoipa::path(get, path = "/openapi.json", tag = "docs", responses((status = 200, description = "The merged OpenAPI document")))]
#[get("/openapi.json")]
pub async fn merged_openapi(state: web::Data<State>) -> HttpResponse {
    let fetches = Backend::ALL.iter().map(|backend| fetch(&state, *backend));
    let documents: Vec<OpenApi> = join_all(fetches).await.into_iter().flatten().collect();
    HttpResponse::Ok().json(immilink_shared::openapi::merge(crate::own_openapi(), documents))
}

async fn fetch(state: &State, backend: Backend) -> Option<OpenApi> {
    let url = format!("{}/openapi.json", state.backend_url(backend));
    let result = async {
        state.http.get(&url).timeout(Duration::from_secs(3)).send().await?.error_for_status()?.json::<OpenApi>().await
    }
    .await;
    result
        .map_err(|err| tracing::warn!(?backend, error = %err, "service document unavailable; left out of the merged document"))
        .ok()
}

/// The compliance matrix as a page beside the API documentation (R-GOV-01): the rules, their status,
/// the endpoints that enforce them and the tests that prove them. It is derived from the SPEC and the
/// code, as public as the OpenAPI document, and holds nothing about any person; the JSON form at
/// `GET /v1/compliance/rules` is for the roles that answer for compliance.
#[get("/docs/compliance")]
pub async fn compliance_page() -> HttpResponse {
    let matrix = immilink_shared::compliance::committed();
    let count = |status: RuleStatus| matrix.rules.iter().filter(|rule| rule.status == status).count();
    let page = CompliancePage {
        rules: &matrix.rules,
        total: matrix.rules.len(),
        enforced: count(RuleStatus::Enforced),
        background: count(RuleStatus::EnforcedInBackground),
        untested: count(RuleStatus::Untested),
    };
    match page.render() {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(err) => ApiError::internal(format!("the compliance page did not render: {err}")).error_response(),
    }
}

#[derive(Template)]
#[template(path = "compliance.html")]
struct CompliancePage<'a> {
    rules: &'a [RuleEntry],
    total: usize,
    enforced: usize,
    background: usize,
    untested: usize,
}

/// The docs page lives at `/docs/`.
#[get("/docs")]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
}

/// Swagger UI served from assets compiled into the binary (no CDN: it renders with no internet).
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json"))
}
