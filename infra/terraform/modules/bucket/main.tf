# The store: datasets/, teams/<team>/{checkpoints,models}/ and status/
# (internal/store's layout) in one bucket, in the cluster's region so training reads and writes
# stay in-region (the prototype's bucket was not).

resource "google_storage_bucket" "this" {
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 86400
  }

  # Checkpoints are for resuming; old ones are garbage.
  lifecycle_rule {
    condition {
      age            = var.checkpoint_retention_days
      matches_prefix = [for team in sort(var.teams) : "teams/${team}/checkpoints/"]
    }
    action {
      type = "Delete"
    }
  }

  # Overwritten or deleted objects keep a few versions for a while.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Models are written once and read rarely after promotion.
  lifecycle_rule {
    condition {
      age            = var.model_nearline_days
      matches_prefix = [for team in sort(var.teams) : "teams/${team}/models/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}
