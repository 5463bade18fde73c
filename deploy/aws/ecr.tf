# The image repository: the Dockerfile's image, pushed by deploy.sh push / the release workflow.
# Tags are immutable (a tag names one build), images are scanned on push, and the lifecycle
# keeps the last 30 release images and drops untagged ones after 7 days.

resource "aws_ecr_repository" "docent" {
  name                 = local.prefix
  image_tag_mutability = "IMMUTABLE"
  force_delete         = !var.deletion_protection

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.docent.arn
  }
}

resource "aws_ecr_lifecycle_policy" "docent" {
  repository = aws_ecr_repository.docent.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last 30 tagged images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = 30
        }
        action = { type = "expire" }
      },
    ]
  })
}

# A Lambda function pulls its image with the Lambda service principal.
data "aws_iam_policy_document" "ecr" {
  statement {
    sid     = "LambdaPulls"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:lambda:${var.region}:${data.aws_caller_identity.current.account_id}:function:${local.prefix}-*"]
    }
  }
}

resource "aws_ecr_repository_policy" "docent" {
  repository = aws_ecr_repository.docent.name
  policy     = data.aws_iam_policy_document.ecr.json
}
