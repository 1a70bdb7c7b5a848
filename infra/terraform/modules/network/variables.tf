variable "name" {
  description = "Prefix of every resource name (e.g. atelier-production)."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range; split into one public and one private /20 per zone."
  type        = string
  default     = "10.40.0.0/16"
}

variable "zones" {
  description = "Availability zones to spread over, by name (a fixed list: the network does not change when AWS adds a zone)."
  type        = list(string)

  validation {
    condition     = length(var.zones) >= 2 && length(var.zones) <= 6
    error_message = "Give 2 to 6 zones (the load balancers need at least two)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper; a zone outage cuts the others' outbound traffic) instead of one per zone."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "How long VPC flow logs are kept."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}
