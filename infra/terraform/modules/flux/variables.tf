variable "environment" {
  description = "Cluster environment: Flux syncs clusters/<environment>."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (a directory under clusters/)."
  }
}

variable "github_repository" {
  description = "Name (without owner) of the GitHub repository Flux syncs; the github provider's owner applies."
  type        = string

  validation {
    condition     = can(regex("^[-._A-Za-z0-9]+$", var.github_repository))
    error_message = "github_repository must be the bare repository name, e.g. aerie."
  }
}

variable "deploy_public_key" {
  description = "OpenSSH public key of Flux's deploy key (the flux provider holds the private half)."
  type        = string

  validation {
    condition     = can(regex("^(ecdsa-sha2-nistp(256|384|521)|ssh-ed25519|ssh-rsa) ", var.deploy_public_key))
    error_message = "deploy_public_key must be an OpenSSH public key (ecdsa, ed25519 or rsa)."
  }
}
