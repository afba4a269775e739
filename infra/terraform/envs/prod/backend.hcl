# The prod environment's state: a versioned GCS bucket created once by hand
# (or by an org-level stack) before the first init:
#   gcloud storage buckets create gs://aerie-prod-tfstate --location=europe-west1 \
#     --uniform-bucket-level-access --public-access-prevention
#   gcloud storage buckets update gs://aerie-prod-tfstate --versioning
bucket = "aerie-prod-tfstate"
prefix = "envs/prod"
