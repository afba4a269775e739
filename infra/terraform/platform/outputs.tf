output "cluster_name" {
  description = "GKE cluster name (gcloud container clusters get-credentials <name> --region <region>)."
  value       = module.cluster.name
}

output "region" {
  description = "Region of the cluster, bucket and registry."
  value       = module.cluster.location
}

output "store_uri" {
  description = "Store root for run specs' spec.output.uri."
  value       = module.bucket.url
}

output "registry" {
  description = "KO_DOCKER_REPO for the images workflow."
  value       = module.registry.repository_url
}

output "devices_service_account" {
  description = "Read-only Google service account of the fleet."
  value       = module.iam.devices_service_account
}

output "workload_identity_provider" {
  description = "GitHub Actions variable WIF_PROVIDER."
  value       = module.github_wif.workload_identity_provider
}

output "ci_service_accounts" {
  description = "GitHub Actions variables for the auth step, by purpose."
  value       = module.github_wif.service_accounts
}

output "rendezvous_secret" {
  description = "The Secret holding the trainer rendezvous token (namespace/name)."
  value       = module.flux.rendezvous_secret
}

output "team_service_accounts" {
  description = "Each team's Google service account, by team (apps/teams/<team>/)."
  value       = { for team, m in module.team : team => m.service_account }
}
