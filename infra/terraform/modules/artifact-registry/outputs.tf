output "repository_url" {
  description = "Image prefix to push to, e.g. europe-west1-docker.pkg.dev/<project>/aerie (KO_DOCKER_REPO)."
  value       = "${google_artifact_registry_repository.this.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}

output "name" {
  description = "Repository ID, for IAM bindings on the repository."
  value       = google_artifact_registry_repository.this.repository_id
}
