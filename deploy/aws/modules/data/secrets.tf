# Secrets docent resolves itself: the task definitions and Lambda environments hold
# `secretsmanager:<arn>#<key>` references (docent_aws::secrets), resolved at start and again on
# SIGHUP — a rotated database password or model API key applies without a new deployment. The
# values are generated here (database password, Redis AUTH token, Ed25519 JWT signing key) or
# given (the model API key), so they live in the Terraform state too: keep it encrypted.

locals {
  db_url = format(
    "postgres://%s:%s@%s:%d/%s",
    aws_db_instance.this.username,
    random_password.db.result,
    aws_db_instance.this.address,
    aws_db_instance.this.port,
    aws_db_instance.this.db_name,
  )
}

resource "aws_secretsmanager_secret" "db" {
  #checkov:skip=CKV2_AWS_57:Rotation changes the RDS password outside Terraform; the runbook rotates by updating this secret and sending SIGHUP (docs/operations.md).
  name_prefix             = "${var.prefix}/database-"
  description             = "docent database.url (JSON key url)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "db" {
  secret_id     = aws_secretsmanager_secret.db.id
  secret_string = jsonencode({ url = local.db_url })
}

resource "aws_secretsmanager_secret" "redis" {
  #checkov:skip=CKV2_AWS_57:The AUTH token rotates with auth_token_update_strategy = ROTATE from Terraform, then this secret; docent reads it at start.
  name_prefix             = "${var.prefix}/redis-"
  description             = "docent redis.password (JSON key auth_token)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id     = aws_secretsmanager_secret.redis.id
  secret_string = jsonencode({ auth_token = random_password.redis.result })
}

resource "tls_private_key" "jwt" {
  algorithm = "ED25519"
}

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:A new signing key must overlap with the old one (auth.jwt.previous_public_key_files); the runbook rotates it by hand.
  name_prefix             = "${var.prefix}/jwt-"
  description             = "docent auth.jwt.private_key (JSON key private_key, PKCS#8 PEM Ed25519)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = jsonencode({ private_key = tls_private_key.jwt.private_key_pem_pkcs8 })
}

resource "aws_secretsmanager_secret" "llm" {
  #checkov:skip=CKV2_AWS_57:The model provider issues keys; rotate by putting a new value and sending SIGHUP (docs/operations.md).
  count                   = var.llm_kind == "openai" ? 1 : 0
  name_prefix             = "${var.prefix}/llm-"
  description             = "docent llm.api_key (JSON key api_key)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "llm" {
  count         = var.llm_kind == "openai" ? 1 : 0
  secret_id     = aws_secretsmanager_secret.llm[0].id
  secret_string = jsonencode({ api_key = var.llm_api_key })

  lifecycle {
    precondition {
      condition     = var.llm_api_key != ""
      error_message = "llm_kind = \"openai\" needs llm_api_key (export TF_VAR_llm_api_key=...), or set llm_kind = \"none\"."
    }
  }
}
