# Outputs deploy.sh and the workflows read (`terraform -chdir=deploy/aws output -raw NAME`).

output "region" {
  description = "The AWS region."
  value       = var.region
}

output "ecr_repository_url" {
  description = "ECR repository of the docent image (push <url>:<tag>)."
  value       = aws_ecr_repository.docent.repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster (empty with compute = \"lambda\")."
  value       = local.ecs ? module.ecs[0].cluster_name : ""
}

output "api_service_name" {
  description = "ECS service running `docent serve --no-workers` (empty with lambda)."
  value       = local.ecs ? module.ecs[0].api_service_name : ""
}

output "worker_service_name" {
  description = "ECS service running `docent worker` (empty with lambda)."
  value       = local.ecs ? module.ecs[0].worker_service_name : ""
}

output "lambda_api_function_name" {
  description = "Lambda function running `docent lambda api` (empty with ecs)."
  value       = local.lambda ? module.lambda[0].api_function_name : ""
}

output "lambda_worker_function_name" {
  description = "Lambda function running `docent lambda worker` (empty with ecs)."
  value       = local.lambda ? module.lambda[0].worker_function_name : ""
}

output "api_url" {
  description = "HTTPS URL of the API: https://domain_name behind the ALB (ecs), the function URL or HTTP API endpoint (lambda)."
  value       = local.ecs ? "https://${var.domain_name}" : module.lambda[0].api_url
}

output "sqs_queue_url" {
  description = "The task queue."
  value       = module.data.queue_url
}

output "sqs_dlq_url" {
  description = "The dead-letter queue (inspect and redrive: docs/operations.md)."
  value       = module.data.dlq_url
}

output "sns_alarm_topic_arn" {
  description = "SNS topic every alarm and budget alert publishes to."
  value       = module.observability.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.observability.dashboard_name
}

output "bucket_name" {
  description = "S3 bucket of the originals."
  value       = module.data.bucket_name
}

output "db_instance_id" {
  description = "RDS instance identifier (snapshots, restore)."
  value       = module.data.db_instance_id
}
