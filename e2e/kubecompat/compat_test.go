package kubecompat

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

// fixtureDirs are the directories of manifests whose Pods the node
// accepts and whose Tasks convert: manifests/ (what the loader reads,
// examples included) and the parser's test fixtures. mustLoad: every file
// of the directory is valid (the others hold refusal fixtures too, whose
// files the node refuses and which are left out).
var fixtureDirs = []struct {
	dir      string
	mustLoad bool
}{
	{"manifests", true},
	{"pkg/desired/testdata/convert", true}, // the golden inputs of TestKubeGolden and TestKubeRoundTrip
	{"pkg/desired/testdata/pod", false},
	{"pkg/desired/testdata/parse", false},
}

// acceptedFile is a manifest file the node accepts, and its tasks.
type acceptedFile struct {
	manifestFile
	tasks []desired.Task
}

func acceptedFiles(t *testing.T) []acceptedFile {
	t.Helper()
	var out []acceptedFile
	for _, fd := range fixtureDirs {
		for _, f := range manifestFiles(t, fd.dir) {
			tasks, err := desired.Parse(f.path, f.data)
			switch {
			case err != nil && fd.mustLoad:
				t.Errorf("the node refuses %s: %v", f.path, err)
			case err != nil:
				t.Logf("%s: left out, the node refuses it (a refusal fixture)", f.path)
			default:
				out = append(out, acceptedFile{f, tasks})
			}
		}
	}
	return out
}

// requireValid fails t unless Kubernetes accepts the Pod data: through
// the API server, with the strictest validation options, and as a static
// pod of a kubelet. Kubernetes' warnings are logged.
func requireValid(t *testing.T, data []byte) {
	t.Helper()
	warnings, err := APIServer(data)
	if err != nil {
		t.Errorf("the node accepts a Pod that the Kubernetes API server refuses:\n%v\n--- the Pod:\n%s", err, data)
	}
	for _, w := range warnings {
		t.Logf("Kubernetes warning: %s", w)
	}
	if err := DefaultOptions(data); err != nil {
		t.Errorf("the node accepts a Pod that ValidatePodCreate with the default PodValidationOptions refuses:\n%v\n--- the Pod:\n%s", err, data)
	}
	if err := Kubelet(data); errors.Is(err, ErrStaticPodReference) {
		t.Logf("a kubelet would not run this Pod as a static pod (valid in a cluster): %v", err)
	} else if err != nil {
		t.Errorf("the node accepts a Pod that a kubelet refuses as a static pod:\n%v\n--- the Pod:\n%s", err, data)
	}
}

// TestAcceptedPodsAreValid: every Pod document of a file the node accepts
// is a valid Kubernetes Pod, and the node accepts it alone too.
func TestAcceptedPodsAreValid(t *testing.T) {
	n := 0
	for _, f := range acceptedFiles(t) {
		docs, err := documents(f.data)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		for _, d := range docs {
			if !isPod(d) {
				continue
			}
			n++
			t.Run(fmt.Sprintf("%s#%d/%s", f.path, d.index+1, d.name), func(t *testing.T) {
				if _, err := desired.Parse("pod.yaml", d.data); err != nil {
					t.Errorf("the node refuses the document alone: %v", err)
				}
				requireValid(t, d.data)
			})
		}
	}
	if n == 0 {
		t.Fatal("no Pod document found: the walk of manifests/ is broken")
	}
	t.Logf("%d Pod documents checked", n)
}

