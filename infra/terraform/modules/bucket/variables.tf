variable "project_id" {
  description = "Google Cloud project of the bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.name)) && !startswith(var.name, "goog")
    error_message = "name must be 3-63 lowercase letters, digits, - and _, and must not start with goog."
  }
}

variable "location" {
  description = "Region of the bucket: pass the cluster's region, never a multi-region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.location))
    error_message = "location must be a single region such as europe-west1, the cluster's."
  }
}

variable "teams" {
  description = "The teams (apps/teams/<team>/): each keeps checkpoints and models under teams/<team>/."
  type        = set(string)
}

variable "checkpoint_retention_days" {
  description = "Days after which objects under teams/<team>/checkpoints/ are deleted."
  type        = number
  default     = 14

  validation {
    condition     = var.checkpoint_retention_days >= 1 && floor(var.checkpoint_retention_days) == var.checkpoint_retention_days
    error_message = "checkpoint_retention_days must be a whole number of days, at least 1."
  }
}

variable "noncurrent_retention_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_retention_days >= 1 && floor(var.noncurrent_retention_days) == var.noncurrent_retention_days
    error_message = "noncurrent_retention_days must be a whole number of days, at least 1."
  }
}

variable "model_nearline_days" {
  description = "Days after which objects under teams/<team>/models/ move to Nearline storage."
  type        = number
  default     = 90

  validation {
    condition     = var.model_nearline_days >= 30
    error_message = "model_nearline_days must be at least 30 (Nearline's minimum storage duration)."
  }
}

variable "soft_delete_days" {
  description = "Days deleted objects stay recoverable (0 turns soft delete off; otherwise 7-90)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_days == 0 || (var.soft_delete_days >= 7 && var.soft_delete_days <= 90)
    error_message = "soft_delete_days must be 0 or between 7 and 90."
  }
}
