package desired

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

// basePod is valid; each case of TestPodFields and TestPodErrors changes it.
// Line numbers matter to the tests: keep them.
const basePod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {tier: frontend}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  os: {name: linux}
  volumes:
    - name: site
      hostPath: {path: /srv/site}
    - name: scratch
      emptyDir: {medium: Memory, sizeLimit: 16Mi}
  containers:
    - name: app
      image: nginx:1.27
      imagePullPolicy: Always
      command: [nginx]
      args: ["-g", "daemon off;"]
      env:
        - {name: MODE, value: production}
        - {name: GREETING, value: "hi $(MODE)"}
      workingDir: /srv
      resources:
        limits: {cpu: 500m, memory: 256Mi}
      ports:
        - {name: http, containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}
        - {containerPort: 53, protocol: UDP}
      volumeMounts:
        - {name: site, mountPath: /usr/share/nginx/html, readOnly: true}
        - {name: scratch, mountPath: /tmp}
      livenessProbe:
        httpGet: {port: http, path: /healthz}
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 4
        initialDelaySeconds: 3
      securityContext:
        runAsUser: 101
        runAsGroup: 102
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
      lifecycle: {stopSignal: SIGQUIT}
`

// basePodTask is the task basePod runs as, written as a Task.
const basePodTask = `apiVersion: warren/v1
kind: Task
metadata:
  name: web-app
  labels: {tier: frontend, io.warren.pod: web}
spec:
  image: nginx:1.27
  imagePullPolicy: Always
  command: [nginx]
  args: ["-g", "daemon off;"]
  env:
    - {name: MODE, value: production}
    - {name: GREETING, value: "hi production"}
  workingDir: /srv
  user: "101:102"
  resources: {cpu: 500m, memory: 256Mi}
  mounts:
    - {type: bind, source: /srv/site, target: /usr/share/nginx/html, readOnly: true}
    - {type: tmpfs, target: /tmp, size: 16Mi}
  network: bridge
  ports:
    - {containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}
    - {containerPort: 53, protocol: UDP}
  securityContext:
    readOnlyRootFilesystem: true
    capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
  restartPolicy: OnFailure
  stopSignal: SIGQUIT
  stopGracePeriod: 10s
  healthCheck:
    http: {port: 80, path: /healthz}
    interval: 5s
    timeout: 2s
    retries: 4
    startPeriod: 3s
