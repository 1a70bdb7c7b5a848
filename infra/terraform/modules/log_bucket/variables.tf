variable "name" {
  description = "Prefix of the bucket's name (a unique suffix is added)."
  type        = string
}

variable "retention_days" {
  description = "Days after which access logs expire."
  type        = number
  default     = 90
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its logs in it."
  type        = bool
  default     = false
}
