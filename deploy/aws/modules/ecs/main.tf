# The ECS shape: a Fargate cluster with two services of the same image — the API
# (`docent serve --no-workers`, behind the ALB) and the workers (`docent worker`) — each with a
# deployment circuit breaker that rolls a failed deployment back. Autoscaling: the API on CPU and
# on requests per target, the workers on the task queue's depth and the age of its oldest
# message. An ADOT collector sidecar in every task scrapes docent's /metrics — the API's on its
# port, the worker's on `--metrics-bind` (loopback only) — and writes them to CloudWatch
# (embedded metric format) in namespace var.metrics_namespace, with dimension service = api or
# worker.

locals {
  data_volume = "docent-data"

  # `docent worker --metrics-bind`: the worker's series, for its sidecar only.
  worker_metrics_bind = "127.0.0.1:9464"
  scrape_targets = {
    api    = "127.0.0.1:${var.container_port}"
    worker = local.worker_metrics_bind
  }

  # Prometheus /metrics -> CloudWatch EMF. Each series keeps the `service` label and one of
  # docent's labels as dimensions; counters become per-minute deltas.
  adot_config = { for service, target in local.scrape_targets : service => yamlencode({
    receivers = {
      prometheus = {
        config = {
          global = { scrape_interval = "60s", scrape_timeout = "10s" }
          scrape_configs = [{
            job_name       = "docent"
            metrics_path   = "/metrics"
            static_configs = [{ targets = [target], labels = { service = service } }]
          }]
        }
      }
    }
    processors = {
      batch = { timeout = "60s" }
    }
    exporters = {
      awsemf = {
        namespace               = var.metrics_namespace
        log_group_name          = aws_cloudwatch_log_group.metrics.name
        log_stream_name         = "{TaskId}"
        region                  = var.region
        dimension_rollup_option = "NoDimensionRollup"
        metric_declarations = [{
          dimensions            = [["service"], ["service", "status"], ["service", "outcome"], ["service", "stage"], ["service", "route"]]
          metric_name_selectors = ["^docent_"]
        }]
      }
    }
    service = {
      pipelines = {
        metrics = { receivers = ["prometheus"], processors = ["batch"], exporters = ["awsemf"] }
      }
    }
  }) }

  adot_container = {
    name                   = "adot"
    image                  = var.adot_image
    essential              = false
    readonlyRootFilesystem = true
    logConfiguration       = local.log_options["adot"]
    dependsOn              = [{ containerName = "docent", condition = "START" }]
  }

  log_options = {
    for name in ["api", "worker", "adot"] : name => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this[name].name
        awslogs-region        = var.region
        awslogs-stream-prefix = name
      }
    }
  }

  docent_container = {
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "65532:65532"
    mountPoints            = [{ sourceVolume = local.data_volume, containerPath = "/var/lib/docent", readOnly = false }]
    stopTimeout            = 30
    linuxParameters        = { initProcessEnabled = true }
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = toset(["api", "worker", "adot"])
  name              = "/docent/${var.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# The EMF log group the ADOT collector writes metrics into.
resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/docent/${var.prefix}/metrics"
  retention_in_days = 7
  kms_key_id        = var.kms_key_arn
  #checkov:skip=CKV_AWS_338:Metric events only: CloudWatch keeps the metrics themselves for 15 months; the raw EMF lines are not worth a year.
}

# --- tasks -----------------------------------------------------------------------------------

resource "aws_security_group" "tasks" {
  name        = "${var.prefix}-tasks"
  description = "docent tasks: port ${var.container_port} from the ALB; out to AWS APIs and the model API"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = var.alb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS: AWS APIs (through NAT or endpoints) and the model API"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.prefix}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api.cpu
  memory                   = var.api.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  # Old revisions stay ACTIVE when a new one replaces them, so deploy/aws/deploy.sh rollback can
  # move the service back onto one (ECS refuses an INACTIVE revision).
  skip_destroy = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = local.data_volume
  }

  container_definitions = jsonencode([
    merge(local.docent_container, {
      name         = "docent"
      command      = ["serve", "--no-workers"]
      portMappings = [{ containerPort = var.container_port, protocol = "tcp" }]
      environment  = [for k in sort(keys(var.api_environment)) : { name = k, value = var.api_environment[k] }]
      healthCheck = {
        command     = ["CMD", "/usr/local/bin/docent", "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 60
      }
      logConfiguration = local.log_options["api"]
    }),
    merge(local.adot_container, {
      environment = [{ name = "AOT_CONFIG_CONTENT", value = local.adot_config["api"] }]
    }),
  ])
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.prefix}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker.cpu
  memory                   = var.worker.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  # Old revisions stay ACTIVE when a new one replaces them, so deploy/aws/deploy.sh rollback can
  # move the service back onto one (ECS refuses an INACTIVE revision).
  skip_destroy = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = local.data_volume
  }

  # A worker serves no API: no port mapping, no health check (a fatal error ends the task and
  # ECS starts another); its metrics are on the loopback address for the sidecar.
  container_definitions = jsonencode([
    merge(local.docent_container, {
      name             = "docent"
      command          = ["worker", "--metrics-bind", local.worker_metrics_bind]
      environment      = [for k in sort(keys(var.worker_environment)) : { name = k, value = var.worker_environment[k] }]
      logConfiguration = local.log_options["worker"]
    }),
    merge(local.adot_container, {
      environment = [{ name = "AOT_CONFIG_CONTENT", value = local.adot_config["worker"] }]
    }),
  ])
}

# --- services --------------------------------------------------------------------------------

resource "aws_ecs_service" "api" {
  name                              = "${var.prefix}-api"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.api.min_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 90
  propagate_tags                    = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.client_security_groups)
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = "docent"
    container_port   = var.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  lifecycle {
    # Autoscaling owns the count; deploy.sh registers new task definitions.
    ignore_changes = [desired_count]
  }
}

resource "aws_ecs_service" "worker" {
  name            = "${var.prefix}-worker"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.worker.arn
  desired_count   = var.worker.min_count
  launch_type     = "FARGATE"
  propagate_tags  = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.client_security_groups)
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  lifecycle {
    ignore_changes = [desired_count]
  }
}
