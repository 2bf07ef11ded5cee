package desired

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// specDoc is a valid manifest whose spec continues with fragment, from
// line 6 on.
func specDoc(fragment string) string {
	return "apiVersion: warren/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  image: busybox:1\n" + fragment
}

func TestParseSpecFields(t *testing.T) {
	tasks, err := Parse("t.yaml", []byte(specDoc(`  imagePullPolicy: Never
  user: "1000:100"
  resources: {cpu: 0.25, memory: 1Gi, pids: 64}
  mounts:
    - {type: volume, source: data, target: /data}
    - {type: bind, source: /srv, target: /srv, readOnly: true}
    - {type: tmpfs, target: /tmp, size: 16Mi}
  secrets: [{name: api.token, file: /etc/secrets/token}]
  network: none
  securityContext:
    readOnlyRootFilesystem: true
    privileged: true
    capabilities: {add: [net_admin, CAP_NET_BIND_SERVICE, NET_ADMIN], drop: [all]}
  restartPolicy: Never
  restartBackoff: {initial: 2s}
  updateStrategy: start-first
  healthCheck: {tcp: {port: 5432}, startPeriod: 1m}
`)))
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	d := func(v time.Duration) *Duration { return &Duration{v} }
	pids := int64(64)
	want := Spec{
		Image:           "busybox:1",
		ImagePullPolicy: PullNever,
		User:            "1000:100",
		Resources:       &Resources{CPU: q("0.25"), Memory: q("1Gi"), Pids: &pids},
		Mounts: []Mount{
			{Type: MountVolume, Source: "data", Target: "/data"},
			{Type: MountBind, Source: "/srv", Target: "/srv", ReadOnly: true},
			{Type: MountTmpfs, Target: "/tmp", Size: q("16Mi")},
		},
		Secrets: []Secret{{Name: "api.token", File: "/etc/secrets/token"}},
		Network: NetworkNone,
		SecurityContext: &SecurityContext{ReadOnlyRootFilesystem: true, Privileged: true,
			Capabilities: &Capabilities{Add: []string{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}, Drop: []string{"ALL"}}},
		RestartPolicy:   RestartNever,
		RestartBackoff:  &RestartBackoff{Initial: d(2 * time.Second)},
		UpdateStrategy:  UpdateStartFirst,
		StopSignal:      "SIGTERM",
		StopGracePeriod: d(30 * time.Second),
		MinReady:        d(DefaultMinReady), ProgressDeadline: d(DefaultProgressDeadline),
		HealthCheck: &HealthCheck{TCP: &TCPProbe{Port: 5432}, Interval: d(10 * time.Second), Timeout: d(2 * time.Second),
			Retries: 3, StartPeriod: d(time.Minute), OnUnhealthy: OnUnhealthyRestart},
	}
	got := tasks[0].Spec
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spec:\n got %+v\nwant %+v", got, want)
	}
	if got.Resources.CPU.MilliValue() != 250 || got.Resources.Memory.Value() != 1<<30 {
		t.Errorf("quantities: cpu %v memory %v", got.Resources.CPU, got.Resources.Memory)
	}
	if i, m, r := got.Backoff(); i != 2*time.Second || m != DefaultBackoffMax || r != DefaultBackoffResetAfter {
		t.Errorf("Backoff() = %v %v %v", i, m, r)
	}
	if p := got.Secrets[0].Target(); p != "/run/secrets/api.token" {
		t.Errorf("secret Target() = %q", p)
	}
}

func TestParseDefaultPullPolicy(t *testing.T) {
	tests := []struct {
		image string
		want  PullPolicy
	}{
		{"nginx", PullAlways},
		{"nginx:latest", PullAlways},
		{"docker.io/library/nginx:latest", PullAlways},
		{"localhost:5000/app", PullAlways},
		{"nginx:1.27", PullIfNotPresent},
		{"localhost:5000/app:v1", PullIfNotPresent},
		{"nginx@sha256:" + strings.Repeat("a", 64), PullIfNotPresent},
		{"nginx:latest@sha256:" + strings.Repeat("a", 64), PullIfNotPresent},
	}
	for _, tt := range tests {
		doc := "apiVersion: warren/v1\nkind: Task\nmetadata: {name: t}\nspec: {image: \"" + tt.image + "\"}\n"
		tasks, err := Parse("t.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", tt.image, err)
		}
		if got := tasks[0].Spec.ImagePullPolicy; got != tt.want {
			t.Errorf("image %s: pull policy %s, want %s", tt.image, got, tt.want)
		}
	}
}

