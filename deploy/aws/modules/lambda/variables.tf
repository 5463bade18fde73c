variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Subnets the functions run in."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups the functions join to reach PostgreSQL and Redis."
  type        = list(string)
}

variable "image" {
  description = "docent image (repository:tag) in ECR."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the environments and log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the function log groups."
  type        = number
}

variable "api_environment" {
  description = "Environment of `docent lambda api` (app module)."
  type        = map(string)
}

variable "worker_environment" {
  description = "Environment of `docent lambda worker` (app module)."
  type        = map(string)
}

variable "app_policy_json" {
  description = "What docent's code may call (app module)."
  type        = string
}

variable "queue_arn" {
  description = "The task queue (event source)."
  type        = string
}

variable "frontend" {
  description = "\"function_url\" or \"http_api\"."
  type        = string
}

variable "settings" {
  description = "Function sizes (see the root's variable lambda)."
  type = object({
    api_memory         = number
    api_timeout        = number
    api_concurrency    = number
    worker_memory      = number
    worker_timeout     = number
    worker_concurrency = number
    batch_size         = number
  })
}
