package desired

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// TestKubeGolden checks the Pod and the Deployment of each task of
// testdata/convert/*.yaml, with their warnings, against NAME.pod.golden
// and NAME.deployment.golden; run with -update after a deliberate change.
func TestKubeGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "convert", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := Parse(f, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, kind := range []string{KubeKindPod, KubeKindDeployment} {
			t.Run(filepath.Base(f)+"/"+kind, func(t *testing.T) {
				var b strings.Builder
				for _, task := range tasks {
					obj, warnings, err := ToKubernetes(task, kind)
					if err != nil {
						t.Fatal(err)
					}
					y, err := KubeYAML(obj)
					if err != nil {
						t.Fatal(err)
					}
					b.WriteString("---\n")
					b.Write(y)
					for _, w := range warnings {
						b.WriteString("# warning: " + w.String() + "\n")
					}
				}
				golden := strings.TrimSuffix(f, ".yaml") + "." + strings.ToLower(kind) + ".golden"
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
}

// kubeBase is a task whose only warning is the one of its network; each
// case of TestKubeWarnings changes one thing.
const kubeBase = `apiVersion: warren/v1
kind: Task
metadata: {name: web}
spec:
  image: nginx:1.27
  network: bridge
`

func TestKubeWarnings(t *testing.T) {
	tests := []struct {
		name   string
		spec   string // appended to kubeBase's spec
		labels string // metadata.labels, flow style
		kind   string // default Pod
		want   []string
	}{
		{name: "base", want: []string{"spec.network: bridge is the pod network; other tasks reach this one by its name, which in Kubernetes takes a Service named web"}},
		{name: "host network", spec: "  network: host\n", want: []string{"spec.network: host (the default) is hostNetwork: true; Pod Security's baseline level refuses it"}},
		{name: "no network", spec: "  network: none\n", want: []string{"spec.network: none has no Kubernetes equivalent (a pod always has the pod network); dropped: a NetworkPolicy"}},
		{name: "label not valid in Kubernetes", labels: `{ok: "yes", "a b": x, long: ` + strings.Repeat("x", 64) + `, "Example.com/x": "y"}`, want: []string{
			`metadata.labels.Example.com/x: the key's prefix "Example.com" is not a DNS subdomain`,
			`metadata.labels.a b: the key "a b" is not a Kubernetes label name`,
			`metadata.labels.long: the value "xxx`,
			"spec.network: "}},
		{name: "host port", spec: "  ports: [{containerPort: 80, hostPort: 8080}]\n", want: []string{"spec.network: ", "spec.ports[0].hostPort: kept; the node's --allowed-host-ports has no Kubernetes equivalent"}},
		{name: "pids", spec: "  resources: {cpu: 1, pids: 10}\n", want: []string{"spec.network: ", "spec.resources.pids: no per-pod field in Kubernetes (the kubelet's podPidsLimit caps every pod of a node alike); dropped"}},
		{name: "named volume", spec: "  mounts: [{type: volume, source: data, target: /data}]\n", want: []string{"spec.network: ", "spec.mounts[0]: named volume data at /data has no Pod equivalent (it outlives every container on this node); dropped: create a PersistentVolumeClaim and mount it at /data"}},
		{name: "bind mount", spec: "  mounts: [{type: tmpfs, target: /tmp}, {type: bind, source: /srv, target: /srv}]\n", want: []string{"spec.network: ", "spec.mounts[1]: bind mount of /srv is a hostPath volume; the node's --allowed-bind-sources has no Kubernetes equivalent"}},
		{name: "secret of the node", spec: "  secrets: [{name: key, file: /etc/reconciler/secrets/k}]\n", want: []string{"spec.network: ", "spec.secrets[0]: the node's file /etc/reconciler/secrets/k at /run/secrets/key has no Kubernetes equivalent (a pod cannot read a node's file as a secret); dropped: put it in a Secret (kubectl create secret generic web --from-file=key=/etc/reconciler/secrets/k) and mount it with a secret volume at /run/secrets"}},
		{name: "age secret of the directory", spec: "  secrets: [{name: db, file: db.age}]\n", want: []string{"spec.network: ", "spec.secrets[0]: the file db.age of the manifests directory at /run/secrets/db has no Kubernetes equivalent (a pod cannot read a node's file as a secret); dropped: put it in a Secret (kubectl create secret generic web --from-file=db=CLEARTEXT (age -d -i IDENTITY -o CLEARTEXT db.age))"}},
		{name: "privileged", spec: "  securityContext: {privileged: true}\n", want: []string{"spec.network: ", "spec.securityContext.privileged: kept; the node's --allow-privileged has no Kubernetes equivalent"}},
		{name: "capability beyond baseline", spec: "  securityContext: {capabilities: {add: [NET_BIND_SERVICE, NET_ADMIN, CAP_SYS_TIME]}}\n", want: []string{"spec.network: ", "spec.securityContext.capabilities.add: kept; the node's --allow-capabilities has no Kubernetes equivalent: Pod Security's baseline level refuses NET_ADMIN, SYS_TIME,"}},
		{name: "baseline capabilities", spec: "  securityContext: {capabilities: {add: [NET_BIND_SERVICE, CHOWN]}}\n", want: []string{"spec.network: "}},
		{name: "restart backoff", spec: "  restartBackoff: {initial: 2s}\n", want: []string{"spec.network: ", "spec.restartBackoff: no Kubernetes equivalent (the kubelet's crash-loop backoff is the node's, 10s doubling to 5m); dropped"}},
		{name: "grace period in part of a second", spec: "  stopGracePeriod: 2500ms\n", want: []string{"spec.network: ", "spec.stopGracePeriod: 2.5s rounded up to 3s: terminationGracePeriodSeconds counts whole seconds"}},
		{name: "stop signal", spec: "  stopSignal: SIGINT\n", want: []string{"spec.network: ", "spec.stopSignal: SIGINT is lifecycle.stopSignal, a Kubernetes 1.33+ alpha field (feature gate ContainerStopSignals, which also needs spec.os.name: linux); a cluster without the gate drops it: set STOPSIGNAL SIGINT in the image instead"}},
		{name: "SIGTERM is no warning", spec: "  stopSignal: term\n", want: []string{"spec.network: "}},
		{name: "probe times in part of a second", spec: "  healthCheck: {tcp: {port: 80}, interval: 500ms, timeout: 1200ms}\n", want: []string{"spec.network: ", "spec.healthCheck.interval: 500ms rounded up to 1s: periodSeconds", "spec.healthCheck.timeout: 1.2s rounded up to 2s: timeoutSeconds"}},
		{name: "depends on", spec: "  dependsOn: [{task: db}, {task: cache, condition: healthy}]\n", want: []string{"spec.network: ", "spec.dependsOn: no Kubernetes equivalent (a pod starts without waiting for other pods); dropped: it waited for db (running), cache (healthy)"}},
		{name: "pod: start-first", spec: "  updateStrategy: start-first\n", want: []string{"spec.network: ", "spec.updateStrategy: start-first has no Pod equivalent"}},
		{name: "pod: rollout times", spec: "  minReady: 20s\n  progressDeadline: 10m\n", want: []string{"spec.network: ", "spec.minReady: a Pod has no rollout; dropped: --kind Deployment makes it minReadySeconds", "spec.progressDeadline: a Pod has no rollout; dropped: --kind Deployment makes it progressDeadlineSeconds"}},
		{name: "deployment", kind: KubeKindDeployment, want: []string{"spec.network: ", "spec.progressDeadline: 5m0s is progressDeadlineSeconds: 300; a Deployment that misses it is marked failed (condition Progressing=False) but not rolled back as the reconciler does: roll back with kubectl rollout undo"}},
		{name: "deployment: start-first and rollout times are no warnings", kind: KubeKindDeployment, spec: "  updateStrategy: start-first\n  minReady: 20s\n", want: []string{"spec.network: ", "spec.progressDeadline: "}},
		{name: "deployment: minReady in part of a second", kind: KubeKindDeployment, spec: "  minReady: 1500ms\n", want: []string{"spec.network: ", "spec.minReady: 1.5s rounded up to 2s: minReadySeconds counts whole seconds", "spec.progressDeadline: "}},
		{name: "deployment: a one-shot task", kind: KubeKindDeployment, spec: "  restartPolicy: Never\n", want: []string{"spec.network: ", "spec.restartPolicy: Never has no Deployment equivalent (a Deployment's pods always restart); converted to Always: convert this task with --kind Pod, or make it a Job", "spec.progressDeadline: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := parseKubeBase(t, tc.labels, tc.spec)
			kind := tc.kind
			if kind == "" {
				kind = KubeKindPod
			}
			_, warnings, err := ToKubernetes(task, kind)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range warnings {
				if w.Task != "web" {
					t.Errorf("warning %q names task %q", w, w.Task)
				}
				got = append(got, w.Field+": "+w.Msg)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d warnings, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("warning %d:\n got %s\nwant %s...", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func parseKubeBase(t *testing.T, labels, spec string) Task {
	t.Helper()
	// A key of spec replaces the base's.
	var base []string
	for _, l := range strings.SplitAfter(kubeBase, "\n") {
		k, _, _ := strings.Cut(l, ":")
		if strings.HasPrefix(k, "  ") && strings.Contains("\n"+spec, "\n"+k+":") {
			continue
		}
		base = append(base, l)
	}
	m := strings.Join(base, "") + spec
	if labels != "" {
		m = strings.Replace(m, "metadata: {name: web}", "metadata: {name: web, labels: "+labels+"}", 1)
	}
	tasks, err := Parse("web.yaml", []byte(m))
	if err != nil {
		t.Fatalf("%v\n%s", err, m)
	}
	return tasks[0]
}

// TestKubeMapping checks the mapping of single fields that the golden
// files show only once.
func TestKubeMapping(t *testing.T) {
	ctr := func(spec string) KubeContainer { return kubeCtr(t, spec) }

	t.Run("minimal", func(t *testing.T) {
		p, _ := ToPod(parseKubeBase(t, "", ""))
		want := KubePod{APIVersion: "v1", Kind: "Pod", Metadata: KubeObjectMeta{Name: "web"}, Spec: KubePodSpec{
			Containers: []KubeContainer{{
				Name: "web", Image: "nginx:1.27", ImagePullPolicy: "IfNotPresent",
				SecurityContext: &KubeSecurityContext{AllowPrivilegeEscalation: ptr(false), Capabilities: &KubeCapabilities{Drop: []string{"NET_RAW"}}},
			}},
			RestartPolicy:                 "Always",
			TerminationGracePeriodSeconds: ptr(int64(30)),
		}}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("got  %s\nwant %s", kubeJSON(t, p), kubeJSON(t, want))
		}
	})
	t.Run("pull policy default of an untagged image", func(t *testing.T) {
		if c := ctr("  image: busybox\n"); c.ImagePullPolicy != "Always" || c.Image != "busybox" {
			t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
		}
	})
	t.Run("user uid alone", func(t *testing.T) {
		sc := ctr("  user: \"0\"\n").SecurityContext
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsGroup != nil {
			t.Errorf("runAsUser %v runAsGroup %v", sc.RunAsUser, sc.RunAsGroup)
		}
	})
	t.Run("NET_RAW added stays", func(t *testing.T) {
		sc := ctr("  securityContext: {capabilities: {add: [NET_RAW]}}\n").SecurityContext
		if !reflect.DeepEqual(sc.Capabilities, &KubeCapabilities{Add: []string{"NET_RAW"}}) {
			t.Errorf("capabilities %+v", sc.Capabilities)
		}
	})
	t.Run("privileged has no allowPrivilegeEscalation", func(t *testing.T) {
		sc := ctr("  securityContext: {privileged: true}\n").SecurityContext
		if sc.AllowPrivilegeEscalation != nil || sc.Privileged == nil || !*sc.Privileged {
			t.Errorf("%s", kubeJSON(t, sc))
		}
	})
	t.Run("disabled health check", func(t *testing.T) {
		if c := ctr("  healthCheck: {disabled: true}\n"); c.LivenessProbe != nil || c.StartupProbe != nil {
			t.Errorf("probes %+v %+v", c.LivenessProbe, c.StartupProbe)
		}
	})
	t.Run("start period as a startup probe", func(t *testing.T) {
		// 30s of start period at 10s: three probes do not count, then 3.
		c := ctr("  healthCheck: {tcp: {port: 80}, startPeriod: 30s}\n")
		want := &KubeProbe{TCPSocket: &KubeTCPSocketAction{Port: 80}, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 6}
		if !reflect.DeepEqual(c.StartupProbe, want) {
			t.Errorf("startup probe %s", kubeJSON(t, c.StartupProbe))
		}
		if c.LivenessProbe == nil || c.LivenessProbe.FailureThreshold != 3 || c.LivenessProbe.TCPSocket.Host != "" {
			t.Errorf("liveness probe %s", kubeJSON(t, c.LivenessProbe))
		}
		// 25s: the probe at 30s is outside it.
		if c := ctr("  healthCheck: {tcp: {port: 80}, startPeriod: 25s}\n"); c.StartupProbe.FailureThreshold != 6 {
			t.Errorf("failureThreshold %d", c.StartupProbe.FailureThreshold)
		}
	})
	t.Run("onUnhealthy: none is a readiness probe", func(t *testing.T) {
		c := ctr("  healthCheck: {tcp: {port: 80}, startPeriod: 30s, onUnhealthy: none}\n")
		want := &KubeProbe{TCPSocket: &KubeTCPSocketAction{Port: 80}, InitialDelaySeconds: 30, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
		if c.LivenessProbe != nil || c.StartupProbe != nil || !reflect.DeepEqual(c.ReadinessProbe, want) {
			t.Errorf("liveness %s startup %s readiness %s", kubeJSON(t, c.LivenessProbe), kubeJSON(t, c.StartupProbe), kubeJSON(t, c.ReadinessProbe))
		}
		// And back: the readiness probe alone is the same check.
		p, _ := ToPod(parseKubeBase(t, "", "  healthCheck: {tcp: {port: 80}, startPeriod: 30s, onUnhealthy: none}\n"))
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("web.yaml", b)
		if err != nil {
			t.Fatal(err)
		}
		if h := back[0].Spec.HealthCheck; h.OnUnhealthy != OnUnhealthyNone || h.TCP == nil || h.StartPeriod.Duration != 30*time.Second {
			t.Errorf("back: %+v", h)
		}
	})
	t.Run("probes of a host task dial the loopback", func(t *testing.T) {
		c := ctr("  network: host\n  healthCheck: {http: {port: 8080}}\n")
		if c.LivenessProbe.HTTPGet.Host != "127.0.0.1" || c.LivenessProbe.HTTPGet.Path != "/" {
			t.Errorf("%s", kubeJSON(t, c.LivenessProbe))
		}
	})
	t.Run("a task as Go code, defaults not filled", func(t *testing.T) {
		p, _ := ToPod(Task{Metadata: Metadata{Name: "x"}, Spec: Spec{Image: "nginx"}})
		if !p.Spec.HostNetwork || p.Spec.RestartPolicy != "Always" || p.Spec.Containers[0].ImagePullPolicy != "Always" {
			t.Errorf("%s", kubeJSON(t, p))
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		if _, _, err := ToKubernetes(parseKubeBase(t, "", ""), "Job"); err == nil || !strings.Contains(err.Error(), `got "Job"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestKubeDeployment(t *testing.T) {
	tests := []struct {
		name, labels, spec string
		strategy           KubeDeploymentStrategy
		selector           map[string]string
		minReady, deadline int64
	}{
		{name: "stop-first is Recreate", strategy: KubeDeploymentStrategy{Type: "Recreate"}, selector: map[string]string{"app": "web"}, minReady: 10, deadline: 300},
		{name: "start-first is RollingUpdate", spec: "  updateStrategy: start-first\n", strategy: KubeDeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &KubeRollingUpdate{MaxSurge: 1, MaxUnavailable: 0}}, selector: map[string]string{"app": "web"}, minReady: 10, deadline: 300},
		{name: "rollout times", spec: "  minReady: 1m\n  progressDeadline: 90s\n", strategy: KubeDeploymentStrategy{Type: "Recreate"}, selector: map[string]string{"app": "web"}, minReady: 60, deadline: 90},
		{name: "rounding keeps the deadline longer", spec: "  minReady: 1500ms\n  progressDeadline: 2s\n", strategy: KubeDeploymentStrategy{Type: "Recreate"}, selector: map[string]string{"app": "web"}, minReady: 2, deadline: 3},
		{name: "the task's app label is selected", labels: "{app: frontend, tier: a}", strategy: KubeDeploymentStrategy{Type: "Recreate"}, selector: map[string]string{"app": "frontend"}, minReady: 10, deadline: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := parseKubeBase(t, tc.labels, tc.spec+"  restartPolicy: OnFailure\n  healthCheck: {http: {port: 80}}\n")
			d, _ := ToDeployment(task)
			pod, _ := ToPod(task)
			if d.APIVersion != "apps/v1" || d.Kind != "Deployment" || d.Metadata.Name != "web" || d.Spec.Replicas != 1 {
				t.Errorf("header %+v %+v replicas %d", d.APIVersion, d.Metadata, d.Spec.Replicas)
			}
			if !reflect.DeepEqual(d.Spec.Strategy, tc.strategy) {
				t.Errorf("strategy %s, want %s", kubeJSON(t, d.Spec.Strategy), kubeJSON(t, tc.strategy))
			}
			if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, tc.selector) {
				t.Errorf("selector %v, want %v", d.Spec.Selector.MatchLabels, tc.selector)
			}
			for k, v := range tc.selector {
				if d.Spec.Template.Metadata.Labels[k] != v {
					t.Errorf("template labels %v do not carry the selector", d.Spec.Template.Metadata.Labels)
				}
			}
			for k, v := range task.Metadata.Labels {
				if d.Spec.Template.Metadata.Labels[k] != v || d.Metadata.Labels[k] != v {
					t.Errorf("label %s=%s missing: %v %v", k, v, d.Metadata.Labels, d.Spec.Template.Metadata.Labels)
				}
			}
			if d.Spec.MinReadySeconds != tc.minReady || d.Spec.ProgressDeadlineSeconds != tc.deadline {
				t.Errorf("minReadySeconds %d progressDeadlineSeconds %d, want %d %d", d.Spec.MinReadySeconds, d.Spec.ProgressDeadlineSeconds, tc.minReady, tc.deadline)
			}
			// The template is the Pod, restarted Always, its health
			// check also the readiness probe.
			want := pod.Spec
			want.RestartPolicy = "Always"
			ready := *want.Containers[0].LivenessProbe
			want.Containers = slices.Clone(want.Containers)
			want.Containers[0].ReadinessProbe = &ready
			if !reflect.DeepEqual(d.Spec.Template.Spec, want) {
				t.Errorf("template spec\n got %s\nwant %s", kubeJSON(t, d.Spec.Template.Spec), kubeJSON(t, want))
			}
		})
	}
}

func TestKubeEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"plain":            "plain",
		"$HOME":            "$HOME",
		"${HOME}":          "${HOME}",
		"$(date)":          "$$(date)",
		"$$":               "$$$$",
		"$$(x)":            "$$$$(x)",
		"a $ b":            "a $ b",
		"end$":             "end$",
		"echo $(a) $$ $b(": "echo $$(a) $$$$ $b(",
	} {
		if got := kubeEscape(in); got != want {
			t.Errorf("kubeEscape(%q) = %q, want %q", in, got, want)
		}
		if got := kubeExpand(kubeEscape(in)); got != in {
			t.Errorf("the kubelet would turn %q into %q", in, got)
		}
	}
	c := kubeCtr(t, "  command: [\"$(x)\"]\n  args: [\"$$\"]\n  env: [{name: A, value: \"$(B)\"}]\n  healthCheck: {exec: {command: [\"$(x)\"]}}\n")
	if c.Command[0] != "$$(x)" || c.Args[0] != "$$$$" || c.Env[0].Value != "$$(B)" {
		t.Errorf("command %q args %q env %q", c.Command, c.Args, c.Env)
	}
	if c.LivenessProbe.Exec.Command[0] != "$(x)" { // probes are not expanded
		t.Errorf("probe command %q", c.LivenessProbe.Exec.Command)
	}
}

func kubeCtr(t *testing.T, spec string) KubeContainer {
	t.Helper()
	p, _ := ToPod(parseKubeBase(t, "", spec))
	return p.Spec.Containers[0]
}

// kubeExpand is the kubelet's expansion of $(VAR) with no variable
// defined (k8s.io/kubernetes third_party/forked/golang/expansion): "$$"
// is "$", "$(NAME)" stays as written, any other "$" stays.
func kubeExpand(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestKubeYAMLReadsBack checks that what KubeYAML writes reads back the
// same with a YAML 1.1 reader (sigs.k8s.io/yaml, as kubectl) and with
// yaml v3 (as this package's parser): strings such as "yes", "on" or
// "0755" stay strings for both.
func TestKubeYAMLReadsBack(t *testing.T) {
	values := []string{"yes", "no", "on", "off", "y", "n", "Y", "NO", "True", "false", "0755", "1e3", "null", "~", "0x10",
		"12:30", "1_000", ".5", "-", "", " lead", "trail ", "a: b", "#x", "- x", "*a", "&a", "!x", "%x", "@x", "`x",
		"x\ny", "x\n", "\n", "\t", "0o17", ".inf", "=", "<<", "3.", "+1", "0b101", "2001-12-14", "'", `"`, "é", "a\\b"}
	obj := KubePod{APIVersion: "v1", Kind: "Pod", Metadata: KubeObjectMeta{Name: "x", Labels: map[string]string{}}}
	ctr := KubeContainer{Name: "x", Image: "x"}
	for i, v := range values {
		ctr.Env = append(ctr.Env, KubeEnvVar{Name: "V", Value: v})
		obj.Metadata.Labels[v+"k"] = strconv.Itoa(i)
		obj.Metadata.Labels[v] = "v"
	}
	obj.Spec.Containers = []KubeContainer{ctr}
	want := kubeJSON(t, obj)
	y, err := KubeYAML(obj)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	var viaV2 KubePod
	if err := json.Unmarshal(j, &viaV2); err != nil {
		t.Fatalf("%v\n%s", err, j)
	}
	if got := kubeJSON(t, viaV2); got != want {
		t.Errorf("YAML 1.1 reads\n%s\nwant\n%s\nfrom\n%s", got, want, y)
	}
	var generic any
	if err := yaml3.Unmarshal(y, &generic); err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	var viaV3 KubePod
	if err := json.Unmarshal(jb, &viaV3); err != nil {
		t.Fatal(err)
	}
	if got := kubeJSON(t, viaV3); got != want {
		t.Errorf("yaml v3 reads\n%s\nwant\n%s", got, want)
	}
}

func kubeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKubeRoundTrip converts each example task and each task of
// testdata/convert to a Pod, parses that Pod back as a manifest, and
// checks that it runs the same container.
func TestKubeRoundTrip(t *testing.T) {
	var tasks []Task
	for _, dir := range []string{filepath.Join("..", "..", "manifests", "examples"), filepath.Join("testdata", "convert")} {
		s := NewLoader(dir, InsecureDir()).Load()
		if s.Err != nil || len(s.Broken) > 0 || len(s.Tasks) == 0 {
			t.Fatalf("%s: %v %v", dir, s.Err, s.Broken)
		}
		for _, n := range slices.Sorted(maps.Keys(s.Tasks)) {
			if s.Tasks[n].Spec.Pod == "" { // the containers of Pods are Kubernetes already
				tasks = append(tasks, s.Tasks[n])
			}
		}
	}
	for _, task := range tasks {
		t.Run(task.Source+"/"+task.Metadata.Name, func(t *testing.T) {
			pod, _ := ToPod(task)
			y, err := KubeYAML(pod)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse("pod.yaml", y)
			if err != nil {
				t.Fatalf("the converted Pod is refused: %v\n%s", err, y)
			}
			if len(back) != 1 {
				t.Fatalf("%d tasks from the Pod, want 1", len(back))
			}
			a, b := task.Spec, back[0].Spec
			for _, f := range []struct {
				name       string
				orig, back any
			}{
				{"image", a.Image, b.Image},
				{"imagePullPolicy", a.ImagePullPolicy, b.ImagePullPolicy},
				{"command", a.Command, b.Command},
				{"args", a.Args, b.Args},
				{"env", a.Env, b.Env},
				{"workingDir", a.WorkingDir, b.WorkingDir},
				{"user", a.User, b.User},
				{"resources.cpu", kubeLimit(a.Resources, "cpu"), kubeLimit(b.Resources, "cpu")},
				{"resources.memory", kubeLimit(a.Resources, "memory"), kubeLimit(b.Resources, "memory")},
				{"ports", a.Ports, b.Ports},
				{"restartPolicy", a.RestartPolicy, b.RestartPolicy},
				{"stopSignal", a.StopSig(), b.StopSig()},
				{"readOnlyRootFilesystem", a.SecurityContext != nil && a.SecurityContext.ReadOnlyRootFilesystem, b.SecurityContext != nil && b.SecurityContext.ReadOnlyRootFilesystem},
			} {
				if !reflect.DeepEqual(f.orig, f.back) {
					t.Errorf("%s: %v, back from the Pod %v", f.name, f.orig, f.back)
				}
			}
		})
	}
}

func kubeLimit(r *Resources, name string) string {
	switch {
	case r == nil:
	case name == "cpu" && r.CPU != nil:
		return r.CPU.String()
	case name == "memory" && r.Memory != nil:
		return r.Memory.String()
	}
	return ""
}
