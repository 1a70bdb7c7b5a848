output "bucket" {
  description = "The bucket's name (the balancers' access_logs bucket)."
  value       = aws_s3_bucket_policy.this.bucket # once log delivery may write to it
}
