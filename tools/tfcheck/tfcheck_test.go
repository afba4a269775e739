package tfcheck

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/internal/runspec"
)

// TestRepository checks every Terraform module and environment under
// infra/terraform.
func TestRepository(t *testing.T) {
	root := filepath.Join("..", "..", "infra", "terraform")
	dirs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tf") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"platform", "modules/network", "modules/gke-autopilot", "modules/bucket", "modules/artifact-registry", "modules/iam", "modules/github-wif", "modules/flux"} {
		if !dirs[filepath.Join(root, want)] {
			t.Errorf("%s: missing", filepath.Join(root, want))
		}
	}
	for _, dir := range sortedKeys(dirs) {
		t.Run(strings.TrimPrefix(dir, root+"/"), func(t *testing.T) {
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := Check(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
		})
	}
}

// TestEnvironments checks every envs/<env>/terraform.tfvars against the
// platform root module, and that each environment has its backend.
func TestEnvironments(t *testing.T) {
	root := filepath.Join("..", "..", "infra", "terraform")
	platform, err := Load(filepath.Join(root, "platform"))
	if err != nil {
		t.Fatal(err)
	}
	envs, _ := filepath.Glob(filepath.Join(root, "envs", "*"))
	if len(envs) != 2 {
		t.Errorf("environments %v, want dev and prod", envs)
	}
	for _, env := range envs {
		t.Run(filepath.Base(env), func(t *testing.T) {
			ps, err := CheckVarFile(platform, filepath.Join(env, "terraform.tfvars"), "github_owner_id")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
			backend, err := os.ReadFile(filepath.Join(env, "backend.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"bucket = ", "prefix = \"envs/" + filepath.Base(env) + "\""} {
				if !strings.Contains(string(backend), want) {
					t.Errorf("backend.hcl lacks %s", want)
				}
			}
		})
	}
}

// TestTeams checks that the platform's teams, read by Terraform from
// apps/teams/<team>/queue.yaml, are the teams apps/teams/kustomization.yaml
// applies: each gets its identity and store prefix from the same PR that
// adds its queues.
func TestTeams(t *testing.T) {
	platform := filepath.Join("..", "..", "infra", "terraform", "platform")
	src, err := os.ReadFile(filepath.Join(platform, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	const expr = `fileset("${path.module}/../../../apps/teams", "*/queue.yaml")`
	if !strings.Contains(string(src), expr) {
		t.Fatalf("platform/main.tf does not read the teams with %s", expr)
	}
	// Workload Identity binds the service account the team's jobs run as
	// (render.ServiceAccount in runspec.TeamNamespace), which
	// apps/teams/<team>/namespace/ declares.
	ksa := func(team string) string { return "aerie-trainer-" + team }
	for _, want := range []string{
		fmt.Sprintf("namespace     = %q", runspec.TeamNamespace("${each.key}")),
		fmt.Sprintf("ksa           = %q", ksa("${each.key}")),
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("platform/main.tf: module team does not say %s", want)
		}
	}
	files, err := filepath.Glob(filepath.Join(platform, "..", "..", "..", "apps", "teams", "*", "queue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var fromTerraform []string
	for _, f := range files {
		fromTerraform = append(fromTerraform, filepath.Base(filepath.Dir(f)))
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "apps", "teams", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Resources []string }
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	var applied []string
	for _, r := range k.Resources {
		if fi, err := os.Stat(filepath.Join("..", "..", "apps", "teams", r)); err == nil && fi.IsDir() {
			applied = append(applied, r)
			dir := filepath.Join("..", "..", "apps", "teams", r, "namespace")
			sa := filepath.Join(dir, "serviceaccount.yaml")
			if b, err := os.ReadFile(sa); err != nil || !strings.Contains(string(b), "name: "+ksa(r)+"\n") {
				t.Errorf("%s does not declare ServiceAccount %s (err %v): modules/team binds it", sa, ksa(r), err)
			}
			kust := filepath.Join(dir, "kustomization.yaml")
			if b, err := os.ReadFile(kust); err != nil || !strings.Contains(string(b), "\nnamespace: "+runspec.TeamNamespace(r)+"\n") {
				t.Errorf("%s does not put the team in namespace %s (err %v): modules/team binds its service account there", kust, runspec.TeamNamespace(r), err)
			}
		}
	}
	slices.Sort(applied)
	if len(applied) == 0 {
		t.Fatal("apps/teams/kustomization.yaml applies no team directory")
	}
	if diff := cmp.Diff(applied, fromTerraform); diff != "" {
		t.Errorf("teams Terraform provisions vs teams apps/teams applies (-applied +terraform):\n%s", diff)
	}
}

func TestCheckVarFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.tf"), []byte(goodModule+`
variable "token" {
  description = "From the environment."
  type        = string
}
`), 0o644)
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(dir, "x.tfvars")
	os.WriteFile(vars, []byte("size = 2\ncolour = \"red\"\ntoken = var.name\n"), 0o644)
	ps, err := CheckVarFile(m, vars, "token")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, strings.TrimPrefix(p.String(), dir+"/"))
	}
	want := []string{
		"x.tfvars:2: " + dir + " declares no variable \"colour\"",
		"x.tfvars:3: \"token\" must be a literal value",
		"x.tfvars:1: required variable \"name\" of " + dir + " is not set",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

const goodModule = `
variable "name" {
  description = "Name."
  type        = string
}

variable "size" {
  description = "Size."
  type        = number
  default     = 1
}

output "id" {
  description = "ID."
  value       = "${var.name}-${var.size}"
}
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		root string // main.tf of the calling module; the callee is ./mod
		want []string
	}{
		{
			name: "ok",
			root: `
module "m" {
  source = "./mod"
  name   = "x"
}

output "id" {
  description = "The module's ID."
  value       = module.m.id
}
`,
		},
		{
			name: "unknown argument",
			root: `
module "m" {
  source = "./mod"
  name   = "x"
  colour = "red"
}
`,
			want: []string{`main.tf:5: module "m": ./mod declares no variable "colour"`},
		},
		{
			name: "missing required argument",
			root: `
module "m" {
  source = "./mod"
  size   = 2
}
`,
			want: []string{`main.tf:2: module "m": required variable "name" of ./mod is not set`},
		},
		{
			name: "condition prefixes",
			root: `
resource "google_storage_bucket_iam_member" "ok" {
  condition {
    title      = "ok"
    expression = "resource.name.startsWith(\"${local.objects}/teams/a/\") || resource.name == \"b\""
  }
}

resource "google_storage_bucket_iam_member" "open" {
  condition {
    title      = "open"
    expression = "resource.name.startsWith(\"${local.objects}/teams/${var.team}\")"
  }
}

locals {
  objects = "projects/_/buckets/b/objects"
}

variable "team" {
  description = "A team."
  type        = string
}
`,
			want: []string{`main.tf:12: condition prefix "${local.objects}/teams/${var.team}" does not end in /: it also grants every name that merely starts with it (teams/a matches teams/ab/)`},
		},
		{
			name: "untyped undescribed variable",
			root: `
variable "v" {
  default = 1
}
`,
			want: []string{`main.tf:2: variable "v" has no description`, `main.tf:2: variable "v" has no type`},
		},
		{
			name: "undescribed output",
			root: `
output "o" {
  value = 1
}
`,
			want: []string{`main.tf:2: output "o" has no description`},
		},
		{
			name: "unknown module output",
			root: `
module "m" {
  source = "./mod"
  name   = "x"
}

output "o" {
  description = "O."
  value       = module.m.nope
}
`,
			want: []string{`main.tf:9: module "m" (./mod) has no output "nope"`},
		},
		{
			name: "undeclared variable and local",
			root: `
output "o" {
  description = "O."
  value       = "${var.missing}${local.gone}"
}
`,
			want: []string{`main.tf:4: reference to undeclared local "gone"`, `main.tf:4: reference to undeclared variable "missing"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "main.tf"), tt.root)
			write(t, filepath.Join(dir, "mod", "main.tf"), goodModule)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := Check(m)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, strings.TrimPrefix(p.String(), dir+"/"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadParseError(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.tf"), "variable \"x\" {\n  type = \n}\n")
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "main.tf:2") {
		t.Errorf("Load(bad HCL) error = %v, want a diagnostic at main.tf:2", err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
