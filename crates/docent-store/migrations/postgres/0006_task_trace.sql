-- The W3C traceparent of the operation that enqueued a task (an upload's request), so the
-- worker's span continues that trace on any host and through any broker. NULL when no trace
-- is exported.
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
