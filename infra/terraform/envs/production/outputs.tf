output "base_urls" {
  description = "Each service's public base URL (point the front-end's base URLs here)."
  value       = { for service, balancer in module.load_balancer : service => balancer.base_url }
}

output "balancer_dns_names" {
  description = "Each balancer's DNS name: the target of the service's domain_name record."
  value       = { for service, balancer in module.load_balancer : service => balancer.dns_name }
}

output "database_endpoints" {
  description = "Each service's database: primary (reads and writes) and read replicas (GETs only)."
  value = {
    for service, database in module.database : service => {
      primary  = "${database.address}:${database.port}/${database.database_name}"
      replicas = [for address in database.replica_addresses : "${address}:${database.port}/${database.database_name}"]
    }
  }
}

output "autoscaling_groups" {
  description = "Each service's Auto Scaling group (README: Scale, Roll out)."
  value       = { for service, fleet in module.service_fleet : service => fleet.autoscaling_group_name }
}

output "task_launch_templates" {
  description = "Each service's one-off tasks: load (README: Load the data) and rotate (README: Rotate)."
  value       = { for service, fleet in module.service_fleet : service => fleet.task_launch_templates }
}

output "private_subnet_ids" {
  description = "Where to start the load task."
  value       = module.network.private_subnet_ids
}

output "alarm_topic_arn" {
  description = "The SNS topic every alarm notifies (subscribe a pager or chat here)."
  value       = aws_sns_topic.alarms.arn
}

output "access_logs_bucket" {
  description = "The S3 bucket holding the balancers' access logs (prefix: the balancer's name)."
  value       = module.access_logs.bucket
}
