variable "name" {
  description = "Name of this service's fleet (e.g. atelier-production-products)."
  type        = string
}

variable "service" {
  description = "The service the instances run: products, qa or reviews."
  type        = string

  validation {
    condition     = contains(["products", "qa", "reviews"], var.service)
    error_message = "service must be products, qa or reviews."
  }
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: nginx trusts X-Forwarded-For only from the balancer's nodes in it."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets the instances run in (one per zone)."
  type        = list(string)
}

variable "balancer_security_group_id" {
  description = "The service's load balancer: the only source the instances accept."
  type        = string
}

variable "target_group_arn" {
  description = "The balancer's target group the instances register in."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type (capacity.py sizes the fleet per type)."
  type        = string
  default     = "c7i.large"
}

variable "min_size" {
  description = "Fewest instances (at least one per zone keeps a zone outage survivable)."
  type        = number
  default     = 2
}

variable "max_size" {
  description = "Most instances target tracking may start."
  type        = number
  default     = 10
}

variable "cpu_target_percent" {
  description = "Average CPU the Auto Scaling group keeps its instances at (capacity.py assumes the same headroom)."
  type        = number
  default     = 60
}

variable "root_volume_gb" {
  description = "Root volume of a service instance."
  type        = number
  default     = 20
}

variable "load_task" {
  description = "The one-off load task's instance: type and disk (it downloads the CSV files)."
  type = object({
    instance_type  = string
    root_volume_gb = number
  })
  default = {
    instance_type  = "c7i.2xlarge"
    root_volume_gb = 100
  }
}

variable "instance_port" {
  description = "Port of nginx on each instance (the balancer's target port)."
  type        = number
  default     = 80
}

variable "release" {
  description = "The release to run: its version (s3://<bucket>/atelier/atelier-<version>.tar.gz, built by `make release`) and the AMI it boots (chosen per release, the same architecture as every task's instance type; a baked image boots without the internet, README: Release)."
  type = object({
    version = string
    bucket  = string
    ami_id  = string
  })
}

variable "data_location" {
  description = "The ETL's CSV files, for the load task: bucket and prefix."
  type = object({
    bucket = string
    prefix = string
  })
}

variable "database" {
  description = "The service's database (the database module's outputs): host, port, name, its client security group, the secrets with its two roles' credentials and their key."
  type = object({
    address                  = string
    client_security_group_id = string
    port                     = number
    database_name            = string
    runtime_secret_arn       = string
    owner_secret_arn         = string
    kms_key_arn              = string
  })
}

variable "gunicorn" {
  description = "Per instance: gunicorn processes (0: one per vCPU), workers per process, connections per worker (DB_POOL_MAX)."
  type = object({
    processes   = number
    workers     = number
    db_pool_max = number
  })
  default = {
    processes   = 0
    workers     = 1
    db_pool_max = 10
  }
}

variable "nginx" {
  description = "Instance nginx: Debian packages to install (the template loads the Lua module), cache on/off, writes per second per client (0: no limit), passed to infra/nginx/render.py; the share of the instance's RAM (percent) given to the tmpfs holding the cached answers."
  type = object({
    packages             = string
    cache                = bool
    write_rate_limit     = number
    cache_memory_percent = optional(number, 20)
  })
  default = {
    packages             = "nginx libnginx-mod-http-lua"
    cache                = true
    write_rate_limit     = 10
    cache_memory_percent = 20
  }
  validation {
    condition     = var.nginx.cache_memory_percent >= 5 && var.nginx.cache_memory_percent <= 50
    error_message = "nginx.cache_memory_percent: between 5 and 50 (the rest of the RAM runs gunicorn and the OS)."
  }
}

variable "metrics_port" {
  description = "Port of the instance nginx's /metrics listener (never routed by the balancer)."
  type        = number
  default     = 9100

  validation {
    condition     = var.metrics_port != var.instance_port
    error_message = "metrics_port must differ from instance_port, the port the balancer forwards to."
  }
}

variable "monitoring" {
  description = "Who may scrape /metrics on metrics_port: a security group (e.g. Prometheus's) and/or address ranges. None by default."
  type = object({
    security_group_id = optional(string)
    cidrs             = optional(list(string), [])
  })
  default = {}
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the instances' log groups."
  type        = string
}

variable "log_retention_days" {
  description = "How long the instances' logs (nginx, app, journal, boot) are kept in CloudWatch."
  type        = number
  default     = 90
}

variable "rollback_alarm_names" {
  description = "Alarms that stop an instance refresh and roll it back (the balancer's 5xx rate and p99)."
  type        = list(string)
}

variable "rollout" {
  description = "Instance refresh: percentages of the fleet after which it pauses, and for how long (the rollback alarms watch each pause)."
  type = object({
    checkpoint_percentages   = list(number)
    checkpoint_delay_seconds = number
  })
  default = {
    checkpoint_percentages   = [10, 50, 100]
    checkpoint_delay_seconds = 300
  }

  validation {
    condition     = length(var.rollout.checkpoint_percentages) > 0 && var.rollout.checkpoint_percentages[length(var.rollout.checkpoint_percentages) - 1] == 100
    error_message = "The last checkpoint must be 100."
  }
}

variable "deploy_gate_request" {
  description = "Per service, one contract request the deploy gate sends through the instance's nginx (a real read of the database) besides /readyz."
  type        = map(string)
  default = {
    products = "/products?page=1&count=1"
    qa       = "/qa/questions?product_id=1&count=1"
    reviews  = "/reviews/meta?product_id=1"
  }
}
