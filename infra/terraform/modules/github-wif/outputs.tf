output "workload_identity_provider" {
  description = "Full provider resource name for google-github-actions/auth's workload_identity_provider input."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "service_accounts" {
  description = "CI service account emails by purpose (images, plan, apply, promote), for the auth action's service_account input."
  value       = { for k, sa in google_service_account.ci : k => sa.email }
}
