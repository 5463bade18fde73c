variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "region" {
  description = "AWS region (dashboard widgets)."
  type        = string
}

variable "compute" {
  description = "\"ecs\" or \"lambda\": which metrics the alarms and dashboard use."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the SNS topic."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of docent's Prometheus series (ecs)."
  type        = string
}

variable "alarm_emails" {
  description = "Addresses subscribed to the topic and the budget alerts."
  type        = list(string)
}

variable "monthly_budget_usd" {
  description = "Monthly budget (USD); 0: none."
  type        = number
}

variable "thresholds" {
  description = "Alarm thresholds (see the root's alarm_thresholds)."
  type = object({
    http_5xx_per_minute   = number
    p99_latency_seconds   = number
    queue_age_seconds     = number
    failed_tasks_per_5min = number
    rds_cpu_percent       = number
    rds_free_storage_gib  = number
  })
}

variable "queue_name" {
  description = "The task queue."
  type        = string
}

variable "dlq_name" {
  description = "The dead-letter queue."
  type        = string
}

variable "db_instance_id" {
  description = "RDS instance identifier."
  type        = string
}

variable "redis_group_id" {
  description = "ElastiCache replication group."
  type        = string
}

variable "ecs_cluster_name" {
  description = "ECS cluster (ecs)."
  type        = string
}

variable "api_service_name" {
  description = "ECS API service (ecs)."
  type        = string
}

variable "worker_service_name" {
  description = "ECS worker service (ecs)."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix (ecs)."
  type        = string
}

variable "lambda_api_name" {
  description = "API function (lambda)."
  type        = string
}

variable "lambda_worker_name" {
  description = "Worker function (lambda)."
  type        = string
}
