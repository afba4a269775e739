variable "project_id" {
  description = "Google Cloud project of the service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "bucket_name" {
  description = "The store bucket (bucket module output name)."
  type        = string
}

variable "workload_pool" {
  description = "The cluster's Workload Identity pool (<project>.svc.id.goog)."
  type        = string

  validation {
    condition     = endswith(var.workload_pool, ".svc.id.goog")
    error_message = "workload_pool must end in .svc.id.goog."
  }
}

variable "teams" {
  description = "The teams (apps/teams/<team>/) whose models under teams/<team>/models/ the devices read."
  type        = set(string)
}

variable "devices_account_id" {
  description = "Account ID of the devices' Google service account (reads teams/<team>/models/, writes status/devices/)."
  type        = string
  default     = "aerie-devices"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.devices_account_id))
    error_message = "devices_account_id must be 6-30 lowercase letters, digits and hyphens."
  }
}

variable "devices_token_creators" {
  description = "IAM members that may mint short-lived tokens for the devices' account (e.g. a fleet's workload identity pool principalSet). No keys are created."
  type        = list(string)
  default     = []
}
