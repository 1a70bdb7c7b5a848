terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  # Remote state in S3 with a DynamoDB lock table. Partial configuration: the bucket, region and
  # table are given at init (`terraform init -backend-config=backend.hcl`, see
  # backend.hcl.example), so another account or a local trial (`-backend=false`) needs no edit.
  backend "s3" {
    key     = "atelier/production/terraform.tfstate"
    encrypt = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "atelier"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
