# Roles. The task role runs docent: its docent policy is the app module's (exactly what
# docent's code calls), plus what the ADOT sidecar needs to write EMF metrics. The execution
# role is the ECS agent's: pull the image, write the container logs.

data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
}

resource "aws_iam_role_policy" "docent" {
  name   = "docent"
  role   = aws_iam_role.task.id
  policy = var.app_policy_json
}

# Platform: the ADOT collector writes EMF lines into the metrics log group.
data "aws_iam_policy_document" "adot" {
  statement {
    sid       = "MetricsSidecar"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
}

resource "aws_iam_role_policy" "adot" {
  name   = "adot-emf"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.adot.json
}

resource "aws_iam_role" "execution" {
  name               = "${var.prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json
}

# Platform: the ECS agent pulls the image and ships container logs.
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImageToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }
  statement {
    sid       = "ImageKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "ContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "ecs-agent"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
