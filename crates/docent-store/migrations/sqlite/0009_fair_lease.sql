-- The lease walks pending tasks oldest first (status, run_after, id). The fair lease
-- (queue.max_running_per_tenant) skips the tasks of tenants at their cap on the way, reading
-- each one's tenant from this index instead of its row, so a long backlog of one tenant costs
-- an index scan, not a table lookup per task.
CREATE INDEX tasks_fair ON tasks (status, run_after, id, tenant_id);
