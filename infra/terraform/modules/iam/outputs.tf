output "trainer_service_account" {
  description = "Email of the trainer's Google service account: pass it to jobgen -gcp-service-account."
  value       = google_service_account.trainer.email
}

output "devices_service_account" {
  description = "Email of the devices' read-only Google service account."
  value       = google_service_account.devices.email
}
