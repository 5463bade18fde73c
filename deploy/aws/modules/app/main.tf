# docent's side of the deployment, in one place: the environment every process gets (ECS task
# definitions and Lambda functions read the outputs) and the IAM policy of what docent's code
# calls. crates/docent/tests/terraform_aws.rs evaluates the locals below and runs
# `docent config check` on each environment, and compares iam.tf with the AWS calls in the code,
# so keep the expressions here to literals, var.*, conditionals, for-expressions and merge().
#
# Secrets are `secretsmanager:<arn>#<key>` references that docent resolves itself at start and
# on SIGHUP (crates/docent-aws/src/secrets.rs); no value is in a task definition.

locals {
  container_port    = 8080
  health_check_path = "/ready"

  common = {
    DOCENT__SERVER__BIND                    = "0.0.0.0:8080"
    DOCENT__LOG__FORMAT                     = "json"
    DOCENT__DATABASE__KIND                  = "postgres"
    DOCENT__DATABASE__URL                   = "secretsmanager:${var.db_secret_arn}#url"
    DOCENT__DATABASE__TLS__MODE             = "require"
    DOCENT__INDEX__KIND                     = "postgres"
    DOCENT__STORAGE__KIND                   = "s3"
    DOCENT__STORAGE__BUCKET                 = var.bucket_name
    DOCENT__STORAGE__REGION                 = var.region
    DOCENT__STORAGE__SERVER_SIDE_ENCRYPTION = "aws:kms"
    DOCENT__STORAGE__KMS_KEY_ID             = var.kms_key_arn
    DOCENT__QUEUE__MAX_ATTEMPTS             = "${var.queue_max_attempts}"
    DOCENT__QUEUE__BACKEND__KIND            = "sqs"
    DOCENT__QUEUE__BACKEND__QUEUE_NAME      = var.queue_name
    DOCENT__QUEUE__BACKEND__DLQ_NAME        = var.dlq_name
    DOCENT__QUEUE__BACKEND__REGION          = var.region
    DOCENT__REDIS__URL                      = var.redis_url
    DOCENT__REDIS__PASSWORD                 = "secretsmanager:${var.redis_secret_arn}#auth_token"
    DOCENT__CACHE__KIND                     = var.cache_table_name == "" ? "redis" : "tiered"
    DOCENT__AUTH__PUBLIC_URL                = var.public_url
    DOCENT__AUTH__JWT__PRIVATE_KEY          = "secretsmanager:${var.jwt_secret_arn}#private_key"
    DOCENT__LLM__KIND                       = var.llm_kind
  }

  llm = {
    for k, v in {
      DOCENT__LLM__BASE_URL = var.llm_base_url
      DOCENT__LLM__MODEL    = var.llm_model
      DOCENT__LLM__API_KEY  = "secretsmanager:${var.llm_secret_arn}#api_key"
    } : k => v if var.llm_kind == "openai"
  }

  # The last cache tier: in process -> Redis -> DynamoDB (hash key k, TTL expires_at).
  dynamodb = {
    for k, v in {
      DOCENT__CACHE__REDIS           = "true"
      DOCENT__CACHE__DYNAMODB__TABLE = var.cache_table_name
    } : k => v if var.cache_table_name != ""
  }

  # Behind the ALB every request's peer is a load balancer node in the VPC: trust its
  # X-Forwarded-For, so per-address limits and lockouts see each client.
  api_only = {
    DOCENT__SERVER__TRUSTED_PROXIES = "[\"${var.vpc_cidr}\"]"
  }

  worker_only = {
    DOCENT__WORKER__CONCURRENCY = "${var.worker_concurrency}"
  }

  # A Lambda function may write under /tmp only.
  lambda_only = {
    DOCENT_HOME = "/tmp/docent"
    TMPDIR      = "/tmp"
  }

  api_environment    = merge(local.common, local.llm, local.dynamodb, local.api_only)
  worker_environment = merge(local.common, local.llm, local.dynamodb, local.worker_only)
  lambda_api_environment = merge(local.api_environment, local.lambda_only, {
    DOCENT_LAMBDA_STREAMING = var.lambda_streaming ? "true" : "false"
  })
  lambda_worker_environment = merge(local.worker_environment, local.lambda_only)
}
