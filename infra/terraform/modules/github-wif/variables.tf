variable "project_id" {
  description = "Google Cloud project of the pool and the CI service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "repository" {
  description = "GitHub repository whose workflows may authenticate, as owner/name."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][-A-Za-z0-9]*/[-._A-Za-z0-9]+$", var.repository))
    error_message = "repository must be owner/name, e.g. aerie-ml/aerie."
  }
}

variable "repository_owner_id" {
  description = "Numeric GitHub ID of the repository's owner (stable across renames; from the API's owner.id)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.repository_owner_id))
    error_message = "repository_owner_id must be the owner's numeric ID."
  }
}

variable "environment" {
  description = "GitHub environment whose approved jobs may apply Terraform (the env name: dev or prod)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "pool_id" {
  description = "ID of the workload identity pool."
  type        = string
  default     = "github"
}

variable "registry_location" {
  description = "Region of the Artifact Registry repository the images workflow pushes to."
  type        = string
}

variable "registry_name" {
  description = "ID of the Artifact Registry repository the images workflow pushes to."
  type        = string
}

variable "state_bucket" {
  description = "Bucket holding the Terraform state (the GCS backend's bucket)."
  type        = string
}

variable "store_bucket" {
  description = "The store bucket, which the promote workflow reads."
  type        = string
}

variable "plan_roles" {
  description = "Project roles of the plan account: read-only."
  type        = list(string)
  default = [
    "roles/viewer",
    "roles/iam.securityReviewer",
  ]
}

variable "apply_roles" {
  description = "Project roles of the apply account: enough to manage every module here."
  type        = list(string)
  default = [
    "roles/compute.networkAdmin",
    "roles/dns.admin",
    "roles/container.admin",
    "roles/storage.admin",
    "roles/artifactregistry.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/resourcemanager.projectIamAdmin",
  ]
}
