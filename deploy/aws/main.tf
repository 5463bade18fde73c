# docent on AWS — the example root. It wires the modules under modules/; `README.md` beside
# this file says how to run it, `terraform.tfvars.example` shows the inputs.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  prefix = "${var.name}-${var.environment}"
  ecs    = var.compute == "ecs"
  lambda = var.compute == "lambda"
  image  = "${aws_ecr_repository.docent.repository_url}:${var.image_tag}"
}

module "network" {
  source = "./modules/network"

  prefix             = local.prefix
  region             = var.region
  cidr               = var.vpc_cidr
  egress             = var.egress
  kms_key_arn        = aws_kms_key.docent.arn
  log_retention_days = var.log_retention_days
}

module "data" {
  source = "./modules/data"

  prefix                  = local.prefix
  vpc_id                  = module.network.vpc_id
  private_subnet_ids      = module.network.private_subnet_ids
  kms_key_arn             = aws_kms_key.docent.arn
  db                      = var.db
  redis                   = var.redis
  dynamodb_cache          = var.dynamodb_cache
  upload_expiry_days      = var.upload_expiry_days
  noncurrent_version_days = var.noncurrent_version_days
  queue_max_attempts      = var.queue_max_attempts
  # The Lambda poller hides a received message for the queue's own visibility timeout: at
  # least the worker function's timeout (AWS refuses less).
  queue_visibility_seconds = local.lambda ? var.lambda.worker_timeout : 60
  deletion_protection      = var.deletion_protection
  llm_kind                 = var.llm_kind
  llm_api_key              = var.llm_api_key
  log_retention_days       = var.log_retention_days
}

# What docent is told (environment, secret references) and may call (IAM), in one place.
module "app" {
  source = "./modules/app"

  prefix             = local.prefix
  region             = var.region
  public_url         = "https://${var.domain_name}"
  vpc_cidr           = var.vpc_cidr
  db_secret_arn      = module.data.db_secret_arn
  redis_url          = module.data.redis_url
  redis_secret_arn   = module.data.redis_secret_arn
  jwt_secret_arn     = module.data.jwt_secret_arn
  llm_secret_arn     = module.data.llm_secret_arn
  llm_kind           = var.llm_kind
  llm_base_url       = var.llm_base_url
  llm_model          = var.llm_model
  bucket_name        = module.data.bucket_name
  bucket_arn         = module.data.bucket_arn
  kms_key_arn        = aws_kms_key.docent.arn
  queue_name         = module.data.queue_name
  queue_arn          = module.data.queue_arn
  dlq_name           = module.data.dlq_name
  dlq_arn            = module.data.dlq_arn
  queue_max_attempts = var.queue_max_attempts
  cache_table_name   = module.data.cache_table_name
  cache_table_arn    = module.data.cache_table_arn
  worker_concurrency = var.worker.concurrency
  lambda_streaming   = var.lambda_api_frontend == "function_url"
}

module "edge" {
  source = "./modules/edge"
  count  = local.ecs ? 1 : 0

  prefix              = local.prefix
  vpc_id              = module.network.vpc_id
  public_subnet_ids   = module.network.public_subnet_ids
  domain_name         = var.domain_name
  route53_zone_id     = var.route53_zone_id
  certificate_arn     = var.certificate_arn
  idle_timeout        = var.alb_idle_timeout
  waf_enabled         = var.waf_enabled
  waf_rate_limit      = var.waf_rate_limit
  access_logs_bucket  = var.alb_access_logs_bucket
  deletion_protection = var.deletion_protection
  container_port      = module.app.container_port
  health_check_path   = module.app.health_check_path
  log_retention_days  = var.log_retention_days
  kms_key_arn         = aws_kms_key.docent.arn
}

module "ecs" {
  source = "./modules/ecs"
  count  = local.ecs ? 1 : 0
  # The API service registers with the target group once the HTTPS listener forwards to it.
  depends_on = [module.edge]

  prefix                 = local.prefix
  region                 = var.region
  vpc_id                 = module.network.vpc_id
  private_subnet_ids     = module.network.private_subnet_ids
  image                  = local.image
  ecr_repository_arn     = aws_ecr_repository.docent.arn
  kms_key_arn            = aws_kms_key.docent.arn
  log_retention_days     = var.log_retention_days
  api_environment        = module.app.api_environment
  worker_environment     = module.app.worker_environment
  app_policy_json        = module.app.policy_json
  container_port         = module.app.container_port
  alb_security_group_id  = one(module.edge[*].security_group_id)
  target_group_arn       = one(module.edge[*].target_group_arn)
  alb_resource_label     = one(module.edge[*].resource_label)
  queue_name             = module.data.queue_name
  metrics_namespace      = local.metrics_namespace
  api                    = var.api
  worker                 = var.worker
  client_security_groups = [module.data.db_security_group_id, module.data.redis_security_group_id]
}

module "lambda" {
  source = "./modules/lambda"
  count  = local.lambda ? 1 : 0

  prefix                 = local.prefix
  vpc_id                 = module.network.vpc_id
  private_subnet_ids     = module.network.private_subnet_ids
  image                  = local.image
  kms_key_arn            = aws_kms_key.docent.arn
  log_retention_days     = var.log_retention_days
  api_environment        = module.app.lambda_api_environment
  worker_environment     = module.app.lambda_worker_environment
  app_policy_json        = module.app.policy_json
  queue_arn              = module.data.queue_arn
  frontend               = var.lambda_api_frontend
  client_security_groups = [module.data.db_security_group_id, module.data.redis_security_group_id]
  settings               = var.lambda
}

locals {
  metrics_namespace = "Docent/${var.environment}"
}

module "observability" {
  source = "./modules/observability"

  prefix              = local.prefix
  region              = var.region
  compute             = var.compute
  kms_key_arn         = aws_kms_key.docent.arn
  metrics_namespace   = local.metrics_namespace
  alarm_emails        = var.alarm_emails
  monthly_budget_usd  = var.monthly_budget_usd
  thresholds          = var.alarm_thresholds
  queue_name          = module.data.queue_name
  dlq_name            = module.data.dlq_name
  db_instance_id      = module.data.db_instance_id
  redis_group_id      = module.data.redis_group_id
  ecs_cluster_name    = local.ecs ? module.ecs[0].cluster_name : ""
  api_service_name    = local.ecs ? module.ecs[0].api_service_name : ""
  worker_service_name = local.ecs ? module.ecs[0].worker_service_name : ""
  alb_arn_suffix      = local.ecs ? module.edge[0].alb_arn_suffix : ""
  lambda_api_name     = local.lambda ? module.lambda[0].api_function_name : ""
  lambda_worker_name  = local.lambda ? module.lambda[0].worker_function_name : ""
}

# Route 53 alias of the public name: the ALB (ecs). With lambda the api_url output is the
# function URL or HTTP API endpoint.
resource "aws_route53_record" "api" {
  count   = local.ecs && var.route53_zone_id != "" ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = module.edge[0].alb_dns_name
    zone_id                = module.edge[0].alb_zone_id
    evaluate_target_health = true
  }
}
