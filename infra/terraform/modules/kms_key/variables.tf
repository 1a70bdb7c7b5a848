variable "description" {
  description = "What the key encrypts."
  type        = string
}

variable "alias" {
  description = "Alias name, without the alias/ prefix."
  type        = string
}

variable "service_principals" {
  description = "AWS services that encrypt with the key themselves (e.g. logs.<region>.amazonaws.com); others use it through IAM."
  type        = list(string)
  default     = []
}
