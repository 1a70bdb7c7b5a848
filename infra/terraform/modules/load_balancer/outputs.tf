output "base_url" {
  description = "The service's public base URL."
  value       = "https://${var.domain_name}"
}

output "dns_name" {
  description = "The balancer's own DNS name: point domain_name at it (CNAME or Route 53 alias)."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "The balancer's hosted zone, for a Route 53 alias record."
  value       = aws_lb.this.zone_id
}

output "security_group_id" {
  description = "The balancer's security group: the only source the instances accept."
  value       = aws_security_group.balancer.id
}

output "target_group_arn" {
  description = "Where the Auto Scaling group registers its instances."
  value       = aws_lb_target_group.instances.arn
}

output "resource_label" {
  description = "<alb>/<target group> label for request-count scaling metrics."
  value       = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.instances.arn_suffix}"
}

output "rollback_alarm_names" {
  description = "Alarms that stop and roll back an instance refresh: the 5xx rate and the instances' p99."
  value       = [aws_cloudwatch_metric_alarm.errors.alarm_name, aws_cloudwatch_metric_alarm.latency.alarm_name]
}
