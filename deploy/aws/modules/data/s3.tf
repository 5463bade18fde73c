# The originals bucket: SSE-KMS by default, public access blocked, TLS only, versioned
# (restores), abandoned direct uploads expired. docent stages a direct upload at
# uploads/tenants/{t}/collections/{c}/{d} (docent_blob::BlobStore::upload_key) and copies it to
# its original key on completion; what is still under uploads/ after upload_expiry_days was
# never completed.

resource "aws_s3_bucket" "originals" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a multi-region decision (README: multi-region); versioning and KMS protect within the region.
  #checkov:skip=CKV_AWS_18:Access logging would need a second bucket per environment; CloudTrail data events are the documented option for object-level audit.
  #checkov:skip=CKV2_AWS_62:docent polls nothing from bucket events; no event notification consumer exists.
  bucket_prefix = "${var.prefix}-originals-"
  force_destroy = !var.deletion_protection
}

resource "aws_s3_bucket_ownership_controls" "originals" {
  bucket = aws_s3_bucket.originals.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "originals" {
  bucket                  = aws_s3_bucket.originals.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "originals" {
  bucket = aws_s3_bucket.originals.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "originals" {
  bucket = aws_s3_bucket.originals.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "originals" {
  bucket     = aws_s3_bucket.originals.id
  depends_on = [aws_s3_bucket_versioning.originals]

  rule {
    id     = "expire-abandoned-direct-uploads"
    status = "Enabled"
    filter {
      prefix = "uploads/"
    }
    expiration {
      days = var.upload_expiry_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}

data "aws_iam_policy_document" "originals" {
  statement {
    sid     = "DenyPlainHttp"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.originals.arn,
      "${aws_s3_bucket.originals.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "originals" {
  bucket     = aws_s3_bucket.originals.id
  policy     = data.aws_iam_policy_document.originals.json
  depends_on = [aws_s3_bucket_public_access_block.originals]
}