// TestConvertedAreValid: `reconciler convert` of every Task the node
// accepts is a valid Kubernetes Pod, which the node accepts back, and a
// valid Deployment.
func TestConvertedAreValid(t *testing.T) {
	n := 0
	for _, f := range acceptedFiles(t) {
		for _, task := range f.tasks {
			if task.Spec.Pod != "" { // a container of a Pod document: not converted
				continue
			}
			n++
			t.Run(f.path+"/"+task.Metadata.Name, func(t *testing.T) {
				for _, kind := range []string{desired.KubeKindPod, desired.KubeKindDeployment} {
					obj, warnings, err := desired.ToKubernetes(task, kind)
					if err != nil {
						t.Fatal(err)
					}
					for _, w := range warnings {
						t.Logf("convert --kind %s warning: %s", kind, w)
					}
					y, err := desired.KubeYAML(obj)
					if err != nil {
						t.Fatal(err)
					}
					if kind == desired.KubeKindDeployment {
						warnings, err := Deployment(y)
						if err != nil {
							t.Errorf("convert --kind Deployment gives a Deployment that Kubernetes refuses:\n%v\n--- the Deployment:\n%s", err, y)
						}
						for _, w := range warnings {
							t.Logf("Kubernetes warning: %s", w)
						}
						continue
					}
					if _, err := desired.Parse("pod.yaml", y); err != nil {
						t.Errorf("the node refuses the Pod that convert gives:\n%v\n--- the Pod:\n%s", err, y)
					}
					requireValid(t, y)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no Task found to convert")
	}
	t.Logf("%d tasks converted", n)
}

// basePod is a Pod the node and Kubernetes accept; each mistake changes
// it.
const basePod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
    - name: app
      image: nginx:1.27
      env:
        - {name: MODE, value: production}
      ports:
        - {name: http, containerPort: 8080}
      resources:
        limits: {cpu: 500m, memory: 128Mi}
      volumeMounts:
        - {name: data, mountPath: /data}
      livenessProbe:
        httpGet: {port: http, path: /}
        periodSeconds: 10
  volumes:
    - name: data
      hostPath: {path: /srv/web}
`

// mistake is a Pod that Kubernetes refuses: basePod with edits, or raw.
type mistake struct {
	name  string
	edits []edit
	raw   string // the whole document, instead of basePod and edits
	field string // what Kubernetes' error names
	node  string // what the node's error names, when it is not field
}

// hostNet makes basePod a pod on the host's network, where the node takes
// several containers.
var hostNet = set("spec.hostNetwork", "true")

var mistakes = []mistake{
	{name: "pod name with upper case", edits: []edit{set("metadata.name", "Web")}, field: "metadata.name"},
	{name: "pod name with an underscore", edits: []edit{set("metadata.name", "web_1")}, field: "metadata.name"},
	{name: "pod name missing", edits: []edit{del("metadata.name")}, field: "metadata.name"},
	{name: "label value not valid", edits: []edit{set("metadata.labels", `{app: "web server"}`)}, field: "metadata.labels"},
	{name: "label key not valid", edits: []edit{set("metadata.labels", `{"-app": web}`)}, field: "metadata.labels"},
	{name: "no container", edits: []edit{set("spec.containers", "[]")}, field: "spec.containers"},
	{name: "two containers of one name", edits: []edit{hostNet, set("spec.containers[1]", "{name: app, image: nginx:1.27}")}, field: "spec.containers[1].name"},
	{name: "an init container and a container of one name", edits: []edit{set("spec.initContainers", "[{name: app, image: busybox:1.36}]")}, field: "spec.initContainers[0].name", node: "spec.containers[0].name"},
	{name: "container name with upper case", edits: []edit{set("spec.containers[0].name", "App")}, field: "spec.containers[0].name"},
	{name: "image empty", edits: []edit{set("spec.containers[0].image", `""`)}, field: "spec.containers[0].image"},
	{name: "image missing", edits: []edit{del("spec.containers[0].image")}, field: "spec.containers[0].image"},
	{name: "image pull policy unknown", edits: []edit{set("spec.containers[0].imagePullPolicy", "Sometimes")}, field: "spec.containers[0].imagePullPolicy"},
	{name: "restartPolicy Sometimes", edits: []edit{set("spec.restartPolicy", "Sometimes")}, field: "spec.restartPolicy"},
	{name: "hostPort without containerPort", edits: []edit{set("spec.containers[0].ports[0]", "{name: http, hostPort: 8080}")}, field: "spec.containers[0].ports[0].containerPort"},
	{name: "containerPort above 65535", edits: []edit{set("spec.containers[0].ports[0].containerPort", "70000")}, field: "spec.containers[0].ports[0].containerPort"},
	{name: "hostPort negative", edits: []edit{set("spec.containers[0].ports[0].hostPort", "-1")}, field: "spec.containers[0].ports[0].hostPort"},
	{name: "protocol unknown", edits: []edit{set("spec.containers[0].ports[0].protocol", "ICMP")}, field: "spec.containers[0].ports[0].protocol"},
	{name: "two ports of one name", edits: []edit{set("spec.containers[0].ports[1]", "{name: http, containerPort: 8081}")}, field: "spec.containers[0].ports[1].name"},
	{name: "port name too long", edits: []edit{set("spec.containers[0].ports[0].name", "http-but-far-too-long"), set("spec.containers[0].livenessProbe.httpGet.port", "8080")}, field: "spec.containers[0].ports[0].name"},
	{name: "hostPort other than containerPort under hostNetwork", edits: []edit{hostNet, set("spec.containers[0].ports[0].hostPort", "9090")}, field: "spec.containers[0].ports[0].hostPort"},
	{name: "env name with =", edits: []edit{set("spec.containers[0].env[0].name", "MODE=x")}, field: "spec.containers[0].env[0].name"},
	{name: "env name empty", edits: []edit{set("spec.containers[0].env[0].name", `""`)}, field: "spec.containers[0].env[0].name"},
	{name: "limits below requests", edits: []edit{set("spec.containers[0].resources.requests", "{cpu: '1'}")}, field: "spec.containers[0].resources.requests"},
	{name: "negative cpu limit", edits: []edit{set("spec.containers[0].resources.limits.cpu", "-1")}, field: "spec.containers[0].resources.limits"},
	{name: "memory limit not a quantity", edits: []edit{set("spec.containers[0].resources.limits.memory", "lots")}, field: "quantities must match", node: "spec.containers[0].resources.limits.memory"},
	{name: "limit of an unknown resource", edits: []edit{set("spec.containers[0].resources.limits.cores", "2")}, field: "spec.containers[0].resources.limits"},
	{name: "volumeMount of an undefined volume", edits: []edit{set("spec.containers[0].volumeMounts[0].name", "nope")}, field: "spec.containers[0].volumeMounts[0].name"},
	{name: "two mounts at one path", edits: []edit{set("spec.volumes[1]", "{name: more, hostPath: {path: /srv/more}}"), set("spec.containers[0].volumeMounts[1]", "{name: more, mountPath: /data}")}, field: "spec.containers[0].volumeMounts[1].mountPath"},
	{name: "volumeMount without mountPath", edits: []edit{del("spec.containers[0].volumeMounts[0].mountPath")}, field: "spec.containers[0].volumeMounts[0].mountPath"},
	{name: "two volumes of one name", edits: []edit{set("spec.volumes[1]", "{name: data, hostPath: {path: /srv/other}}")}, field: "spec.volumes[1].name"},
	{name: "volume name with upper case", edits: []edit{set("spec.volumes[0].name", "Data"), set("spec.containers[0].volumeMounts[0].name", "Data")}, field: "spec.volumes[0].name"},
	{name: "hostPath path empty", edits: []edit{set("spec.volumes[0].hostPath.path", `""`)}, field: "spec.volumes[0].hostPath.path"},
	{name: "negative periodSeconds", edits: []edit{set("spec.containers[0].livenessProbe.periodSeconds", "-1")}, field: "spec.containers[0].livenessProbe.periodSeconds"},
	{name: "negative timeoutSeconds", edits: []edit{set("spec.containers[0].livenessProbe.timeoutSeconds", "-1")}, field: "spec.containers[0].livenessProbe.timeoutSeconds"},
	{name: "negative failureThreshold", edits: []edit{set("spec.containers[0].livenessProbe.failureThreshold", "-1")}, field: "spec.containers[0].livenessProbe.failureThreshold"},
	{name: "negative initialDelaySeconds", edits: []edit{set("spec.containers[0].livenessProbe.initialDelaySeconds", "-1")}, field: "spec.containers[0].livenessProbe.initialDelaySeconds"},
	{name: "liveness successThreshold 2", edits: []edit{set("spec.containers[0].livenessProbe.successThreshold", "2")}, field: "spec.containers[0].livenessProbe.successThreshold"},
	{name: "a probe with two handlers", edits: []edit{set("spec.containers[0].livenessProbe.tcpSocket", "{port: 8080}")}, field: "spec.containers[0].livenessProbe"},
	{name: "a probe with no handler", edits: []edit{del("spec.containers[0].livenessProbe.httpGet")}, field: "spec.containers[0].livenessProbe"},
	{name: "probe exec without command", edits: []edit{del("spec.containers[0].livenessProbe.httpGet"), set("spec.containers[0].livenessProbe.exec", "{command: []}")}, field: "spec.containers[0].livenessProbe.exec.command"},
	{name: "probe port 0", edits: []edit{set("spec.containers[0].livenessProbe.httpGet.port", "0")}, field: "spec.containers[0].livenessProbe.httpGet.port"},
	{name: "probe port name not valid", edits: []edit{set("spec.containers[0].livenessProbe.httpGet.port", "Not_A_Name")}, field: "spec.containers[0].livenessProbe.httpGet.port"},
	{name: "liveness probe on an init container", edits: []edit{set("spec.initContainers", "[{name: init, image: busybox:1.36, livenessProbe: {exec: {command: [/bin/true]}}}]")}, field: "spec.initContainers[0].livenessProbe"},
	{name: "negative runAsUser", edits: []edit{set("spec.containers[0].securityContext", "{runAsUser: -1}")}, field: "spec.containers[0].securityContext.runAsUser"},
	{name: "runAsUser beyond 2^31-1", edits: []edit{set("spec.securityContext", "{runAsUser: 2147483648}")}, field: "spec.securityContext.runAsUser"},
	{name: "privileged without privilege escalation", edits: []edit{set("spec.containers[0].securityContext", "{privileged: true, allowPrivilegeEscalation: false}")}, field: "spec.containers[0].securityContext"},
	{name: "CAP_SYS_ADMIN without privilege escalation", edits: []edit{set("spec.containers[0].securityContext", "{capabilities: {add: [CAP_SYS_ADMIN]}, allowPrivilegeEscalation: false}")}, field: "spec.containers[0].securityContext"},
	{name: "stopSignal without os.name", edits: []edit{set("spec.containers[0].lifecycle", "{stopSignal: SIGINT}")}, field: "spec.containers[0].lifecycle.stopSignal"},
	{name: "stopSignal unknown", edits: []edit{set("spec.os", "{name: linux}"), set("spec.containers[0].lifecycle", "{stopSignal: SIGFOO}")}, field: "spec.containers[0].lifecycle.stopSignal"},
	{name: "os.name unknown", edits: []edit{set("spec.os", "{name: plan9}")}, field: "spec.os", node: "spec.os.name"},
	{name: "emptyDir sizeLimit negative", edits: []edit{set("spec.volumes[0]", "{name: data, emptyDir: {medium: Memory, sizeLimit: -1Mi}}")}, field: "spec.volumes[0].emptyDir.sizeLimit"},
	{name: "unknown field", edits: []edit{set("spec.containers[0].imagePullPolcy", "Always")}, field: "spec.containers[0].imagePullPolcy"},
	{name: "a field twice", raw: strings.Replace(basePod, "      image: nginx:1.27\n", "      image: nginx:1.27\n      image: nginx:1.28\n", 1), field: "image"},
	{name: "a volume with two sources", edits: []edit{set("spec.volumes[0].emptyDir", "{medium: Memory}")}, field: "spec.volumes[0]"},
}

// mistakeDoc is the document of m.
func mistakeDoc(m mistake) ([]byte, error) {
	if m.raw != "" {
		return []byte(m.raw), nil
	}
	return apply([]byte(basePod), m.edits...)
}

// TestMistakesAreRefused: every Pod of the table is refused by
// Kubernetes, and by the node, naming the same field.
func TestMistakesAreRefused(t *testing.T) {
	t.Run("base", func(t *testing.T) {
		if _, err := desired.Parse("pod.yaml", []byte(basePod)); err != nil {
			t.Fatalf("the node refuses the base pod: %v", err)
		}
		requireValid(t, []byte(basePod))
	})
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			doc, err := mistakeDoc(m)
			if err != nil {
				t.Fatal(err)
			}
			_, kubeErr := APIServer(doc)
			if kubeErr == nil {
				t.Fatalf("Kubernetes accepts this Pod: the row is no mistake\n%s", doc)
			}
			if !strings.Contains(kubeErr.Error(), m.field) {
				t.Errorf("Kubernetes refuses the Pod, but not at %s:\n%v", m.field, kubeErr)
			}
			t.Logf("Kubernetes: %v", kubeErr)
			if err := Kubelet(doc); err != nil {
				t.Logf("kubelet static pod: %v", err)
			} else {
				t.Logf("kubelet static pod: accepted (its decoding ignores what the API server's strict decoding refuses)")
			}
			_, nodeErr := desired.Parse("pod.yaml", doc)
			if nodeErr == nil {
				t.Errorf("DISAGREEMENT: the node accepts a Pod that Kubernetes refuses:\nKubernetes: %v\n--- the Pod:\n%s", kubeErr, doc)
				return
			}
			t.Logf("node: %v", nodeErr)
			want := m.node
			if want == "" {
				want = m.field
			}
			if !strings.Contains(nodeErr.Error(), want) {
				t.Errorf("the node refuses the Pod, but not at %s (it is no proof that it refuses this mistake):\nnode: %v\nKubernetes: %v\n--- the Pod:\n%s", want, nodeErr, kubeErr, doc)
			}
		})
	}
}

// stricter are Pods that Kubernetes accepts and the node refuses: on
// purpose (a pod name is a task name's prefix here) or not. They break no
// invariant (a refusal is never unsafe); the test proves that Kubernetes
// accepts them, so that a message of the node that says "Kubernetes
// refuses it" can be checked, and logs the node's verdict.
var stricter = []mistake{
	{name: "pod name with a dot", edits: []edit{set("metadata.name", "web.v1")}},
	{name: "negative terminationGracePeriodSeconds", edits: []edit{set("spec.terminationGracePeriodSeconds", "-5")}},
	{name: "SYS_ADMIN without privilege escalation", edits: []edit{set("spec.containers[0].securityContext", "{capabilities: {add: [SYS_ADMIN]}, allowPrivilegeEscalation: false}")}},
	{name: "one env name twice", edits: []edit{set("spec.containers[0].env[1]", "{name: MODE, value: debug}")}},
}

func TestNodeStricter(t *testing.T) {
	for _, m := range stricter {
		t.Run(m.name, func(t *testing.T) {
			doc, err := mistakeDoc(m)
			if err != nil {
				t.Fatal(err)
			}
			warnings, err := APIServer(doc)
			if err != nil {
				t.Fatalf("Kubernetes refuses this Pod: it belongs in mistakes\n%v", err)
			}
			t.Logf("Kubernetes: accepted, warnings %q", warnings)
			if _, err := desired.Parse("pod.yaml", doc); err != nil {
				t.Logf("node: %v", err)
			} else {
				t.Logf("node: accepted")
			}
		})
	}
}

// probes are Pods at the edges of what the node supports. Each one the
// node accepts must be valid in Kubernetes; one it refuses proves nothing
// and is logged.
var probes = []mistake{
	{name: "runAsUser 0", edits: []edit{set("spec.securityContext", "{runAsUser: 0}")}},
	{name: "runAsUser 2^31-1 and runAsGroup", edits: []edit{set("spec.containers[0].securityContext", "{runAsUser: 2147483647, runAsGroup: 2147483647}")}},
	{name: "port 65535 on 127.0.0.1", edits: []edit{set("spec.containers[0].ports[0]", "{name: http, containerPort: 65535, hostPort: 65535, hostIP: 127.0.0.1, protocol: UDP}"), set("spec.containers[0].livenessProbe", "{exec: {command: [/bin/true]}}")}},
	{name: "probe numbers at zero", edits: []edit{set("spec.containers[0].livenessProbe", "{tcpSocket: {port: 8080}, periodSeconds: 0, timeoutSeconds: 0, failureThreshold: 0, initialDelaySeconds: 0, successThreshold: 1}")}},
	{name: "startup probe as the start period", edits: []edit{set("spec.containers[0].startupProbe", "{httpGet: {port: http, path: /}, periodSeconds: 10, failureThreshold: 30}")}},
	{name: "readiness probe alone", edits: []edit{del("spec.containers[0].livenessProbe"), set("spec.containers[0].readinessProbe", "{httpGet: {port: http, path: /ready}}")}},
	{name: "readiness probe equal to the liveness probe", edits: []edit{set("spec.containers[0].readinessProbe", "{httpGet: {port: http, path: /}, periodSeconds: 10}")}},
	{name: "two containers on the bridge", edits: []edit{set("spec.containers[1]", "{name: side, image: busybox:1.36, command: [sleep, infinity]}")}},
	{name: "hostNetwork, port without hostPort, probe host", edits: []edit{hostNet, set("spec.containers[0].livenessProbe.httpGet.host", "127.0.0.1")}},
	{name: "hostname", edits: []edit{set("spec.hostname", "web-1")}},
	{name: "emptyDir on disk shared", edits: []edit{set("spec.volumes[1]", "{name: scratch, emptyDir: {}}"), set("spec.containers[0].volumeMounts[1]", "{name: scratch, mountPath: /scratch}"), set("spec.containers[1]", "{name: side, image: busybox:1.36, volumeMounts: [{name: scratch, mountPath: /scratch, readOnly: true}]}")}},
	{name: "emptyDir in memory", edits: []edit{set("spec.volumes[0]", "{name: data, emptyDir: {medium: Memory, sizeLimit: 1Gi}}")}},
	{name: "secret volume", edits: []edit{set("spec.volumes[1]", "{name: creds, secret: {secretName: creds}}"), set("spec.containers[0].volumeMounts[1]", "{name: creds, mountPath: /etc/creds, readOnly: true}")}},
	{name: "a volume no container mounts", edits: []edit{set("spec.volumes[1]", "{name: spare, hostPath: {path: /srv/spare}}")}},
	{name: "stop signal with os linux", edits: []edit{set("spec.os", "{name: linux}"), set("spec.containers[0].lifecycle", "{stopSignal: SIGQUIT}")}},
	{name: "labels: prefixed key, empty value", edits: []edit{set("metadata.labels", `{app.kubernetes.io/name: web, empty: ""}`)}},
	{name: "names at their longest", edits: []edit{set("metadata.name", strings.Repeat("p", 31)), set("spec.containers[0].name", strings.Repeat("c", 31))}},
	{name: "pod name of 61, container name of 1", edits: []edit{set("metadata.name", strings.Repeat("p", 61)), set("spec.containers[0].name", "a")}},
	{name: "requests equal to limits", edits: []edit{set("spec.containers[0].resources.requests", "{cpu: 500m, memory: 128Mi}")}},
	{name: "quantities in other forms", edits: []edit{set("spec.containers[0].resources.limits", "{cpu: '0.5', memory: 1e9}")}},
	{name: "$(VAR) and $$", edits: []edit{set("spec.containers[0].command", `[sh, -c, "echo $(MODE) $$(HOME)"]`), set("spec.containers[0].args", `["$(NOPE)"]`)}},
	{name: "image by digest, pull Never", edits: []edit{set("spec.containers[0].image", "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), set("spec.containers[0].imagePullPolicy", "Never")}},
	{name: "capabilities", edits: []edit{set("spec.containers[0].securityContext", "{capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}")}},
	{name: "privileged", edits: []edit{set("spec.containers[0].securityContext", "{privileged: true}")}},
	{name: "init containers, restartPolicy Never", edits: []edit{set("spec.restartPolicy", "Never"), set("spec.initContainers", "[{name: one, image: busybox:1.36}, {name: two, image: busybox:1.36, workingDir: /tmp}]")}},
	{name: "readOnly hostPath mount", edits: []edit{set("spec.containers[0].volumeMounts[0].readOnly", "true")}},
	{name: "terminationGracePeriodSeconds 0", edits: []edit{set("spec.terminationGracePeriodSeconds", "0")}},
}

func TestProbesAcceptedAreValid(t *testing.T) {
	accepted := 0
	for _, m := range probes {
		t.Run(m.name, func(t *testing.T) {
			doc, err := mistakeDoc(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := desired.Parse("pod.yaml", doc); err != nil {
				t.Logf("node: refused, which proves nothing here: %v", err)
				return
			}
			accepted++
			requireValid(t, doc)
		})
	}
	t.Logf("the node accepts %d of %d probes", accepted, len(probes))
}
