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

variable "trainer_namespace" {
  description = "Namespace of the trainer's Kubernetes service account."
  type        = string
  default     = "training"
}

variable "trainer_ksa" {
  description = "Kubernetes service account the trainer pods run as (jobgen's render.ServiceAccount)."
  type        = string
  default     = "aerie-trainer"
}

variable "trainer_account_id" {
  description = "Account ID of the trainer's Google service account; jobgen's -gcp-service-account must name it."
  type        = string
  default     = "aerie-trainer"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.trainer_account_id))
    error_message = "trainer_account_id must be 6-30 lowercase letters, digits and hyphens."
  }
}

variable "devices_account_id" {
  description = "Account ID of the devices' Google service account (reads models/, writes status/devices/)."
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
