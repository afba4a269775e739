variable "project_id" {
  description = "Google Cloud project of the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "Region of the (regional) cluster; must match the network's and the bucket's."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 (not a zone)."
  }
}

variable "name" {
  description = "Cluster name; the node service account is <name>-nodes."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,22}[a-z0-9])$", var.name))
    error_message = "name must be a lowercase RFC 1035 label of 2-24 characters (the node account adds -nodes)."
  }
}

variable "network_id" {
  description = "Self link of the VPC (network module output network_id)."
  type        = string
}

variable "subnetwork_id" {
  description = "Self link of the subnet (network module output subnetwork_id)."
  type        = string
}

variable "pods_range_name" {
  description = "Name of the subnet's secondary range for pods."
  type        = string
}

variable "services_range_name" {
  description = "Name of the subnet's secondary range for services."
  type        = string
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the control plane, by display name. Empty allows none but Google's own."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for c in values(var.master_authorized_networks) : can(cidrhost(c, 0))])
    error_message = "master_authorized_networks values must be IPv4 CIDR blocks."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster from Terraform."
  type        = bool
  default     = true
}
