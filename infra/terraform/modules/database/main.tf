# The service's own PostgreSQL: private subnets only, reachable from its fleet's security group
# and nothing else, encrypted with its own key, backed up, with optional read replicas.
#
# Two roles (the project's least-privilege split): the RDS master user is the owner
# (<service>_owner: owns the database and its tables; used by the ETL and schema changes), its
# password generated and rotated by RDS in Secrets Manager; the runtime role (<service>) that the
# instances use, its password generated here as an ephemeral value written to Secrets Manager
# (never stored in Terraform state) and set in PostgreSQL by the load task.

module "key" {
  source = "../kms_key"

  description = "${var.name}: database storage, snapshots, Performance Insights, logs and its secrets"
  alias       = "${var.name}-database"
  # CloudWatch Logs encrypts the exported PostgreSQL logs with it.
  service_principals = ["logs.${data.aws_region.current.id}.amazonaws.com"]
}

data "aws_region" "current" {}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.private_subnet_ids
}

# Two groups: the database's, and the one its clients wear. Only the service's own fleet gets the
# client group (this module creates it, so that the database exists before the instances that
# need its address), and the database accepts PostgreSQL from that group and nothing else.
resource "aws_security_group" "database" {
  name        = "${var.name}-db"
  description = "PostgreSQL of ${var.name}: its fleet only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-db" }
}

resource "aws_security_group" "client" {
  #checkov:skip=CKV2_AWS_5:Attached by the service_fleet module to the service's launch templates (through the environment root), which a per-module scan cannot follow.
  name        = "${var.name}-db-client"
  description = "Worn by the instances of ${var.name}: may reach its PostgreSQL"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-db-client" }
}

