//! The API's search and ask operations for in-process callers (the CLI without `--url`): same
//! request validation, same response shape, no HTTP.

use docent_core::Services;
use docent_domain::{Code, Error, TenantId};
use serde_json::Value;

use crate::routes::search::{AskRequest, SearchRequest};

/// In-process callers act as the owner of the tenant they name.
fn acting(tenant: TenantId) -> docent_domain::Principal {
    docent_domain::Principal {
        tenant_id: tenant,
        ..crate::extract::local_owner()
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, Error> {
    serde_json::from_value(body).map_err(|e| Error::new(Code::InvalidJson, e.to_string()))
}

/// `POST /api/v1/search`, in process.
pub async fn search(services: &Services, tenant: TenantId, body: Value) -> Result<Value, Error> {
    let req: SearchRequest = parse(body)?;
    let resp = crate::routes::search::run(services, &acting(tenant), req, None)
        .await
        .map_err(|e| e.0)?;
    serde_json::to_value(resp).map_err(Error::internal)
}

/// `POST /api/v1/ask`, in process.
pub async fn ask(services: &Services, tenant: TenantId, body: Value) -> Result<Value, Error> {
    let req: AskRequest = parse(body)?;
    let resp = crate::routes::search::answer(services, &acting(tenant), req)
        .await
        .map_err(|e| e.0)?;
    serde_json::to_value(resp).map_err(Error::internal)
}

/// `POST /api/v1/bots`, in process: the same body and answer.
pub async fn create_bot(
    services: &Services,
    tenant: TenantId,
    body: Value,
) -> Result<Value, Error> {
    let req: crate::dto::CreateBot = parse(body)?;
    let bot = crate::routes::bots::create_bot(services, &acting(tenant), req)
        .await
        .map_err(|e| e.0)?;
    serde_json::to_value(bot).map_err(Error::internal)
}

/// `PATCH /api/v1/bots/{id}`, in process: the same body and answer.
pub async fn update_bot(
    services: &Services,
    tenant: TenantId,
    id: docent_domain::BotId,
    body: Value,
) -> Result<Value, Error> {
    let req: crate::dto::UpdateBot = parse(body)?;
    let bot = crate::routes::bots::update_bot(services, &acting(tenant), id, req)
        .await
        .map_err(|e| e.0)?;
    serde_json::to_value(bot).map_err(Error::internal)
}
