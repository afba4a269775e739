// Build recipe for Flux source-controller v1.9.6, used only by make
// e2e-bins. Its own replace directives are copied (a dependency's are
// ignored); fluxcd/pkg/artifact v0.18.3, which it requires, is not served by
// the module proxy, so v0.18.0 stands in.
module github.com/aerie-ml/aerie/tools/e2e/recipes/source-controller

go 1.26.5

tool github.com/fluxcd/source-controller

require github.com/fluxcd/source-controller v1.9.6

replace (
	github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.0
	github.com/fluxcd/source-controller/api => github.com/fluxcd/source-controller/api v1.9.6
	github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be
)
