//! The OpenAPI 3.1 document served at `/api/openapi.json`, built from the route table
//! ([`crate::api::OPS`]) that also builds the router: every operation with its `operationId`,
//! parameters, request and response schemas and examples.

mod schemas;

use serde_json::{json, Map, Value};

use crate::api::{Answer, Op, OPS};

fn problem() -> Value {
    json!({ "description": "A problem (RFC 9457) with the socket's error `code`.",
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// The path's `{name}` segments, in order.
fn path_names(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

fn parameters(op: &Op) -> Vec<Value> {
    let path = path_names(op.path).map(|name| {
        json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
    });
    let query = op.query.iter().map(|(name, kind, doc)| {
        json!({ "name": name, "in": "query", "required": false, "description": doc,
                "schema": { "type": kind } })
    });
    path.chain(query).collect()
}

/// The success response: its status and content, with the schema's example.
fn success(op: &Op, components: &Map<String, Value>) -> (String, Value) {
    match op.answer {
        Answer::Json(status, schema) => {
            let example = components[schema]["examples"][0].clone();
            let body = json!({ "description": schema,
                "content": { "application/json": {
                    "schema": { "$ref": format!("#/components/schemas/{schema}") },
                    "example": example } } });
            (status.to_string(), body)
        }
        Answer::Sse => (
            "200".into(),
            json!({ "description": "Server-Sent Events (see docs/weave/http-api.md).",
                    "content": { "text/event-stream": { "schema": { "type": "string" } } } }),
        ),
        Answer::Text => (
            "200".into(),
            json!({ "description": "Prometheus text exposition.",
                    "content": { "text/plain": { "schema": { "type": "string" } } } }),
        ),
        Answer::NoContent => ("204".into(), json!({ "description": "Done, no body." })),
    }
}

fn operation(op: &Op, components: &Map<String, Value>) -> Value {
    let (status, ok) = success(op, components);
    let mut out = json!({
        "operationId": op.id,
        "summary": op.summary,
        "responses": { status: ok, "default": problem() },
    });
    let params = parameters(op);
    if !params.is_empty() {
        out["parameters"] = Value::Array(params);
    }
    if let Some(schema) = op.body {
        // A body without required fields may be left out: it is read as `{}`.
        let required = components[schema]["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        out["requestBody"] = json!({ "required": required, "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{schema}") },
            "example": components[schema]["examples"][0] } } });
    }
    if op.public {
        out["security"] = json!([]);
    }
    out
}

pub fn document() -> Value {
    let components = schemas::all();
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method.as_str()] = operation(op, &components);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Weave HTTP API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "See docs/weave/http-api.md. Records are those of the socket's events.history." },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE }
            },
            "schemas": components,
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_named_once_and_every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
        let mut ids: Vec<&str> = OPS.iter().map(|op| op.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), OPS.len(), "operationIds are unique");
        for (name, schema) in schemas {
            assert!(schema["examples"][0].is_object(), "{name} has an example");
        }
    }
}
