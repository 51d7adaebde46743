//! A session's agents: list them, register an HTTP agent (a person in the browser or an SDK
//! client), and the operator's rename, ordering and removal of any agent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{
    call, json_response, json_text, object_body, operator_call, payload_of, text_field,
};
use crate::HttpState;

pub async fn list_agents(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "agent.list", Some(&id), Value::Null).await?;
    Ok(json_text(StatusCode::OK, payload_of(&resp).to_string()))
}

/// `POST /api/sessions/{id}/agents` `{name, kind: human|sdk, id?}`: a new HTTP agent.
pub async fn register(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let name = text_field(&body, "name")?;
    let kind = match body.get("kind") {
        None => "human",
        Some(v) => v.as_str().unwrap_or_default(),
    };
    if !matches!(kind, "human" | "sdk") {
        return Err(Problem::new(
            "bad_request",
            "`kind` is `human` or `sdk` (terminal agents join over the socket)",
        ));
    }
    let id = match body.get("id") {
        Some(Value::String(id)) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
        Some(_) => return Err(Problem::new("bad_request", "`id` is a string")),
    };
    // Any agent of that id, of any kind (a terminal agent above all), is never displaced or
    // spoken for by a registration.
    let exists = match crate::links::http_agent(&st.bus, &session, &id).await {
        Ok(_) => true,
        Err(p) if p.code == "unknown_agent" => false,
        Err(p) if p.code == "forbidden" => true, // a terminal agent
        Err(p) => return Err(p),
    };
    if st.links.get(&session, &id).is_some() || exists {
        return Err(Problem::new(
            "agent_busy",
            format!("agent `{id}` exists already; an HTTP registration never takes an agent over"),
        ));
    }
    st.links
        .bind(
            &st.bus,
            &session,
            &id,
            Some(json!({ "id": id, "name": name, "kind": kind })),
        )
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "id": id, "name": name, "kind": kind, "status": "online" }),
    ))
}

/// `PATCH /api/sessions/{id}/agents/{agent_id}` `{name}`: the operator renames any agent.
pub async fn rename(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let name = text_field(&body, "name")?;
    let resp = operator_call(
        &st,
        "agent.update",
        &session,
        json!({ "id": agent, "name": name }),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}

/// `POST /api/sessions/{id}/agents/order` `{ids}`: the operator's order of the agents.
pub async fn order(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let ids = body.get("ids").cloned().unwrap_or(Value::Null);
    let resp = operator_call(&st, "agent.order", &session, json!({ "ids": ids })).await?;
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}

/// `DELETE /api/sessions/{id}/agents/{agent_id}`: the operator removes any agent.
pub async fn remove(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let resp = operator_call(&st, "agent.remove", &session, json!({ "id": agent })).await?;
    st.links.drop_link(&session, &agent);
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}
