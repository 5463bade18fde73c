//! `/api/v1/tasks`: the job monitor, and `/api/v1/tasks/counts`, its queue depth (the services
//! keep an API key to its collections' tasks).

use axum::Json;
use axum::extract::{Path, State};
use docent_domain::{TaskFilter, TaskId};

use super::{page, parse_enum};
use crate::AppState;
use crate::dto::{Task, TaskCounts, TaskList, TaskQuery};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, Auth, id, query_id};

/// Lists tasks, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> ApiResult<Json<TaskList>> {
    let filter = TaskFilter {
        status: parse_enum(q.status, "status")?,
        kind: parse_enum(q.kind, "kind")?,
        document_id: q
            .document_id
            .as_deref()
            .map(|d| query_id(d, "document_id"))
            .transpose()?,
        collection_id: q
            .collection_id
            .as_deref()
            .map(|c| query_id(c, "collection_id"))
            .transpose()?,
        dead_lettered: q.dead_lettered,
    };
    let list = s
        .services
        .list_tasks(&p, filter, page(q.limit, q.cursor)?)
        .await?;
    Ok(Json(list.into()))
}

/// Counts the caller's tasks by status (every status, zeros included), and the dead-lettered
/// ones: the monitor's queue depth. A key limited to some collections counts their tasks.
#[utoipa::path(get, path = "/api/v1/tasks/counts", tag = "tasks",
    responses((status = 200, body = TaskCounts), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn counts(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<TaskCounts>> {
    Ok(Json(s.services.task_counts(&p).await?.into()))
}

/// Gets a task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Task>> {
    let tid: TaskId = id(&raw, "task")?;
    Ok(Json(s.services.get_task(&p, tid).await?.into()))
}

/// Cancels a task: a pending one at once, a running one at its next heartbeat.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Task>> {
    let tid: TaskId = id(&raw, "task")?;
    p.require_write()?;
    Ok(Json(s.services.cancel_task(&p, tid).await?.into()))
}

/// Retries a failed (including dead-lettered) or cancelled task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn retry(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Task>> {
    let tid: TaskId = id(&raw, "task")?;
    p.require_write()?;
    Ok(Json(s.services.retry_task(&p, tid).await?.into()))
}
