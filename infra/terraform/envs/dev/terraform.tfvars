# The dev environment's values for ../../platform (make tf-plan ENV=dev).
# github_owner_id comes from TF_VAR_github_owner_id (the workflows set it).
environment               = "dev"
project_id                = "aerie-dev"
region                    = "europe-west1"
bucket_name               = "aerie-dev-store"
state_bucket              = "aerie-dev-tfstate"
release_channel           = "REGULAR"
deletion_protection       = false
checkpoint_retention_days = 7
