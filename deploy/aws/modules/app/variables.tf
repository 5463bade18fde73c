variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "region" {
  description = "AWS region (storage.region, queue.backend.region)."
  type        = string
}

variable "vpc_cidr" {
  description = "The VPC's CIDR block: the ALB's nodes, whose X-Forwarded-For the API trusts."
  type        = string
}

variable "public_url" {
  description = "auth.public_url: the base of mailed links."
  type        = string
}

variable "db_secret_arn" {
  description = "Secret with key url (database.url)."
  type        = string
}

variable "redis_url" {
  description = "rediss:// URL of the Redis primary endpoint, without credentials."
  type        = string
}

variable "redis_secret_arn" {
  description = "Secret with key auth_token (redis.password)."
  type        = string
}

variable "jwt_secret_arn" {
  description = "Secret with key private_key (auth.jwt.private_key)."
  type        = string
}

variable "llm_secret_arn" {
  description = "Secret with key api_key (llm.api_key); empty with llm_kind = \"none\"."
  type        = string
}

variable "llm_kind" {
  description = "llm.kind: \"openai\" or \"none\"."
  type        = string
}

variable "llm_base_url" {
  description = "llm.base_url."
  type        = string
}

variable "llm_model" {
  description = "llm.model."
  type        = string
}

variable "bucket_name" {
  description = "storage.bucket."
  type        = string
}

variable "bucket_arn" {
  description = "The bucket's ARN."
  type        = string
}

variable "kms_key_arn" {
  description = "storage.kms_key_id, and the key of the queues and secrets."
  type        = string
}

variable "queue_name" {
  description = "queue.backend.queue_name."
  type        = string
}

variable "queue_arn" {
  description = "The task queue's ARN."
  type        = string
}

variable "dlq_name" {
  description = "queue.backend.dlq_name."
  type        = string
}

variable "dlq_arn" {
  description = "The dead-letter queue's ARN."
  type        = string
}

variable "queue_max_attempts" {
  description = "queue.max_attempts."
  type        = number
}

variable "cache_table_name" {
  description = "DynamoDB cache table (cache.dynamodb.table), or empty for Redis alone."
  type        = string
}

variable "cache_table_arn" {
  description = "The cache table's ARN, or empty."
  type        = string
}

variable "worker_concurrency" {
  description = "worker.concurrency of each worker process."
  type        = number
}

variable "lambda_streaming" {
  description = "DOCENT_LAMBDA_STREAMING for the Lambda API function (a function URL in RESPONSE_STREAM mode)."
  type        = bool
  default     = true
}
