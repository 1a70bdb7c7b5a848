# Production: one VPC; per service (one entry of var.services) its own load balancer (the only
# public entry), Auto Scaling fleet and PostgreSQL database.

locals {
  name = "atelier-${var.environment}"
}

data "aws_region" "current" {}

# Encrypts the environment's CloudWatch log groups (VPC flow logs, WAF logs).
module "logs_key" {
  source = "../../modules/kms_key"

  description        = "${local.name}: CloudWatch log groups"
  alias              = "${local.name}-logs"
  service_principals = ["logs.${data.aws_region.current.region}.amazonaws.com"]
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
  access_logs_bucket           = var.access_logs_bucket
  requests_per_client_per_5min = var.requests_per_client_per_5min
  log_kms_key_arn              = module.logs_key.arn
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
}