`

// edit is one replacement: old must occur exactly once.
type edit [2]string

func applyEdits(t *testing.T, base string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if strings.Count(base, e[0]) != 1 {
			t.Fatalf("edit %q must match exactly once in\n%s", e[0], base)
		}
		base = strings.Replace(base, e[0], e[1], 1)
	}
	return base
}

// TestPodFields: each supported field of a pod lands in the right field of
// its task. The want side is a Task manifest, compared whole.
func TestPodFields(t *testing.T) {
	const probeLines = "      livenessProbe:\n        httpGet: {port: http, path: /healthz}\n        periodSeconds: 5\n        timeoutSeconds: 2\n        failureThreshold: 4\n        initialDelaySeconds: 3\n"
	tests := []struct {
		name     string
		pod, tsk []edit
	}{
		{name: "the base pod"},
		{name: "no labels: only the pod's",
			pod: []edit{{"  labels: {tier: frontend}\n", ""}},
			tsk: []edit{{"{tier: frontend, io.warren.pod: web}", "{io.warren.pod: web}"}}},
		{name: "imagePullPolicy defaults as for a task",
			pod: []edit{{"      imagePullPolicy: Always\n", ""}},
			tsk: []edit{{"  imagePullPolicy: Always\n", ""}}},
		{name: "imagePullPolicy Never",
			pod: []edit{{"imagePullPolicy: Always", "imagePullPolicy: Never"}},
			tsk: []edit{{"imagePullPolicy: Always", "imagePullPolicy: Never"}}},
		{name: "no command keeps the image's entrypoint",
			pod: []edit{{"      command: [nginx]\n", ""}},
			tsk: []edit{{"  command: [nginx]\n", ""}}},
		{name: "$(VAR) expands in args as in Kubernetes; $$ is a $",
			pod: []edit{{`args: ["-g", "daemon off;"]`, `args: ["$(GREETING)", "$$(MODE)", "$(NONE)", "$x", "$("]`}},
			tsk: []edit{{`args: ["-g", "daemon off;"]`, `args: ["hi production", "$(MODE)", "$(NONE)", "$x", "$("]`}}},
		{name: "$(VAR) in a value takes only the variables before it",
			pod: []edit{{"        - {name: MODE, value: production}\n        - {name: GREETING, value: \"hi $(MODE)\"}\n",
				"        - {name: GREETING, value: \"hi $(MODE)\"}\n        - {name: MODE, value: production}\n"}},
			tsk: []edit{{"    - {name: MODE, value: production}\n    - {name: GREETING, value: \"hi production\"}\n",
				"    - {name: GREETING, value: \"hi $(MODE)\"}\n    - {name: MODE, value: production}\n"}}},
		{name: "an env var without value is empty",
			pod: []edit{{"        - {name: MODE, value: production}\n", "        - {name: EMPTY}\n        - {name: MODE, value: production}\n"}},
			tsk: []edit{{"    - {name: MODE, value: production}\n", "    - {name: EMPTY, value: \"\"}\n    - {name: MODE, value: production}\n"}}},
		{name: "no workingDir",
			pod: []edit{{"      workingDir: /srv\n", ""}},
			tsk: []edit{{"  workingDir: /srv\n", ""}}},
		{name: "a memory limit alone",
			pod: []edit{{"limits: {cpu: 500m, memory: 256Mi}", "limits: {memory: 256Mi}"}},
			tsk: []edit{{"resources: {cpu: 500m, memory: 256Mi}", "resources: {memory: 256Mi}"}}},
		{name: "requests are ignored (with a warning)",
			pod: []edit{{"limits: {cpu: 500m, memory: 256Mi}\n", "limits: {cpu: 500m, memory: 256Mi}\n        requests: {cpu: 100m, memory: 128Mi}\n"}}},
		{name: "no resources",
			pod: []edit{{"      resources:\n        limits: {cpu: 500m, memory: 256Mi}\n", ""}},
			tsk: []edit{{"  resources: {cpu: 500m, memory: 256Mi}\n", ""}}},
		{name: "hostNetwork: the host's network, ports only listed",
			pod: []edit{{"  os: {name: linux}\n", "  os: {name: linux}\n  hostNetwork: true\n"}, {"hostPort: 8080, hostIP: 127.0.0.1", "hostPort: 80"}},
			tsk: []edit{{"  network: bridge\n  ports:\n    - {containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}\n    - {containerPort: 53, protocol: UDP}\n", "  network: host\n"}}},
		{name: "no ports: still a namespace of its own on the bridge",
			pod: []edit{{"      ports:\n        - {name: http, containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}\n        - {containerPort: 53, protocol: UDP}\n", ""}, {"port: http", "port: 80"}},
			tsk: []edit{{"  ports:\n    - {containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}\n    - {containerPort: 53, protocol: UDP}\n", ""}}},
		{name: "a volume mounted read-write",
			pod: []edit{{"mountPath: /usr/share/nginx/html, readOnly: true", "mountPath: /usr/share/nginx/html"}},
			tsk: []edit{{"target: /usr/share/nginx/html, readOnly: true", "target: /usr/share/nginx/html"}}},
		{name: "a memory emptyDir without sizeLimit",
			pod: []edit{{"emptyDir: {medium: Memory, sizeLimit: 16Mi}", "emptyDir: {medium: Memory}"}},
			tsk: []edit{{"{type: tmpfs, target: /tmp, size: 16Mi}", "{type: tmpfs, target: /tmp}"}}},
		{name: "a probe's port by number",
			pod: []edit{{"port: http", "port: 80"}}},
		{name: "an exec liveness probe",
			pod: []edit{{"httpGet: {port: http, path: /healthz}", "exec: {command: [cat, /tmp/ok]}"}},
			tsk: []edit{{"http: {port: 80, path: /healthz}", "exec: {command: [cat, /tmp/ok]}"}}},
		{name: "a tcpSocket liveness probe",
			pod: []edit{{"httpGet: {port: http, path: /healthz}", "tcpSocket: {port: 53}"}},
			tsk: []edit{{"http: {port: 80, path: /healthz}", "tcp: {port: 53}"}}},
		{name: "an httpGet probe with the defaults of Kubernetes",
			pod: []edit{{probeLines, "      livenessProbe:\n        httpGet: {port: http}\n"}},
			tsk: []edit{{"    http: {port: 80, path: /healthz}\n    interval: 5s\n    timeout: 2s\n    retries: 4\n    startPeriod: 3s\n",
				"    http: {port: 80, path: /}\n    interval: 10s\n    timeout: 1s\n    retries: 3\n"}}},
		{name: "with 127.0.0.1 as the probe's host under hostNetwork",
			pod: []edit{{"  os: {name: linux}\n", "  os: {name: linux}\n  hostNetwork: true\n"}, {"hostPort: 8080, hostIP: 127.0.0.1", "hostPort: 80"},
				{"httpGet: {port: http, path: /healthz}", "httpGet: {port: http, path: /healthz, host: 127.0.0.1, scheme: HTTP}"}},
			tsk: []edit{{"  network: bridge\n  ports:\n    - {containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}\n    - {containerPort: 53, protocol: UDP}\n", "  network: host\n"}}},
		{name: "no livenessProbe: no health check, not even the image's",
			pod: []edit{{probeLines, ""}},
			tsk: []edit{{"  healthCheck:\n    http: {port: 80, path: /healthz}\n    interval: 5s\n    timeout: 2s\n    retries: 4\n    startPeriod: 3s\n", "  healthCheck: {disabled: true}\n"}}},
		{name: "a startupProbe of the same check is the start period",
			pod: []edit{{"        initialDelaySeconds: 3\n", "      startupProbe:\n        httpGet: {port: 80, path: /healthz}\n        periodSeconds: 5\n        timeoutSeconds: 2\n        failureThreshold: 10\n        initialDelaySeconds: 2\n"}},
			tsk: []edit{{"startPeriod: 3s", "startPeriod: 32s"}}}, // 2s, then 10-4 more failures of 5s
		{name: "a readinessProbe the same as the livenessProbe",
			pod: []edit{{"        initialDelaySeconds: 3\n", "        initialDelaySeconds: 3\n      readinessProbe:\n        httpGet: {port: 80, path: /healthz, scheme: HTTP}\n        periodSeconds: 5\n        timeoutSeconds: 2\n        failureThreshold: 4\n        initialDelaySeconds: 3\n        successThreshold: 1\n"}}},
		{name: "a readinessProbe alone: a health check that restarts nothing",
			pod: []edit{{"      livenessProbe:\n", "      readinessProbe:\n"}},
			tsk: []edit{{"    startPeriod: 3s\n", "    startPeriod: 3s\n    onUnhealthy: none\n"}}},
		{name: "runAsUser alone",
			pod: []edit{{"        runAsGroup: 102\n", ""}},
			tsk: []edit{{`user: "101:102"`, `user: "101"`}}},
		{name: "the pod's ids, the container's first",
			pod: []edit{{"  os: {name: linux}\n", "  os: {name: linux}\n  securityContext: {runAsUser: 7, runAsGroup: 8}\n"}, {"        runAsGroup: 102\n", ""}},
			tsk: []edit{{`user: "101:102"`, `user: "101:8"`}}},
		{name: "privileged",
			pod: []edit{{"        allowPrivilegeEscalation: false\n", "        privileged: true\n"}},
			tsk: []edit{{"    readOnlyRootFilesystem: true\n", "    readOnlyRootFilesystem: true\n    privileged: true\n"}}},
		{name: "no securityContext",
			pod: []edit{{"      securityContext:\n        runAsUser: 101\n        runAsGroup: 102\n        readOnlyRootFilesystem: true\n        allowPrivilegeEscalation: false\n        capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}\n", ""}},
			tsk: []edit{{"  user: \"101:102\"\n", ""}, {"  securityContext:\n    readOnlyRootFilesystem: true\n    capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}\n", ""}}},
		{name: "no stop signal: SIGTERM",
			pod: []edit{{"      lifecycle: {stopSignal: SIGQUIT}\n", ""}},
			tsk: []edit{{"  stopSignal: SIGQUIT\n", ""}}},
		{name: "restartPolicy Always by default",
			pod: []edit{{"  restartPolicy: OnFailure\n", ""}},
			tsk: []edit{{"  restartPolicy: OnFailure\n", ""}}},
		{name: "restartPolicy Never",
			pod: []edit{{"restartPolicy: OnFailure", "restartPolicy: Never"}},
			tsk: []edit{{"restartPolicy: OnFailure", "restartPolicy: Never"}}},
		{name: "terminationGracePeriodSeconds 30 by default",
			pod: []edit{{"  terminationGracePeriodSeconds: 10\n", ""}},
			tsk: []edit{{"  stopGracePeriod: 10s\n", ""}}},
		{name: "terminationGracePeriodSeconds 0",
			pod: []edit{{"terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds: 0"}},
			tsk: []edit{{"stopGracePeriod: 10s", "stopGracePeriod: 0s"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("web.yaml", []byte(applyEdits(t, basePod, tc.pod)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := Parse("web.yaml", []byte(applyEdits(t, basePodTask, tc.tsk)))
			if err != nil {
				t.Fatalf("Parse of the wanted task: %v", err)
			}
			want[0].Spec.Pod = "web"
			// What a pod of one container shares (TestPodShared has more).
			want[0].Spec.PodShared = &PodShared{}
			if want[0].Spec.Network == NetworkBridge {
				want[0].Spec.PodShared = &PodShared{Hostname: "web", Ports: want[0].Spec.Ports}
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want[0]) {
				t.Errorf("tasks:\n got %s\nwant %s", taskJSON(got...), taskJSON(want...))
			}
		})
	}
}

// taskJSON shows tasks in a test failure, Spec.Pod included.
func taskJSON(tasks ...Task) string {
	var b strings.Builder
	for _, t := range tasks {
		j, _ := json.Marshal(t)
		sh, _ := json.Marshal(t.Spec.PodShared)
		fmt.Fprintf(&b, "%s pod=%q shared=%s\n", j, t.Spec.Pod, sh)
	}
	return b.String()
}

// TestPodErrors: every refusal names file, line and field; a field that
// Kubernetes has is "valid in Kubernetes, not supported on this node",
// apart from a field that does not exist.
func TestPodErrors(t *testing.T) {
	const (
		notHere = "valid in Kubernetes, not supported on this node"
		notYet  = "valid in Kubernetes, not supported on this node yet: "
	)
	tests := []struct {
		name  string
		edits []edit
		want  []string
	}{
		{"a Kubernetes field this node has not", []edit{{"  restartPolicy: OnFailure\n", "  restartPolicy: OnFailure\n  affinity: {}\n"}},
			[]string{`web.yaml:8: spec.affinity: ` + notHere}},
		{"metadata.namespace", []edit{{"  name: web\n", "  name: web\n  namespace: default\n"}},
			[]string{`web.yaml:5: metadata.namespace: ` + notHere}},
		{"a field Kubernetes has not", []edit{{"  restartPolicy: OnFailure\n", "  restartPolicy: OnFailure\n  bogus: 1\n"}},
			[]string{`web.yaml:8: spec.bogus: unknown field "bogus"`}},
		{"a misspelt field", []edit{{"imagePullPolicy: Always", "imagePullPolcy: Always"}},
			[]string{`web.yaml:18: spec.containers[0].imagePullPolcy: unknown field "imagePullPolcy"`}},
		{"a field in the wrong case", []edit{{"imagePullPolicy: Always", "ImagePullPolicy: Always"}},
			[]string{`web.yaml:18: spec.containers[0].ImagePullPolicy: unknown field "ImagePullPolicy", did you mean "imagePullPolicy"?`}},
		{"env valueFrom", []edit{{"{name: MODE, value: production}", "{name: MODE, valueFrom: {fieldRef: {fieldPath: metadata.name}}}"}},
			[]string{`web.yaml:22: spec.containers[0].env[0].valueFrom: ` + notHere}},
		{"status", []edit{{"      lifecycle: {stopSignal: SIGQUIT}\n", "      lifecycle: {stopSignal: SIGQUIT}\nstatus: {phase: Running}\n"}},
			[]string{`web.yaml:46: status: a manifest does not carry status: remove it (reconciler status shows the pod's containers)`}},
		{"a hostname that is no DNS label", []edit{{"  restartPolicy: OnFailure\n", "  restartPolicy: OnFailure\n  hostname: Web_1\n"}},
			[]string{`web.yaml:8: spec.hostname: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "Web_1"`}},
		{"a hostname with hostNetwork", []edit{{"  restartPolicy: OnFailure\n", "  restartPolicy: OnFailure\n  hostname: web\n  hostNetwork: true\n"}, {"hostPort: 8080, hostIP: 127.0.0.1", "hostPort: 80"}},
			[]string{`web.yaml:8: spec.hostname: has no effect with hostNetwork: true (the containers have the host's name): remove it`}},
		{"a secret volume without secretName", []edit{{"hostPath: {path: /srv/site}", "secret: {}"}},
			[]string{`web.yaml:12: spec.volumes[0].secret.secretName: required: the name of the secret (here, a directory of that name in an allowed secret source)`}},
		{"a secret volume of a bad name", []edit{{"hostPath: {path: /srv/site}", "secret: {secretName: ../etc}"}},
			[]string{`web.yaml:12: spec.volumes[0].secret.secretName: must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.'), got "../etc"`}},
		{"a secret volume's items", []edit{{"hostPath: {path: /srv/site}", "secret: {secretName: site, items: [{key: a, path: b}]}"}},
			[]string{`web.yaml:12: spec.volumes[0].secret.items: ` + notHere}},
		{"a secret volume and a hostPath", []edit{{"hostPath: {path: /srv/site}", "hostPath: {path: /srv/site}\n      secret: {secretName: site}"}},
			[]string{`web.yaml:11: spec.volumes[0]: may not specify more than one volume source, got hostPath and secret`}},
		{"a sizeLimit of an emptyDir on disk", []edit{{"emptyDir: {medium: Memory, sizeLimit: 16Mi}", "emptyDir: {sizeLimit: 16Mi}"}},
			[]string{`web.yaml:14: spec.volumes[1].emptyDir.sizeLimit: ` + notYet + `a sizeLimit of an emptyDir on disk (the kubelet evicts the pod past it; nothing here would): leave it out, or use medium: Memory, whose sizeLimit is the tmpfs's size`}},
		{"a memory emptyDir mounted twice", []edit{{"        - {name: scratch, mountPath: /tmp}\n", "        - {name: scratch, mountPath: /tmp}\n        - {name: scratch, mountPath: /var/tmp}\n"}},
			[]string{`web.yaml:33: spec.containers[0].volumeMounts[2]: ` + notYet + `an emptyDir of medium: Memory shared by several mounts (here and spec.containers[0].volumeMounts[1]) is not built yet; each would be a tmpfs of its own: use an emptyDir on disk (no medium) to share one`}},
		{"an emptyDir in HugePages", []edit{{"medium: Memory", "medium: HugePages"}},
			[]string{`web.yaml:14: spec.volumes[1].emptyDir.medium: ` + notHere + `: HugePages`}},
		{"a hostPath type", []edit{{"hostPath: {path: /srv/site}", "hostPath: {path: /srv/site, type: Directory}"}},
			[]string{`web.yaml:12: spec.volumes[0].hostPath.type: ` + notYet + `"Directory" (the path must exist already; its kind is not checked): leave type out`}},
		{"a relative hostPath", []edit{{"hostPath: {path: /srv/site}", "hostPath: {path: srv/site}"}},
			[]string{`web.yaml:12: spec.volumes[0].hostPath.path: must be an absolute path, got "srv/site"`}},
		{"two volumes of one name", []edit{{"    - name: scratch\n", "    - name: site\n"}},
			[]string{
				`web.yaml:13: spec.volumes[1].name: duplicate volume name "site", first at spec.volumes[0].name`,
				`web.yaml:32: spec.containers[0].volumeMounts[1].name: no volume "scratch" in spec.volumes`,
			}},
		{"a volume of two sources", []edit{{"hostPath: {path: /srv/site}", "hostPath: {path: /srv/site}\n      emptyDir: {medium: Memory}"}},
			[]string{`web.yaml:11: spec.volumes[0]: may not specify more than one volume source, got hostPath and emptyDir`}},
		{"a memory emptyDir's size", []edit{{"sizeLimit: 16Mi", "sizeLimit: 0"}},
			[]string{`web.yaml:14: spec.volumes[1].emptyDir.sizeLimit: quantities must be positive, got "0"`}},
		{"a readinessProbe of its own", []edit{{"        initialDelaySeconds: 3\n", "        initialDelaySeconds: 3\n      readinessProbe:\n        tcpSocket: {port: 80}\n"}},
			[]string{`web.yaml:39: spec.containers[0].readinessProbe: ` + notYet + `a readinessProbe other than the livenessProbe (a container has one health check here: a livenessProbe, which also gates rollouts and dependsOn, or a readinessProbe alone, which restarts nothing)`}},
		{"a startupProbe of another check", []edit{{"        initialDelaySeconds: 3\n", "      startupProbe:\n        tcpSocket: {port: 80}\n"}},
			[]string{`web.yaml:38: spec.containers[0].startupProbe: ` + notYet + `its handler differs from the livenessProbe's (a startup probe here is the start period of the livenessProbe: the same handler, periodSeconds and timeoutSeconds, a failureThreshold at least the livenessProbe's, and no initialDelaySeconds on the livenessProbe)`}},
		{"a startupProbe beside a livenessProbe with initialDelaySeconds", []edit{{"        initialDelaySeconds: 3\n", "        initialDelaySeconds: 3\n      startupProbe:\n        httpGet: {port: http, path: /healthz}\n        periodSeconds: 5\n        timeoutSeconds: 2\n        failureThreshold: 4\n"}},
			[]string{`web.yaml:39: spec.containers[0].startupProbe: ` + notYet + `the livenessProbe has initialDelaySeconds too (a startup probe here is the start period of the livenessProbe: the same handler, periodSeconds and timeoutSeconds, a failureThreshold at least the livenessProbe's, and no initialDelaySeconds on the livenessProbe)`}},
		{"a startupProbe without livenessProbe", []edit{{"      livenessProbe:\n", "      startupProbe:\n"}},
			[]string{`web.yaml:33: spec.containers[0].startupProbe: ` + notYet + `a startupProbe without a livenessProbe (here a startup probe is the start period of the liveness probe)`}},
		{"a grpc probe", []edit{{"httpGet: {port: http, path: /healthz}", "grpc: {port: 80}"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.grpc: ` + notHere}},
		{"a probe without handler", []edit{{"        httpGet: {port: http, path: /healthz}\n", ""}},
			[]string{`web.yaml:33: spec.containers[0].livenessProbe: needs exactly one handler: exec, httpGet or tcpSocket`}},
		{"a probe of two handlers", []edit{{"httpGet: {port: http, path: /healthz}", "httpGet: {port: http, path: /healthz}\n        tcpSocket: {port: 80}"}},
			[]string{`web.yaml:33: spec.containers[0].livenessProbe: may not specify more than one handler, got httpGet and tcpSocket`}},
		{"an HTTPS probe", []edit{{"path: /healthz}", "path: /healthz, scheme: HTTPS}"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.httpGet.scheme: ` + notYet + `HTTPS (the probe speaks plain HTTP)`}},
		{"a probe's host on the bridge", []edit{{"path: /healthz}", "path: /healthz, host: 10.0.0.1}"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.httpGet.host: ` + notYet + `"10.0.0.1" (the probe dials the container's own address: leave host out, or 127.0.0.1 with hostNetwork: true)`}},
		{"a probe's unknown port name", []edit{{"port: http", "port: https"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.httpGet.port: no port named "https" in the container's ports`}},
		{"a probe's port out of range", []edit{{"port: http", "port: 70000"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.httpGet.port: must be a port from 1 to 65535, got 70000`}},
		{"a probe's path", []edit{{"path: /healthz", "path: healthz"}},
			[]string{`web.yaml:34: spec.containers[0].livenessProbe.httpGet.path: must start with "/", got "healthz"`}},
		{"a liveness probe's successThreshold", []edit{{"failureThreshold: 4", "failureThreshold: 4\n        successThreshold: 2"}},
			[]string{`web.yaml:38: spec.containers[0].livenessProbe.successThreshold: must be 1, as Kubernetes requires of this probe, got 2`}},
		{"a negative periodSeconds", []edit{{"periodSeconds: 5", "periodSeconds: -5"}},
			[]string{`web.yaml:35: spec.containers[0].livenessProbe.periodSeconds: must be from 0 to 2147483647, got -5`}},
		{"allowPrivilegeEscalation", []edit{{"allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"}},
			[]string{`web.yaml:43: spec.containers[0].securityContext.allowPrivilegeEscalation: ` + notHere + `: true (every process here runs with no-new-privileges; false is the default)`}},
		{"allowPrivilegeEscalation false beside privileged", []edit{{"        readOnlyRootFilesystem: true\n", "        readOnlyRootFilesystem: true\n        privileged: true\n"}},
			[]string{`web.yaml:44: spec.containers[0].securityContext.allowPrivilegeEscalation: false cannot go with privileged: true (Kubernetes refuses it)`}},
		{"runAsGroup without runAsUser", []edit{{"        runAsUser: 101\n", ""}},
			[]string{`web.yaml:40: spec.containers[0].securityContext.runAsGroup: ` + notYet + `runAsGroup without runAsUser (the image's user would need its /etc/passwd, which is not read): set runAsUser too`}},
		{"a negative runAsUser", []edit{{"runAsUser: 101", "runAsUser: -1"}},
			[]string{`web.yaml:40: spec.containers[0].securityContext.runAsUser: must be from 0 to 2147483647, got -1`}},
		{"a capability that is none", []edit{{"add: [NET_BIND_SERVICE]", "add: [NET_BIND]"}},
			[]string{`web.yaml:44: spec.containers[0].securityContext.capabilities.add[0]: unknown capability "NET_BIND"; known are the Linux capabilities such as NET_BIND_SERVICE or CAP_NET_ADMIN`}},
		{"a stop signal as a task writes it", []edit{{"stopSignal: SIGQUIT", "stopSignal: quit"}},
			[]string{`web.yaml:45: spec.containers[0].lifecycle.stopSignal: must be a signal name as Kubernetes writes it, such as SIGTERM, SIGINT or SIGQUIT, got "quit"`}},
		{"a stop signal without spec.os", []edit{{"  os: {name: linux}\n", ""}},
			[]string{`web.yaml:44: spec.containers[0].lifecycle.stopSignal: needs spec.os.name: linux (Kubernetes refuses a stop signal without it)`}},
		{"windows", []edit{{"os: {name: linux}", "os: {name: windows}"}},
			[]string{`web.yaml:9: spec.os.name: ` + notHere + `: windows (this node runs Linux containers)`}},
		{"preStop", []edit{{"lifecycle: {stopSignal: SIGQUIT}", "lifecycle: {stopSignal: SIGQUIT, preStop: {exec: {command: [x]}}}"}},
			[]string{`web.yaml:45: spec.containers[0].lifecycle.preStop: ` + notHere}},
		{"a pod name that is no DNS label", []edit{{"  name: web\n", "  name: my.web\n"}},
			[]string{`web.yaml:4: metadata.name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit) on this node, where the containers run as tasks named POD-CONTAINER, got "my.web"`}},
		{"a task name too long", []edit{{"  name: web\n", "  name: " + strings.Repeat("a", 60) + "\n"}},
			[]string{`web.yaml:16: spec.containers[0].name: with metadata.name "` + strings.Repeat("a", 60) + `" this container runs as task "` + strings.Repeat("a", 60) + `-app", 64 characters, and a task name is at most 63: shorten metadata.name or this name`}},
		{"a container name", []edit{{"    - name: app\n", "    - name: App\n"}},
			[]string{`web.yaml:16: spec.containers[0].name: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "App"`}},
		{"an init container and a container of one name", []edit{{"  containers:\n", "  initContainers:\n    - {name: app, image: busybox:1}\n  containers:\n"}},
			[]string{`web.yaml:18: spec.containers[0].name: duplicate container name "app", first at spec.initContainers[0].name`}},
		{"the node's label", []edit{{"labels: {tier: frontend}", "labels: {tier: frontend, io.warren.pod: other}"}},
			[]string{`web.yaml:5: metadata.labels.io.warren.pod: is set by the node to the pod's name on each of its tasks; remove it`}},
		{"a label Kubernetes refuses", []edit{{"labels: {tier: frontend}", "labels: {tier: front end}"}},
			[]string{`web.yaml:5: metadata.labels.tier: a Kubernetes label value is empty or at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, got "front end"`}},
		{"restartPolicy", []edit{{"restartPolicy: OnFailure", "restartPolicy: onfailure"}},
			[]string{`web.yaml:7: spec.restartPolicy: must be one of Always, OnFailure, Never, got "onfailure"; did you mean "OnFailure"?`}},
		{"a negative grace period", []edit{{"terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds: -1"}},
			[]string{`web.yaml:8: spec.terminationGracePeriodSeconds: must not be negative, got -1`}},
		{"a limit other than cpu and memory", []edit{{"limits: {cpu: 500m, memory: 256Mi}", "limits: {cpu: 500m, memory: 256Mi, ephemeral-storage: 1Gi}"}},
			[]string{`web.yaml:26: spec.containers[0].resources.limits.ephemeral-storage: ` + notHere + `: only the cpu and memory limits are applied here`}},
		{"a request above its limit", []edit{{"limits: {cpu: 500m, memory: 256Mi}\n", "limits: {cpu: 500m, memory: 256Mi}\n        requests: {cpu: 600m}\n"}},
			[]string{`web.yaml:27: spec.containers[0].resources.requests.cpu: must be less than or equal to the cpu limit (500m), as Kubernetes requires, got "600m"`}},
		{"a cpu limit of 0", []edit{{"cpu: 500m", "cpu: 0"}},
			[]string{`web.yaml:26: spec.containers[0].resources.limits.cpu: quantities must be positive, got "0"`}},
		{"no image", []edit{{"      image: nginx:1.27\n", ""}},
			[]string{`web.yaml:16: spec.containers[0].image: required`}},
		{"an env var twice", []edit{{"{name: GREETING,", "{name: MODE,"}},
			[]string{`web.yaml:23: spec.containers[0].env[1].name: duplicate environment variable "MODE", first at spec.containers[0].env[0]`}},
		{"a volume that is not there", []edit{{"{name: site, mountPath", "{name: www, mountPath"}},
			[]string{`web.yaml:31: spec.containers[0].volumeMounts[0].name: no volume "www" in spec.volumes`}},
		{"a relative mountPath", []edit{{"mountPath: /tmp", "mountPath: tmp"}},
			[]string{`web.yaml:32: spec.containers[0].volumeMounts[1].mountPath: must be an absolute path, got "tmp"`}},
		{"subPath", []edit{{"mountPath: /tmp}", "mountPath: /tmp, subPath: x}"}},
			[]string{`web.yaml:32: spec.containers[0].volumeMounts[1].subPath: ` + notHere}},
		{"a port name", []edit{{"{name: http,", "{name: web_http,"}},
			[]string{
				`web.yaml:28: spec.containers[0].ports[0].name: must be an IANA service name (at most 15 lower-case letters, digits and '-', with a letter, no '--', starting and ending with a letter or digit), got "web_http"`,
				`web.yaml:34: spec.containers[0].livenessProbe.httpGet.port: no port named "http" in the container's ports`,
			}},
		{"SCTP", []edit{{"protocol: UDP", "protocol: SCTP"}},
			[]string{`web.yaml:29: spec.containers[0].ports[1].protocol: ` + notHere + `: SCTP`}},
		{"a containerPort of the wrong type", []edit{{"containerPort: 53", "containerPort: dns"}},
			[]string{`web.yaml:29: spec.containers[0].ports[1].containerPort: must be an integer, got "dns"`}},
		{"a hostPort twice", []edit{{"{containerPort: 53, protocol: UDP}", "{containerPort: 81, hostPort: 8080}"}},
			[]string{`web.yaml:29: spec.containers[0].ports[1].hostPort: 8080/TCP is already published at spec.containers[0].ports[0]`}},
		{"hostNetwork with a hostPort of another number", []edit{{"  os: {name: linux}\n", "  os: {name: linux}\n  hostNetwork: true\n"}},
			[]string{
				`web.yaml:29: spec.containers[0].ports[0].hostPort: must equal containerPort (80) with hostNetwork: true, as in Kubernetes: the container binds the host's port itself, got 8080`,
				`web.yaml:29: spec.containers[0].ports[0].hostIP: has no effect with hostNetwork: true (the container binds the host's addresses itself): remove it`,
			}},
		{"an init container's probe", []edit{{"  containers:\n", "  initContainers:\n    - {name: init, image: busybox:1, livenessProbe: {exec: {command: [x]}}}\n  containers:\n"}},
			[]string{`web.yaml:16: spec.initContainers[0].livenessProbe: may not be set for an init container (as in Kubernetes)`}},
		{"a sidecar", []edit{{"  containers:\n", "  initContainers:\n    - {name: init, image: busybox:1, restartPolicy: Always}\n  containers:\n"}},
			[]string{`web.yaml:16: spec.initContainers[0].restartPolicy: ` + notYet + `an init container that keeps running (a sidecar) is not built yet`}},
		{"another Kubernetes kind", []edit{{"kind: Pod", "kind: Service"}},
			[]string{`web.yaml:2: kind: must be "Pod" for apiVersion "v1", the only Kubernetes kind this node runs (a Task's apiVersion is "warren/v1"), got "Service"`}},
	}
	tests = append(tests, struct {
		name  string
		edits []edit
		want  []string
	}{"no container", []edit{{basePod[strings.Index(basePod, "  containers:\n"):], "  containers: []\n"}},
		[]string{`web.yaml:15: spec.containers: required: at least one container`}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := applyEdits(t, basePod, tc.edits)
			tasks, err := Parse("web.yaml", []byte(doc))
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
			if tasks != nil {
				t.Errorf("tasks returned with errors")
			}
		})
	}
}

// TestPodInitContainers: init containers run as tasks POD-NAME in order,
// each waiting for the one before to complete, the containers for the last.
func TestPodInitContainers(t *testing.T) {
	doc := func(policy, network string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
` + policy + network + `  initContainers:
    - {name: fetch, image: busybox:1, command: [wget, http://example.com/x]}
    - {name: migrate, image: busybox:1}
  containers:
    - {name: app, image: busybox:1}
`
	}
	type want struct {
		name    string
		policy  RestartPolicy
		network NetworkMode
		deps    []Dependency
	}
	completed := func(task string) []Dependency { return []Dependency{{Task: task, Condition: DependCompleted}} }
	for _, tc := range []struct {
		name   string
		policy string
		hostNw string
		want   []want
	}{
		{"Always: init containers OnFailure", "", "", []want{
			{"p-fetch", RestartOnFailure, NetworkBridge, nil},
			{"p-migrate", RestartOnFailure, NetworkBridge, completed("p-fetch")},
			{"p-app", RestartAlways, NetworkBridge, completed("p-migrate")},
		}},
		{"OnFailure", "  restartPolicy: OnFailure\n", "  hostNetwork: true\n", []want{
			{"p-fetch", RestartOnFailure, NetworkHost, nil},
			{"p-migrate", RestartOnFailure, NetworkHost, completed("p-fetch")},
			{"p-app", RestartOnFailure, NetworkHost, completed("p-migrate")},
		}},
		{"Never: init containers Never", "  restartPolicy: Never\n", "", []want{
			{"p-fetch", RestartNever, NetworkBridge, nil},
			{"p-migrate", RestartNever, NetworkBridge, completed("p-fetch")},
			{"p-app", RestartNever, NetworkBridge, completed("p-migrate")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks, err := Parse("p.yaml", []byte(doc(tc.policy, tc.hostNw)))
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != len(tc.want) {
				t.Fatalf("%d tasks, want %d: %s", len(tasks), len(tc.want), taskJSON(tasks...))
			}
			for i, w := range tc.want {
				s := tasks[i].Spec
				if tasks[i].Metadata.Name != w.name || s.RestartPolicy != w.policy || s.Network != w.network ||
					!reflect.DeepEqual(s.DependsOn, w.deps) || s.Pod != "p" || tasks[i].Metadata.Labels[LabelPod] != "p" {
					t.Errorf("task %d: %s, want %+v", i, taskJSON(tasks[i]), w)
				}
				if h := s.HealthCheck; h == nil || !h.Disabled {
					t.Errorf("task %d: health check %+v, want none at all", i, h)
				}
			}
		})
	}
}

// TestPodTaskNameClash: a pod's container and a task of one name clash as
// two tasks do: in two files both are broken, each naming the other; in one
// file the second is a duplicate.
func TestPodTaskNameClash(t *testing.T) {
	task := "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: web-app\nspec: {image: busybox:1}\n"
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", task)
	writeFile(t, dir, "b.yaml", basePod)
	st := NewLoader(dir, InsecureDir()).Load()
	want := map[string]string{
		"a.yaml": `a.yaml:4: metadata.name: task "web-app" is also defined in b.yaml:16; neither definition is applied, the task keeps its previous spec until only one file defines it`,
		"b.yaml": `b.yaml:16: spec.containers[0].name: task "web-app" is also defined in a.yaml:4; neither definition is applied, the task keeps its previous spec until only one file defines it`,
	}
	for f, w := range want {
		if err := st.Broken[f]; err == nil || err.Error() != w {
			t.Errorf("%s: %v\nwant %s", f, err, w)
		}
	}
	if len(st.Tasks) != 0 {
		t.Errorf("tasks %v", st.Tasks)
	}

	_, err := Parse("c.yaml", []byte(basePod+"---\n"+task))
	if w := `c.yaml:50: document 2: metadata.name: duplicate task name "web-app", first defined at line 16`; err == nil || err.Error() != w {
		t.Errorf("one file: %v\nwant %s", err, w)
	}

	// A host port of a pod and of a task.
	dir = t.TempDir()
	writeFile(t, dir, "a.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: other}\nspec:\n  image: busybox:1\n  network: bridge\n  ports: [{containerPort: 1, hostPort: 8080}]\n")
	writeFile(t, dir, "b.yaml", basePod)
	st = NewLoader(dir, InsecureDir()).Load()
	if w := `b.yaml:28: spec.containers[0].ports[0].hostPort: host port 8080/TCP is also published by task other (a.yaml)`; st.Broken["b.yaml"] == nil || st.Broken["b.yaml"].Error() != w {
		t.Errorf("b.yaml: %v\nwant %s", st.Broken["b.yaml"], w)
	}
}

// TestPodWarnings: what a valid pod asks for that has no effect is said,
// by Parse and on the loaded State.
func TestPodWarnings(t *testing.T) {
	doc := applyEdits(t, basePod, []edit{
		{"limits: {cpu: 500m, memory: 256Mi}\n", "limits: {cpu: 500m, memory: 256Mi}\n        requests: {cpu: 100m}\n"},
		{"  volumes:\n", "  volumes:\n    - name: spare\n      hostPath: {path: /srv/spare}\n"},
	})
	want := []string{
		`web.yaml:11: spec.volumes[0]: volume "spare" is mounted by no container: it has no effect`,
		`web.yaml:29: spec.containers[0].resources.requests: ignored on this node: requests reserve capacity for a cluster's scheduler, and there is none here; the limits are applied`,
	}
	_, warns, err := ParseWithWarnings("web.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}

	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", doc)
	writeFile(t, dir, "plain.yaml", strings.NewReplacer("name: web\n", "name: plain\n", "hostPort: 8080", "hostPort: 8081").Replace(basePod))
	writeFile(t, dir, "broken.yaml", strings.Replace(doc, "name: web\n", "name: Web\n", 1))
	st := NewLoader(dir, InsecureDir()).Load()
	if len(st.Warnings) != 1 || len(st.Warnings["web.yaml"]) != 2 {
		t.Errorf("State.Warnings = %v, want the two of web.yaml only (none for a file without, nor for a broken one)", st.Warnings)
	}
	if _, warns, _ := ParseWithWarnings("web.yaml", []byte(basePod)); warns != nil {
		t.Errorf("warnings of the base pod: %v", warns)
	}
}

// TestPodHash: a pod's name takes part in its tasks' hash; the same
// container in another pod, or as a task, is another container.
func TestPodHash(t *testing.T) {
	pod, err := Parse("web.yaml", []byte(basePod))
	if err != nil {
		t.Fatal(err)
	}
	task, err := Parse("web.yaml", []byte(basePodTask))
	if err != nil {
		t.Fatal(err)
	}
	if pod[0].Hash() == task[0].Hash() {
		t.Error("a pod's container hashes as the task of the same spec")
	}
	other := pod[0]
	other.Spec.Pod = "web2"
	if other.Hash() == pod[0].Hash() {
		t.Error("the pod's name does not change the hash")
	}
	task[0].Spec.Pod = "web"
	task[0].Spec.PodShared = &PodShared{Hostname: "web", Ports: task[0].Spec.Ports}
	if task[0].Hash() != pod[0].Hash() {
		t.Error("the same spec in the same pod hashes differently")
	}
	if c := pod[0].clone(); c.Spec.Pod != "web" || !reflect.DeepEqual(c.Spec.PodShared, pod[0].Spec.PodShared) {
		t.Error("clone loses the pod")
	}
	shared := pod[0]
	shared.Spec.PodShared = &PodShared{Hostname: "other", Ports: pod[0].Spec.Ports}
	if shared.Hash() == pod[0].Hash() {
		t.Error("what the pod shares does not change the hash")
	}
}

// TestPodShared: every container of a pod shares one PodShared: on the
// bridge the pod's host name (spec.hostname, else its name) and the ports
// of every container, init containers' too; with hostNetwork, nothing but
// the IPC namespace. An emptyDir on disk is a pod directory.
func TestPodShared(t *testing.T) {
	const two = `apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  HOSTNAME
  initContainers:
    - {name: setup, image: busybox:1, ports: [{containerPort: 9000}]}
  containers:
    - name: web
      image: busybox:1
      ports: [{containerPort: 80, hostPort: 8080}]
      volumeMounts: [{name: data, mountPath: /data}]
    - name: side
      image: busybox:1
      ports: [{containerPort: 81}]
      volumeMounts: [{name: data, mountPath: /shared, readOnly: true}]
  volumes:
    - {name: data, emptyDir: {}}
`
	ports := []Port{{ContainerPort: 9000, Protocol: ProtocolTCP}, {ContainerPort: 80, HostPort: 8080, Protocol: ProtocolTCP}, {ContainerPort: 81, Protocol: ProtocolTCP}}
	tests := []struct {
		name, hostname string
		want           *PodShared
	}{
		{"the pod's name", "", &PodShared{Hostname: "duo", Ports: ports}},
		{"spec.hostname", "hostname: box", &PodShared{Hostname: "box", Ports: ports}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tasks, err := Parse("duo.yaml", []byte(strings.Replace(two, "HOSTNAME", tc.hostname, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != 3 {
				t.Fatalf("%d tasks, want 3", len(tasks))
			}
			for _, task := range tasks {
				if !reflect.DeepEqual(task.Spec.PodShared, tc.want) {
					t.Errorf("%s shares %+v, want %+v", task.Metadata.Name, task.Spec.PodShared, tc.want)
				}
			}
			want := [][]Mount{nil, {{Type: MountPodDir, Source: "data", Target: "/data"}}, {{Type: MountPodDir, Source: "data", Target: "/shared", ReadOnly: true}}}
			for i, task := range tasks {
				if !reflect.DeepEqual(task.Spec.Mounts, want[i]) {
					t.Errorf("%s mounts %+v, want %+v", task.Metadata.Name, task.Spec.Mounts, want[i])
				}
			}
		})
	}
}

// TestPodSecretVolume: a secret volume is a read-only mount of type
// secret (readOnly: false or not), its source the secret's name.
func TestPodSecretVolume(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
    - name: main
      image: busybox:1
      volumeMounts: [{name: creds, mountPath: /etc/creds}]
  volumes:
    - {name: creds, secret: {secretName: db.credentials}}
`
	tasks, err := Parse("app.yaml", []byte(pod))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{Type: MountPodSecret, Source: "db.credentials", Target: "/etc/creds", ReadOnly: true}}
	if len(tasks) != 1 || !reflect.DeepEqual(tasks[0].Spec.Mounts, want) {
		t.Errorf("mounts %+v, want %+v", tasks, want)
	}
}

// TestTaskMountPodDir: a Task cannot mount a pod's directory or secret.
func TestTaskMountPodDir(t *testing.T) {
	for _, typ := range []MountType{MountPodDir, MountPodSecret} {
		_, err := Parse("t.yaml", []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  image: busybox:1\n  mounts: [{type: "+string(typ)+", source: data, target: /data}]\n"))
		if err == nil || !strings.Contains(err.Error(), "t.yaml:6: spec.mounts[0].type: must be one of bind, volume, tmpfs") {
			t.Errorf("%s: got %v, want the mount type refused", typ, err)
		}
	}
}

// TestPodUnknownFieldsAreKubernetesFields checks the pod types against the
// list of Kubernetes' Pod fields: every field the parser takes is a
// Kubernetes field (so a Pod accepted here is Kubernetes YAML).
func TestPodUnknownFieldsAreKubernetesFields(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			if typ.Kind() == reflect.Slice {
				prefix += "[]"
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || reflect.PointerTo(typ).Implements(unmarshalerType) {
			return // a value, not fields (PodPortRef, Quantity)
		}
		for _, f := range structFields(typ) {
			p := joinPath(prefix, f.name)
			if !KubernetesPodField(p) {
				t.Errorf("%s is no field of a Kubernetes Pod", p)
			}
			walk(f.typ, p)
		}
	}
	walk(podType, "")
}

// TestPodGolden checks the whole output for the pods of testdata/pod: the
// errors, or each task's name, hash and spec, and the warnings. Run with
// -update to rewrite the .golden files after a deliberate change.
func TestPodGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "pod", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			tasks, warns, err := ParseWithWarnings(f, data)
			if err != nil {
				b.WriteString(err.Error() + "\n")
			}
			for _, w := range warns {
				b.WriteString("warning: " + w.String() + "\n")
			}
			for _, task := range tasks {
				spec, _ := json.MarshalIndent(task.Spec, "  ", "  ")
				fmt.Fprintf(&b, "%s %s pod=%s labels=%v\n  %s\n", task.Metadata.Name, task.Hash(), task.Spec.Pod, task.Metadata.Labels, spec)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (run with -update after a deliberate change):\n got:\n%s\nwant:\n%s", golden, b.String(), want)
			}
		})
	}
}

// TestPodDocsNameEveryField: docs/pods.md names every field the pod types
// take.
func TestPodDocsNameEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "pods.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || reflect.PointerTo(typ).Implements(unmarshalerType) || seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range structFields(typ) {
			p := joinPath(prefix, f.name)
			if !regexp.MustCompile("`[^`\n]*\\b" + regexp.QuoteMeta(f.name) + "\\b[^`\n]*`").Match(doc) {
				t.Errorf("docs/pods.md does not name %s", p)
			}
			walk(f.typ, p)
		}
	}
	walk(podType, "")
}

// TestPodFromConvert: the Pod that `reconciler convert` makes of a task
// parses here, and runs the same process (image, command, args, env,
// limits).
func TestPodFromConvert(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "manifests", "examples", "*.yaml"))
	files = append(files, filepath.Join("testdata", "parse", "full.yaml"), filepath.Join("testdata", "parse", "valid.yaml"))
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := Parse(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Spec.Pod != "" {
				continue
			}
			pod, _ := ToPod(task)
			y, err := KubeYAML(pod)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse("pod.yaml", y)
			if err != nil {
				t.Errorf("%s: the Pod of task %s is refused: %v\n%s", f, task.Metadata.Name, err, y)
				continue
			}
			a, b := task.Spec, back[0].Spec
			if a.Image != b.Image || !reflect.DeepEqual(a.Command, b.Command) || !reflect.DeepEqual(a.Args, b.Args) ||
				!reflect.DeepEqual(a.Env, b.Env) || (a.Resources == nil) != (b.Resources == nil) ||
				(a.Resources != nil && (!sameQuantity(a.Resources.CPU, b.Resources.CPU) || !sameQuantity(a.Resources.Memory, b.Resources.Memory))) {
				t.Errorf("%s: task %s and its Pod differ: %v", f, task.Metadata.Name, Diff(a, b))
			}
			n++
		}
	}
	if n < 5 {
		t.Errorf("only %d tasks converted", n)
	}
}

func sameQuantity(a, b *resource.Quantity) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Cmp(*b) == 0)
}
