variable "name" {
  description = "Name of this service's database resources (e.g. atelier-production-products)."
  type        = string
}

variable "service" {
  description = "The service (products, qa or reviews): names the database and its roles."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two zones); the database gets no public address."
  type        = list(string)
}

variable "engine_version" {
  description = "PostgreSQL major version (the parameter group family follows it)."
  type        = string
  default     = "17"
}

variable "instance_class" {
  description = "Instance class of the primary and its replicas."
  type        = string
  default     = "db.r7g.large"
}

variable "allocated_storage_gb" {
  description = "Initial gp3 storage; it grows by itself up to max_allocated_storage_gb."
  type        = number
  default     = 100
}

variable "max_allocated_storage_gb" {
  description = "Upper bound of storage autoscaling."
  type        = number
  default     = 1000
}

variable "multi_az" {
  description = "A synchronous standby in another zone (automatic failover)."
  type        = bool
  default     = true
}

variable "read_replicas" {
  description = "Asynchronous read replicas for GET traffic (see capacity.py for when they are needed)."
  type        = number
  default     = 0
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "max_connections" {
  description = "Server connection limit: instances x gunicorn workers x DB_POOL_MAX, plus room for the ETL and operators."
  type        = number
  default     = 1000
}

variable "deletion_protection" {
  description = "Refuse to delete the database (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "runtime_password_version" {
  description = "Bump to give the runtime role a new generated password (then rerun the load task's role step and refresh the fleet)."
  type        = number
  default     = 1
}

variable "log_retention_days" {
  description = "How long the PostgreSQL logs exported to CloudWatch are kept."
  type        = number
  default     = 365
}

variable "alarm_topic_arn" {
  description = "SNS topic the database's alarms notify."
  type        = string
}

variable "alarms" {
  description = "Alarm thresholds: CPU %, connections as % of max_connections, free storage in GB, replica lag in seconds."
  type = object({
    cpu_percent         = number
    connections_percent = number
    free_storage_gb     = number
    replica_lag_seconds = number
  })
  default = {
    cpu_percent         = 80
    connections_percent = 80
    free_storage_gb     = 20
    replica_lag_seconds = 30
  }
}
