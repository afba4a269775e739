output "name" {
  description = "Cluster name."
  value       = google_container_cluster.this.name
}

output "endpoint" {
  description = "HTTPS endpoint of the control plane, for the kubernetes and flux providers."
  value       = "https://${google_container_cluster.this.endpoint}"
}

output "ca_certificate" {
  description = "PEM CA certificate of the control plane."
  value       = base64decode(google_container_cluster.this.master_auth[0].cluster_ca_certificate)
}

output "workload_pool" {
  description = "Workload Identity pool of the cluster (<project>.svc.id.goog)."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "location" {
  description = "Region the cluster runs in."
  value       = google_container_cluster.this.location
}

output "node_service_account" {
  description = "Email of the nodes' service account (needs read access to Artifact Registry)."
  value       = google_service_account.nodes.email
}
