package desired

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// fieldError is one validation problem, before it is given a file and line.
type fieldError struct {
	field, msg string
}

// validateTask checks a decoded task, header included.
func validateTask(t *Task) []fieldError {
	return append(validateHeader(t.APIVersion, t.Kind), validateBody(t)...)
}

func validateHeader(apiVersion, kind string) []fieldError {
	var errs []fieldError
	switch apiVersion {
	case APIVersion:
	case "":
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("required, must be %q", APIVersion)})
	default:
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("must be %q, got %q", APIVersion, apiVersion)})
	}
	switch kind {
	case KindTask:
	case "":
		errs = append(errs, fieldError{"kind", fmt.Sprintf("required, must be %q", KindTask)})
	default:
		errs = append(errs, fieldError{"kind", fmt.Sprintf("must be %q, got %q", KindTask, kind)})
	}
	return errs
}

// validateBody checks metadata and spec. Each check is one small function
// of its own so the schema can grow field by field.
func validateBody(t *Task) []fieldError {
	var v validator
	v.name("metadata.name", t.Metadata.Name)
	s := &t.Spec
	v.image("spec.image", s.Image)
	v.noNUL("spec.command", s.Command)
	v.noNUL("spec.args", s.Args)
	v.env("spec.env", s.Env)
	v.workingDir("spec.workingDir", s.WorkingDir)
	v.signal("spec.stopSignal", s.StopSignal)
	v.duration("spec.stopGracePeriod", s.StopGracePeriod)
	return v.errs
}

type validator struct {
	errs []fieldError
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fieldError{field, fmt.Sprintf(format, args...)})
}

var dns1123LabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (v *validator) name(field, name string) {
	switch {
	case name == "":
		v.add(field, "required")
	case len(name) > 63 || !dns1123LabelRE.MatchString(name):
		v.add(field, "must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got %q", name)
	}
}

func (v *validator) image(field, image string) {
	if image == "" {
		v.add(field, "required")
		return
	}
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		v.add(field, "invalid image reference %q: %v", image, err)
	}
}

func (v *validator) noNUL(field string, list []string) {
	for i, s := range list {
		if strings.IndexByte(s, 0) >= 0 {
			v.add(fmt.Sprintf("%s[%d]", field, i), "must not contain a NUL byte")
		}
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (v *validator) env(field string, env []EnvVar) {
	first := map[string]int{}
	for i, e := range env {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case e.Name == "":
			v.add(f+".name", "required")
		case !envNameRE.MatchString(e.Name):
			v.add(f+".name", "must be a valid environment variable name, got %q", e.Name)
		default:
			if j, dup := first[e.Name]; dup {
				v.add(f+".name", "duplicate environment variable %q, first at %s[%d]", e.Name, field, j)
			} else {
				first[e.Name] = i
			}
		}
		if strings.IndexByte(e.Value, 0) >= 0 {
			v.add(f+".value", "must not contain a NUL byte")
		}
	}
}

func (v *validator) workingDir(field, dir string) {
	switch {
	case dir == "":
	case !strings.HasPrefix(dir, "/"):
		v.add(field, "must be an absolute path, got %q", dir)
	case strings.IndexByte(dir, 0) >= 0:
		v.add(field, "must not contain a NUL byte")
	}
}

func (v *validator) signal(field, sig string) {
	if sig == "" {
		return
	}
	if _, ok := normalizeSignal(sig); !ok {
		v.add(field, "unknown signal %q, must be a signal name such as SIGTERM, SIGINT, SIGQUIT or SIGKILL", sig)
	}
}

func (v *validator) duration(field string, d *Duration) {
	if d != nil && d.Duration < 0 {
		v.add(field, "must not be negative, got %q", d.Duration.String())
	}
}

// signals are the Linux signal names a task may be stopped with. It is a
// table rather than golang.org/x/sys/unix so that validation gives the same
// answer on every platform the binary is built for.
var signals = map[string]bool{
	"SIGHUP": true, "SIGINT": true, "SIGQUIT": true, "SIGILL": true, "SIGTRAP": true,
	"SIGABRT": true, "SIGBUS": true, "SIGFPE": true, "SIGKILL": true,
	"SIGUSR1": true, "SIGSEGV": true, "SIGUSR2": true, "SIGPIPE": true, "SIGALRM": true,
	"SIGTERM": true, "SIGSTKFLT": true, "SIGCHLD": true, "SIGCONT": true, "SIGSTOP": true,
	"SIGTSTP": true, "SIGTTIN": true, "SIGTTOU": true, "SIGURG": true, "SIGXCPU": true,
	"SIGXFSZ": true, "SIGVTALRM": true, "SIGPROF": true, "SIGWINCH": true, "SIGIO": true,
	"SIGPWR": true, "SIGSYS": true,
}

// normalizeSignal turns "term", "TERM" or "SIGTERM" into "SIGTERM".
func normalizeSignal(s string) (string, bool) {
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	return n, signals[n]
}
