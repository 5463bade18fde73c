# Alarms to one SNS topic, a dashboard, and the monthly budget. docent's own series come from
# its Prometheus /metrics through the ADOT sidecar (ecs) into namespace var.metrics_namespace,
# one metric per series name with dimension `service` (and `status`, `outcome` or `stage`);
# crates/docent/tests/terraform_aws.rs checks that every docent_* name used here is in docent's
# /metrics output. The rest are AWS's own metrics (ALB, SQS, RDS, ElastiCache, ECS, Lambda).

locals {
  ecs = var.compute == "ecs"
  ns  = var.metrics_namespace
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "alarms" {
  statement {
    sid       = "AlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
  statement {
    sid       = "BudgetsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- budget ----------------------------------------------------------------------------------
# The whole account's monthly cost (run each environment in its own account, or add a
# cost_filter on an activated cost allocation tag).

resource "aws_budgets_budget" "monthly" {
  count        = var.monthly_budget_usd > 0 ? 1 : 0
  name         = "${var.prefix}-monthly"
  budget_type  = "COST"
  limit_amount = tostring(var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "notification" {
    for_each = [50, 75, 90]
    content {
      comparison_operator        = "GREATER_THAN"
      threshold                  = notification.value
      threshold_type             = "PERCENTAGE"
      notification_type          = "ACTUAL"
      subscriber_sns_topic_arns  = [aws_sns_topic.alarms.arn]
      subscriber_email_addresses = var.alarm_emails
    }
  }
}
