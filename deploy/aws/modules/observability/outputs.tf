output "alarm_topic_arn" {
  description = "SNS topic of the alarms and budget alerts."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
