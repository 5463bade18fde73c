# Alarms, each to the SNS topic (docs/operations.md maps each one to its first actions).

locals {
  t       = var.thresholds
  actions = [aws_sns_topic.alarms.arn]
}

# 5xx answers: the ALB's count of target 5xx (ecs), the API function's errors (lambda).
resource "aws_cloudwatch_metric_alarm" "http_5xx" {
  alarm_name          = "${var.prefix}-http-5xx"
  alarm_description   = "docent answered 5xx more than ${local.t.http_5xx_per_minute} times a minute for 3 minutes"
  namespace           = local.ecs ? "AWS/ApplicationELB" : "AWS/Lambda"
  metric_name         = local.ecs ? "HTTPCode_Target_5XX_Count" : "Errors"
  dimensions          = local.ecs ? { LoadBalancer = var.alb_arn_suffix } : { FunctionName = var.lambda_api_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = local.t.http_5xx_per_minute
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# p99 latency: the ALB's target response time (ecs), the API function's duration (lambda;
# streamed answers count in full there).
resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name          = "${var.prefix}-p99-latency"
  alarm_description   = "p99 response time above ${local.t.p99_latency_seconds} s for 5 minutes"
  namespace           = local.ecs ? "AWS/ApplicationELB" : "AWS/Lambda"
  metric_name         = local.ecs ? "TargetResponseTime" : "Duration"
  dimensions          = local.ecs ? { LoadBalancer = var.alb_arn_suffix } : { FunctionName = var.lambda_api_name }
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  threshold           = local.ecs ? local.t.p99_latency_seconds : local.t.p99_latency_seconds * 1000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  alarm_name          = "${var.prefix}-dlq-not-empty"
  alarm_description   = "Tasks were dead-lettered: inspect and redrive (docs/operations.md)"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.dlq_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  alarm_name          = "${var.prefix}-queue-age"
  alarm_description   = "The oldest queued task waited more than ${local.t.queue_age_seconds} s: workers are stuck or too few"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.queue_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = local.t.queue_age_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# Ingest failures: documents that failed for good (not a retry) in 5 minutes, counted by the
# workers (ecs; with lambda, dead-lettered tasks alarm through the DLQ).
resource "aws_cloudwatch_metric_alarm" "ingest_failures" {
  count               = local.ecs ? 1 : 0
  alarm_name          = "${var.prefix}-ingest-failures"
  alarm_description   = "More than ${local.t.failed_tasks_per_5min} documents failed to ingest in 5 minutes"
  namespace           = local.ns
  metric_name         = "docent_ingest_documents_total"
  dimensions          = { service = "worker", outcome = "failed" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = local.t.failed_tasks_per_5min
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "rds_cpu" {
  alarm_name          = "${var.prefix}-rds-cpu"
  alarm_description   = "PostgreSQL CPU above ${local.t.rds_cpu_percent} % for 10 minutes"
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = var.db_instance_id }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  threshold           = local.t.rds_cpu_percent
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "rds_storage" {
  alarm_name          = "${var.prefix}-rds-free-storage"
  alarm_description   = "PostgreSQL free storage below ${local.t.rds_free_storage_gib} GiB"
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = var.db_instance_id }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = local.t.rds_free_storage_gib * 1073741824
  comparison_operator = "LessThanThreshold"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# ECS task restarts: tasks that stopped and were replaced show as a running count below the
# desired count (Container Insights); sustained for 10 minutes means tasks keep failing.
resource "aws_cloudwatch_metric_alarm" "ecs_restarts" {
  for_each            = local.ecs ? { api = var.api_service_name, worker = var.worker_service_name } : {}
  alarm_name          = "${var.prefix}-${each.key}-tasks-restarting"
  alarm_description   = "ECS service ${each.value} ran fewer tasks than desired for 10 minutes: tasks are failing and restarting"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 10
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = { ClusterName = var.ecs_cluster_name, ServiceName = each.value }
      period      = 60
      stat        = "Average"
    }
  }
  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = { ClusterName = var.ecs_cluster_name, ServiceName = each.value }
      period      = 60
      stat        = "Average"
    }
  }
  metric_query {
    id          = "missing"
    expression  = "desired - running"
    label       = "Tasks missing"
    return_data = true
  }
}

# Lambda: the worker function's errors (a crash, not a task failure: those are reported as
# batchItemFailures).
resource "aws_cloudwatch_metric_alarm" "lambda_worker_errors" {
  count               = local.ecs ? 0 : 1
  alarm_name          = "${var.prefix}-worker-errors"
  alarm_description   = "The worker function failed (timeouts, crashes) in 3 of 5 minutes"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.lambda_worker_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}
