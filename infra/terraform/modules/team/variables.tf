variable "project_id" {
  description = "Google Cloud project of the team's service account."
  type        = string
}

variable "bucket_name" {
  description = "The store bucket (bucket module output name)."
  type        = string
}

variable "workload_pool" {
  description = "The cluster's Workload Identity pool (<project>.svc.id.goog)."
  type        = string
}

variable "team" {
  description = "The team: its directory under apps/teams/ and its runs' spec.team."
  type        = string

  validation {
    # The account ID team-<team> must be at most 30 characters.
    condition     = can(regex("^[a-z][-a-z0-9]{0,23}[a-z0-9]$", var.team))
    error_message = "team must be 2-25 lowercase letters, digits and hyphens, starting with a letter (its account ID is team-<team>)."
  }
}

variable "namespace" {
  description = "Namespace of the team's Kubernetes service account."
  type        = string
}

variable "ksa" {
  description = "The team's Kubernetes service account, which its trainer pods run as."
  type        = string
}
