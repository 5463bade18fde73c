output "security_group_id" {
  description = "The ALB's security group (tasks accept traffic from it)."
  value       = aws_security_group.alb.id
}

output "target_group_arn" {
  description = "Target group of the API service."
  value       = aws_lb_target_group.api.arn
}

output "resource_label" {
  description = "ALBRequestCountPerTarget resource label."
  value       = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.api.arn_suffix}"
}

output "alb_arn_suffix" {
  description = "ALB ARN suffix (CloudWatch dimension LoadBalancer)."
  value       = aws_lb.this.arn_suffix
}

output "alb_dns_name" {
  description = "ALB DNS name."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "ALB hosted zone (alias records)."
  value       = aws_lb.this.zone_id
}
