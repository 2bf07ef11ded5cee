package runtime

import (
	"encoding/json"
	"fmt"

	"github.com/containerd/typeurl/v2"
	"github.com/warren/reconciler/pkg/desired"
)

// specExtension is the container extension holding the manifest spec a
// container was created from, so that a later replacement can say which
// fields changed (`reconciler plan`) without any state of the reconciler's
// own (DESIGN invariant 3). It is never used to decide anything.
const specExtension = "io.warren.spec"

// SpecRecord is the JSON stored in the spec extension.
type SpecRecord struct {
	Spec json.RawMessage `json:"spec"`
}

func init() {
	typeurl.Register(&SpecRecord{}, "io.warren", "SpecRecord")
}

func specRecord(s desired.Spec) (*SpecRecord, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("record spec: %w", err)
	}
	return &SpecRecord{Spec: b}, nil
}

// recordedSpec returns the spec JSON of a container's extensions, or nil.
func recordedSpec(ext map[string]typeurl.Any) []byte {
	a, ok := ext[specExtension]
	if !ok || a == nil {
		return nil
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return nil
	}
	if r, ok := v.(*SpecRecord); ok {
		return r.Spec
	}
	return nil
}
