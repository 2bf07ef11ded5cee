// Package kubecompat is the compatibility oracle (issue 20): it proves
// offline, with Kubernetes' own code, that a Pod the node accepts is a Pod
// a cluster accepts, and that a Pod Kubernetes refuses the node refuses
// too. `make kubecompat` runs it.
//
// It is a module of its own (e2e/kubecompat/go.mod, with a replace of
// github.com/warren/reconciler to ../..) so that k8s.io/kubernetes and its
// staging modules, pinned to one release by replace directives, never
// enter the product's go.mod or binary, and so that `go vet ./...` and
// `make unit` at the top of the repository do not build it.
//
// The oracle (oracle.go) is Kubernetes v1.37's code, called as a library:
//
//   - [APIServer]: what `kubectl create` of the Pod meets on an API server:
//     strict decoding into k8s.io/api/core/v1.Pod (unknown and duplicate
//     fields refused), the v1 defaulting functions
//     (k8s.io/kubernetes/pkg/apis/core/v1.SetObjectDefaults_Pod),
//     conversion to the internal type and
//     k8s.io/kubernetes/pkg/apis/core/validation.ValidatePodCreate with the
//     options of the pod strategy's create.
//   - [DefaultOptions]: ValidatePodCreate again, with the zero
//     PodValidationOptions, the strictest form.
//   - [Kubelet]: the kubelet's static-pod file source. Its decode path,
//     tryDecodeSinglePod in k8s.io/kubernetes/pkg/kubelet/config, is
//     unexported, so Kubelet reproduces its steps (decode with defaults,
//     the static-pod defaults, ValidatePodCreate, no reference to API
//     objects); TestKubeletFileSource runs the kubelet's real file source
//     (config.NewSourceFile into a config.PodConfig) over a directory of
//     the same Pods and fails if the two disagree on any of them.
//   - [Deployment]: an apps/v1 Deployment, defaulted, converted and
//     validated by k8s.io/kubernetes/pkg/apis/apps/validation
//     .ValidateDeployment, which validates its pod template.
//
// The tests run it over every Pod document of manifests/ and of the
// parser's test fixtures that the node accepts, over every output of
// `reconciler convert` (desired.ToKubernetes, as a Pod and as a
// Deployment) of every Task there and of the golden inputs of
// TestKubeRoundTrip, over Pods at the edges of what the node supports
// (each one the node accepts must be valid), and over a table of mistakes
// that Kubernetes refuses, each of which the node's parser (desired.Parse)
// must refuse too, at the same field. A refusal of the kubelet that is
// only the static-pod source's rule against API object references (a
// secret volume) is logged, not failed: the node stages its own secrets.
//
// The replace of github.com/warren/reconciler makes the product's go.mod
// part of this module's graph: when a change there makes `go test` here
// ask for a go.sum entry, `go mod tidy` in this directory is the fix. All
// k8s.io staging modules are pinned to v0.37.2 by the replace block, as
// k8s.io/kubernetes requires them at v0.0.0.
//
// It must never be imported by the product, never change pkg/desired to
// make a row pass (a disagreement is a bug of the node's parser, left
// failing until its owner fixes it), and never need a cluster, a
// container runtime or the network beyond the Go module proxy.
package kubecompat
