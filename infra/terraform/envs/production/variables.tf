variable "region" {
  description = "AWS region."
  type        = string
}

variable "environment" {
  description = "Environment name: part of every resource name."
  type        = string
  default     = "production"
}

variable "vpc_cidr_block" {
  description = "The VPC's address range."
  type        = string
  default     = "10.40.0.0/16"
}

variable "zones" {
  description = "Availability zones to spread over, by name (e.g. eu-west-1a, eu-west-1b, eu-west-1c)."
  type        = list(string)
}

variable "release" {
  description = "The release to run: its version (s3://<bucket>/atelier/atelier-<version>.tar.gz, built by `make release`), the bucket, and the AMI it boots (chosen per release; README: Release)."
  type = object({
    version = string
    bucket  = string
    ami_id  = string
  })
}

variable "data_location" {
  description = "Where the load task finds the 13 CSV files: bucket and prefix."
  type = object({
    bucket = string
    prefix = string
  })
}

variable "access_log_retention_days" {
  description = "Days the balancers' access logs are kept in their S3 bucket."
  type        = number
  default     = 90
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each confirms by mail); other subscribers use the topic's ARN (output alarm_topic_arn)."
  type        = list(string)
  default     = []
}

variable "metrics_port" {
  description = "Port of each instance's /metrics listener (the balancers never route to it)."
  type        = number
  default     = 9100
}

variable "monitoring" {
  description = "Who may scrape the instances' /metrics: a security group (e.g. Prometheus's) and/or address ranges. None by default."
  type = object({
    security_group_id = optional(string)
    cidrs             = optional(list(string), [])
  })
  default = {}
}

variable "requests_per_client_per_5min" {
  description = "WAF limit per client address (a load test from a few addresses needs more, or an exception)."
  type        = number
  default     = 20000
}

variable "protect_from_deletion" {
  description = "Deletion protection on balancers and databases (set false, apply, then destroy)."
  type        = bool
  default     = true
}

variable "services" {
  description = <<-EOT
    The services, each getting its own fleet, balancer and database. Per service: its public
    host name and ACM certificate, instance type and counts, database class, storage and read
    replicas. Sizes: `python infra/terraform/capacity.py`.
  EOT
  type = map(object({
    domain_name              = string
    certificate_arn          = string
    instance_type            = optional(string, "c7i.large")
    min_instances            = optional(number, 2)
    max_instances            = optional(number, 10)
    db_instance_class        = optional(string, "db.r7g.large")
    db_storage_gb            = optional(number, 100)
    db_max_connections       = optional(number, 1000)
    read_replicas            = optional(number, 0)
    gunicorn_processes       = optional(number, 0)
    gunicorn_workers         = optional(number, 1)
    db_pool_max              = optional(number, 10)
    runtime_password_version = optional(number, 1) # bump to rotate (README, Rotate)
  }))

  validation {
    condition     = alltrue([for name in keys(var.services) : contains(["products", "qa", "reviews"], name)])
    error_message = "services are keyed by service name: products, qa, reviews."
  }
}
