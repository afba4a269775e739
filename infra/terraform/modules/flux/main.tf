# Flux bootstrap: a deploy key on the repository, the Flux controllers
# installed from the provider's embedded manifests, and clusters/<env>/
# flux-system committed and synced. Then the secrets clusters/<env>/
# infrastructure.yaml substitutes (flux-system/cluster-secrets): the trainer
# replicas' rendezvous token, generated here so it never reaches Git.
#
# The flux, github and kubernetes providers are configured by the caller
# (envs/<env>): the flux provider's git.ssh.private_key must be the private
# half of var.deploy_public_key.

resource "github_repository_deploy_key" "flux" {
  title      = "flux-${var.environment}"
  repository = var.github_repository
  key        = var.deploy_public_key
  # Bootstrap commits clusters/<env>/flux-system with this key.
  read_only = false
}

resource "flux_bootstrap_git" "this" {
  depends_on = [github_repository_deploy_key.flux]

  embedded_manifests = true
  path               = "clusters/${var.environment}"
  interval           = "1m0s"
}

resource "random_password" "rendezvous" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "cluster_secrets" {
  depends_on = [flux_bootstrap_git.this]

  metadata {
    name      = "cluster-secrets"
    namespace = "flux-system"
  }

  data = {
    rendezvous_token = random_password.rendezvous.result
  }
}
