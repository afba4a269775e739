variable "project_id" {
  description = "Google Cloud project of the repository."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "location" {
  description = "Region of the repository: the cluster's, so pulls stay in-region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.location))
    error_message = "location must be a single region such as europe-west1."
  }
}

variable "name" {
  description = "Repository ID."
  type        = string
  default     = "aerie"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "readers" {
  description = "IAM members that may pull (the GKE node service account, e.g. serviceAccount:aerie-nodes@p.iam.gserviceaccount.com)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.readers : can(regex("^(serviceAccount|group|user|principal|principalSet):", m))])
    error_message = "readers must be IAM member strings such as serviceAccount:name@project.iam.gserviceaccount.com."
  }
}

variable "keep_versions" {
  description = "Most recent image versions per package always kept by the cleanup policy."
  type        = number
  default     = 20

  validation {
    condition     = var.keep_versions >= 1
    error_message = "keep_versions must be at least 1."
  }
}

variable "untagged_retention_days" {
  description = "Days after which untagged images beyond keep_versions are deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.untagged_retention_days >= 1
    error_message = "untagged_retention_days must be at least 1."
  }
}
