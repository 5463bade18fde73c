output "api_function_name" {
  description = "The API function."
  value       = aws_lambda_function.api.function_name
}

output "worker_function_name" {
  description = "The worker function."
  value       = aws_lambda_function.worker.function_name
}

output "api_url" {
  description = "HTTPS URL of the API (function URL or HTTP API endpoint), without a trailing slash."
  value       = trimsuffix(local.function_url ? aws_lambda_function_url.api[0].function_url : aws_apigatewayv2_api.api[0].api_endpoint, "/")
}
