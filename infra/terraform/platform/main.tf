# One environment's platform: network, GKE Autopilot, the store bucket and
# the image registry, all in var.region; identities for each team, the
# devices and GitHub Actions; Flux bootstrapped onto clusters/<environment>.
# envs/<environment>/ holds the values and the backend (see README.md).

locals {
  name = "aerie-${var.environment}"
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_client_config" "current" {}

locals {
  kubernetes = {
    host                   = module.cluster.endpoint
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = module.cluster.ca_certificate
  }
}

provider "kubernetes" {
  host                   = local.kubernetes.host
  token                  = local.kubernetes.token
  cluster_ca_certificate = local.kubernetes.cluster_ca_certificate
}

provider "github" {
  owner = var.github_owner
}

resource "tls_private_key" "flux" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

provider "flux" {
  kubernetes = local.kubernetes
  git = {
    url    = "ssh://git@github.com/${var.github_owner}/${var.github_repository}.git"
    branch = "main"
    ssh = {
      username    = "git"
      private_key = tls_private_key.flux.private_key_pem
    }
  }
}

module "network" {
  source = "../modules/network"

  project_id = var.project_id
  region     = var.region
  name       = local.name
}

module "cluster" {
  source = "../modules/gke-autopilot"

  project_id                 = var.project_id
  region                     = var.region
  name                       = local.name
  network_id                 = module.network.network_id
  subnetwork_id              = module.network.subnetwork_id
  pods_range_name            = module.network.pods_range_name
  services_range_name        = module.network.services_range_name
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.release_channel
  deletion_protection        = var.deletion_protection
}

module "bucket" {
  source = "../modules/bucket"

  project_id                = var.project_id
  name                      = var.bucket_name
  location                  = var.region
  checkpoint_retention_days = var.checkpoint_retention_days
  teams                     = local.teams
}

module "registry" {
  source = "../modules/artifact-registry"

  project_id = var.project_id
  location   = var.region
  readers    = ["serviceAccount:${module.cluster.node_service_account}"]
}

module "iam" {
  source = "../modules/iam"

  project_id    = var.project_id
  bucket_name   = module.bucket.name
  workload_pool = module.cluster.workload_pool
  teams         = local.teams
}

# The teams are the directories of apps/teams/ (each with its ClusterQueue,
# queue.yaml): adding one there adds its identity and store prefix here, in
# the same PR. Its service account lives in its namespace, team-<team>.
locals {
  teams = toset([for f in fileset("${path.module}/../../../apps/teams", "*/queue.yaml") : dirname(f)])
}

module "team" {
  source   = "../modules/team"
  for_each = local.teams

  project_id    = var.project_id
  bucket_name   = module.bucket.name
  workload_pool = module.cluster.workload_pool
  team          = each.key
  namespace     = "team-${each.key}"
  ksa           = "aerie-trainer-${each.key}"
}

module "github_wif" {
  source = "../modules/github-wif"

  project_id          = var.project_id
  repository          = "${var.github_owner}/${var.github_repository}"
  repository_owner_id = var.github_owner_id
  environment         = var.environment
  registry_location   = var.region
  registry_name       = module.registry.name
  state_bucket        = var.state_bucket
  store_bucket        = module.bucket.name
}

module "flux" {
  source = "../modules/flux"

  environment       = var.environment
  github_repository = var.github_repository
  deploy_public_key = tls_private_key.flux.public_key_openssh
}
