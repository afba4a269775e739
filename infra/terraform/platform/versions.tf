terraform {
  required_version = ">= 1.11"

  # Partial configuration: terraform init -backend-config=../envs/<env>/backend.hcl
  backend "gcs" {}

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.30, < 8.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.35, < 3.0"
    }
    flux = {
      source  = "fluxcd/flux"
      version = ">= 1.5, < 2.0"
    }
    github = {
      source  = "integrations/github"
      version = ">= 6.0, < 7.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = ">= 4.0, < 5.0"
    }
  }
}
