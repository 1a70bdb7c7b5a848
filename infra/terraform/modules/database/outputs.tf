output "address" {
  description = "Host name of the primary (reads and writes)."
  value       = aws_db_instance.primary.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.primary.port
}

output "database_name" {
  description = "The database (named after the service)."
  value       = aws_db_instance.primary.db_name
}

output "replica_addresses" {
  description = "Host names of the read replicas (GETs only)."
  value       = aws_db_instance.replica[*].address
}

output "owner_secret_arn" {
  description = "Secret (RDS-managed) holding the owner role's credentials: for the load task only."
  value       = aws_db_instance.primary.master_user_secret[0].secret_arn
}

output "runtime_secret_arn" {
  description = "Secret holding the runtime role's credentials: what the instances read at boot."
  value       = aws_secretsmanager_secret.runtime.arn
}

output "kms_key_arn" {
  description = "The key that encrypts the database and its secrets (readers of the secrets need kms:Decrypt on it)."
  value       = module.key.arn
}

output "security_group_id" {
  description = "The database's security group."
  value       = aws_security_group.database.id
}

output "client_security_group_id" {
  description = "The group the service's instances wear to reach the database (give it to no one else)."
  value       = aws_security_group.client.id
}
