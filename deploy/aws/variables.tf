# Inputs of the example root. `terraform.tfvars.example` shows a complete set; a variable
# without a default must be given (Terraform stops and names it otherwise).

variable "region" {
  description = "AWS region to deploy into, e.g. eu-west-1."
  type        = string
}

variable "environment" {
  description = "Environment name (staging, production...): part of every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment: lower-case letters, digits and '-', 2-21 characters, starting with a letter."
  }
}

variable "name" {
  description = "Name prefix of every resource; resources are named <name>-<environment>-..."
  type        = string
  default     = "docent"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "compute" {
  description = "How docent runs: \"ecs\" (Fargate services `serve --no-workers` and `worker` behind an ALB) or \"lambda\" (`docent lambda api` behind a function URL or an HTTP API, `docent lambda worker` on the SQS queue)."
  type        = string
  default     = "ecs"
  validation {
    condition     = contains(["ecs", "lambda"], var.compute)
    error_message = "compute must be \"ecs\" or \"lambda\"."
  }
}

variable "image_tag" {
  description = "Tag of the docent image in the ECR repository this root creates (deploy.sh push sets it)."
  type        = string
  default     = "latest"
}

# --- network ---------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC; two public and two private /20s are cut from it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "egress" {
  description = "How private subnets reach AWS APIs and the internet: \"nat\" (one NAT gateway per AZ; the model API is reachable) or \"endpoints\" (VPC endpoints for S3, DynamoDB, SQS, ECR, Secrets Manager, CloudWatch Logs, KMS, STS; no internet, so only with llm_kind = \"none\" or a model endpoint inside the VPC)."
  type        = string
  default     = "nat"
  validation {
    condition     = contains(["nat", "endpoints"], var.egress)
    error_message = "egress must be \"nat\" or \"endpoints\"."
  }
}

# --- HTTPS front ---------------------------------------------------------------------------

variable "domain_name" {
  description = "Public host name of docent, e.g. docent.example.com (the ACM certificate's name, auth.public_url)."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of domain_name: the certificate is validated and the alias record created there. Empty: give certificate_arn and point the name at the api_url output yourself."
  type        = string
  default     = ""
}

variable "certificate_arn" {
  description = "An issued ACM certificate for domain_name (same region). Empty: one is requested and DNS-validated in route53_zone_id."
  type        = string
  default     = ""
}

variable "waf_enabled" {
  description = "Attach an AWS WAF web ACL (managed common and bad-input rules, a per-IP rate limit) to the ALB (ecs only)."
  type        = bool
  default     = true
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes from one IP address before WAF blocks it."
  type        = number
  default     = 2000
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds; streamed answers (SSE) keep the connection open between tokens, so at least 300."
  type        = number
  default     = 600
  validation {
    condition     = var.alb_idle_timeout >= 300 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be between 300 and 4000 seconds."
  }
}

variable "alb_access_logs_bucket" {
  description = "Existing S3 bucket (SSE-S3, with the ELB log delivery policy) for ALB access logs; empty: none."
  type        = string
  default     = ""
}

variable "deletion_protection" {
  description = "Deletion protection on the ALB and the database, and a final snapshot when the database is destroyed. Keep true in production."
  type        = bool
  default     = true
}

variable "lambda_api_frontend" {
  description = "lambda only: \"function_url\" (response streaming, answers up to 15 minutes) or \"http_api\" (API Gateway HTTP API, 30 s per request, buffered)."
  type        = string
  default     = "function_url"
  validation {
    condition     = contains(["function_url", "http_api"], var.lambda_api_frontend)
    error_message = "lambda_api_frontend must be \"function_url\" or \"http_api\"."
  }
}

# --- compute -------------------------------------------------------------------------------

variable "api" {
  description = "ECS API service (`docent serve --no-workers`): task size (Fargate CPU units / MiB) and autoscaling bounds and targets."
  type = object({
    cpu                 = optional(number, 1024)
    memory              = optional(number, 2048)
    min_count           = optional(number, 2)
    max_count           = optional(number, 10)
    cpu_target          = optional(number, 60)
    requests_per_target = optional(number, 500)
  })
  default = {}
}

