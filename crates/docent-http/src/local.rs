//! The API's search, ask, bot and widget-key operations for in-process callers (the CLI
//! without `--url`): same request validation, same response shape, no HTTP.

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

/// Where an in-process caller's widget snippets point: `auth.public_url`, else the configured
/// listen address.
fn local_base(services: &Services) -> String {
    match services.config.auth.public_url.as_deref() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", services.config.server.bind),
    }
}

fn widget_key_json(services: &Services, key: docent_domain::WidgetKey) -> Result<Value, Error> {
    serde_json::to_value(crate::routes::widget::key_dto(&local_base(services), key))
        .map_err(Error::internal)
}

/// `POST /api/v1/bots/{id}/widget-keys`, in process: the same body and answer.
pub async fn create_widget_key(
    services: &Services,
    tenant: TenantId,
    bot: docent_domain::BotId,
    body: Value,
) -> Result<Value, Error> {
    let req: crate::routes::widget::CreateWidgetKey = parse(body)?;
    let key = services
        .create_widget_key(&acting(tenant), bot, req.name, req.daily_quota)
        .await?;
    widget_key_json(services, key)
}

/// `GET /api/v1/bots/{id}/widget-keys`, in process.
pub async fn list_widget_keys(
    services: &Services,
    tenant: TenantId,
    bot: docent_domain::BotId,
) -> Result<Value, Error> {
    let keys = services.widget_keys(&acting(tenant), bot).await?;
    let data = keys
        .into_iter()
        .map(|k| widget_key_json(services, k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({ "data": data }))
}

/// `POST /api/v1/bots/{id}/widget-keys/{key_id}/rotate`, in process.
pub async fn rotate_widget_key(
    services: &Services,
    tenant: TenantId,
    bot: docent_domain::BotId,
    key: docent_domain::WidgetKeyId,
) -> Result<Value, Error> {
    let key = services
        .rotate_widget_key(&acting(tenant), bot, key)
        .await?;
    widget_key_json(services, key)
}

/// `DELETE /api/v1/bots/{id}/widget-keys/{key_id}`, in process.
pub async fn revoke_widget_key(
    services: &Services,
    tenant: TenantId,
    bot: docent_domain::BotId,
    key: docent_domain::WidgetKeyId,
) -> Result<(), Error> {
    services
        .revoke_widget_key(&acting(tenant), bot, key)
        .await
        .map(|_| ())
}
