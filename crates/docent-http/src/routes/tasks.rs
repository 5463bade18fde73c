//! `/api/v1/tasks`: the job monitor.

use axum::Json;
use axum::extract::{Path, State};
use docent_domain::{Code, Principal, TaskFilter, TaskId};

use super::{page, parse_enum};
use crate::AppState;
use crate::dto::{Task, TaskList, TaskQuery};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, Auth, id, query_id};

/// Lists tasks, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> ApiResult<Json<TaskList>> {
    let t = p.tenant_id;
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
    let mut list = s
        .services
        .queue
        .list(t, filter, page(q.limit, q.cursor)?)
        .await?;
    if p.collection_limit().is_some() {
        list.items.retain(|task| {
            task.collection_id
                .is_some_and(|c| p.can_access_collection(c))
        });
    }
    Ok(Json(list.into()))
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
    Ok(Json(scoped_task(&s, &p, tid).await?.into()))
}

/// Cancels a task: a pending one at once, a running one at its next heartbeat.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Task>> {
    let t = p.tenant_id;
    let tid: TaskId = id(&raw, "task")?;
    p.require_write()?;
    scoped_task(&s, &p, tid).await?;
    Ok(Json(s.services.cancel_task(t, tid).await?.into()))
}

/// Retries a failed (including dead-lettered) or cancelled task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn retry(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Task>> {
    let t = p.tenant_id;
    let tid: TaskId = id(&raw, "task")?;
    p.require_write()?;
    scoped_task(&s, &p, tid).await?;
    Ok(Json(s.services.retry_task(t, tid).await?.into()))
}

/// The task, or `task_not_found` when the caller may not see its collection.
async fn scoped_task(s: &AppState, p: &Principal, tid: TaskId) -> ApiResult<docent_domain::Task> {
    let task = s.services.queue.get(p.tenant_id, tid).await?;
    if p.collection_limit().is_some()
        && !task
            .collection_id
            .is_some_and(|c| p.can_access_collection(c))
    {
        return Err(ApiError::new(
            Code::TaskNotFound,
            format!("task {tid} not found"),
        ));
    }
    Ok(task)
}
