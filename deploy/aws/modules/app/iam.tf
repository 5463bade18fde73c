# What docent's code calls on AWS, on exactly the resources this deployment made — nothing
# else. Derived from the code: crates/docent-aws (SQS, DynamoDB, Secrets Manager through the
# AWS SDK) and crates/docent-blob (S3 through object_store). crates/docent/tests/terraform_aws.rs
# fails when the code calls an action missing here, or when this grants one the code never calls.
#
# Not granted, because the deployment turns the code path off (the test checks the settings):
# sqs:CreateQueue and sqs:SetQueueAttributes (queue.backend.create_queues), dynamodb:CreateTable,
# DescribeTable, UpdateTimeToLive and DescribeTimeToLive (cache.create_table), s3:CreateBucket
# (storage.create_bucket): Terraform creates those resources.

data "aws_iam_policy_document" "docent" {
  # object_store: put -> PutObject; put_multipart -> CreateMultipartUpload, UploadPart,
  # CompleteMultipartUpload (s3:PutObject) and AbortMultipartUpload; get, head -> GetObject,
  # HeadObject (s3:GetObject); copy -> CopyObject (s3:GetObject + s3:PutObject); delete ->
  # DeleteObject; presigned GET/PUT URLs act with these same permissions.
  statement {
    sid       = "OriginalsObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/*"]
  }

  # object_store: list -> ListObjectsV2.
  statement {
    sid       = "OriginalsList"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  # SSE-KMS on S3 objects (storage.server_side_encryption = "aws:kms"), on the queues and on
  # the secrets: writes need a data key, reads decrypt it.
  statement {
    sid       = "DataKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  # docent_aws::sqs: GetQueueUrl, GetQueueAttributes, SendMessage(Batch), ReceiveMessage,
  # DeleteMessage, ChangeMessageVisibility.
  statement {
    sid = "TaskQueue"
    actions = [
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [var.queue_arn]
  }

  # Dead-lettering sends the task to the DLQ (with its reason) itself.
  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SendMessage"]
    resources = [var.dlq_arn]
  }

  # docent_aws::secrets: GetSecretValue of each referenced secret.
  statement {
    sid       = "Secrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = compact([var.db_secret_arn, var.redis_secret_arn, var.jwt_secret_arn, var.llm_secret_arn])
  }

  # docent_aws::dynamo: GetItem, PutItem, DeleteItem.
  dynamic "statement" {
    for_each = var.cache_table_arn == "" ? [] : [var.cache_table_arn]
    content {
      sid       = "CacheTable"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
      resources = [statement.value]
    }
  }
}
