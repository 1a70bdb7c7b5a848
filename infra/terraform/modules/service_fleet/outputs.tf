output "security_group_id" {
  description = "The instances' own security group (reachable from their balancer only)."
  value       = aws_security_group.instances.id
}

output "autoscaling_group_name" {
  description = "The service's Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "load_task_launch_template" {
  description = "Launch template of the one-off load task (README: Load the data)."
  value       = aws_launch_template.task["load"].name
}
