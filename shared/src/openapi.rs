//! OpenAPI helpers: the bearer security scheme every service declares, merging the services' documents
//! into the gateway's, and the drift check that keeps `openapi/*.json` equal to what the code generates.

use std::path::Path;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Discriminator, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use crate::problem::{Problem, PROBLEM_JSON};

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
/// repeats (the health endpoints) keep the first definition, and so do tags: every service declares
/// `health`, and a document that lists a tag twice is not valid OpenAPI.
pub fn merge(mut base: OpenApi, others: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    for other in others {
        base.merge(other);
    }
    if let Some(tags) = base.tags.as_mut() {
        let mut seen = std::collections::HashSet::new();
        tags.retain(|tag| seen.insert(tag.name.clone()));
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

/// Makes every operation id unique across the merged document: handlers of different services share
/// names (`list`, `create`), so each id is qualified with the operation's first tag
/// (`accounts_list`, `lookups_create`, `agency_links_suspend_link`). Generated clients name their
/// functions after these ids, so they are identifiers: no `-` and no space.
pub fn qualify_operation_ids(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            let tag = operation.tags.as_ref().and_then(|tags| tags.first()).map(|tag| tag.replace(['-', ' '], "_"));
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut()) {
                if !id.starts_with(&format!("{tag}_")) {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

/// Documents the problems any operation can answer besides its own: 401 where a token is needed; 400,
/// 415 and 422 where there is a body; 400 where there are path parameters (the gateway refuses a path
/// that is not canonical: a parameter that is empty, `.` or `..`, or holds `/`, `\\` or an encoded
/// separator); 422 where there are query parameters; 503 when a dependency is down; 500. Responses an
/// operation documents itself are kept.
pub fn document_common_problems(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.entry("Problem".into()).or_insert_with(<Problem as utoipa::PartialSchema>::schema);
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            add_common_problems(operation);
        }
    }
}

fn add_common_problems(operation: &mut Operation) {
    let needs_token = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let has_in = |place: fn(&ParameterIn) -> bool| {
        operation.parameters.as_ref().is_some_and(|ps| ps.iter().any(|p| place(&p.parameter_in)))
    };
    let has_query = has_in(|p| matches!(p, ParameterIn::Query));
    let has_path = has_in(|p| matches!(p, ParameterIn::Path));
    let mut add = |status: &str, description: &str| {
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| problem_response(description));
    };
    if needs_token {
        add("401", "No valid token, or its session has ended");
    }
    match (has_body, has_path) {
        (true, true) => {
            add("400", "The body is not valid JSON, or the path is not in canonical form; `field` names which")
        }
        (true, false) => add("400", "The body is not valid JSON"),
        (false, true) => add("400", "The path is not in canonical form (`field`: `path`)"),
        (false, false) => {}
    }
    if has_body {
        add("415", "The body is not application/json");
    }
    if has_body || has_query {
        add("422", "A field is missing or invalid; `field` names it");
    }
    add("500", "Unexpected error; quote the request id");
    if needs_token || has_body || has_query {
        add("503", "A dependency (database, another service) is not answering");
    }
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
            .build(),
    )
}

/// Names the variants of internally tagged enums (`#[serde(tag = "…")]`). utoipa writes such an enum
/// as a `oneOf` of inline `allOf`s (the variant's type plus its tag), which openapi-python-client
/// cannot build inside a union: it dropped `LookupResult` and, with it, the lookup's answer from the
/// generated client. Each variant becomes a component of its own (`LookupResultEntryExitLastYear`),
/// the union refers to them, and a discriminator on the tag maps each value to its variant. The
/// document describes the same JSON as before.
pub fn name_tagged_variants(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else { return };
    let existing: std::collections::HashSet<String> = components.schemas.keys().cloned().collect();
    let mut variants = Vec::new();
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else { continue };
        let Some(tags) = one_of.items.iter().map(variant_tag).collect::<Option<Vec<_>>>() else { continue };
        let Some((property, _)) = tags.first().cloned() else { continue };
        let named: Vec<String> = tags.iter().map(|(_, value)| format!("{name}{}", pascal_case(value))).collect();
        if tags.iter().any(|(tag, _)| *tag != property) || named.iter().any(|variant| existing.contains(variant)) {
            continue;
        }
        let mut mapping = std::collections::BTreeMap::new();
        for ((item, (_, value)), variant) in one_of.items.iter_mut().zip(tags).zip(named) {
            let reference = format!("#/components/schemas/{variant}");
            variants.push((variant, std::mem::replace(item, RefOr::Ref(Ref::new(reference.clone())))));
            mapping.insert(value, reference);
        }
        one_of.discriminator = Some(Discriminator::with_mapping(property, mapping));
    }
    components.schemas.extend(variants);
}

