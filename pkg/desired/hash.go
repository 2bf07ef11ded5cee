package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// hashVersion prefixes everything that is hashed, so the scheme can change
// later without an old hash ever matching a new one by accident.
const hashVersion = "v1"

// HashLen is the length of [Task.Hash]: lower-case hex characters.
const HashLen = 12

// Hash returns a short, versioned, deterministic hash of the spec after
// defaults: equal specs give equal hashes and any change of any spec field
// changes it; metadata (name, labels) and Source do not take part.
//
// Scheme v1: the first 12 hex characters of
// sha256("v1" + "\x00" + json(spec with defaults)). JSON of a struct is
// canonical here: fields in declaration order, empty optional fields omitted,
// durations as Go duration strings.
func (t Task) Hash() string {
	b, err := json.Marshal(t.Spec.withDefaults())
	if err != nil {
		// Spec has only strings, slices and a Duration; Marshal cannot
		// fail. Hash something stable rather than panic.
		b = []byte(err.Error())
	}
	h := sha256.New()
	h.Write([]byte(hashVersion))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:HashLen]
}
