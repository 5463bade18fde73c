output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "api_service_name" {
  description = "API service."
  value       = aws_ecs_service.api.name
}

output "worker_service_name" {
  description = "Worker service."
  value       = aws_ecs_service.worker.name
}