func TestParseDefaultsFilled(t *testing.T) {
	tasks, err := Parse("t.yaml", []byte(specDoc("  healthCheck: {http: {port: 8080}}\n  mounts: [{type: tmpfs, target: /tmp}]\n")))
	if err != nil {
		t.Fatal(err)
	}
	s := tasks[0].Spec
	h := s.HealthCheck
	switch {
	case s.ImagePullPolicy != PullIfNotPresent, s.Network != NetworkHost, s.RestartPolicy != RestartAlways,
		s.UpdateStrategy != UpdateStopFirst, s.StopSignal != "SIGTERM", s.StopGracePeriod.Duration != 30*time.Second:
		t.Errorf("spec defaults not filled: %+v", s)
	case h.Interval.Duration != 10*time.Second, h.Timeout.Duration != 2*time.Second, h.Retries != 3,
		h.StartPeriod == nil || h.StartPeriod.Duration != 0, h.HTTP.Path != "/":
		t.Errorf("health check defaults not filled: %+v %+v", h, h.HTTP)
	case s.Mounts[0].ReadOnly:
		t.Errorf("mount readOnly defaults to true")
	case s.RestartBackoff != nil || s.Resources != nil || s.SecurityContext != nil:
		t.Errorf("optional parts appeared: %+v", s)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name     string
		fragment string // from line 6 of the document
		want     []string
	}{
		{"quantity negative (the issue's example)", "  resources: {memory: -1Gi}\n",
			[]string{`t.yaml:6: spec.resources.memory: quantities must be positive, got "-1Gi"`}},
		{"cpu zero", "  resources: {cpu: 0}\n",
			[]string{`t.yaml:6: spec.resources.cpu: quantities must be positive, got "0"`}},
		{"cpu below a milli-core", "  resources: {cpu: 0.0001}\n",
			[]string{`t.yaml:6: spec.resources.cpu: must be at least 1m (a thousandth of a core), got "100u"`}},
		{"cpu absurd", "  resources: {cpu: 1e9}\n",
			[]string{`t.yaml:6: spec.resources.cpu: must be at most 1M cores, got "1G"`}},
		{"memory in milli-bytes", "  resources: {memory: 512m}\n",
			[]string{`t.yaml:6: spec.resources.memory: must be a whole number of bytes, got "512m" ("m" is milli: did you mean "512Mi"?)`}},
		{"memory not a quantity", "  resources: {memory: lots}\n",
			[]string{`t.yaml:6: spec.resources.memory: must be a quantity such as "500m", "0.5", "256Mi" or "1G", got "lots"`}},
		{"memory a list", "  resources: {memory: [1]}\n",
			[]string{`t.yaml:6: spec.resources.memory: must be a quantity such as "500m", "0.5", "256Mi" or "1G", got a list`}},
		{"pids zero", "  resources: {pids: 0}\n", []string{`t.yaml:6: spec.resources.pids: must be positive, got 0`}},
		{"pids not an integer", "  resources: {pids: 1.5}\n", []string{`t.yaml:6: spec.resources.pids: must be an integer, got a number (1.5)`}},
		{"resources unknown field", "  resources: {memroy: 1Gi}\n", []string{`t.yaml:6: spec.resources.memroy: unknown field "memroy"`}},
		{"user name", "  user: nginx\n",
			[]string{`t.yaml:6: spec.user: must be numeric, "uid" or "uid:gid" such as "1000" or "1000:1000", got "nginx": user and group names would need the image's /etc/passwd and /etc/group, which are not read`}},
		{"user group name", "  user: \"1000:staff\"\n",
			[]string{`t.yaml:6: spec.user: must be numeric, "uid" or "uid:gid" such as "1000" or "1000:1000", got "1000:staff": user and group names would need the image's /etc/passwd and /etc/group, which are not read`}},
		{"user empty gid", "  user: \"1000:\"\n",
			[]string{`t.yaml:6: spec.user: must be numeric, "uid" or "uid:gid" such as "1000" or "1000:1000", got "1000:": user and group names would need the image's /etc/passwd and /etc/group, which are not read`}},
		{"user too large", "  user: \"4294967296\"\n", []string{`t.yaml:6: spec.user: ids must be at most 4294967295, got "4294967296"`}},
		{"user unquoted number", "  user: 1000\n", nil},
		{"pull policy case", "  imagePullPolicy: never\n",
			[]string{`t.yaml:6: spec.imagePullPolicy: must be one of Always, IfNotPresent, Never, got "never"; did you mean "Never"?`}},
		{"network unknown", "  network: overlay\n", []string{`t.yaml:6: spec.network: must be one of host, none, bridge, got "overlay"`}},
		{"ports without bridge", "  ports: [{containerPort: 80}]\n", []string{`t.yaml:6: spec.ports: only for network: bridge (the task's network is "host")`}},
		{"port missing", "  network: bridge\n  ports: [{hostPort: 80}]\n", []string{`t.yaml:7: spec.ports[0].containerPort: must be a port from 1 to 65535, got 0`}},
		{"port out of range", "  network: bridge\n  ports: [{containerPort: 70000}]\n", []string{`t.yaml:7: spec.ports[0].containerPort: must be a port from 1 to 65535, got 70000`}},
		{"port protocol", "  network: bridge\n  ports: [{containerPort: 53, protocol: SCTP}]\n", []string{`t.yaml:7: spec.ports[0].protocol: must be one of TCP, UDP, got "SCTP"`}},
		{"port twice", "  network: bridge\n  ports: [{containerPort: 80}, {containerPort: 80}]\n", []string{`t.yaml:7: spec.ports[1].containerPort: 80/TCP is already at spec.ports[0]`}},
		{"host port twice", "  network: bridge\n  ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81, hostPort: 8080}]\n",
			[]string{`t.yaml:7: spec.ports[1].hostPort: 8080/TCP is already published at spec.ports[0]`}},
		{"host IP bad", "  network: bridge\n  ports: [{containerPort: 80, hostPort: 8080, hostIP: localhost}]\n", []string{`t.yaml:7: spec.ports[0].hostIP: must be an IP address, got "localhost"`}},
		{"host IP without host port", "  network: bridge\n  ports: [{containerPort: 80, hostIP: 127.0.0.1}]\n", []string{`t.yaml:7: spec.ports[0].hostIP: is only for a published port: set hostPort`}},
		{"host port under start-first", "  network: bridge\n  updateStrategy: start-first\n  ports: [{containerPort: 80, hostPort: 8080}]\n",
			[]string{`t.yaml:8: spec.ports[0].hostPort: a published port needs updateStrategy: stop-first (under start-first the new container would need the host port the old one holds)`}},
		{"restart policy", "  restartPolicy: Sometimes\n", []string{`t.yaml:6: spec.restartPolicy: must be one of Always, OnFailure, Never, got "Sometimes"`}},
		{"update strategy", "  updateStrategy: rolling\n", []string{`t.yaml:6: spec.updateStrategy: must be one of stop-first, start-first, got "rolling"`}},
		{"mount type missing", "  mounts: [{target: /data}]\n", []string{`t.yaml:6: spec.mounts[0].type: required, must be one of bind, volume, tmpfs`}},
		{"mount target missing", "  mounts: [{type: tmpfs}]\n", []string{`t.yaml:6: spec.mounts[0].target: required`}},
		{"mount target relative", "  mounts: [{type: tmpfs, target: data}]\n", []string{`t.yaml:6: spec.mounts[0].target: must be an absolute path, got "data"`}},
		{"mount target root", "  mounts: [{type: tmpfs, target: /}]\n", []string{`t.yaml:6: spec.mounts[0].target: must not be the root directory`}},
		{"mount target unclean", "  mounts: [{type: tmpfs, target: /a/../etc}]\n",
			[]string{`t.yaml:6: spec.mounts[0].target: must be a clean path (no "..", ".", "//" or trailing "/"): "/etc", not "/a/../etc"`}},
		{"mount target /sys", "  mounts: [{type: tmpfs, target: /sys}]\n", []string{`t.yaml:6: spec.mounts[0].target: must not be under /proc or /sys, got "/sys"`}},
		{"mount target /proc/x", "  mounts: [{type: tmpfs, target: /proc/x}]\n", []string{`t.yaml:6: spec.mounts[0].target: must not be under /proc or /sys, got "/proc/x"`}},
		{"mount target /process is fine", "  mounts: [{type: tmpfs, target: /process}]\n", nil},
		{"mount target secrets", "  mounts: [{type: tmpfs, target: /run/secrets}]\n",
			[]string{`t.yaml:6: spec.mounts[0].target: must not be under /run/secrets, which holds the task's secrets, got "/run/secrets"`}},
		{"mount targets unique", "  mounts:\n    - {type: tmpfs, target: /a}\n    - {type: volume, source: a, target: /a}\n",
			[]string{`t.yaml:8: spec.mounts[1].target: duplicate mount target "/a", first at spec.mounts[0]`}},
		{"tmpfs with source", "  mounts: [{type: tmpfs, source: /x, target: /a}]\n", []string{`t.yaml:6: spec.mounts[0].source: must be empty for a tmpfs mount, got "/x"`}},
		{"tmpfs size negative", "  mounts: [{type: tmpfs, target: /a, size: -1}]\n", []string{`t.yaml:6: spec.mounts[0].size: quantities must be positive, got "-1"`}},
		{"size on a bind", "  mounts: [{type: bind, source: /x, target: /a, size: 1Mi}]\n", []string{`t.yaml:6: spec.mounts[0].size: only a tmpfs mount has a size`}},
		{"volume without source", "  mounts: [{type: volume, target: /a}]\n", []string{`t.yaml:6: spec.mounts[0].source: required: the volume's name`}},
		{"volume source a path", "  mounts: [{type: volume, source: /x, target: /a}]\n",
			[]string{`t.yaml:6: spec.mounts[0].source: volume names must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got "/x"`}},
		{"bind without source", "  mounts: [{type: bind, target: /a}]\n", []string{`t.yaml:6: spec.mounts[0].source: required`}},
		{"bind source relative", "  mounts: [{type: bind, source: x, target: /a}]\n", []string{`t.yaml:6: spec.mounts[0].source: must be an absolute path, got "x"`}},
		{"bind source unclean", "  mounts: [{type: bind, source: /srv/../etc, target: /a}]\n",
			[]string{`t.yaml:6: spec.mounts[0].source: must be a clean path (no "..", ".", "//" or trailing "/"): "/etc", not "/srv/../etc"`}},
		{"mount readOnly hint", "  mounts: [{type: tmpfs, target: /a, readonly: true}]\n",
			[]string{`t.yaml:6: spec.mounts[0].readonly: unknown field "readonly", did you mean "readOnly"?`}},
		{"mount readOnly yes", "  mounts: [{type: tmpfs, target: /a, readOnly: yes}]\n",
			[]string{`t.yaml:6: spec.mounts[0].readOnly: must be true or false, got "yes"`}},
		{"secret name missing", "  secrets: [{file: /a}]\n", []string{`t.yaml:6: spec.secrets[0].name: required`}},
		{"secret name a path", "  secrets: [{name: a/b, file: /a}]\n",
			[]string{`t.yaml:6: spec.secrets[0].name: must be a file name of at most 253 letters, digits, '.', '-' and '_' (not "." or ".."), got "a/b"`}},
		{"secret name dot-dot", "  secrets: [{name: \"..\", file: /a}]\n",
			[]string{`t.yaml:6: spec.secrets[0].name: must be a file name of at most 253 letters, digits, '.', '-' and '_' (not "." or ".."), got ".."`}},
		{"secret names unique", "  secrets:\n    - {name: a, file: /a}\n    - {name: a, file: /b}\n",
			[]string{`t.yaml:8: spec.secrets[1].name: duplicate secret "a", first at spec.secrets[0]`}},
		{"secret file a relative path", "  secrets: [{name: a, file: a/b}]\n", []string{`t.yaml:6: spec.secrets[0].file: must be an absolute host path, or the plain name of a file of the manifests directory (no "/", ".." or "."), got "a/b"`}},
		{"secret file missing", "  secrets: [{name: a}]\n", []string{`t.yaml:6: spec.secrets[0].file: required`}},
		{"capability unknown", "  securityContext: {capabilities: {add: [FLY]}}\n",
			[]string{`t.yaml:6: spec.securityContext.capabilities.add[0]: unknown capability "FLY"; known are the Linux capabilities such as NET_BIND_SERVICE or CAP_NET_ADMIN`}},
		{"capability ALL added", "  securityContext: {capabilities: {add: [ALL]}}\n",
			[]string{`t.yaml:6: spec.securityContext.capabilities.add[0]: "ALL" may only be dropped; add the capabilities the task needs by name`}},
		{"capability added and dropped", "  securityContext: {capabilities: {add: [NET_RAW], drop: [CAP_NET_RAW]}}\n",
			[]string{`t.yaml:6: spec.securityContext.capabilities.drop[0]: capability "CAP_NET_RAW" is both added and dropped`}},
		{"capability ALL dropped, one added", "  securityContext: {capabilities: {add: [NET_RAW], drop: [ALL]}}\n", nil},
		{"privileged not a bool", "  securityContext: {privileged: 1}\n",
			[]string{`t.yaml:6: spec.securityContext.privileged: must be true or false, got a number (1)`}},
		{"backoff zero", "  restartBackoff: {initial: 0s}\n", []string{`t.yaml:6: spec.restartBackoff.initial: must be positive, got "0s"`}},
		{"backoff initial above max", "  restartBackoff: {initial: 10s, max: 5s}\n",
			[]string{`t.yaml:6: spec.restartBackoff.initial: initial (10s) must not be longer than max (5s)`}},
		{"backoff initial above the default max", "  restartBackoff: {initial: 10m}\n",
			[]string{`t.yaml:6: spec.restartBackoff.initial: initial (10m0s) must not be longer than max (5m0s)`}},
		{"backoff max below the default initial", "  restartBackoff: {max: 500ms}\n",
			[]string{`t.yaml:6: spec.restartBackoff.max: initial (1s) must not be longer than max (500ms)`}},
		{"backoff not a duration", "  restartBackoff: {resetAfter: 10}\n",
			[]string{`t.yaml:6: spec.restartBackoff.resetAfter: must be a duration such as "30s" or "1m30s", got 10`}},
		{"health check without probe", "  healthCheck: {interval: 5s}\n", []string{`t.yaml:6: spec.healthCheck: needs exactly one probe: exec, http or tcp`}},
		{"health check with two probes", "  healthCheck: {tcp: {port: 1}, exec: {command: [a]}}\n",
			[]string{`t.yaml:6: spec.healthCheck: needs exactly one probe: exec, http or tcp, got exec and tcp`}},
		{"health check exec empty", "  healthCheck: {exec: {command: []}}\n", []string{`t.yaml:6: spec.healthCheck.exec.command: required: the command to run in the container`}},
		{"health check exec empty program", "  healthCheck: {exec: {command: [\"\"]}}\n", []string{`t.yaml:6: spec.healthCheck.exec.command[0]: must not be empty`}},
		{"health check port zero", "  healthCheck: {http: {port: 0}}\n", []string{`t.yaml:6: spec.healthCheck.http.port: must be a port from 1 to 65535, got 0`}},
		{"health check port missing", "  healthCheck: {tcp: {}}\n", []string{`t.yaml:6: spec.healthCheck.tcp.port: must be a port from 1 to 65535, got 0`}},
		{"health check port too high", "  healthCheck: {tcp: {port: 65536}}\n", []string{`t.yaml:6: spec.healthCheck.tcp.port: must be a port from 1 to 65535, got 65536`}},
		{"health check port a string", "  healthCheck: {tcp: {port: http}}\n", []string{`t.yaml:6: spec.healthCheck.tcp.port: must be an integer, got "http"`}},
		{"health check path relative", "  healthCheck: {http: {port: 80, path: healthz}}\n", []string{`t.yaml:6: spec.healthCheck.http.path: must start with "/", got "healthz"`}},
		{"health check retries zero", "  healthCheck:\n    tcp: {port: 80}\n    retries: 0\n", []string{`t.yaml:8: spec.healthCheck.retries: must be positive, got 0`}},
		{"health check retries negative", "  healthCheck: {tcp: {port: 80}, retries: -2}\n", []string{`t.yaml:6: spec.healthCheck.retries: must be positive, got -2`}},
		{"health check interval zero", "  healthCheck: {tcp: {port: 80}, interval: 0s}\n", []string{`t.yaml:6: spec.healthCheck.interval: must be positive, got "0s"`}},
		{"health check timeout negative", "  healthCheck: {tcp: {port: 80}, timeout: -1s}\n", []string{`t.yaml:6: spec.healthCheck.timeout: must be positive, got "-1s"`}},
		{"health check start period negative", "  healthCheck: {tcp: {port: 80}, startPeriod: -1s}\n", []string{`t.yaml:6: spec.healthCheck.startPeriod: must not be negative, got "-1s"`}},
		{"health check disabled with a probe", "  healthCheck: {disabled: true, tcp: {port: 80}}\n", []string{`t.yaml:6: spec.healthCheck.disabled: true turns health checking off: it takes no probe and no timing`}},
		{"health check disabled with timing", "  healthCheck:\n    disabled: true\n    interval: 5s\n", []string{`t.yaml:7: spec.healthCheck.disabled: true turns health checking off: it takes no probe and no timing`}},
		{"health check unknown probe", "  healthCheck: {grpc: {port: 80}}\n",
			[]string{`t.yaml:6: spec.healthCheck.grpc: unknown field "grpc"`, `t.yaml:6: spec.healthCheck: needs exactly one probe: exec, http or tcp`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(specDoc(tt.fragment)))
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseQuantityForms(t *testing.T) {
	for _, v := range []string{"0.5", "500m", `"0.5"`, "5e-1", "+500m"} {
		tasks, err := Parse("t.yaml", []byte(specDoc("  resources: {cpu: "+v+"}\n")))
		if err != nil {
			t.Errorf("cpu %s: %v", v, err)
			continue
		}
		if m := tasks[0].Spec.Resources.CPU.MilliValue(); m != 500 {
			t.Errorf("cpu %s: %d milli-cores, want 500", v, m)
		}
	}
	for _, v := range []string{"256Mi", "268435456", "0.25Gi", `"256Mi"`} {
		tasks, err := Parse("t.yaml", []byte(specDoc("  resources: {memory: "+v+"}\n")))
		if err != nil {
			t.Errorf("memory %s: %v", v, err)
			continue
		}
		if b := tasks[0].Spec.Resources.Memory.Value(); b != 256<<20 {
			t.Errorf("memory %s: %d bytes, want %d", v, b, 256<<20)
		}
	}
}

// TestValidateAcceptsDefaulted checks that validation accepts what Parse
// returns: defaults and normal forms included.
func TestValidateAcceptsDefaulted(t *testing.T) {
	tasks, err := Parse("t.yaml", []byte(specDoc("  securityContext: {capabilities: {add: [net_raw], drop: [all]}}\n  healthCheck: {http: {port: 1}}\n")))
	if err != nil {
		t.Fatal(err)
	}
	if fes := validateTask(&tasks[0]); len(fes) > 0 {
		t.Errorf("validation of a parsed task: %v", fes)
	}
}

func TestSpecCloneIsDeep(t *testing.T) {
	tasks, err := Parse("t.yaml", []byte(specDoc(`  resources: {cpu: 1, memory: 1Gi, pids: 5}
  mounts: [{type: tmpfs, target: /t, size: 1Mi}]
  secrets: [{name: a, file: /a}]
  securityContext: {capabilities: {add: [NET_RAW]}}
  restartBackoff: {initial: 2s}
  healthCheck: {exec: {command: [a]}}
`)))
	if err != nil {
		t.Fatal(err)
	}
	orig := tasks[0]
	h := orig.Hash()
	c := orig.clone()
	*c.Spec.Resources.Pids = 6
	c.Spec.Resources.Memory.Add(resource.MustParse("1"))
	c.Spec.Mounts[0].Target = "/u"
	*c.Spec.Mounts[0].Size = resource.MustParse("2Mi")
	c.Spec.Secrets[0].Name = "b"
	c.Spec.SecurityContext.Capabilities.Add[0] = "CAP_CHOWN"
	c.Spec.RestartBackoff.Initial.Duration = time.Hour
	c.Spec.HealthCheck.Exec.Command[0] = "b"
	c.Spec.HealthCheck.Interval.Duration = time.Hour
	if orig.Hash() != h {
		t.Errorf("changing a clone changed the original: %+v", orig.Spec)
	}
	// Hash must not change what it hashes either.
	before := orig.clone()
	orig.Hash()
	if !reflect.DeepEqual(before, orig) {
		t.Errorf("Hash changed the task")
	}
}

// TestSecretFileNames: a secret's file is an absolute host path or the
// plain name of a file of the manifests directory; anything else is an
// error naming the file, the line and the field.
func TestSecretFileNames(t *testing.T) {
	const pathOrName = `must be an absolute host path, or the plain name of a file of the manifests directory (no "/", ".." or "."), got `
	const nameRule = `a file of the manifests directory must be named with at most 253 letters, digits, '.', '-' and '_', not starting with '.' (e.g. "db-password.age"), got `
	for _, tt := range []struct {
		file string
		want string // the error after "t.yaml:6: spec.secrets[0].file: "; "" when valid
	}{
		{file: "db-password.age"},
		{file: "db.age"},
		{file: "token"},
		{file: "a..age"},
		{file: "/etc/reconciler/secrets/db"},
		{file: "../db.age", want: pathOrName + `"../db.age"`},
		{file: "..", want: pathOrName + `".."`},
		{file: ".", want: pathOrName + `"."`},
		{file: "keys/db.age", want: pathOrName + `"keys/db.age"`},
		{file: "./db.age", want: pathOrName + `"./db.age"`},
		{file: ".db.age", want: nameRule + `".db.age"`},
		{file: "db password.age", want: nameRule + `"db password.age"`},
		{file: "db.yaml", want: `must not name a manifest of the directory, got "db.yaml"`},
		{file: "db.yml", want: `must not name a manifest of the directory, got "db.yml"`},
		{file: strings.Repeat("a", 250) + ".age", want: nameRule + `"` + strings.Repeat("a", 250) + `.age"`},
		{file: "/etc/../db", want: `must be a clean path (no "..", ".", "//" or trailing "/"): "/db", not "/etc/../db"`},
	} {
		t.Run(tt.file, func(t *testing.T) {
			tasks, err := Parse("t.yaml", []byte(specDoc(fmt.Sprintf("  secrets: [{name: db, file: %q}]\n", tt.file))))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				s := tasks[0].Spec.Secrets[0]
				if s.File != tt.file || s.InManifestsDir() == strings.HasPrefix(tt.file, "/") {
					t.Fatalf("secret %+v, InManifestsDir %v", s, s.InManifestsDir())
				}
				return
			}
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			if want := []string{"t.yaml:6: spec.secrets[0].file: " + tt.want}; !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n got %q\nwant %q", got, want)
			}
		})
	}
}
