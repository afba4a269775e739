variable "environment" {
  description = "Environment name: the Flux path clusters/<environment>, the GitHub environment, and the prefix aerie-<environment> of resource names."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters and digits, such as dev or prod."
  }
}

variable "project_id" {
  description = "Google Cloud project of the environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "The one region of the cluster, the bucket and the registry."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 (not a zone or multi-region)."
  }
}

variable "bucket_name" {
  description = "Globally unique name of the store bucket."
  type        = string
}

variable "state_bucket" {
  description = "Bucket of this environment's Terraform state (envs/<environment>/backend.hcl); the plan and apply identities get access to it."
  type        = string
}

variable "github_owner" {
  description = "GitHub organization or user owning the repository."
  type        = string
  default     = "aerie-ml"
}

variable "github_owner_id" {
  description = "Numeric GitHub ID of github_owner (the OIDC token's repository_owner_id)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.github_owner_id))
    error_message = "github_owner_id must be numeric: gh api orgs/<owner> --jq .id"
  }
}

variable "github_repository" {
  description = "Name of the repository Flux syncs and GitHub Actions runs in."
  type        = string
  default     = "aerie"
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the cluster's control plane, by name."
  type        = map(string)
  default     = {}
}

variable "release_channel" {
  description = "GKE release channel of the cluster."
  type        = string

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster (turn off before a deliberate teardown)."
  type        = bool
}

variable "checkpoint_retention_days" {
  description = "Days after which checkpoints/ objects in the store are deleted."
  type        = number

  validation {
    condition     = var.checkpoint_retention_days >= 1
    error_message = "checkpoint_retention_days must be at least 1."
  }
}
