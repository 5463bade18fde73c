terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0"
    }
  }

  # State holds the generated database password, Redis AUTH token and JWT signing key: keep
  # it in an encrypted, access-controlled backend, e.g.
  #   terraform init -backend-config="bucket=my-tf-state" -backend-config="key=docent/staging.tfstate" \
  #     -backend-config="region=eu-west-1" -backend-config="encrypt=true"
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Application = "docent"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
