output "devices_service_account" {
  description = "Email of the devices' Google service account (reads teams/<team>/models/, writes status/devices/)."
  value       = google_service_account.devices.email
}
