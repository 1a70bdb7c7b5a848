output "security_group_id" {
  description = "The instances' own security group (reachable from their balancer only)."
  value       = aws_security_group.instances.id
}

output "autoscaling_group_name" {
  description = "The service's Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "task_launch_templates" {
  description = "Launch templates of the one-off tasks: load (README: Load the data) and rotate (README: Rotate)."
  value       = { load = aws_launch_template.task["load"].name, rotate = aws_launch_template.task["rotate"].name }
}
