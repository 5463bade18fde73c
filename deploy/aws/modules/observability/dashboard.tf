# One dashboard: traffic and errors, latency, ingest, queue, dead letters, model limits, and
# the health of PostgreSQL, Redis and the compute (ECS services or Lambda functions).

locals {
  api_dims = local.ecs ? ["LoadBalancer", var.alb_arn_suffix] : ["FunctionName", var.lambda_api_name]

  docent_widgets = [
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Requests by status (docent)"
        region = var.region
        stat   = "Sum"
        period = 60
        metrics = [[{
          expression = "SEARCH('{${local.ns},service,status} MetricName=\"docent_http_requests_total\"', 'Sum', 60)"
          id         = "requests"
        }]]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Mean request duration (s, docent)"
        region = var.region
        period = 60
        metrics = [
          [local.ns, "docent_http_request_duration_seconds", "service", "api", { stat = "Average", label = "mean" }],
          [local.ns, "docent_http_request_duration_seconds", "service", "api", { stat = "Maximum", label = "max" }],
        ]
      }
    },
    # Ingest outcomes and stages, recorded by the workers (`docent worker --metrics-bind`).
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Ingest: documents per 5 min and success rate (%)"
        region = var.region
        period = 300
        metrics = [
          [local.ns, "docent_ingest_documents_total", "service", "worker", "outcome", "succeeded", { id = "ok", stat = "Sum", label = "succeeded" }],
          [local.ns, "docent_ingest_documents_total", "service", "worker", "outcome", "failed", { id = "failed", stat = "Sum", label = "failed" }],
          [{ expression = "100 * ok / (ok + failed)", label = "success %", id = "rate", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Ingest stage duration (s, mean), refused rows, task duration"
        region = var.region
        period = 300
        metrics = [
          [{ expression = "SEARCH('{${local.ns},service,stage} MetricName=\"docent_ingest_stage_duration_seconds\"', 'Average', 300)", id = "stages" }],
          [local.ns, "docent_task_duration_seconds", "service", "worker", { stat = "Average", label = "task (mean)" }],
          [local.ns, "docent_ingest_rows_total", "service", "worker", "outcome", "failed", { stat = "Sum", yAxis = "right", label = "rows refused" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Queue: runnable tasks and oldest wait (s)"
        region = var.region
        period = 60
        metrics = [
          [local.ns, "docent_queue_depth", "service", "api", { stat = "Maximum", label = "runnable tasks" }],
          [local.ns, "docent_queue_oldest_task_age_seconds", "service", "api", { stat = "Maximum", yAxis = "right", label = "oldest wait (s)" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Model calls: 429s and budget waits"
        region = var.region
        period = 60
        metrics = [
          [local.ns, "docent_llm_rate_limited_total", "service", "api", { stat = "Sum", label = "429 answers (API)" }],
          [local.ns, "docent_llm_rate_limited_total", "service", "worker", { stat = "Sum", label = "429 answers (workers)" }],
          [local.ns, "docent_llm_budget_wait_seconds", "service", "api", { stat = "Sum", yAxis = "right", label = "budget wait (s, API)" }],
          [local.ns, "docent_llm_budget_wait_seconds", "service", "worker", { stat = "Sum", yAxis = "right", label = "budget wait (s, workers)" }],
          [local.ns, "docent_tasks_dead_lettered", "service", "api", { stat = "Maximum", label = "dead-lettered tasks" }],
        ]
      }
    },
  ]

  aws_widgets = [
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = local.ecs ? "p99 response time (s, ALB) and 5xx" : "p99 duration (ms, API function) and errors"
        region = var.region
        period = 60
        metrics = [
          concat([local.ecs ? "AWS/ApplicationELB" : "AWS/Lambda", local.ecs ? "TargetResponseTime" : "Duration"], local.api_dims, [{ stat = "p99", label = "p99" }]),
          concat([local.ecs ? "AWS/ApplicationELB" : "AWS/Lambda", local.ecs ? "HTTPCode_Target_5XX_Count" : "Errors"], local.api_dims, [{ stat = "Sum", yAxis = "right", label = "5xx" }]),
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "SQS: queue depth, oldest message (s), dead letters"
        region = var.region
        period = 60
        stat   = "Maximum"
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.queue_name, { label = "queued" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.queue_name, { yAxis = "right", label = "oldest (s)" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dlq_name, { label = "DLQ" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "PostgreSQL (RDS)"
        region = var.region
        period = 300
        metrics = [
          ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", var.db_instance_id, { stat = "Average", label = "CPU %" }],
          ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", var.db_instance_id, { stat = "Maximum", label = "connections" }],
          ["AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", var.db_instance_id, { stat = "Minimum", yAxis = "right", label = "free bytes" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title  = "Redis (ElastiCache)"
        region = var.region
        period = 300
        metrics = [
          ["AWS/ElastiCache", "EngineCPUUtilization", "ReplicationGroupId", var.redis_group_id, { stat = "Average", label = "engine CPU %" }],
          ["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "ReplicationGroupId", var.redis_group_id, { stat = "Maximum", label = "memory %" }],
          ["AWS/ElastiCache", "CurrConnections", "ReplicationGroupId", var.redis_group_id, { stat = "Maximum", yAxis = "right", label = "connections" }],
        ]
      }
    },
  ]

  compute_widgets = local.ecs ? [
    {
      type = "metric", width = 24, height = 6
      properties = {
        title  = "ECS services: CPU and memory (%), running tasks"
        region = var.region
        period = 60
        metrics = flatten([for s in [var.api_service_name, var.worker_service_name] : [
          ["AWS/ECS", "CPUUtilization", "ClusterName", var.ecs_cluster_name, "ServiceName", s, { stat = "Average", label = "${s} CPU" }],
          ["AWS/ECS", "MemoryUtilization", "ClusterName", var.ecs_cluster_name, "ServiceName", s, { stat = "Average", label = "${s} memory" }],
          ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.ecs_cluster_name, "ServiceName", s, { stat = "Average", yAxis = "right", label = "${s} tasks" }],
        ]])
      }
    },
    ] : [
    {
      type = "metric", width = 24, height = 6
      properties = {
        title  = "Lambda functions: invocations, errors, throttles, concurrency"
        region = var.region
        period = 60
        stat   = "Sum"
        metrics = flatten([for f in [var.lambda_api_name, var.lambda_worker_name] : [
          ["AWS/Lambda", "Invocations", "FunctionName", f, { label = "${f} invocations" }],
          ["AWS/Lambda", "Errors", "FunctionName", f, { label = "${f} errors" }],
          ["AWS/Lambda", "Throttles", "FunctionName", f, { label = "${f} throttles" }],
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", f, { stat = "Maximum", yAxis = "right", label = "${f} concurrency" }],
        ]])
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.prefix
  dashboard_body = jsonencode({
    widgets = concat(local.ecs ? local.docent_widgets : [], local.aws_widgets, local.compute_widgets)
  })
}
