variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (RDS and ElastiCache subnet groups)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "The customer-managed key every store encrypts with."
  type        = string
}

variable "db" {
  description = "RDS settings (see the root's variable)."
  type = object({
    instance_class        = string
    allocated_storage     = number
    max_allocated_storage = number
    multi_az              = bool
    backup_retention_days = number
    engine_version        = string
  })
}

variable "redis" {
  description = "ElastiCache settings (see the root's variable)."
  type = object({
    node_type      = string
    replicas       = number
    engine_version = string
  })
}

variable "dynamodb_cache" {
  description = "Create the DynamoDB cache table."
  type        = bool
}

variable "upload_expiry_days" {
  description = "Days after which keys under uploads/ expire."
  type        = number
}

variable "noncurrent_version_days" {
  description = "Days noncurrent object versions are kept."
  type        = number
}

variable "queue_max_attempts" {
  description = "queue.max_attempts; the redrive allows one receive more."
  type        = number
}

variable "queue_visibility_seconds" {
  description = "The task queue's default visibility timeout."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the database (and keep a final snapshot) and the bucket's objects."
  type        = bool
}

variable "llm_kind" {
  description = "\"openai\" creates the model API key secret."
  type        = string
}

variable "llm_api_key" {
  description = "The model API key."
  type        = string
  sensitive   = true
}

variable "log_retention_days" {
  description = "Retention of the RDS log groups."
  type        = number
}
