# One customer-managed key for everything docent stores: S3 originals, SQS, DynamoDB, RDS,
# ElastiCache, Secrets Manager, CloudWatch Logs, SNS, Lambda environments. Rotated yearly.

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy: "*" is this key, and the account's administrators (root) must keep managing it or the key becomes unmanageable.
  #checkov:skip=CKV_AWS_111:A key policy: "*" is this key; the service statements are limited to this account's log groups and to the alarm and budget services.
  #checkov:skip=CKV_AWS_356:A key policy: "*" as resource means this key itself.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncrypts"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "AlarmsAndBudgetsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "docent" {
  description             = "${local.prefix}: docent data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "docent" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.docent.key_id
}
