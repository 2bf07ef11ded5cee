package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// What an interrupted operation leaves behind. Creating a container takes
// several steps (a lease, the image, staged secrets, a snapshot, the
// container) and deleting one too (the task, the container and its
// snapshot, staged secrets, log files). When the reconciler is killed, or
// containerd goes away, between two steps, the rest is left: a snapshot or
// a staged secrets directory with no container, log files of a container
// that is gone, a lease that holds a snapshot for a day. None of them
// carries a task name a later plan would act on, so Collect looks for them.
//
// Everything the runtime creates that could be left so is recognisable as
// the reconciler's: its leases and snapshots carry the ownership label,
// and logs/ and secrets/ in the state directory are its own (a state
// directory belongs to one reconciler). Collect never touches a lease or
// snapshot without the label, nor anything an operation of this process is
// still working on.

// collectEvery is how often Collect looks even when nothing failed: a log
// driver may write a last record after its container's files were removed.
const collectEvery = 10 * time.Minute

// leaseExpiry bounds a lease of the reconciler's that Collect cannot remove
// (containerd then removes it itself).
const leaseExpiry = time.Hour

var ownedLabel = map[string]string{observed.LabelManagedBy: observed.ManagedByValue}

// lease returns ctx with a lease of the reconciler's own (labelled,
// expiring after leaseExpiry), and the func that removes it: what is made
// under it (image content, snapshots) is kept from containerd's garbage
// collector until something references it, and a lease left by an
// interrupted operation is found by Collect. Within another lease, ctx is
// returned as it is.
func (r *Runtime) lease(ctx context.Context) (context.Context, func(), error) {
	if _, ok := leases.FromContext(ctx); ok {
		return ctx, func() {}, nil
	}
	ls := r.client.LeasesService()
	// The ID is chosen and marked busy before containerd makes the lease:
	// a collection that lists it while its Create is still on the way
	// leaves it alone.
	var pick leases.Lease
	if err := leases.WithRandomID()(&pick); err != nil {
		return ctx, nil, fmt.Errorf("create lease: %w", err)
	}
	r.busy(pick.ID, true)
	l, err := ls.Create(ctx, leases.WithID(pick.ID), leases.WithExpiration(leaseExpiry), leases.WithLabels(ownedLabel))
	if err != nil {
		// containerd may have made it all the same (it went away before
		// answering): the failed call made a collection due.
		r.busy(pick.ID, false)
		return ctx, nil, fmt.Errorf("create lease: %w", err)
	}
	release := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := ls.Delete(dctx, l); err != nil && !errdefs.IsNotFound(err) {
			r.log.Error(err, "remove lease; it is removed at the next collection", "lease", l.ID)
			r.needCollect()
		}
		r.busy(l.ID, false)
	}
	return leases.WithLease(ctx, l.ID), release, nil
}

// busy marks a container ID or lease ID as worked on by this process (or
// no longer): Collect leaves it alone.
func (r *Runtime) busy(id string, on bool) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	if on {
		r.inFlight[id]++
		return
	}
	if r.inFlight[id]--; r.inFlight[id] <= 0 {
		delete(r.inFlight, id)
	}
}

func (r *Runtime) isBusy(id string) bool {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	return r.inFlight[id] > 0
}

// needCollect makes the next Collect look, as something may be left.
func (r *Runtime) needCollect() {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	r.collectDue = true
}

// mayHaveTakenEffect reports whether a failed containerd call may have done
// what it asked all the same: containerd did not answer (it went away, the
// call timed out or was cancelled, or it failed inside), so a lease, a
// snapshot or a container may exist that the caller never learned of. An
// answer of containerd's own (not found, already exists, invalid, ...)
// proves the outcome.
func mayHaveTakenEffect(err error) bool {
	switch status.Code(err) {
	case codes.OK, codes.NotFound, codes.AlreadyExists, codes.InvalidArgument, codes.FailedPrecondition,
		codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange, codes.Unimplemented:
		return false
	}
	return true
}

// collectDialOptions make a collection due after any call on the
// connection that failed in a way that may have taken effect: whatever the
// operation (a create, a delete, a pull, an import, or one added later),
// containerd stopping at any point of it leaves nothing for longer than
// until the next Collect.
func (r *Runtime) collectDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			r.noteCallError(err)
			return err
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				r.noteCallError(err)
				return nil, err
			}
			return &collectStream{ClientStream: s, r: r}, nil
		}),
	}
}

func (r *Runtime) noteCallError(err error) {
	if err != nil && mayHaveTakenEffect(err) {
		r.needCollect()
	}
}

// collectStream notes the error that ends a stream (io.EOF is its normal
// end), as a failed call.
type collectStream struct {
	grpc.ClientStream
	r *Runtime
}

func (s *collectStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.r.noteCallError(err)
	}
	return err
}

func (s *collectStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.r.noteCallError(err)
	}
	return err
}

