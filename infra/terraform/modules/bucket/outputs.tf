output "name" {
  description = "Bucket name."
  value       = google_storage_bucket.this.name
}

output "url" {
  description = "gs:// URL of the bucket: the store root for run specs' spec.output.uri."
  value       = google_storage_bucket.this.url
}

output "location" {
  description = "Region of the bucket (upper case, as the API reports it)."
  value       = google_storage_bucket.this.location
}
