//! Task operations for the API: get, list, cancel, retry. A scope limited to some collections
//! sees only the tasks of those collections (others are `task_not_found`).

use docent_domain::auth::Scope;
use docent_domain::*;

use crate::Services;

/// Whether the task is inside the scope: every task for a whole tenant, only tasks of its
/// collections for a limited one.
fn task_in(scope: Scope<'_>, task: &Task) -> bool {
    scope.collections.is_none() || task.collection_id.is_some_and(|c| scope.allows(c))
}

impl Services {
    /// A task.
    pub async fn get_task<'s>(&self, scope: impl Into<Scope<'s>>, id: TaskId) -> Result<Task> {
        let scope = scope.into();
        let task = self.queue.get(scope.tenant, id).await?;
        if !task_in(scope, &task) {
            return Err(Error::new(
                Code::TaskNotFound,
                format!("task {id} not found"),
            ));
        }
        Ok(task)
    }

    /// Tasks, newest first (a page may hold fewer items than asked for when the scope is
    /// limited; follow `next_cursor`).
    pub async fn list_tasks<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>> {
        let scope = scope.into();
        let mut list = self.queue.list(scope.tenant, filter, page).await?;
        list.items.retain(|t| task_in(scope, t));
        Ok(list)
    }

    /// Counts of the scope's tasks by status, and the dead-lettered ones (a scope limited to
    /// some collections counts their tasks only).
    pub async fn task_counts<'s>(&self, scope: impl Into<Scope<'s>>) -> Result<QueueDepth> {
        let scope = scope.into();
        self.queue
            .tenant_depth(scope.tenant, scope.collections)
            .await
    }

    /// Cancels a task.
    pub async fn cancel_task<'s>(&self, scope: impl Into<Scope<'s>>, id: TaskId) -> Result<Task> {
        let scope = scope.into();
        self.get_task(scope, id).await?;
        self.queue.cancel(scope.tenant, id).await
    }

    /// Retries a failed or cancelled task (dead-lettered included).
    pub async fn retry_task<'s>(&self, scope: impl Into<Scope<'s>>, id: TaskId) -> Result<Task> {
        let scope = scope.into();
        self.get_task(scope, id).await?;
        let task = self.queue.retry(scope.tenant, id).await?;
        self.wake.notify_waiters();
        Ok(task)
    }

    /// Cancels every non-terminal task matching `filter` (used before deletes).
    pub(crate) async fn cancel_open_tasks(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
    ) -> Result<()> {
        for status in [
            TaskStatus::Pending,
            TaskStatus::Processing,
            TaskStatus::ProcessingChunks,
        ] {
            let mut cursor = None;
            loop {
                let page = self
                    .queue
                    .list(
                        tenant,
                        TaskFilter {
                            status: Some(status),
                            ..filter.clone()
                        },
                        PageRequest {
                            limit: PageRequest::MAX_LIMIT,
                            cursor,
                        },
                    )
                    .await?;
                for task in &page.items {
                    match self.queue.cancel(tenant, task.id).await {
                        Ok(_) => {}
                        Err(e) if e.code == Code::TaskStateConflict => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(())
    }
}
