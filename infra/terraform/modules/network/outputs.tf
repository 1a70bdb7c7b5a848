output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's address range."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Subnets for the internet-facing load balancers (one per zone)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Subnets for instances and databases (one per zone, no route from the internet)."
  value       = aws_subnet.private[*].id
}
