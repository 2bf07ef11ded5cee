package kubecompat

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	"k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install" // apps/v1 in legacyscheme
	appsv1conv "k8s.io/kubernetes/pkg/apis/apps/v1"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/apis/core/helper"
	_ "k8s.io/kubernetes/pkg/apis/core/install" // v1 in legacyscheme
	corev1conv "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/capabilities"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"
	"k8s.io/kubernetes/pkg/util/hash"
)

func init() {
	// As the kubelet always does, and as a cluster's API server does with
	// --allow-privileged=true (kubeadm's setting): privileged is the
	// cluster's policy, as it is the node's (--allow-privileged), not a
	// question of validity. Without it ValidatePodCreate refuses every
	// privileged container ("disallowed by cluster policy").
	capabilities.Initialize(capabilities.Capabilities{AllowPrivileged: true})
}

// NodeName is the node a static pod is read on (the kubelet appends it to
// the pod's name).
const NodeName = "node-1"

// strict decodes as the API server does for a request with
// fieldValidation=Strict (kubectl's default, --validate=strict): unknown
// and duplicate fields are errors.
var strict = serializer.NewCodecFactory(legacyscheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeStrict decodes one YAML or JSON document into the versioned
// object of its apiVersion and kind, with no defaulting and no conversion.
func decodeStrict(data []byte) (runtime.Object, error) {
	obj, _, err := strict.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("strict decode: %w", err)
	}
	return obj, nil
}

// APIServer checks one Pod document as `kubectl create` against a
// Kubernetes API server of this module's version would: strict decoding
// into k8s.io/api/core/v1.Pod, the v1 defaulting functions
// (SetObjectDefaults_Pod), namespace "default" when none is given,
// conversion to the internal type, and ValidatePodCreate with the options
// the pod strategy uses on create (GetValidationOptionsFromPodSpecAndMeta,
// ResourceIsPod). It returns the warnings the API server would send back
// with a created pod (GetWarningsForPod), or every validation error.
//
// Unlike the API server, it does not drop the fields of disabled feature
// gates before validating (podutil.DropDisabledPodFields): such a field is
// validated, as a cluster with the gate on validates it, which is the
// stricter of the two. Admission (Pod Security, quotas, service accounts)
// is not run: it depends on the cluster's configuration.
func APIServer(data []byte) (warnings []string, err error) {
	pod, err := internalPod(data)
	if err != nil {
		return nil, err
	}
	opts := podutil.GetValidationOptionsFromPodSpecAndMeta(&pod.Spec, nil, &pod.ObjectMeta, nil)
	opts.ResourceIsPod = true
	if errs := validation.ValidatePodCreate(pod, opts); len(errs) > 0 {
		return nil, invalid("pod", errs)
	}
	return podutil.GetWarningsForPod(context.Background(), pod, nil), nil
}

// DefaultOptions is [APIServer] with the zero PodValidationOptions (but
// ResourceIsPod) instead of the create options: the strictest form of
// ValidatePodCreate, which a pod the node accepts must pass as well (it
// refuses, for one, the relaxed environment variable names every cluster
// of this version accepts).
func DefaultOptions(data []byte) error {
	pod, err := internalPod(data)
	if err != nil {
		return err
	}
	if errs := validation.ValidatePodCreate(pod, validation.PodValidationOptions{ResourceIsPod: true}); len(errs) > 0 {
		return invalid("pod", errs)
	}
	return nil
}

// internalPod decodes data strictly, defaults and converts it.
func internalPod(data []byte) (*api.Pod, error) {
	obj, err := decodeStrict(data)
	if err != nil {
		return nil, err
	}
	v1pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("not a v1 Pod: %T", obj)
	}
	corev1conv.SetObjectDefaults_Pod(v1pod)
	if v1pod.Namespace == "" {
		v1pod.Namespace = metav1.NamespaceDefault // what the request's namespace sets
	}
	pod := &api.Pod{}
	if err := legacyscheme.Scheme.Convert(v1pod, pod, nil); err != nil {
		return nil, fmt.Errorf("convert to the internal pod: %w", err)
	}
	return pod, nil
}

