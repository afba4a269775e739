# The prod environment's values for ../../platform (make tf-plan ENV=prod).
# github_owner_id comes from TF_VAR_github_owner_id (the workflows set it).
environment               = "prod"
project_id                = "aerie-prod"
region                    = "europe-west1"
bucket_name               = "aerie-prod-store"
state_bucket              = "aerie-prod-tfstate"
release_channel           = "STABLE"
deletion_protection       = true
checkpoint_retention_days = 30
