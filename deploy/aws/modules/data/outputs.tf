output "bucket_name" {
  description = "Originals bucket."
  value       = aws_s3_bucket.originals.bucket
}

output "bucket_arn" {
  description = "Originals bucket ARN."
  value       = aws_s3_bucket.originals.arn
}

output "queue_name" {
  description = "Task queue name (queue.backend.queue_name)."
  value       = aws_sqs_queue.tasks.name
}

output "queue_arn" {
  description = "Task queue ARN."
  value       = aws_sqs_queue.tasks.arn
}

output "queue_url" {
  description = "Task queue URL."
  value       = aws_sqs_queue.tasks.id
}

output "dlq_name" {
  description = "Dead-letter queue name (queue.backend.dlq_name)."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_arn" {
  description = "Dead-letter queue ARN."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "Dead-letter queue URL."
  value       = aws_sqs_queue.dlq.id
}

output "cache_table_name" {
  description = "DynamoDB cache table, or empty."
  value       = var.dynamodb_cache ? aws_dynamodb_table.cache[0].name : ""
}

output "cache_table_arn" {
  description = "DynamoDB cache table ARN, or empty."
  value       = var.dynamodb_cache ? aws_dynamodb_table.cache[0].arn : ""
}

output "db_instance_id" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "db_security_group_id" {
  description = "Join this group to reach PostgreSQL."
  value       = aws_security_group.db_clients.id
}

output "redis_group_id" {
  description = "ElastiCache replication group id."
  value       = aws_elasticache_replication_group.this.id
}

output "redis_url" {
  description = "rediss:// URL of the primary endpoint (no credentials; the AUTH token is in redis_secret_arn)."
  value       = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"
}

output "redis_security_group_id" {
  description = "Join this group to reach Redis."
  value       = aws_security_group.redis_clients.id
}

output "db_secret_arn" {
  description = "Secret holding {\"url\": ...}."
  value       = aws_secretsmanager_secret.db.arn
}

output "redis_secret_arn" {
  description = "Secret holding {\"auth_token\": ...}."
  value       = aws_secretsmanager_secret.redis.arn
}

output "jwt_secret_arn" {
  description = "Secret holding {\"private_key\": PEM}."
  value       = aws_secretsmanager_secret.jwt.arn
}

output "llm_secret_arn" {
  description = "Secret holding {\"api_key\": ...}, or empty with llm_kind = \"none\"."
  value       = var.llm_kind == "openai" ? aws_secretsmanager_secret.llm[0].arn : ""
}