// containerID matches the IDs the reconciler gives containers (a task
// name, a dash, twelve hex digits of the spec hash).
var containerID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9a-f]{12}$`)

// Collect removes what interrupted operations left behind: the
// reconciler's leases no operation holds, its snapshots and staged secrets
// directories of no container, and log files of no container. It looks at
// its first call, after any operation of this runtime failed, after any
// containerd call failed in a way that may have taken effect (see
// mayHaveTakenEffect; containerd stopped or restarted in the middle), after
// the exit event stream came back from a containerd restart, and every ten
// minutes; other calls cost nothing. It reports the first error it met
// (and looks again at the next call); what it could remove is removed.
func (r *Runtime) Collect(ctx context.Context) error {
	r.gcMu.Lock()
	due := r.collectDue || r.lastCollect.IsZero() || time.Since(r.lastCollect) >= collectEvery
	r.collectDue = false
	r.gcMu.Unlock()
	if !due && r.netOrphans(ctx) {
		// A namespace pin of no container (a crash mid-create or
		// mid-delete): released at this resync, not in ten minutes.
		due = true
	}
	if !due {
		return nil
	}
	err := r.collect(ctx)
	r.gcMu.Lock()
	r.lastCollect = time.Now()
	if err != nil {
		r.collectDue = true
	}
	r.gcMu.Unlock()
	return err
}

func (r *Runtime) collect(ctx context.Context) error {
	var errs []error
	// Leases: no operation of this process holds them, and none of
	// another (a previous process was killed, or this one was, during
	// the operation).
	ls := r.client.LeasesService()
	owned, err := ls.List(ctx, fmt.Sprintf("labels.%q==%s", observed.LabelManagedBy, observed.ManagedByValue))
	if err != nil {
		return fmt.Errorf("collect: list leases: %w", err)
	}
	for _, l := range owned {
		if r.isBusy(l.ID) {
			continue
		}
		if err := ls.Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("collect: remove lease %s: %w", l.ID, err))
			continue
		}
		r.log.Info("removed a lease left behind", "lease", l.ID)
	}

	// Snapshots and files first, containers last: a container created in
	// between is then seen, and what it uses is kept.
	sn := r.snapshotService()
	var snaps []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			snaps = append(snaps, info.Name)
		}
		return nil
	}, fmt.Sprintf("labels.%q==%s", observed.LabelManagedBy, observed.ManagedByValue))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("collect: list snapshots: %w", err))...)
	}
	logs := r.filesOf(r.logDir, logFileID)
	secrets := r.filesOf(r.secretsDir(""), func(name string) (string, bool) { return name, containerID.MatchString(name) })
	recs, err := r.client.ContainerService().List(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("collect: list containers: %w", err))...)
	}
	ids := make(map[string]bool, len(recs))
	keys := make(map[string]bool, len(recs))
	for _, c := range recs {
		ids[c.ID] = true
		keys[c.SnapshotKey] = true
	}
	for _, key := range snaps {
		if keys[key] || r.isBusy(key) {
			continue
		}
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("collect: remove snapshot %s: %w", key, err))
			continue
		}
		r.log.Info("removed a snapshot of no container", "snapshot", key)
	}
	for id := range secrets {
		if ids[id] || r.isBusy(id) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.secretsDir(""), id)); err != nil {
			errs = append(errs, fmt.Errorf("collect: remove staged secrets of %s: %w", id, err))
			continue
		}
		r.log.Info("removed staged secrets of no container", "container", id)
	}
	if err := r.sweepNetwork(ctx, func(id string) bool { return ids[id] }); err != nil {
		errs = append(errs, fmt.Errorf("collect: %w", err))
	}
	if err := r.sweepSandboxes(ctx); err != nil {
		errs = append(errs, fmt.Errorf("collect: %w", err))
	}
	for id := range logs {
		if ids[id] || r.isBusy(id) {
			continue
		}
		if err := logfile.Remove(r.logDir, id); err != nil {
			errs = append(errs, fmt.Errorf("collect: remove log files of %s: %w", id, err))
			continue
		}
		r.log.Info("removed log files of no container", "container", id)
	}
	return errors.Join(errs...)
}

// logFileRE matches a log file name: ID.log or ID.log.N.
var logFileRE = regexp.MustCompile(`^(.+)\.log(\.[0-9]+)?$`)

func logFileID(name string) (string, bool) {
	m := logFileRE.FindStringSubmatch(name)
	if m == nil || !containerID.MatchString(m[1]) {
		return "", false
	}
	return m[1], true
}

// filesOf lists dir ("" or missing: nothing) and returns the container IDs
// its entries belong to, by id.
func (r *Runtime) filesOf(dir string, idOf func(name string) (string, bool)) map[string]bool {
	out := map[string]bool{}
	if dir == "" {
		return out
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			r.log.Error(err, "collect: read directory", "dir", dir)
		}
		return out
	}
	for _, e := range entries {
		if id, ok := idOf(e.Name()); ok {
			out[id] = true
		}
	}
	return out
}

// snapshotService is the snapshotter containers are created with.
func (r *Runtime) snapshotService() snapshots.Snapshotter {
	return r.client.SnapshotService(r.snapshotter) // resolved by New
}