// Kubelet checks one Pod document as a kubelet's static-pod file source
// reads a file of its --pod-manifest-path. That path
// (k8s.io/kubernetes/pkg/kubelet/config, tryDecodeSinglePod and
// applyDefaults) is unexported, so this is its essential steps again, in
// its order: YAML to JSON, decoding through the legacy scheme's universal
// decoder (which defaults and converts to the internal type, and ignores
// unknown fields), a name required, the static-pod defaults (a UID from
// the content, the name suffixed with the node's, namespace "default",
// spec.nodeName, the NoExecute toleration), ValidatePodCreate with the
// options the kubelet computes, conversion back to v1, and the refusal of
// a pod that references API objects (secrets, configmaps, service
// accounts, claims). TestKubeletFileSource runs the kubelet's own file
// source over the same pods to prove that this agrees with it.
func Kubelet(data []byte) error {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("yaml to json: %w", err)
	}
	obj, err := runtime.Decode(legacyscheme.Codecs.UniversalDecoder(), js)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	pod, ok := obj.(*api.Pod)
	if !ok {
		return fmt.Errorf("invalid pod: %T", obj)
	}
	if pod.Name == "" {
		return errors.New("invalid pod: name is needed for the pod")
	}
	staticPodDefaults(pod, "/etc/kubernetes/manifests/pod.yaml")
	opts := podutil.GetValidationOptionsFromPodSpecAndMeta(&pod.Spec, nil, &pod.ObjectMeta, nil)
	if errs := validation.ValidatePodCreate(pod, opts); len(errs) > 0 {
		return invalid("pod", errs)
	}
	var v1pod corev1.Pod
	if err := corev1conv.Convert_core_Pod_To_v1_Pod(pod, &v1pod, nil); err != nil {
		return fmt.Errorf("convert to v1: %w", err)
	}
	_, resource, err := podutil.HasAPIObjectReference(pod)
	if err != nil {
		return err
	}
	if resource != "" {
		return fmt.Errorf("%w %s", ErrStaticPodReference, resource)
	}
	return nil
}

// ErrStaticPodReference is the kubelet's refusal of a static pod that
// references API objects (a secret volume, a service account): a rule of
// the static-pod source, not of Pod validity, which a node that stages
// its own secrets may depart from.
var ErrStaticPodReference = errors.New("static pods may not reference")

// staticPodDefaults is the kubelet's applyDefaults for a file source.
func staticPodDefaults(pod *api.Pod, source string) {
	if pod.UID == "" {
		h := fnv.New128a()
		hash.DeepHashObject(h, pod)
		fmt.Fprintf(h, "host:%s", NodeName)
		fmt.Fprintf(h, "file:%s", source)
		pod.UID = types.UID(hex.EncodeToString(h.Sum(nil)))
	}
	pod.Name = pod.Name + "-" + NodeName
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = NodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[kubetypes.ConfigHashAnnotationKey] = string(pod.UID)
	helper.AddOrUpdateTolerationInPod(pod, &api.Toleration{Operator: "Exists", Effect: api.TaintEffectNoExecute})
	pod.Status.Phase = api.PodPending
}

// Deployment checks one apps/v1 Deployment document as the API server
// would on create: strict decoding, the apps/v1 defaulting functions
// (SetObjectDefaults_Deployment, which default the pod template too),
// namespace "default", conversion, and ValidateDeployment with the options
// the deployment strategy computes from the template (which validates the
// template's pod spec as a PodTemplateSpec). It returns the API server's
// warnings for the template.
func Deployment(data []byte) (warnings []string, err error) {
	obj, err := decodeStrict(data)
	if err != nil {
		return nil, err
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil, fmt.Errorf("not an apps/v1 Deployment: %T", obj)
	}
	appsv1conv.SetObjectDefaults_Deployment(d)
	if d.Namespace == "" {
		d.Namespace = metav1.NamespaceDefault
	}
	internal := &apps.Deployment{}
	if err := legacyscheme.Scheme.Convert(d, internal, nil); err != nil {
		return nil, fmt.Errorf("convert to the internal deployment: %w", err)
	}
	opts := podutil.GetValidationOptionsFromPodTemplate(&internal.Spec.Template, nil)
	if errs := appsvalidation.ValidateDeployment(internal, opts); len(errs) > 0 {
		return nil, invalid("deployment", errs)
	}
	return podutil.GetWarningsForPodTemplate(context.Background(), field.NewPath("spec", "template"), &internal.Spec.Template, nil), nil
}

// invalid formats a validation error list as the API server's message
// does: `Pod "" is invalid: [a, b]`, one error per line here.
func invalid(kind string, errs field.ErrorList) error {
	var joined []error
	for _, e := range errs {
		joined = append(joined, e)
	}
	return fmt.Errorf("%s is invalid: %w", kind, errors.Join(joined...))
}
