variable "name" {
  description = "Name of this service's balancer (e.g. atelier-production-products)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: the balancer forwards only into it."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets, one per zone."
  type        = list(string)
}

variable "domain_name" {
  description = "The service's public host name (its base URL is https://<domain_name>)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name."
  type        = string
}

variable "instance_port" {
  description = "Port of the instances' nginx."
  type        = number
  default     = 80
}

variable "private_paths" {
  description = "Paths the balancer answers 404 itself (operational routes not meant for the internet)."
  type        = list(string)
  default     = ["/metrics", "/metrics/"]
}

variable "ingress_cidrs" {
  description = "Who may reach the balancer (the whole internet for a public API)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "deregistration_delay_seconds" {
  description = "How long a draining instance keeps its in-flight requests (gunicorn's graceful timeout is 20 s)."
  type        = number
  default     = 30
}

variable "idle_timeout_seconds" {
  description = "Client connection idle timeout; shorter than nginx's keepalive_timeout so the balancer closes first."
  type        = number
  default     = 60
}

variable "deletion_protection" {
  description = "Refuse to delete the balancer (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "S3 bucket for the balancer's access logs (SSE-S3: the only encryption ALB log delivery supports), under the prefix <name>/."
  type        = string
}

variable "health_check_path" {
  description = "The target group's health check: a route that does not touch the database (/healthz), so a database failover takes no instance out."
  type        = string
  default     = "/healthz"
}

variable "alarm_topic_arn" {
  description = "SNS topic the balancer's alarms notify."
  type        = string
}

variable "alarms" {
  description = "Alarm thresholds: 5xx answers per 100 requests (instances and balancer together), and the instances' p99 response time in seconds."
  type = object({
    error_rate_percent = number
    p99_seconds        = number
  })
  default = {
    error_rate_percent = 1
    p99_seconds        = 1
  }
}

variable "requests_per_client_per_5min" {
  description = "WAF rate limit: requests one client address may send in five minutes before it is blocked for a while."
  type        = number
  default     = 20000
}

variable "waf_log_retention_days" {
  description = "How long blocked-request logs are kept."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the WAF log group."
  type        = string
}
