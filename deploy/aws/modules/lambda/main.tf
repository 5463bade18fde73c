# The Lambda shape: the same image as ECS, with the command overridden — `docent lambda api`
# behind a function URL (response streaming) or an API Gateway HTTP API, and `docent lambda
# worker` on the task queue (an SQS event source reporting partial batch failures). Both run in
# the private subnets to reach PostgreSQL and Redis.

locals {
  function_url = var.frontend == "function_url"
}

resource "aws_security_group" "functions" {
  name        = "${var.prefix}-functions"
  description = "docent functions: out to AWS APIs and the model API"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS: AWS APIs and the model API"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = toset(["api", "worker"])
  name              = "/aws/lambda/${var.prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "api" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously (function URL / HTTP API); a dead-letter queue only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_272:Code signing does not apply to container images; the image is scanned on push and tags are immutable.
  function_name                  = "${var.prefix}-api"
  role                           = aws_iam_role.function.arn
  package_type                   = "Image"
  image_uri                      = var.image
  memory_size                    = var.settings.api_memory
  timeout                        = var.settings.api_timeout
  reserved_concurrent_executions = var.settings.api_concurrency
  kms_key_arn                    = var.kms_key_arn

  image_config {
    command = ["lambda", "api"]
  }

  environment {
    variables = var.api_environment
  }

  vpc_config {
    subnet_ids         = var.private_subnet_ids
    security_group_ids = concat([aws_security_group.functions.id], var.client_security_groups)
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this["api"].name
  }
}

resource "aws_lambda_function" "worker" {
  #checkov:skip=CKV_AWS_116:Invoked by the SQS event source; failed messages go to the queue's own dead-letter queue (redrive), not a function DLQ.
  #checkov:skip=CKV_AWS_272:Code signing does not apply to container images; the image is scanned on push and tags are immutable.
  function_name                  = "${var.prefix}-worker"
  role                           = aws_iam_role.function.arn
  package_type                   = "Image"
  image_uri                      = var.image
  memory_size                    = var.settings.worker_memory
  timeout                        = var.settings.worker_timeout
  reserved_concurrent_executions = var.settings.worker_concurrency
  kms_key_arn                    = var.kms_key_arn

  image_config {
    command = ["lambda", "worker"]
  }

  environment {
    variables = var.worker_environment
  }

  vpc_config {
    subnet_ids         = var.private_subnet_ids
    security_group_ids = concat([aws_security_group.functions.id], var.client_security_groups)
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this["worker"].name
  }
}

# Partial batch failures: docent answers batchItemFailures, so only failed messages return.
resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn                   = var.queue_arn
  function_name                      = aws_lambda_function.worker.arn
  batch_size                         = var.settings.batch_size
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = max(2, var.settings.worker_concurrency)
  }
}

# The queue's sweep: in the Lambda shape no long-running worker re-sends deliveries that were
# lost or whose retry came due, so a schedule invokes the worker with a Scheduled Event, which
# `docent lambda worker` answers by running the sweep.
resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.prefix}-queue-sweep"
  description         = "docent: the task queue's sweep (re-sends due retries and lost deliveries)"
  schedule_expression = "rate(1 minute)"
}

resource "aws_cloudwatch_event_target" "sweep" {
  rule = aws_cloudwatch_event_rule.sweep.name
  arn  = aws_lambda_function.worker.arn
}

resource "aws_lambda_permission" "sweep" {
  statement_id  = "queue-sweep"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.worker.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweep.arn
}

# --- the API's front -------------------------------------------------------------------------

resource "aws_lambda_function_url" "api" {
  #checkov:skip=CKV_AWS_258:docent authenticates every request itself (JWT sessions, API keys, OIDC); the URL is its public API like the ALB's.
  count              = local.function_url ? 1 : 0
  function_name      = aws_lambda_function.api.function_name
  authorization_type = "NONE"
  invoke_mode        = "RESPONSE_STREAM"
}

resource "aws_apigatewayv2_api" "api" {
  count         = local.function_url ? 0 : 1
  name          = "${var.prefix}-api"
  protocol_type = "HTTP"
}

resource "aws_cloudwatch_log_group" "http_api" {
  count             = local.function_url ? 0 : 1
  name              = "/docent/${var.prefix}/http-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_apigatewayv2_integration" "api" {
  count                  = local.function_url ? 0 : 1
  api_id                 = aws_apigatewayv2_api.api[0].id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.api.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "api" {
  #checkov:skip=CKV_AWS_309:docent authenticates every request itself (JWT sessions, API keys, OIDC); sign-up, sign-in and the widget must be reachable without one.
  count     = local.function_url ? 0 : 1
  api_id    = aws_apigatewayv2_api.api[0].id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.api[0].id}"
}

resource "aws_apigatewayv2_stage" "api" {
  count       = local.function_url ? 0 : 1
  api_id      = aws_apigatewayv2_api.api[0].id
  name        = "$default"
  auto_deploy = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.http_api[0].arn
    format = jsonencode({
      requestId = "$context.requestId"
      ip        = "$context.identity.sourceIp"
      method    = "$context.httpMethod"
      path      = "$context.path"
      status    = "$context.status"
      latencyMs = "$context.responseLatency"
    })
  }
}

resource "aws_lambda_permission" "http_api" {
  count         = local.function_url ? 0 : 1
  statement_id  = "http-api"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.api[0].execution_arn}/*/*"
}
