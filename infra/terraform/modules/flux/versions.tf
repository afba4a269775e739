terraform {
  required_version = ">= 1.11"

  required_providers {
    flux = {
      source  = "fluxcd/flux"
      version = ">= 1.5, < 2.0"
    }
    github = {
      source  = "integrations/github"
      version = ">= 6.0, < 7.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.35, < 3.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }
}
