package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// hashVersion prefixes everything that is hashed, so the scheme can change
// later without an old hash ever matching a new one by accident.
//
// v1 (the walking skeleton) hashed the spec with its defaults filled in, so
// every new field with a default would have changed every hash. v2 hashes
// the spec with its defaults removed.
const hashVersion = "v2"

// HashLen is the length of [Task.Hash]: lower-case hex characters.
const HashLen = 12

// Hash returns a short, versioned, deterministic hash of the spec: equal
// specs give equal hashes and any change of any spec field changes it;
// metadata (name, labels) and Source do not take part.
//
// Scheme v2: the first 12 hex characters of
// sha256("v2" + "\x00" + json(canonical spec)). The canonical spec is the
// spec with defaults applied and values normalized (see [Spec.withDefaults];
// image references in full, "nginx" as "docker.io/library/nginx:latest";
// quantities by value, so "0.5" and "500m" are equal), and then every value
// that equals its default removed. So writing a default out or leaving it
// out gives the same hash, and a field added later with a default leaves the
// hash of every manifest that does not use it as it was. JSON of a struct is
// canonical here: fields in declaration order, empty optional fields omitted
// (every optional field is omitempty, which a test checks), durations as Go
// duration strings.
//
// A task of a Kubernetes Pod ([Spec.Pod]) hashes its pod's name and what
// it shares with the pod's other containers ([Spec.PodShared]) too.
//
// A secret takes part by its name and its file as written: an absolute
// host path, or a file name of the manifests directory ("db.age"), never
// the directory that name is resolved in (the git source writes each
// commit into a new one) and never the file's content. A secret file
// changed in place, or in a new commit with the same manifests, replaces
// no container: the new content reaches the task with its next container.
func (t Task) Hash() string {
	b, err := json.Marshal(t.Spec.canonical())
	if err != nil {
		// Spec holds only strings, numbers, slices, Durations and
		// Quantities; Marshal cannot fail. Hash something stable rather
		// than panic.
		b = []byte(err.Error())
	}
	h := sha256.New()
	h.Write([]byte(hashVersion))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:HashLen]
}

// canonicalSpec is the hashed form of a spec: its JSON, and the fields
// that YAML does not carry. Empty, they leave the JSON as it was.
type canonicalSpec struct {
	Spec
	Pod       string     `json:"pod,omitempty"`       // Spec.Pod: a pod's container differs from a task of the same name
	PodShared *PodShared `json:"podShared,omitempty"` // Spec.PodShared: what the pod's containers share
}

// canonical returns the spec in the form that is hashed: normalized, with
// every value that equals its default removed.
func (s Spec) canonical() canonicalSpec {
	s = s.withDefaults() // a deep copy: free to change below
	s.DependsOn = nil    // the start order, not the container
	s.MinReady = nil     // the rollout, not the container
	s.ProgressDeadline = nil
	if s.ImagePullPolicy == DefaultPullPolicy(s.Image) {
		s.ImagePullPolicy = ""
	}
	s.Image = imageFacts(s.Image).normalized
	if s.Network == DefaultNetwork {
		s.Network = ""
	}
	if s.RestartPolicy == DefaultRestartPolicy {
		s.RestartPolicy = ""
	}
	if s.UpdateStrategy == DefaultUpdateStrategy {
		s.UpdateStrategy = ""
	}
	if s.StopSignal == DefaultStopSignal {
		s.StopSignal = ""
	}
	s.StopGracePeriod = dropDefault(s.StopGracePeriod, DefaultStopGracePeriod)

	if r := s.Resources; r != nil {
		r.CPU = canonicalMilli(r.CPU)
		r.Memory = canonicalBytes(r.Memory)
		if r.CPU == nil && r.Memory == nil && r.Pids == nil {
			s.Resources = nil
		}
	}
	for i := range s.Mounts {
		s.Mounts[i].Size = canonicalBytes(s.Mounts[i].Size)
	}
	if c := s.SecurityContext; c != nil {
		if caps := c.Capabilities; caps != nil && len(caps.Add) == 0 && len(caps.Drop) == 0 {
			c.Capabilities = nil
		}
		if *c == (SecurityContext{}) {
			s.SecurityContext = nil
		}
	}
	if b := s.RestartBackoff; b != nil {
		b.Initial = dropDefault(b.Initial, DefaultBackoffInitial)
		b.Max = dropDefault(b.Max, DefaultBackoffMax)
		b.ResetAfter = dropDefault(b.ResetAfter, DefaultBackoffResetAfter)
		if *b == (RestartBackoff{}) {
			s.RestartBackoff = nil
		}
	}
	if h := s.HealthCheck; h != nil {
		h.Interval = dropDefault(h.Interval, DefaultHealthInterval)
		h.Timeout = dropDefault(h.Timeout, DefaultHealthTimeout)
		h.StartPeriod = dropDefault(h.StartPeriod, 0)
		if h.Retries == DefaultHealthRetries {
			h.Retries = 0
		}
		if h.HTTP != nil && h.HTTP.Path == DefaultHTTPPath {
			h.HTTP.Path = ""
		}
		if h.OnUnhealthy == DefaultOnUnhealthy {
			h.OnUnhealthy = ""
		}
	}
	return canonicalSpec{Spec: s, Pod: s.Pod, PodShared: s.PodShared}
}

func dropDefault(d *Duration, def time.Duration) *Duration {
	if d == nil || d.Duration == def {
		return nil
	}
	return d
}

// canonicalMilli returns q as a whole number of thousandths (CPU).
func canonicalMilli(q *resource.Quantity) *resource.Quantity {
	if q == nil {
		return nil
	}
	return resource.NewMilliQuantity(q.MilliValue(), resource.DecimalSI)
}

// canonicalBytes returns q as a whole number (bytes).
func canonicalBytes(q *resource.Quantity) *resource.Quantity {
	if q == nil {
		return nil
	}
	return resource.NewQuantity(q.Value(), resource.BinarySI)
}
