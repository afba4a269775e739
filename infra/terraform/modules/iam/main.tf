# Identities that touch the store.
#
# trainer: the Kubernetes service account training/aerie-trainer (jobgen
# renders it, annotated iam.gke.io/gcp-service-account) impersonates this
# Google service account through Workload Identity. It reads the whole bucket
# (datasets, checkpoints to resume from) and may write only under models/ and
# checkpoints/: IAM conditions on the object-name prefix. models/ gets
# objectCreator (create, never overwrite or delete: versions are immutable);
# checkpoints/ gets objectUser (the trainer prunes old checkpoints).
#
# devices: the fleet's identity. It reads models/ and may write only its
# status reports under status/devices/ (overwritten on every reconcile, which
# GCS authorizes as a delete: objectUser).

locals {
  objects = "projects/_/buckets/${var.bucket_name}/objects"
}

resource "google_service_account" "trainer" {
  project      = var.project_id
  account_id   = var.trainer_account_id
  display_name = "aerie trainer (Workload Identity for ${var.trainer_namespace}/${var.trainer_ksa})"
}

resource "google_service_account_iam_member" "trainer_workload_identity" {
  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.trainer_namespace}/${var.trainer_ksa}]"
}

resource "google_storage_bucket_iam_member" "trainer_read" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = google_service_account.trainer.member
}

resource "google_storage_bucket_iam_member" "trainer_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectCreator"
  member = google_service_account.trainer.member

  condition {
    title       = "models-prefix"
    description = "Create objects under models/ only."
    expression  = "resource.name.startsWith(\"${local.objects}/models/\")"
  }
}

resource "google_storage_bucket_iam_member" "trainer_checkpoints" {
  bucket = var.bucket_name
  role   = "roles/storage.objectUser"
  member = google_service_account.trainer.member

  condition {
    title       = "checkpoints-prefix"
    description = "Create, overwrite and delete objects under checkpoints/ only."
    expression  = "resource.name.startsWith(\"${local.objects}/checkpoints/\")"
  }
}

resource "google_service_account" "devices" {
  project      = var.project_id
  account_id   = var.devices_account_id
  display_name = "aerie edge devices (read models, write status)"
}

# Listing is checked against the bucket itself, so the condition admits the
# bucket resource as well as objects under models/.
resource "google_storage_bucket_iam_member" "devices_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = google_service_account.devices.member

  condition {
    title       = "models-read-only"
    description = "Read objects under models/ only."
    expression  = "resource.name.startsWith(\"${local.objects}/models/\") || resource.name == \"projects/_/buckets/${var.bucket_name}\""
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
