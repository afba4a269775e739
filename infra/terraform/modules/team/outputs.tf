output "service_account" {
  description = "Email of the team's Google service account (its KSA's iam.gke.io/gcp-service-account annotation)."
  value       = google_service_account.team.email
}

output "prefix" {
  description = "The object-name prefix only this team may write, as gs:// URI."
  value       = "gs://${var.bucket_name}/teams/${var.team}/"
}