/// The tag property and its one value, when the schema is a tagged enum's variant: an `allOf` one of
/// whose parts is an object with that single property, a one-value string enum.
fn variant_tag(item: &RefOr<Schema>) -> Option<(String, String)> {
    let RefOr::T(Schema::AllOf(all_of)) = item else { return None };
    all_of.items.iter().find_map(|part| {
        let RefOr::T(Schema::Object(object)) = part else { return None };
        let (tag, RefOr::T(Schema::Object(property))) = object.properties.iter().next()? else { return None };
        match property.enum_values.as_deref() {
            Some([serde_json::Value::String(value)]) if object.properties.len() == 1 => {
                Some((tag.clone(), value.clone()))
            }
            _ => None,
        }
    })
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::tag::TagBuilder;
    use utoipa::openapi::OpenApiBuilder;

    use super::*;

    fn with_tags(names: &[&str]) -> OpenApi {
        OpenApiBuilder::new().tags(Some(names.iter().map(|name| TagBuilder::new().name(*name).build()))).build()
    }

    #[derive(utoipa::ToSchema, serde::Serialize)]
    struct Cat {
        lives: u8,
    }

    #[derive(utoipa::ToSchema, serde::Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Pet {
        HouseCat(Cat),
        StrayCat(Cat),
    }

    #[test]
    fn tagged_enum_variants_become_components_the_union_refers_to_by_its_tag() {
        let components = utoipa::openapi::ComponentsBuilder::new().schema_from::<Cat>().schema_from::<Pet>().build();
        let mut doc = OpenApiBuilder::new().components(Some(components)).build();
        name_tagged_variants(&mut doc);
        let doc = serde_json::to_value(&doc).expect("JSON");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Pet"]["oneOf"],
            serde_json::json!([
                { "$ref": "#/components/schemas/PetHouseCat" },
                { "$ref": "#/components/schemas/PetStrayCat" }
            ])
        );
        assert_eq!(schemas["Pet"]["discriminator"]["propertyName"], "kind");
        assert_eq!(schemas["Pet"]["discriminator"]["mapping"]["stray_cat"], "#/components/schemas/PetStrayCat");
        let variant = &schemas["PetHouseCat"]["allOf"];
        assert_eq!(variant[0]["$ref"], "#/components/schemas/Cat");
        assert_eq!(variant[1]["properties"]["kind"]["enum"], serde_json::json!(["house_cat"]));
        // What the variants describe: the variant's fields beside the tag.
        for (pet, kind) in
            [(Pet::HouseCat(Cat { lives: 9 }), "house_cat"), (Pet::StrayCat(Cat { lives: 7 }), "stray_cat")]
        {
            let json = serde_json::to_value(pet).expect("JSON");
            assert_eq!(json["kind"], kind);
            assert!(json["lives"].is_u64(), "{json}");
        }
    }

    #[test]
    fn merged_documents_list_each_tag_once_in_first_seen_order() {
        let merged =
            merge(with_tags(&["health", "docs"]), [with_tags(&["sessions", "health"]), with_tags(&["health"])]);
        let names: Vec<String> = merged.tags.unwrap_or_default().into_iter().map(|tag| tag.name).collect();
        assert_eq!(names, ["health", "docs", "sessions"]);
    }
}
