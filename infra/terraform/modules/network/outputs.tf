output "network_id" {
  description = "Self link of the VPC, for the cluster's network."
  value       = google_compute_network.this.id
}

output "subnetwork_id" {
  description = "Self link of the regional subnet, for the cluster's subnetwork."
  value       = google_compute_subnetwork.nodes.id
}

output "pods_range_name" {
  description = "Name of the subnet's secondary range for pods."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[0].range_name
}

output "services_range_name" {
  description = "Name of the subnet's secondary range for services."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[1].range_name
}
