# The fleet's identity (the trainers' are per team: modules/team). It reads
# every team's models (teams/<team>/models/) and may write only its status
# reports under status/devices/ (overwritten on every reconcile, which GCS
# authorizes as a delete: objectUser).

locals {
  objects = "projects/_/buckets/${var.bucket_name}/objects"
}

resource "google_service_account" "devices" {
  project      = var.project_id
  account_id   = var.devices_account_id
  display_name = "aerie edge devices (read models, write status)"
}

# Listing is checked against the bucket itself, so the condition admits the
# bucket resource as well as objects under each team's models/.
resource "google_storage_bucket_iam_member" "devices_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = google_service_account.devices.member

  condition {
    title       = "models-read-only"
    description = "Read objects under teams/<team>/models/ only."
    expression  = join(" || ", concat([for team in sort(var.teams) : "resource.name.startsWith(\"${local.objects}/teams/${team}/models/\")"], ["resource.name == \"projects/_/buckets/${var.bucket_name}\""]))
  }
}

resource "google_storage_bucket_iam_member" "devices_status" {
  bucket = var.bucket_name
  role   = "roles/storage.objectUser"
  member = google_service_account.devices.member

  condition {
    title       = "device-status-prefix"
    description = "Create and overwrite status reports under status/devices/ only."
    expression  = "resource.name.startsWith(\"${local.objects}/status/devices/\")"
  }
}

resource "google_service_account_iam_member" "devices_token_creators" {
  for_each = toset(var.devices_token_creators)

  service_account_id = google_service_account.devices.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}
