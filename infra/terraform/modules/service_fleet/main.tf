# One service's instances: each installs the release artefact offline and runs it (gunicorn under
# systemd, nginx from infra/nginx/ with its cache and keepalive to the local gunicorns, the cache
# listener), joins the balancer after its deploy gate and answers the balancer's /healthz. Two
# more launch templates, from the same boot script, run the one-off tasks: load (the ETL) and
# rotate (the runtime role's new password).

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  # What the CloudWatch agent ships, one log group each (boot.sh.tftpl writes the agent's
  # configuration from the same names): nginx's access and error logs, the gunicorns' output,
  # the journal (systemd units, the cache listener, the SSM agent) and the boot log.
  log_groups        = ["nginx-access", "nginx-error", "app", "journal", "boot"]
  log_group_prefix  = "/atelier/${var.name}"
  metrics_namespace = "Atelier/Instances"
  deploy_gate_hook  = "deploy-gate"
}

resource "aws_cloudwatch_log_group" "instances" {
  #checkov:skip=CKV_AWS_338:The nginx access log alone is tens of GB a day at design load; 90 days (log_retention_days, the operator's choice) keeps incidents reviewable at a tenth of a year's cost, and the balancers' access logs stay in S3.
  for_each          = toset(local.log_groups)
  name              = "${local.log_group_prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_security_group" "instances" {
  name        = "${var.name}-instances"
  description = "Instances of ${var.name}: from their balancer only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-instances" }
}

resource "aws_vpc_security_group_ingress_rule" "from_balancer" {
  #checkov:skip=CKV_AWS_260:The source is the balancer's security group (referenced_security_group_id), not 0.0.0.0/0; the check does not read that attribute.
  security_group_id            = aws_security_group.instances.id
  description                  = "nginx from this service's balancer"
  referenced_security_group_id = var.balancer_security_group_id
  from_port                    = var.instance_port
  to_port                      = var.instance_port
  ip_protocol                  = "tcp"
}

