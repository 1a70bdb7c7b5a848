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

variable "ami_id" {
  description = "AMI to boot, for every task (null: the latest official Debian 12 image of each task's instance architecture)."
  type        = string
  default     = null
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
  description = "The released version of the repository to run: s3://<bucket>/atelier/atelier-<version>.tar.gz."
  type = object({
    version = string
    bucket  = string
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
  description = "Instance nginx: Debian packages to install (the template loads the Lua module), cache on/off, writes per second per client (0: no limit), passed to infra/nginx/render.py."
  type = object({
    packages         = string
    cache            = bool
    write_rate_limit = number
  })
  default = {
    packages         = "nginx libnginx-mod-http-lua"
    cache            = true
    write_rate_limit = 10
  }
}
