output "trainer_service_account" {
  description = "Email of the trainer's Google service account: pass it to jobgen -gcp-service-account."
  value       = google_service_account.trainer.email
}

output "devices_service_account" {
  description = "Email of the devices' Google service account (reads models/, writes status/devices/)."
  value       = google_service_account.devices.email
}
