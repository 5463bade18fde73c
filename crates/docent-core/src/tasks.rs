//! Task operations for the API: get, list, cancel, retry.

use docent_domain::*;

use crate::Services;

impl Services {
    /// Cancels a task.
    pub async fn cancel_task(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        self.queue.cancel(tenant, id).await
    }

    /// Retries a failed or cancelled task (dead-lettered included).
    pub async fn retry_task(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let task = self.queue.retry(tenant, id).await?;
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
