# The task queue and its dead-letter queue. docent names both in queue.backend (queue_name,
# dlq_name), sends dead-lettered tasks to the DLQ itself, and expects SQS to redrive after
# queue.max_attempts + 1 receives (docent_aws::sqs::resolve_queues warns otherwise).

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.prefix}-tasks-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = var.kms_key_arn
  # One data key per 5 minutes: KMS calls stay few however busy the queue is.
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "tasks" {
  name                              = "${var.prefix}-tasks"
  message_retention_seconds         = 1209600
  visibility_timeout_seconds        = var.queue_visibility_seconds
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.queue_max_attempts + 1
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.tasks.arn]
  })
}