resource "aws_vpc_security_group_ingress_rule" "from_clients" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from this service's instances"
  referenced_security_group_id = aws_security_group.client.id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "clients_to_database" {
  security_group_id            = aws_security_group.client.id
  description                  = "PostgreSQL to this service's database"
  referenced_security_group_id = aws_security_group.database.id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

# Tuned for this workload: many short indexed reads, a few small writes, bulk COPY loads.
# Memory settings keep RDS's formulas (shared_buffers = 25% of RAM, effective_cache_size = 75%).
resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-"
  family      = "postgres${var.engine_version}"
  description = "Atelier ${var.service}: short indexed reads, small writes, bulk loads"

  # Static settings: they take effect at the next reboot.
  parameter {
    name         = "rds.force_ssl" # no clear-text connections
    value        = "1"
    apply_method = "pending-reboot"
  }

  parameter {
    name         = "max_connections"
    value        = tostring(var.max_connections)
    apply_method = "pending-reboot"
  }

  dynamic "parameter" {
    for_each = {
      random_page_cost                    = "1.1" # SSD (gp3): an index scan costs about what a sequential read does
      effective_io_concurrency            = "200"
      work_mem                            = "16384"   # kB: page sorts stay in memory
      maintenance_work_mem                = "1048576" # kB: index builds after the bulk load
      max_wal_size                        = "16384"   # MB: fewer checkpoints during COPY
      checkpoint_timeout                  = "900"
      autovacuum_vacuum_scale_factor      = "0.02" # helpful/report counters update rows all day
      autovacuum_analyze_scale_factor     = "0.01"
      idle_in_transaction_session_timeout = "60000"
      statement_timeout                   = "30000" # the services set their own (5 s) per session; the loader lifts it for its own
      log_min_duration_statement          = "250"   # slow statements go to the log
      log_statement                       = "ddl"   # schema changes audited; runtime_role.py sets passwords as SCRAM verifiers, never in clear
      log_lock_waits                      = "1"
      track_io_timing                     = "1"
    }
    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "immediate"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
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

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# Exported logs land in groups named after the instance; creating them here sets retention and key.
resource "aws_cloudwatch_log_group" "postgresql" {
  for_each          = toset(concat([var.name], [for i in range(var.read_replicas) : "${var.name}-replica-${i + 1}"]))
  name              = "/aws/rds/instance/${each.key}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.arn
}

locals {
  # Settings the primary and its replicas share.
  instance = {
    instance_class                        = var.instance_class
    parameter_group_name                  = aws_db_parameter_group.this.name
    vpc_security_group_ids                = [aws_security_group.database.id]
    storage_encrypted                     = true
    kms_key_id                            = module.key.arn
    monitoring_interval                   = 15
    monitoring_role_arn                   = aws_iam_role.monitoring.arn
    performance_insights_enabled          = true
    performance_insights_kms_key_id       = module.key.arn
    performance_insights_retention_period = 7
    enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  }
}

resource "aws_db_instance" "primary" {
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  db_name        = var.service

  username                            = "${var.service}_owner"
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = module.key.arn
  iam_database_authentication_enabled = true

  instance_class                        = local.instance.instance_class
  parameter_group_name                  = local.instance.parameter_group_name
  vpc_security_group_ids                = local.instance.vpc_security_group_ids
  storage_encrypted                     = local.instance.storage_encrypted
  kms_key_id                            = local.instance.kms_key_id
  monitoring_interval                   = local.instance.monitoring_interval
  monitoring_role_arn                   = local.instance.monitoring_role_arn
  performance_insights_enabled          = local.instance.performance_insights_enabled
  performance_insights_kms_key_id       = local.instance.performance_insights_kms_key_id
  performance_insights_retention_period = local.instance.performance_insights_retention_period
  enabled_cloudwatch_logs_exports       = local.instance.enabled_cloudwatch_logs_exports

  db_subnet_group_name  = aws_db_subnet_group.this.name
  publicly_accessible   = false
  storage_type          = "gp3"
  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.max_allocated_storage_gb
  multi_az              = var.multi_az

  backup_retention_period    = var.backup_retention_days
  backup_window              = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot      = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${var.name}-final"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  depends_on = [aws_cloudwatch_log_group.postgresql]
}

resource "aws_db_instance" "replica" {
  count               = var.read_replicas
  identifier          = "${var.name}-replica-${count.index + 1}"
  replicate_source_db = aws_db_instance.primary.identifier

  instance_class                        = local.instance.instance_class
  parameter_group_name                  = local.instance.parameter_group_name
  vpc_security_group_ids                = local.instance.vpc_security_group_ids
  storage_encrypted                     = local.instance.storage_encrypted
  kms_key_id                            = local.instance.kms_key_id
  monitoring_interval                   = local.instance.monitoring_interval
  monitoring_role_arn                   = local.instance.monitoring_role_arn
  performance_insights_enabled          = local.instance.performance_insights_enabled
  performance_insights_kms_key_id       = local.instance.performance_insights_kms_key_id
  performance_insights_retention_period = local.instance.performance_insights_retention_period
  enabled_cloudwatch_logs_exports       = local.instance.enabled_cloudwatch_logs_exports

  publicly_accessible                 = false
  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = true # a replica's data is the primary's
  #checkov:skip=CKV2_AWS_69:rds.force_ssl = 1 is in the shared parameter group (the primary passes this check); the scan does not follow the parameter group through local.instance.
  #checkov:skip=CKV_AWS_157:Replicas are disposable read capacity; the primary is Multi-AZ.
  #checkov:skip=CKV_AWS_133:Backups are taken on the primary; a replica is rebuilt from it.

  depends_on = [aws_cloudwatch_log_group.postgresql]
}

# The runtime role's password: generated at apply time (by Secrets Manager), written only to
# Secrets Manager.
ephemeral "aws_secretsmanager_random_password" "runtime" {
  password_length     = 40
  exclude_punctuation = true # it goes into a connection URL
}

resource "aws_secretsmanager_secret" "runtime" {
  name_prefix = "${var.name}-runtime-"
  description = "PostgreSQL role ${var.service} (the running service's least-privilege role)"
  kms_key_id  = module.key.arn
  #checkov:skip=CKV2_AWS_57:Rotated by bumping runtime_password_version, rerunning the load task's role step and refreshing the fleet (README, Rotate); a rotation Lambda would change it under running pools.
}

resource "aws_secretsmanager_secret_version" "runtime" {
  secret_id = aws_secretsmanager_secret.runtime.id
  secret_string_wo = jsonencode({
    username = var.service
    password = ephemeral.aws_secretsmanager_random_password.runtime.random_password
  })
  secret_string_wo_version = var.runtime_password_version
}

# Alarms to the environment's topic: the primary's CPU, connections and free storage, and each
# replica's lag (a replica that falls behind serves stale reads).
locals {
  alarms = {
    cpu = {
      description = "CPU above ${var.alarms.cpu_percent}% for 15 minutes"
      metric      = "CPUUtilization"
      statistic   = "Average"
      operator    = "GreaterThanThreshold"
      threshold   = var.alarms.cpu_percent
      instance    = aws_db_instance.primary.identifier
    }
    connections = {
      description = "Connections above ${var.alarms.connections_percent}% of max_connections (${var.max_connections})"
      metric      = "DatabaseConnections"
      statistic   = "Maximum"
      operator    = "GreaterThanThreshold"
      threshold   = floor(var.max_connections * var.alarms.connections_percent / 100)
      instance    = aws_db_instance.primary.identifier
    }
    free-storage = {
      description = "Less than ${var.alarms.free_storage_gb} GB of free storage (storage autoscaling stops at max_allocated_storage_gb)"
      metric      = "FreeStorageSpace"
      statistic   = "Minimum"
      operator    = "LessThanThreshold"
      threshold   = var.alarms.free_storage_gb * 1073741824
      instance    = aws_db_instance.primary.identifier
    }
  }
  replica_alarms = {
    for i in range(var.read_replicas) : "${var.name}-replica-${i + 1}-db-lag" => {
      description = "Replica lag above ${var.alarms.replica_lag_seconds} s"
      metric      = "ReplicaLag"
      statistic   = "Maximum"
      operator    = "GreaterThanThreshold"
      threshold   = var.alarms.replica_lag_seconds
      instance    = aws_db_instance.replica[i].identifier
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = merge({ for name, alarm in local.alarms : "${var.name}-db-${name}" => alarm }, local.replica_alarms)

  alarm_name          = each.key
  alarm_description   = each.value.description
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  dimensions          = { DBInstanceIdentifier = each.value.instance }
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 3
  comparison_operator = each.value.operator
  threshold           = each.value.threshold
  treat_missing_data  = "breaching" # a database that reports nothing is down
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
