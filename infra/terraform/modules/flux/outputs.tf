output "path" {
  description = "Directory Flux syncs (clusters/<env>); bootstrap commits flux-system/ under it."
  value       = flux_bootstrap_git.this.path
}

output "rendezvous_secret" {
  description = "Where the rendezvous token lives: the Secret Flux substitutes into each team namespace's aerie-rendezvous."
  value       = "${kubernetes_secret_v1.cluster_secrets.metadata[0].namespace}/${kubernetes_secret_v1.cluster_secrets.metadata[0].name}"
}
