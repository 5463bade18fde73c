variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "region" {
  description = "AWS region (endpoint service names)."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR."
  type        = string
}

variable "egress" {
  description = "\"nat\" or \"endpoints\" (see the root's variable)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the flow log group."
  type        = number
}
