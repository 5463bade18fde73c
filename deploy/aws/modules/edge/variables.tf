variable "prefix" {
  description = "Name prefix (<name>-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the ALB."
  type        = list(string)
}

variable "domain_name" {
  description = "Public host name."
  type        = string
}

variable "route53_zone_id" {
  description = "Hosted zone validating a new certificate; empty with certificate_arn."
  type        = string
}

variable "certificate_arn" {
  description = "An issued certificate, or empty to request one."
  type        = string
}

variable "idle_timeout" {
  description = "ALB idle timeout (s)."
  type        = number
}

variable "waf_enabled" {
  description = "Attach a WAF web ACL."
  type        = bool
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes per IP."
  type        = number
}

variable "access_logs_bucket" {
  description = "Bucket for ALB access logs, or empty."
  type        = string
}

variable "deletion_protection" {
  description = "ALB deletion protection."
  type        = bool
}

variable "container_port" {
  description = "docent's port in the task."
  type        = number
}

variable "health_check_path" {
  description = "docent's readiness route."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the WAF log group."
  type        = number
}

variable "kms_key_arn" {
  description = "Key of the WAF log group."
  type        = string
}
