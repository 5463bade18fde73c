# One role for both functions: the app module's policy (exactly what docent's code calls —
# which includes the ReceiveMessage/DeleteMessage/GetQueueAttributes the SQS event source
# needs), plus the platform's: logs, VPC network interfaces, X-Ray traces.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.prefix}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "docent" {
  name   = "docent"
  role   = aws_iam_role.function.id
  policy = var.app_policy_json
}

data "aws_iam_policy_document" "platform" {
  statement {
    sid       = "FunctionLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]
  }
  statement {
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "platform" {
  name   = "lambda-platform"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.platform.json
}

# Network interfaces in the VPC (AWS managed: the ENI actions take no resource scoping).
resource "aws_iam_role_policy_attachment" "vpc" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}
