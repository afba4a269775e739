# tflint's bundled Terraform ruleset, every rule (naming, typed and documented
# variables and outputs, pinned providers and modules, standard module
# structure, unused declarations). The Google ruleset is a plugin that tflint
# would download, so it is not used: the offline HCL checks in tools/tfcheck
# and `terraform validate` in the terraform workflow cover the rest.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