variable "worker" {
  description = "ECS worker service (`docent worker`): task size, tasks run at once per process, autoscaling bounds, and the queue depth / oldest-message age that add workers."
  type = object({
    cpu             = optional(number, 2048)
    memory          = optional(number, 4096)
    concurrency     = optional(number, 2)
    min_count       = optional(number, 1)
    max_count       = optional(number, 10)
    depth_per_task  = optional(number, 20)
    max_age_seconds = optional(number, 300)
  })
  default = {}
}

variable "lambda" {
  description = "lambda only: memory (MiB), timeouts (s) and reserved concurrency of the API and worker functions, and the SQS batch size."
  type = object({
    api_memory         = optional(number, 2048)
    api_timeout        = optional(number, 900)
    api_concurrency    = optional(number, 50)
    worker_memory      = optional(number, 3008)
    worker_timeout     = optional(number, 900)
    worker_concurrency = optional(number, 10)
    batch_size         = optional(number, 1)
  })
  default = {}
}

# --- data ----------------------------------------------------------------------------------

variable "db" {
  description = "RDS PostgreSQL 16 (pgvector is created by docent at start): instance class, storage (GiB), Multi-AZ, backup retention (days)."
  type = object({
    instance_class        = optional(string, "db.t4g.medium")
    allocated_storage     = optional(number, 50)
    max_allocated_storage = optional(number, 500)
    multi_az              = optional(bool, true)
    backup_retention_days = optional(number, 14)
    engine_version        = optional(string, "16")
  })
  default = {}
}

variable "redis" {
  description = "ElastiCache Redis (TLS + AUTH): node type, and whether a replica with automatic failover runs in the second AZ."
  type = object({
    node_type      = optional(string, "cache.t4g.small")
    replicas       = optional(number, 1)
    engine_version = optional(string, "7.1")
  })
  default = {}
}

variable "dynamodb_cache" {
  description = "Add a DynamoDB table as the last cache tier (cache.kind = \"tiered\": in process -> Redis -> DynamoDB)."
  type        = bool
  default     = false
}

variable "upload_expiry_days" {
  description = "Abandoned direct uploads (keys under uploads/, docent's staging prefix) are deleted after this many days."
  type        = number
  default     = 2
}

variable "noncurrent_version_days" {
  description = "Overwritten or deleted object versions in the originals bucket are kept this many days (restore window)."
  type        = number
  default     = 30
}

variable "queue_max_attempts" {
  description = "queue.max_attempts: leases a task gets before it is dead-lettered; the SQS redrive allows one receive more."
  type        = number
  default     = 5
}

# --- models --------------------------------------------------------------------------------

variable "llm_kind" {
  description = "\"openai\" (any OpenAI-compatible chat API; needs llm_api_key) or \"none\" (extractive answers)."
  type        = string
  default     = "openai"
  validation {
    condition     = contains(["openai", "none"], var.llm_kind)
    error_message = "llm_kind must be \"openai\" or \"none\"."
  }
}

variable "llm_base_url" {
  description = "Base URL of the OpenAI-compatible API."
  type        = string
  default     = "https://api.openai.com/v1"
}

variable "llm_model" {
  description = "Chat model name."
  type        = string
  default     = "gpt-4o-mini"
}

variable "llm_api_key" {
  description = "Model API key, stored in Secrets Manager (never in a task definition). Required with llm_kind = \"openai\"; pass it as TF_VAR_llm_api_key."
  type        = string
  default     = ""
  sensitive   = true
}

# --- operations ----------------------------------------------------------------------------

variable "log_retention_days" {
  description = "CloudWatch Logs retention of every log group."
  type        = number
  default     = 365
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each confirms by mail)."
  type        = list(string)
  default     = []
}

variable "monthly_budget_usd" {
  description = "Monthly cost budget in USD; alerts at 50, 75 and 90 % of it go to the alarm topic and alarm_emails. 0: no budget."
  type        = number
  default     = 500
}

variable "alarm_thresholds" {
  description = "Alarm thresholds: 5xx per minute, p99 latency (s), oldest queued message (s), failed tasks per 5 min, RDS CPU (%), RDS free storage (GiB)."
  type = object({
    http_5xx_per_minute   = optional(number, 5)
    p99_latency_seconds   = optional(number, 5)
    queue_age_seconds     = optional(number, 900)
    failed_tasks_per_5min = optional(number, 5)
    rds_cpu_percent       = optional(number, 80)
    rds_free_storage_gib  = optional(number, 5)
  })
  default = {}
}
