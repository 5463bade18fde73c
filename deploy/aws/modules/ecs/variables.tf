variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "region" {
  description = "AWS region (log driver, EMF exporter)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Subnets the tasks run in."
  type        = list(string)
}

variable "image" {
  description = "docent image (repository:tag)."
  type        = string
}

variable "adot_image" {
  description = "AWS Distro for OpenTelemetry collector image (the metrics sidecar)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "ecr_repository_arn" {
  description = "The image's repository (the execution role pulls from it)."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the log groups and the image repository."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the container log groups."
  type        = number
}

variable "api_environment" {
  description = "Environment of the API container (app module)."
  type        = map(string)
}

variable "worker_environment" {
  description = "Environment of the worker container (app module)."
  type        = map(string)
}

variable "app_policy_json" {
  description = "What docent's code may call (app module)."
  type        = string
}

variable "container_port" {
  description = "docent's port."
  type        = number
}

variable "alb_security_group_id" {
  description = "The ALB's security group."
  type        = string
}

variable "target_group_arn" {
  description = "The ALB target group of the API."
  type        = string
}

variable "alb_resource_label" {
  description = "ALBRequestCountPerTarget resource label."
  type        = string
}

variable "queue_name" {
  description = "The task queue (worker autoscaling)."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of docent's metrics."
  type        = string
}

variable "client_security_groups" {
  description = "Security groups the tasks join to reach PostgreSQL and Redis."
  type        = list(string)
}

variable "api" {
  description = "API service settings (see the root's variable)."
  type = object({
    cpu                 = number
    memory              = number
    min_count           = number
    max_count           = number
    cpu_target          = number
    requests_per_target = number
  })
}

variable "worker" {
  description = "Worker service settings (see the root's variable)."
  type = object({
    cpu             = number
    memory          = number
    concurrency     = number
    min_count       = number
    max_count       = number
    depth_per_task  = number
    max_age_seconds = number
  })
}
