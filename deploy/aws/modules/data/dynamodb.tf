# The optional DynamoDB cache tier: hash key `k` (string), TTL attribute `expires_at`
# (docent_aws::dynamo::KEY_ATTRIBUTE, TTL_ATTRIBUTE), on-demand billing.

resource "aws_dynamodb_table" "cache" {
  count        = var.dynamodb_cache ? 1 : 0
  name         = "${var.prefix}-cache"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "k"

  attribute {
    name = "k"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  point_in_time_recovery {
    # A cache: everything in it can be recomputed.
    enabled = false
  }
  #checkov:skip=CKV_AWS_28:A cache table; every item is recomputed on a miss, so point-in-time recovery buys nothing.
}
