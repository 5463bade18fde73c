output "container_port" {
  description = "The port docent listens on (server.bind)."
  value       = local.container_port
}

output "health_check_path" {
  description = "The readiness route the load balancer checks."
  value       = local.health_check_path
}

output "api_environment" {
  description = "Environment of `docent serve --no-workers` (name => value; secrets are references)."
  value       = local.api_environment
}

output "worker_environment" {
  description = "Environment of `docent worker`."
  value       = local.worker_environment
}

output "lambda_api_environment" {
  description = "Environment of `docent lambda api`."
  value       = local.lambda_api_environment
}

output "lambda_worker_environment" {
  description = "Environment of `docent lambda worker`."
  value       = local.lambda_worker_environment
}

output "policy_json" {
  description = "IAM policy of what docent's code calls (attach to the task/function roles)."
  value       = data.aws_iam_policy_document.docent.json
}