# /metrics: the instance nginx serves it on its own port (metrics_port), which the balancer never
# forwards to; only the monitoring group or ranges given here may scrape it (none by default).
resource "aws_vpc_security_group_ingress_rule" "metrics_from_group" {
  for_each                     = var.monitoring.security_group_id == null ? {} : { scraper = var.monitoring.security_group_id }
  security_group_id            = aws_security_group.instances.id
  description                  = "Prometheus scrapes /metrics"
  referenced_security_group_id = each.value
  from_port                    = var.metrics_port
  to_port                      = var.metrics_port
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "metrics_from_ranges" {
  for_each          = toset(var.monitoring.cidrs)
  security_group_id = aws_security_group.instances.id
  description       = "Prometheus scrapes /metrics"
  cidr_ipv4         = each.value
  from_port         = var.metrics_port
  to_port           = var.metrics_port
  ip_protocol       = "tcp"
}

# Out: HTTPS (Secrets Manager, CloudWatch, Systems Manager, S3) and HTTP (only an image that is not
# baked installs its Debian packages at boot; Debian mirrors sign their packages);
# PostgreSQL through the database's client group, to this service's database only.
resource "aws_vpc_security_group_egress_rule" "web" {
  for_each          = toset(["80", "443"])
  security_group_id = aws_security_group.instances.id
  description       = "Packages, S3 and Secrets Manager"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
  ip_protocol       = "tcp"
}

locals {
  release_object = "arn:aws:s3:::${var.release.bucket}/atelier/atelier-${var.release.version}.tar.gz"
  # What each task may read: a service instance its runtime credentials and the release; the
  # load task also the owner's credentials and the CSV files, and it may write its rejected rows;
  # the rotate task (the load task's role step alone) the owner's credentials but no data. The
  # one-off tasks power off when done and their instances terminate.
  tasks = {
    serve = {
      instance_type  = var.instance_type
      root_volume_gb = var.root_volume_gb
      secrets        = [var.database.runtime_secret_arn]
      objects        = [local.release_object]
      buckets        = []
      writes         = []
      gate           = ["arn:aws:autoscaling:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}"]
      on_shutdown    = "stop"
    }
    load = {
      instance_type  = var.load_task.instance_type
      root_volume_gb = var.load_task.root_volume_gb
      secrets        = [var.database.runtime_secret_arn, var.database.owner_secret_arn]
      objects        = [local.release_object, "arn:aws:s3:::${var.data_location.bucket}/${var.data_location.prefix}/*"]
      buckets        = ["arn:aws:s3:::${var.data_location.bucket}"]
      writes         = ["arn:aws:s3:::${var.data_location.bucket}/rejects/${var.service}/*"]
      gate           = []
      on_shutdown    = "terminate"
    }
    rotate = {
      instance_type  = var.instance_type
      root_volume_gb = var.root_volume_gb
      secrets        = [var.database.runtime_secret_arn, var.database.owner_secret_arn]
      objects        = [local.release_object]
      buckets        = []
      writes         = []
      gate           = []
      on_shutdown    = "terminate"
    }
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "task" {
  for_each = local.tasks

  statement {
    sid       = "ReadTheDatabaseCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = each.value.secrets
  }
  statement {
    sid       = "DecryptThem"
    actions   = ["kms:Decrypt"]
    resources = [var.database.kms_key_arn]
  }
  statement {
    sid       = "ReadTheReleaseAndData"
    actions   = ["s3:GetObject"]
    resources = each.value.objects
  }
  statement {
    sid       = "ShipLogsAndMetrics" # the CloudWatch agent: these groups' streams, memory and disk metrics
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [for group in aws_cloudwatch_log_group.instances : "${group.arn}:*"]
  }
  statement {
    sid       = "NameTheMetricsByGroup" # the agent reads the instance's aws:autoscaling:groupName tag
    actions   = ["ec2:DescribeTags"]
    resources = ["*"] # DescribeTags has no resource-level permissions
  }
  statement {
    sid       = "PublishInstanceMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource; the condition keeps it to one namespace
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [local.metrics_namespace]
    }
  }
  # The load task's extras, each only where the task has resources for it.
  dynamic "statement" {
    for_each = {
      for sid, grant in {
        ListTheData         = { actions = ["s3:ListBucket"], resources = each.value.buckets }
        KeepTheRejectedRows = { actions = ["s3:PutObject"], resources = each.value.writes }
        PassTheDeployGate   = { actions = ["autoscaling:CompleteLifecycleAction"], resources = each.value.gate }
      } : sid => grant if length(grant.resources) > 0
    }
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role" "task" {
  for_each           = local.tasks
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "task" {
  for_each = local.tasks
  name     = "atelier-${each.key}"
  role     = aws_iam_role.task[each.key].id
  policy   = data.aws_iam_policy_document.task[each.key].json
}

# Operators reach instances through Systems Manager sessions: no SSH port, no key pairs.
resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = local.tasks
  role       = aws_iam_role.task[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "task" {
  for_each = local.tasks
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.task[each.key].name
}

resource "aws_launch_template" "task" {
  for_each    = local.tasks
  name        = "${var.name}-${each.key}"
  description = "atelier ${var.service} ${each.key} (release ${var.release.version})"

  image_id                             = var.release.ami_id
  instance_type                        = each.value.instance_type
  instance_initiated_shutdown_behavior = each.value.on_shutdown
  vpc_security_group_ids               = [aws_security_group.instances.id, var.database.client_security_group_id]
  update_default_version               = true
  ebs_optimized                        = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.task[each.key].arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = each.value.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/boot.sh.tftpl", {
    task                       = each.key
    service                    = var.service
    region                     = data.aws_region.current.id
    release_version            = var.release.version
    release_bucket             = var.release.bucket
    data_bucket                = var.data_location.bucket
    data_prefix                = var.data_location.prefix
    database_address           = var.database.address
    database_port              = var.database.port
    database_name              = var.database.database_name
    runtime_secret_arn         = var.database.runtime_secret_arn
    owner_secret_arn           = each.key == "serve" ? "" : var.database.owner_secret_arn # tasks only
    instance_port              = var.instance_port
    gunicorn_processes         = var.gunicorn.processes
    gunicorn_workers           = var.gunicorn.workers
    db_pool_max                = var.gunicorn.db_pool_max
    nginx_packages             = var.nginx.packages
    nginx_cache                = var.nginx.cache ? 1 : 0
    nginx_cache_memory_percent = var.nginx.cache_memory_percent
    write_rate_limit           = var.nginx.write_rate_limit
    trusted_proxies_cidr       = var.vpc_cidr_block
    metrics_port               = var.metrics_port
    log_group_prefix           = local.log_group_prefix
    metrics_namespace          = local.metrics_namespace
    autoscaling_group          = var.name
    deploy_gate_hook           = local.deploy_gate_hook
    deploy_gate_request        = var.deploy_gate_request[var.service]
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-${each.key}", Service = var.service, Task = each.key }
  }
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  vpc_zone_identifier = var.private_subnet_ids
  min_size            = var.min_size
  max_size            = var.max_size
  target_group_arns   = [var.target_group_arn]
  # ELB: an instance whose nginx or gunicorn stops answering the balancer's /healthz is replaced.
  # /healthz does not touch the database, so a database failover or upgrade recycles nothing.
  health_check_type         = "ELB"
  health_check_grace_period = 300
  default_instance_warmup   = 120
  wait_for_capacity_timeout = "20m"

  # The deploy gate: a new instance joins the balancer only after its boot script has seen
  # /readyz and a real read through its own nginx answer (and completes this hook); otherwise the
  # hook times out and the instance is abandoned (terminated), and a refresh stops there.
  initial_lifecycle_hook {
    name                 = local.deploy_gate_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    default_result       = "ABANDON"
    heartbeat_timeout    = 900
  }

  launch_template {
    id      = aws_launch_template.task["serve"].id
    version = aws_launch_template.task["serve"].latest_version
  }

  # A new release (or any launch template change) rolls through the fleet in steps: new
  # instances start and pass the deploy gate before old ones drain (capacity never drops below
  # 100%); after each checkpoint the refresh waits, and if the balancer's 5xx-rate or p99 alarm
  # fires it stops and rolls back to the previous launch template version.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      instance_warmup        = 120
      checkpoint_percentages = var.rollout.checkpoint_percentages
      checkpoint_delay       = var.rollout.checkpoint_delay_seconds
      auto_rollback          = true
      alarm_specification {
        alarms = var.rollback_alarm_names
      }
    }
  }

  tag {
    key                 = "Name"
    value               = var.name
    propagate_at_launch = true
  }

  tag {
    key                 = "Service"
    value               = var.service
    propagate_at_launch = true
  }

  lifecycle {
    ignore_changes = [desired_capacity] # target tracking owns it
  }
}

resource "aws_autoscaling_policy" "cpu" {
  name                   = "${var.name}-cpu"
  autoscaling_group_name = aws_autoscaling_group.this.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.cpu_target_percent
  }
}
