# GitHub Actions authenticates to Google Cloud with its OIDC token through
# Workload Identity Federation: no service account keys exist anywhere.
# Only workflows of var.repository (checked by name and by the immutable owner
# ID, so a re-created repository of the same name gets nothing) can exchange
# tokens, and each service account accepts only the workflow context it is
# for:
#   images     - pushes on main (ref refs/heads/main)
#   plan       - pull requests (subject repo:<repo>:pull_request)
#   apply      - the GitHub environment named after the env (subject
#                repo:<repo>:environment:<env>), which carries the approval
#   promote    - workflow_dispatch on main

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "GitHub Actions"
  description               = "OIDC tokens of ${var.repository}'s workflows."
}

resource "google_iam_workload_identity_pool_provider" "github" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC"

  attribute_mapping = {
    "google.subject"                = "assertion.sub"
    "attribute.repository"          = "assertion.repository"
    "attribute.repository_owner_id" = "assertion.repository_owner_id"
    "attribute.ref"                 = "assertion.ref"
    "attribute.event_name"          = "assertion.event_name"
    "attribute.environment"         = "assertion.environment"
  }

  attribute_condition = "assertion.repository == \"${var.repository}\" && assertion.repository_owner_id == \"${var.repository_owner_id}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

locals {
  pool = google_iam_workload_identity_pool.github.name

  accounts = {
    images = {
      display = "GitHub Actions: push images"
      member  = "principalSet://iam.googleapis.com/${local.pool}/attribute.ref/refs/heads/main"
    }
    plan = {
      display = "GitHub Actions: terraform plan on pull requests"
      member  = "principal://iam.googleapis.com/${local.pool}/subject/repo:${var.repository}:pull_request"
    }
    apply = {
      display = "GitHub Actions: terraform apply (environment ${var.environment})"
      member  = "principal://iam.googleapis.com/${local.pool}/subject/repo:${var.repository}:environment:${var.environment}"
    }
    promote = {
      display = "GitHub Actions: promote models"
      member  = "principalSet://iam.googleapis.com/${local.pool}/attribute.event_name/workflow_dispatch"
    }
  }
}

resource "google_service_account" "ci" {
  for_each = local.accounts

  project      = var.project_id
  account_id   = "gha-${each.key}"
  display_name = each.value.display
}

resource "google_service_account_iam_member" "ci_workload_identity" {
  for_each = local.accounts

  service_account_id = google_service_account.ci[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value.member
}

resource "google_artifact_registry_repository_iam_member" "images_writer" {
  project    = var.project_id
  location   = var.registry_location
  repository = var.registry_name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.ci["images"].member
}

# Plan reads everything it manages and the state; apply changes it.
resource "google_project_iam_member" "plan" {
  for_each = toset(var.plan_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.ci["plan"].member
}

resource "google_project_iam_member" "apply" {
  for_each = toset(var.apply_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.ci["apply"].member
}

resource "google_storage_bucket_iam_member" "state_read" {
  bucket = var.state_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.ci["plan"].member
}

resource "google_storage_bucket_iam_member" "state_write" {
  bucket = var.state_bucket
  role   = "roles/storage.objectUser"
  member = google_service_account.ci["apply"].member
}

# Promotion reads model manifests and weights to verify them before pinning.
resource "google_storage_bucket_iam_member" "promote_read" {
  bucket = var.store_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.ci["promote"].member
}
