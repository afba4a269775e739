# The dev environment's state: a versioned GCS bucket created once by hand
# (or by an org-level stack) before the first init:
#   gcloud storage buckets create gs://aerie-dev-tfstate --location=europe-west1 \
#     --uniform-bucket-level-access --public-access-prevention
#   gcloud storage buckets update gs://aerie-dev-tfstate --versioning
bucket = "aerie-dev-tfstate"
prefix = "envs/dev"
