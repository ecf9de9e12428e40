//! OpenAPI helpers: the bearer security scheme every service declares, merging the services' documents
//! into the gateway's, and the drift check that keeps `openapi/*.json` equal to what the code generates.

use std::path::Path;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;

pub const BEARER: &str = "bearer";

/// Adds the `bearer` (JWT) security scheme.
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /v1/auth/login"))
                    .build(),
            ),
        );
    }
}

/// Merges service documents into one, keeping the first document's info. Paths a later document
/// repeats (the health endpoints) keep the first definition.
pub fn merge(mut base: OpenApi, others: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    for other in others {
        base.merge(other);
    }
    base
}

/// The committed form of a document: pretty JSON with a trailing newline.
pub fn render(doc: &OpenApi) -> String {
    let mut text = doc.to_pretty_json().unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// Compares a generated document with its committed file. With `IMMILINK_UPDATE_OPENAPI=1` it rewrites
/// the file instead. Returns a message describing the drift, if any.
pub fn check_committed(path: &Path, doc: &OpenApi) -> Result<(), String> {
    let generated = render(doc);
    if std::env::var("IMMILINK_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, &generated).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        return Ok(());
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        Ok(())
    } else {
        Err(format!(
            "{} differs from the code; regenerate with `IMMILINK_UPDATE_OPENAPI=1 cargo test -p immilink-stack openapi`",
            path.display()
        ))
    }
}
