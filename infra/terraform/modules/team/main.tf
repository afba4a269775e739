# One team's identity and its part of the store.
#
# The team's Kubernetes service account (namespace/ksa) impersonates the
# team's Google service account through Workload Identity. The account reads
# the whole bucket (shared datasets, checkpoints to resume from) and writes
# only under teams/<team>/: models/ with objectCreator (versions are
# immutable), checkpoints/ with objectUser (the trainer prunes old ones).
# No other team's account holds a write role on that prefix.

locals {
  prefix = "projects/_/buckets/${var.bucket_name}/objects/teams/${var.team}/"
}

resource "google_service_account" "team" {
  project      = var.project_id
  account_id   = "team-${var.team}"
  display_name = "aerie team ${var.team} (Workload Identity for ${var.namespace}/${var.ksa})"
}

resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.team.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.ksa}]"
}

resource "google_storage_bucket_iam_member" "read" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = google_service_account.team.member
}

resource "google_storage_bucket_iam_member" "models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectCreator"
  member = google_service_account.team.member

  condition {
    title       = "team-${var.team}-models"
    description = "Create objects under teams/${var.team}/models/ only."
    expression  = "resource.name.startsWith(\"${local.prefix}models/\")"
  }
}

resource "google_storage_bucket_iam_member" "checkpoints" {
  bucket = var.bucket_name
  role   = "roles/storage.objectUser"
  member = google_service_account.team.member

  condition {
    title       = "team-${var.team}-checkpoints"
    description = "Create, overwrite and delete objects under teams/${var.team}/checkpoints/ only."
    expression  = "resource.name.startsWith(\"${local.prefix}checkpoints/\")"
  }
}
