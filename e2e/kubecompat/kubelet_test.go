package kubecompat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/config"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"

	"github.com/warren/reconciler/pkg/desired"
)

// namedDoc is a Pod document and where it comes from.
type namedDoc struct {
	name string
	data []byte
}

// allPods is every Pod the other tests check: the accepted ones, the
// converted ones and the rows of the tables.
func allPods(t *testing.T) []namedDoc {
	t.Helper()
	var out []namedDoc
	for _, f := range acceptedFiles(t) {
		docs, err := documents(f.data)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		for _, d := range docs {
			if isPod(d) {
				out = append(out, namedDoc{fmt.Sprintf("%s#%d", f.path, d.index+1), d.data})
			}
		}
		for _, task := range f.tasks {
			if task.Spec.Pod != "" {
				continue
			}
			pod, _ := desired.ToPod(task)
			y, err := desired.KubeYAML(&pod)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, namedDoc{"convert " + f.path + "/" + task.Metadata.Name, y})
		}
	}
	for _, table := range []struct {
		name string
		rows []mistake
	}{{"mistake", mistakes}, {"probe", probes}, {"stricter", stricter}} {
		for _, m := range table.rows {
			doc, err := mistakeDoc(m)
			if err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			out = append(out, namedDoc{table.name + " " + m.name, doc})
		}
	}
	return out
}

// TestKubeletFileSource proves that Kubelet, the reproduction of the
// kubelet's unexported static-pod decode path, agrees with the kubelet:
// the kubelet's own file source (config.NewSourceFile, as a kubelet runs
// it on --pod-manifest-path, feeding a config.PodConfig) reads a
// directory of every Pod of the other tests, one file each, and must take
// exactly those that Kubelet accepts, and refuse the others.
//
// Each Pod gets a namespace of its own (metadata.namespace kc-N, which
// changes no verdict) so that pods of one name stay apart: the kubelet
// keys static pods by namespace and name. The source is never stopped
// (it has no stop): its goroutines and one inotify watch end with the
// test binary.
func TestKubeletFileSource(t *testing.T) {
	pods := allPods(t)
	dir := t.TempDir()
	want := map[string]error{} // file → Kubelet's verdict
	names := map[string]string{}
	for i, p := range pods {
		ns := fmt.Sprintf("kc-%03d", i)
		data, err := apply(p.data, set("metadata.namespace", ns))
		if err != nil {
			t.Logf("%s: left out, not a map: %v", p.name, err)
			continue
		}
		file := filepath.Join(dir, ns+".yaml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[file] = Kubelet(data)
		names[file] = p.name
	}

	sink := &errorSink{errs: map[string]error{}}
	logger := logr.New(sink)
	ctx := klog.NewContext(t.Context(), logger)
	cfg := kubeletconfig.NewPodConfig(record.NewFakeRecorder(len(pods)), sloObserver{})
	kubeletconfig.NewSourceFile(logger, dir, NodeName, time.Hour, cfg.Channel(ctx, kubetypes.FileSource))

	// The first listing of the directory is one update of every pod it
	// took, sent after every refusal is logged.
	var update kubetypes.PodUpdate
	select {
	case update = <-cfg.Updates():
	case <-time.After(time.Minute):
		t.Fatal("no update from the kubelet's file source in a minute")
	}
	took := map[string]*corev1.Pod{}
	for _, p := range update.Pods {
		took[filepath.Join(dir, p.Namespace+".yaml")] = p
	}
	refused := sink.all()

	files := slices.Sorted(func(yield func(string) bool) {
		for f := range want {
			if !yield(f) {
				return
			}
		}
	})
	accepted := 0
	for _, f := range files {
		oracle, pod, kerr := want[f], took[f], refused[f]
		switch {
		case oracle == nil && pod == nil:
			t.Errorf("%s: Kubelet accepts it, the kubelet's file source refuses it: %v", names[f], kerr)
		case oracle != nil && pod != nil:
			t.Errorf("%s: Kubelet refuses it (%v), the kubelet's file source takes it as %s/%s", names[f], oracle, pod.Namespace, pod.Name)
		case oracle != nil && kerr == nil:
			t.Errorf("%s: the kubelet's file source neither took nor refused it", names[f])
		case pod != nil:
			accepted++
		}
	}
	t.Logf("%d Pods: the kubelet's file source took %d and refused %d, as Kubelet does", len(files), accepted, len(files)-accepted)
	if accepted == 0 || accepted == len(files) {
		t.Errorf("the kubelet took %d of %d Pods: the comparison proves nothing", accepted, len(files))
	}
}

// errorSink is a logr.LogSink that keeps the error of each file the
// kubelet's file source could not process (its "path" value).
type errorSink struct {
	mu   sync.Mutex
	errs map[string]error
}

func (s *errorSink) Init(logr.RuntimeInfo)                  {}
func (s *errorSink) Enabled(int) bool                       { return false }
func (s *errorSink) Info(int, string, ...any)               {}
func (s *errorSink) WithValues(...any) logr.LogSink         { return s }
func (s *errorSink) WithName(string) logr.LogSink           { return s }
func (s *errorSink) Error(err error, msg string, kv ...any) { s.record(err, msg, kv) }

func (s *errorSink) record(err error, msg string, kv []any) {
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "path" {
			p, _ := kv[i+1].(string)
			if err == nil {
				err = fmt.Errorf("%s", msg)
			}
			s.mu.Lock()
			s.errs[p] = err
			s.mu.Unlock()
		}
	}
}

func (s *errorSink) all() map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]error, len(s.errs))
	for k, v := range s.errs {
		out[k] = v
	}
	return out
}

// sloObserver is the pod startup SLI observer a PodConfig needs; static
// pods are never observed.
type sloObserver struct{}

func (sloObserver) ObservedPodOnWatch(klog.Logger, *corev1.Pod, time.Time) {}
