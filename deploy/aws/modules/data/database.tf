# RDS PostgreSQL 16 (metadata, task ledger, and the search index: full-text + pgvector, the
# extension docent creates at start) and ElastiCache Redis (cache, shared model budgets), both
# reachable only from the security groups docent's tasks/functions join.

resource "aws_db_subnet_group" "this" {
  name       = var.prefix
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "db" {
  name        = "${var.prefix}-db"
  description = "PostgreSQL: from docent's tasks and functions only"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "db_clients" {
  #checkov:skip=CKV2_AWS_5:Attached to the ECS services or Lambda functions in their modules (client_security_groups); checkov does not follow module outputs.
  name        = "${var.prefix}-db-clients"
  description = "Members may connect to the PostgreSQL instance"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from db-clients"
  referenced_security_group_id = aws_security_group.db_clients.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "db_clients" {
  security_group_id            = aws_security_group.db_clients.id
  description                  = "To PostgreSQL"
  referenced_security_group_id = aws_security_group.db.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

# TLS required on every connection.
resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.prefix}-pg16-"
  family      = "postgres16"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "2000"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "random_password" "db" {
  length  = 40
  special = false
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_133:Backups are on: backup_retention_period = db.backup_retention_days (default 14); checkov does not evaluate the object variable.
  #checkov:skip=CKV_AWS_157:Multi-AZ follows db.multi_az (default true); staging may turn it off to halve the cost.
  #checkov:skip=CKV_AWS_161:docent signs in with a password URL from Secrets Manager (database.url); IAM database tokens expire every 15 minutes and docent has no token refresher.
  identifier                            = var.prefix
  engine                                = "postgres"
  engine_version                        = var.db.engine_version
  instance_class                        = var.db.instance_class
  allocated_storage                     = var.db.allocated_storage
  max_allocated_storage                 = var.db.max_allocated_storage
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = var.kms_key_arn
  db_name                               = "docent"
  username                              = "docent"
  password                              = random_password.db.result
  port                                  = 5432
  multi_az                              = var.db.multi_az
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.db.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  backup_retention_period               = var.db.backup_retention_days
  backup_window                         = "03:00-04:00"
  maintenance_window                    = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = !var.deletion_protection
  final_snapshot_identifier             = "${var.prefix}-final"
  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
}

resource "aws_cloudwatch_log_group" "rds" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- Redis ---------------------------------------------------------------------------------

resource "aws_elasticache_subnet_group" "this" {
  name       = var.prefix
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${var.prefix}-redis"
  description = "Redis: from docent's tasks and functions only"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "redis_clients" {
  #checkov:skip=CKV2_AWS_5:Attached to the ECS services or Lambda functions in their modules (client_security_groups); checkov does not follow module outputs.
  name        = "${var.prefix}-redis-clients"
  description = "Members may connect to Redis"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from redis-clients"
  referenced_security_group_id = aws_security_group.redis_clients.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_vpc_security_group_egress_rule" "redis_clients" {
  security_group_id            = aws_security_group.redis_clients.id
  description                  = "To Redis"
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "random_password" "redis" {
  length  = 64
  special = false
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:Automatic failover and Multi-AZ follow redis.replicas (default 1: on); a single-node staging cache is the operator's choice.
  replication_group_id       = var.prefix
  description                = "docent cache and shared model budgets"
  engine                     = "redis"
  engine_version             = var.redis.engine_version
  node_type                  = var.redis.node_type
  num_cache_clusters         = 1 + var.redis.replicas
  automatic_failover_enabled = var.redis.replicas > 0
  multi_az_enabled           = var.redis.replicas > 0
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.redis.result
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = 1
  auto_minor_version_upgrade = true
  apply_immediately          = false
}
