# Production: one VPC; per service (one entry of var.services) its own load balancer (the only
# public entry), Auto Scaling fleet and PostgreSQL database.

locals {
  name = "atelier-${var.environment}"
}

data "aws_region" "current" {}

# Encrypts the environment's CloudWatch log groups (VPC flow logs, WAF logs, the instances' logs).
module "logs_key" {
  source = "../../modules/kms_key"

  description        = "${local.name}: CloudWatch log groups"
  alias              = "${local.name}-logs"
  service_principals = ["logs.${data.aws_region.current.id}.amazonaws.com"]
}

# Alarms go to one topic (subscribe e-mail addresses with alarm_emails, or a pager through its
# ARN), encrypted with a key CloudWatch may use.
module "alarms_key" {
  source = "../../modules/kms_key"

  description        = "${local.name}: the alarm topic"
  alias              = "${local.name}-alarms"
  service_principals = ["cloudwatch.amazonaws.com"]
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = module.alarms_key.arn
}

resource "aws_sns_topic_subscription" "alarms" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# The balancers' access logs (S3, encrypted, expiring).
module "access_logs" {
  source = "../../modules/log_bucket"

  name           = "${local.name}-alb-logs"
  retention_days = var.access_log_retention_days
  force_destroy  = !var.protect_from_deletion
}

module "network" {
  source = "../../modules/network"

  name            = local.name
  cidr_block      = var.vpc_cidr_block
  zones           = var.zones
  log_kms_key_arn = module.logs_key.arn
}

module "load_balancer" {
  source   = "../../modules/load_balancer"
  for_each = var.services

  name                         = "${local.name}-${each.key}"
  vpc_id                       = module.network.vpc_id
  vpc_cidr_block               = module.network.vpc_cidr_block
  public_subnet_ids            = module.network.public_subnet_ids
  domain_name                  = each.value.domain_name
  certificate_arn              = each.value.certificate_arn
  deletion_protection          = var.protect_from_deletion
  access_logs_bucket           = module.access_logs.bucket
  requests_per_client_per_5min = var.requests_per_client_per_5min
  log_kms_key_arn              = module.logs_key.arn
  alarm_topic_arn              = aws_sns_topic.alarms.arn
}

module "service_fleet" {
  source   = "../../modules/service_fleet"
  for_each = var.services

  name                       = "${local.name}-${each.key}"
  service                    = each.key
  vpc_id                     = module.network.vpc_id
  vpc_cidr_block             = module.network.vpc_cidr_block
  private_subnet_ids         = module.network.private_subnet_ids
  balancer_security_group_id = module.load_balancer[each.key].security_group_id
  target_group_arn           = module.load_balancer[each.key].target_group_arn
  instance_type              = each.value.instance_type
  min_size                   = each.value.min_instances
  max_size                   = each.value.max_instances
  release                    = var.release
  data_location              = var.data_location
  log_kms_key_arn            = module.logs_key.arn
  rollback_alarm_names       = module.load_balancer[each.key].rollback_alarm_names
  metrics_port               = var.metrics_port
  monitoring                 = var.monitoring

  database = module.database[each.key] # its outputs are the fleet's database object

  gunicorn = {
    processes   = each.value.gunicorn_processes
    workers     = each.value.gunicorn_workers
    db_pool_max = each.value.db_pool_max
  }
}

module "database" {
  source   = "../../modules/database"
  for_each = var.services

  name                     = "${local.name}-${each.key}"
  service                  = each.key
  vpc_id                   = module.network.vpc_id
  private_subnet_ids       = module.network.private_subnet_ids
  instance_class           = each.value.db_instance_class
  allocated_storage_gb     = each.value.db_storage_gb
  max_connections          = each.value.db_max_connections
  read_replicas            = each.value.read_replicas
  runtime_password_version = each.value.runtime_password_version
  deletion_protection      = var.protect_from_deletion
  alarm_topic_arn          = aws_sns_topic.alarms.arn
}
