package tfcheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
